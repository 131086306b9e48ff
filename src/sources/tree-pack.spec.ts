// packTree against the route it replaces: GNU tar over the same paths, checked by sanitizeTar. Both
// must write the same entries, refuse with the same words, or (packTree) hand the tree back to tar.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { chmodSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { extract as tarExtract } from 'tar-stream';
import { ArchiveError, type ArchiveErrorCode, type TarLimits } from './tar-safety';
import { sanitizeTar } from './tar-sanitize';
import { isPlannedFile, packTree, TreeNotPackable } from './tree-pack';

const LIMITS: TarLimits = { maxEntries: 1000, maxDepth: 8, maxPathLength: 4096, maxFileBytes: 1 << 20, maxTotalBytes: 4 << 20, maxCompressedBytes: 8 << 20 };
const OWNER = { uid: process.getuid!() };
const base = mkdtempSync(join(tmpdir(), 'kiln-tree-'));
after(() => rmSync(base, { recursive: true, force: true }));
let n = 0;

/** A fresh directory with `build` applied to it. */
function tree(build: (root: string) => void): string {
  const root = join(base, `t${n++}`);
  mkdirSync(root);
  build(root);
  return root;
}

interface Seen {
  name: string;
  type: string;
  mode: number;
  size: number;
  mtime: number;
  body: string;
}

async function entriesOf(file: string): Promise<Seen[]> {
  const ex = tarExtract();
  const seen: Seen[] = [];
  const reading = (async () => {
    for await (const e of ex) {
      const chunks: Buffer[] = [];
      for await (const c of e) chunks.push(c as Buffer);
      const h = e.header;
      seen.push({
        name: h.name,
        type: h.type!,
        mode: h.mode!,
        size: h.size!,
        mtime: Math.floor(h.mtime!.getTime() / 1000),
        body: Buffer.concat(chunks).toString('latin1'),
      });
    }
  })();
  ex.end(readFileSync(file));
  await reading;
  return seen.sort((a, b) => (a.name < b.name ? -1 : 1));
}

type Outcome = { ok: true; files: number; totalBytes: number; droppedLinks: number; entries: Seen[] } | { ok: false; error: string; code?: ArchiveErrorCode };

/** The old route: GNU tar in root over the NUL-separated paths, its output through sanitizeTar. */
async function viaTar(root: string, paths: string[], limits = LIMITS): Promise<Outcome> {
  const out = join(base, `tar-${n++}.tar`);
  const tar = spawn('tar', ['-c', '-f', '-', '--null', '-T', '-'], { cwd: root, stdio: ['pipe', 'pipe', 'ignore'] });
  tar.stdin.end(paths.map((p) => `${p}\0`).join(''));
  try {
    const s = await sanitizeTar(tar.stdout, out, limits, { dropLinks: true });
    return { ok: true, files: s.files, totalBytes: s.totalBytes, droppedLinks: s.droppedLinks, entries: await entriesOf(out) };
  } catch (e) {
    tar.stdout.resume();
    return { ok: false, error: (e as Error).message, code: (e as ArchiveError).code };
  }
}

async function viaHost(root: string, paths: string[], limits = LIMITS): Promise<Outcome & { warnings?: string[] }> {
  const out = join(base, `host-${n++}.tar`);
  const warnings: string[] = [];
  try {
    const s = await packTree(root, paths, out, limits, OWNER, { dropLinks: true, onWarning: (w) => warnings.push(w) });
    return { ok: true, files: s.files, totalBytes: s.totalBytes, droppedLinks: s.droppedLinks, entries: await entriesOf(out), warnings };
  } catch (e) {
    if (!(e instanceof ArchiveError)) throw e;
    return { ok: false, error: e.message, code: e.code, warnings };
  }
}

async function same(root: string, paths: string[], limits = LIMITS): Promise<Outcome & { warnings?: string[] }> {
  const [tar, host] = [await viaTar(root, paths, limits), await viaHost(root, paths, limits)];
  const { warnings, ...hostOutcome } = host;
  assert.deepEqual(hostOutcome, tar);
  return host;
}

/** The refusal of an outcome that must be one (its code compared with sanitizeTar's by same()). */
function refusal(outcome: Outcome): { error: string; code?: ArchiveErrorCode } {
  assert.equal(outcome.ok, false);
  return outcome as { error: string; code?: ArchiveErrorCode };
}

async function notPackable(root: string, paths: string[], why: RegExp): Promise<void> {
  await assert.rejects(
    packTree(root, paths, join(base, `np-${n++}.tar`), LIMITS, OWNER, { dropLinks: true }),
    (e: Error) => e instanceof TreeNotPackable && why.test(e.message),
  );
}

describe('packTree writes what tar and sanitizeTar would', () => {
  test('files, modes, mtimes, empty files, nested directories, paths given three ways, symlinks left out', async () => {
    const root = tree((r) => {
      mkdirSync(join(r, 'out/sub/deeper'), { recursive: true });
      writeFileSync(join(r, 'out/a.txt'), 'alpha\n');
      writeFileSync(join(r, 'out/run.sh'), '#!/bin/sh\n', { mode: 0o4777 });
      writeFileSync(join(r, 'out/empty'), '');
      writeFileSync(join(r, 'out/sub/deeper/b.bin'), Buffer.from([0, 1, 2, 255]));
      symlinkSync('/etc/passwd', join(r, 'out/abs-link'));
      symlinkSync('a.txt', join(r, 'out/rel-link'));
      writeFileSync(join(r, 'top.txt'), 'top');
      utimesSync(join(r, 'top.txt'), new Date('2020-01-02T03:04:05Z'), new Date('2020-01-02T03:04:05Z'));
    });
    const packed = await same(root, ['out/', './top.txt']);
    assert.ok(packed.ok);
    assert.equal(packed.files, 5);
    assert.equal(packed.droppedLinks, 2);
    assert.deepEqual(packed.warnings, []);
    assert.equal(packed.entries.find((e) => e.name === 'out/run.sh')?.mode, 0o755);
    assert.equal(packed.entries.find((e) => e.name === 'top.txt')?.mtime, Date.parse('2020-01-02T03:04:05Z') / 1000);
    await same(root, ['.']);
    await same(root, ['out/sub', 'top.txt', 'out/rel-link']);
  });

  test('a path that is not there is a warning and the rest is packed; nothing there at all is empty', async () => {
    const root = tree((r) => writeFileSync(join(r, 'here'), 'x'));
    const packed = await same(root, ['here', 'nowhere', 'here-not/x']);
    assert.deepEqual(packed.warnings, ['nowhere: Cannot stat: No such file or directory', 'here-not/x: Cannot stat: No such file or directory']);
    const empty = await same(root, ['nowhere']);
    assert.equal(empty.ok, false);
    assert.deepEqual(empty.warnings, ['nowhere: Cannot stat: No such file or directory']);
    assert.match(!empty.ok ? empty.error : '', /the archive is empty/);
    assert.equal(!empty.ok && empty.code, 'empty');
    assert.match((await viaHost(root, [])).ok ? '' : 'empty', /empty/);
  });

  test('refusals say the same: a FIFO, a hard link, a name twice, a limit', async () => {
    const fifo = tree((r) => {
      mkdirSync(join(r, 'out'));
      execFileSync('mkfifo', [join(r, 'out/pipe')]);
    });
    const fifoRefused = refusal(await same(fifo, ['out']));
    assert.match(fifoRefused.error, /FIFOs/);
    assert.equal(fifoRefused.code, 'unsupported-type');
    const hard = tree((r) => {
      mkdirSync(join(r, 'out'));
      writeFileSync(join(r, 'out/one'), 'same inode');
      linkSync(join(r, 'out/one'), join(r, 'out/two'));
    });
    assert.match(((await same(hard, ['out/one', 'out/two'])) as { error: string }).error, /hard links are not accepted/);
    const twice = tree((r) => {
      mkdirSync(join(r, 'out'));
      writeFileSync(join(r, 'out/a'), 'a');
    });
    // GNU tar writes a file given twice as a hard link to itself: refused as one, by both.
    assert.match(((await same(twice, ['out', 'out/a'])) as { error: string }).error, /entry 'out\/a': hard links are not accepted/);
    const big = tree((r) => writeFileSync(join(r, 'big'), Buffer.alloc((1 << 20) + 1)));
    const bigRefused = refusal(await same(big, ['big']));
    assert.match(bigRefused.error, /over the limit of 1 MiB per file/);
    assert.equal(bigRefused.code, 'too-large');
    const deep = tree((r) => mkdirSync(join(r, 'd/d/d/d/d/d/d/d/d/d'), { recursive: true }));
    const deepRefused = refusal(await same(deep, ['d']));
    assert.match(deepRefused.error, /entry 'd(\/d){8}\/': path is 9 levels deep, over the limit of 8/);
    assert.equal(deepRefused.code, 'too-deep');
    const many = tree((r) => {
      mkdirSync(join(r, 'm'));
      for (let i = 0; i < 30; i++) writeFileSync(join(r, 'm', `f${i}`), '');
    });
    const manyRefused = refusal(await same(many, ['m'], { ...LIMITS, maxEntries: 20 }));
    assert.match(manyRefused.error, /more than 20 entries/);
    assert.equal(manyRefused.code, 'too-many-entries');
    const total = tree((r) => {
      for (let i = 0; i < 5; i++) writeFileSync(join(r, `f${i}`), Buffer.alloc(1 << 20));
    });
    assert.match(((await same(total, ['f0', 'f1', 'f2', 'f3', 'f4'])) as { error: string }).error, /add up to more than 4 MiB/);
  });
});

describe('packTree hands back to tar what it would have to follow or could not read as the owner', () => {
  const root = tree((r) => {
    mkdirSync(join(r, 'dir'));
    writeFileSync(join(r, 'dir/f'), 'f');
    symlinkSync('dir', join(r, 'link'));
    symlinkSync('/', join(r, 'slash'));
    writeFileSync(join(r, 'secret'), 's', { mode: 0o000 });
    mkdirSync(join(r, 'closed'), { mode: 0o300 });
    chmodSync(join(r, 'closed'), 0o300);
  });

  test('a path through a symlink, or a symlink named with a slash (tar follows both)', async () => {
    await notPackable(root, ['link/f'], /through a symlink/);
    await notPackable(root, ['slash/etc/passwd'], /through a symlink/);
    await notPackable(root, ['link/'], /symlink's target/);
    const asLink = await same(root, ['link', 'dir/f']);
    assert.ok(asLink.ok && asLink.droppedLinks === 1 && asLink.entries.length === 1, 'the link itself is only left out');
    assert.match(((await same(root, ['link'])) as { error: string }).error, /the archive is empty/);
  });

  test('absolute paths and paths that go up', async () => {
    await notPackable(root, ['/etc/passwd'], /absolute/);
    await notPackable(root, ['dir/../../x'], /goes up/);
  });

  test('a file its owner may not read, a directory it may not list, an entry not its own', async () => {
    await notPackable(root, ['secret'], /not the owner's to read/);
    await notPackable(root, ['closed'], /not the owner's to list/);
    await assert.rejects(packTree(root, ['dir'], join(base, 'other.tar'), LIMITS, { uid: OWNER.uid + 4242 }), TreeNotPackable);
  });

  test('a name that is not UTF-8', async () => {
    const odd = tree((r) => {
      mkdirSync(join(r, 'out'));
      writeFileSync(Buffer.concat([Buffer.from(join(r, 'out/')), Buffer.from([0xff, 0x41])]), 'x');
    });
    await notPackable(odd, ['out'], /not UTF-8/);
  });
});

test('a file opened for packing is the planned one only with the same device and inode (inode numbers repeat across file systems)', () => {
  const planned = { file: '/x/a', dev: 41, ino: 7, size: 3 };
  const st = (o: Partial<{ dev: number; ino: number; size: number; file: boolean }>) => ({
    isFile: () => o.file ?? true,
    dev: o.dev ?? 41,
    ino: o.ino ?? 7,
    size: o.size ?? 3,
  });
  assert.equal(isPlannedFile(st({}), planned), true);
  assert.equal(isPlannedFile(st({ dev: 42 }), planned), false, 'another tmpfs, same inode number: another file');
  assert.equal(isPlannedFile(st({ ino: 8 }), planned), false);
  assert.equal(isPlannedFile(st({ size: 4 }), planned), false);
  assert.equal(isPlannedFile(st({ file: false }), planned), false);
  assert.equal(isPlannedFile({ isFile: () => true, dev: 41n, ino: 7n, size: 3n }, planned), true, 'bigint stats');
});

test("with a base, the paths are the base's and the entries are named without it, as tar -C base over the same files writes them", async () => {
  const root = tree((r) => {
    mkdirSync(join(r, 'dist/sub'), { recursive: true });
    writeFileSync(join(r, 'dist/app.txt'), 'app\n');
    writeFileSync(join(r, 'dist/sub/b.bin'), Buffer.from([1, 2, 3]));
    symlinkSync('/etc/passwd', join(r, 'dist/link'));
    symlinkSync('dist', join(r, 'via-link'));
  });
  const files = ['app.txt', 'sub/b.bin', 'link'];
  const out = join(base, `based-${n++}.tar`);
  const s = await packTree(root, files, out, LIMITS, OWNER, { dropLinks: true, base: 'dist' });
  assert.deepEqual([s.files, s.droppedLinks], [2, 1]);
  const tarOut = join(base, `based-tar-${n++}.tar`);
  const tar = spawn('tar', ['-c', '-f', '-', '--null', '--no-recursion', '--verbatim-files-from', '-T', '-'], {
    cwd: join(root, 'dist'),
    stdio: ['pipe', 'pipe', 'ignore'],
  });
  tar.stdin.end(files.map((p) => `${p}\0`).join(''));
  await sanitizeTar(tar.stdout, tarOut, LIMITS, { dropLinks: true });
  assert.deepEqual(await entriesOf(out), await entriesOf(tarOut));
  assert.deepEqual(
    (await entriesOf(out)).map((e) => e.name),
    ['app.txt', 'sub/b.bin'],
  );
  // A base reached through a symlink is tar's to follow, in the sandbox.
  await assert.rejects(packTree(root, ['app.txt'], join(base, `np-${n++}.tar`), LIMITS, OWNER, { base: 'via-link' }), TreeNotPackable);
});
