import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import * as tar from 'tar-stream';
import { extractTar } from './extract';
import { packDirectory, PackError } from './pack';

interface ReadEntry {
  name: string;
  type: string;
  mode: number;
  linkname: string;
  content: Buffer;
}

/** Gunzips (if needed) and reads every entry of an archive. */
async function readTar(buf: Buffer): Promise<Map<string, ReadEntry>> {
  const raw = buf[0] === 0x1f && buf[1] === 0x8b ? zlib.gunzipSync(buf) : buf;
  const extract = tar.extract();
  extract.end(raw);
  const out = new Map<string, ReadEntry>();
  for await (const entry of extract) {
    const chunks: Buffer[] = [];
    for await (const c of entry) chunks.push(c as Buffer);
    const h = entry.header;
    out.set(h.name, { name: h.name, type: h.type, mode: h.mode, linkname: h.linkname ?? '', content: Buffer.concat(chunks) });
  }
  return out;
}

/** Builds an uncompressed tar from hand-written headers (for hostile archives). */
async function makeTar(entries: { name: string; type?: 'file' | 'symlink' | 'directory'; body?: string; linkname?: string }[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = new Promise<Buffer>((resolve, reject) => {
    pack.on('data', (c: unknown) => chunks.push(c as Buffer));
    pack.on('end', () => resolve(Buffer.concat(chunks)));
    pack.on('error', reject);
  });
  for (const e of entries) {
    if ((e.type ?? 'file') === 'file') pack.entry({ name: e.name, mode: 0o644 }, e.body ?? '');
    else pack.entry({ name: e.name, type: e.type, linkname: e.linkname, mode: 0o755 });
  }
  pack.finalize();
  return done;
}

async function write(file: string, body: string, mode?: number): Promise<void> {
  await fsp.mkdir(path.dirname(file), { recursive: true });
  await fsp.writeFile(file, body);
  if (mode !== undefined) await fsp.chmod(file, mode);
}

async function exists(p: string): Promise<boolean> {
  return fsp.lstat(p).then(
    () => true,
    () => false,
  );
}

let tmp: string;
before(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'kiln-pack-'));
});
after(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

/** A fresh directory under tmp with `outside/` next to it for escape targets. */
async function fixture(name: string): Promise<{ dir: string; outside: string }> {
  const base = path.join(tmp, name);
  const dir = path.join(base, 'proj');
  const outside = path.join(base, 'outside');
  await fsp.mkdir(dir, { recursive: true });
  await write(path.join(outside, 'secret'), 'outside-secret');
  return { dir, outside };
}

describe('packDirectory', () => {
  it('packs nested files and directories with contents, in sorted order', async () => {
    const { dir } = await fixture('nested');
    await write(path.join(dir, 'b.txt'), 'bee');
    await write(path.join(dir, 'a/deep/c.txt'), 'sea');
    await fsp.mkdir(path.join(dir, 'empty'));
    const res = await packDirectory(dir);
    const entries = await readTar(res.tarGz);
    assert.deepEqual([...entries.keys()], ['a', 'a/deep', 'a/deep/c.txt', 'b.txt', 'empty']);
    assert.equal(entries.get('a')?.type, 'directory');
    assert.equal(entries.get('a')?.mode, 0o755);
    assert.equal(entries.get('a/deep/c.txt')?.content.toString(), 'sea');
    assert.equal(entries.get('b.txt')?.mode, 0o644);
    assert.equal(res.files, 2);
    assert.equal(res.bytes, 6);
    assert.equal(res.ignored, 0);
    assert.deepEqual(res.skippedLinks, []);
  });

  it('applies the root .gitignore, directory patterns and negations', async () => {
    const { dir } = await fixture('rootignore');
    await write(path.join(dir, '.gitignore'), '*.log\nbuild/\n!keep.log\n');
    await write(path.join(dir, 'app.log'), 'x');
    await write(path.join(dir, 'keep.log'), 'kept');
    await write(path.join(dir, 'src/deep.log'), 'x');
    await write(path.join(dir, 'build/out.js'), 'x');
    await write(path.join(dir, 'src/build'), 'a file named build is not a directory');
    await write(path.join(dir, 'src/main.ts'), 'main');
    const res = await packDirectory(dir);
    const names = [...(await readTar(res.tarGz)).keys()];
    assert.deepEqual(names, ['.gitignore', 'keep.log', 'src', 'src/build', 'src/main.ts']);
    assert.equal(res.ignored, 3); // app.log, build/, src/deep.log
  });

  it('applies a nested .gitignore relative to its own directory', async () => {
    const { dir } = await fixture('nestedignore');
    await write(path.join(dir, 'secret.txt'), 'top');
    await write(path.join(dir, 'sub/.gitignore'), 'secret.txt\n');
    await write(path.join(dir, 'sub/secret.txt'), 'hidden');
    await write(path.join(dir, 'sub/other.txt'), 'other');
    const res = await packDirectory(dir);
    const names = [...(await readTar(res.tarGz)).keys()];
    assert.deepEqual(names, ['secret.txt', 'sub', 'sub/.gitignore', 'sub/other.txt']);
    assert.equal(res.ignored, 1);
  });

  it('lets a nested .gitignore re-include what the root one ignores', async () => {
    const { dir } = await fixture('nestednegate');
    await write(path.join(dir, '.gitignore'), '*.dat\n');
    await write(path.join(dir, 'a.dat'), 'x');
    await write(path.join(dir, 'sub/.gitignore'), '!b.dat\n');
    await write(path.join(dir, 'sub/b.dat'), 'y');
    const names = [...(await readTar((await packDirectory(dir)).tarGz)).keys()];
    assert.deepEqual(names, ['.gitignore', 'sub', 'sub/.gitignore', 'sub/b.dat']);
  });

  it('applies .kilnignore', async () => {
    const { dir } = await fixture('kilnignore');
    await write(path.join(dir, '.kilnignore'), 'data/\n*.bin\n');
    await write(path.join(dir, 'data/big.csv'), 'x');
    await write(path.join(dir, 'model.bin'), 'x');
    await write(path.join(dir, 'run.sh'), 'echo');
    const res = await packDirectory(dir);
    assert.deepEqual([...(await readTar(res.tarGz)).keys()], ['.kilnignore', 'run.sh']);
    assert.equal(res.ignored, 2);
  });

  it('always leaves out .git at any depth', async () => {
    const { dir } = await fixture('dotgit');
    await write(path.join(dir, '.git/config'), 'x');
    await write(path.join(dir, 'vendor/lib/.git/HEAD'), 'x');
    await write(path.join(dir, 'vendor/lib/index.js'), 'js');
    const res = await packDirectory(dir);
    const names = [...(await readTar(res.tarGz)).keys()];
    assert.deepEqual(names, ['vendor', 'vendor/lib', 'vendor/lib/index.js']);
    assert.equal(res.ignored, 2);
  });

  it('keeps a symlink inside DIR as a link with its relative target', async () => {
    const { dir } = await fixture('linkinside');
    await write(path.join(dir, 'sub/real.txt'), 'real');
    await fsp.symlink('sub/real.txt', path.join(dir, 'alias'));
    await fsp.symlink('../alias', path.join(dir, 'sub/chain')); // a chain, each hop inside
    const res = await packDirectory(dir);
    const entries = await readTar(res.tarGz);
    assert.equal(entries.get('alias')?.type, 'symlink');
    assert.equal(entries.get('alias')?.linkname, 'sub/real.txt');
    assert.equal(entries.get('sub/chain')?.type, 'symlink');
    assert.equal(entries.get('sub/chain')?.linkname, '../alias');
    assert.equal(res.files, 1);
    assert.deepEqual(res.skippedLinks, []);
  });

  it('skips symlinks that point outside DIR, are absolute, or escape via ..', async () => {
    const { dir } = await fixture('linkoutside');
    await write(path.join(dir, 'sub/ok.txt'), 'ok');
    await fsp.symlink('../outside/secret', path.join(dir, 'up'));
    await fsp.symlink('/etc/passwd', path.join(dir, 'abs'));
    await fsp.symlink('sub/../../x', path.join(dir, 'sneaky'));
    const res = await packDirectory(dir);
    const entries = await readTar(res.tarGz);
    assert.deepEqual([...entries.keys()], ['sub', 'sub/ok.txt']);
    assert.deepEqual(res.skippedLinks, [
      { path: 'abs', target: '/etc/passwd' },
      { path: 'sneaky', target: 'sub/../../x' },
      { path: 'up', target: '../outside/secret' },
    ]);
    for (const e of entries.values()) assert.ok(!e.content.toString().includes('outside-secret'));
  });

  it('neither follows nor includes a symlinked directory pointing outside', async () => {
    const { dir, outside } = await fixture('dirlinkout');
    await fsp.symlink(outside, path.join(dir, 'absdir'));
    await fsp.symlink('../outside', path.join(dir, 'reldir'));
    const res = await packDirectory(dir);
    assert.deepEqual([...(await readTar(res.tarGz)).keys()], []);
    assert.deepEqual(
      res.skippedLinks.map((l) => l.path),
      ['absdir', 'reldir'],
    );
    assert.equal(res.files, 0);
  });

  it('keeps a symlinked directory pointing inside as a link without descending', async () => {
    const { dir } = await fixture('dirlinkin');
    await write(path.join(dir, 'sub/f.txt'), 'f');
    await fsp.symlink('sub', path.join(dir, 'subalias'));
    const res = await packDirectory(dir);
    const entries = await readTar(res.tarGz);
    assert.deepEqual([...entries.keys()], ['sub', 'sub/f.txt', 'subalias']);
    assert.equal(entries.get('subalias')?.type, 'symlink');
    assert.equal(entries.get('subalias')?.linkname, 'sub');
    assert.equal(res.files, 1);
  });

  it('keeps the executable bit as 0o755 and normalizes other modes to 0o644', async () => {
    const { dir } = await fixture('modes');
    await write(path.join(dir, 'run.sh'), '#!/bin/sh\n', 0o744);
    await write(path.join(dir, 'data.txt'), 'd', 0o600);
    const entries = await readTar((await packDirectory(dir)).tarGz);
    assert.equal(entries.get('run.sh')?.mode, 0o755);
    assert.equal(entries.get('data.txt')?.mode, 0o644);
  });

  it('throws PackError when maxBytes is exceeded, suggesting a .kilnignore', async () => {
    const { dir } = await fixture('toobig');
    await write(path.join(dir, 'a.bin'), 'x'.repeat(600));
    await write(path.join(dir, 'b.bin'), 'x'.repeat(600));
    await assert.rejects(packDirectory(dir, { maxBytes: 1000 }), (err: unknown) => {
      assert.ok(err instanceof PackError);
      assert.match(err.message, /1000/);
      assert.match(err.message, /\.kilnignore/);
      return true;
    });
    assert.equal((await packDirectory(dir, { maxBytes: 1200 })).bytes, 1200);
  });

  it('throws PackError for a missing DIR or a file', async () => {
    const { dir } = await fixture('missing');
    await assert.rejects(packDirectory(path.join(dir, 'nope')), (err: unknown) => err instanceof PackError && /does not exist/.test(err.message));
    await write(path.join(dir, 'file'), 'x');
    await assert.rejects(packDirectory(path.join(dir, 'file')), (err: unknown) => err instanceof PackError && /not a directory/.test(err.message));
  });
});

describe('extractTar', () => {
  it('round-trips packDirectory output byte for byte', async () => {
    const { dir } = await fixture('roundtrip');
    const payload = Buffer.alloc(300_000);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 31) % 251;
    await fsp.mkdir(path.join(dir, 'bin'), { recursive: true });
    await fsp.writeFile(path.join(dir, 'bin/blob'), payload);
    await write(path.join(dir, 'bin/tool'), '#!/bin/sh\n', 0o755);
    await write(path.join(dir, 'empty.txt'), '');
    await fsp.mkdir(path.join(dir, 'emptydir'));
    await fsp.symlink('bin/tool', path.join(dir, 'link'));
    const res = await packDirectory(dir);
    const dest = path.join(tmp, 'roundtrip-out', 'nested');
    const out = await extractTar(res.tarGz, dest);
    assert.deepEqual(out.files, ['bin/blob', 'bin/tool', 'empty.txt']);
    assert.ok(payload.equals(await fsp.readFile(path.join(dest, 'bin/blob'))));
    assert.equal((await fsp.stat(path.join(dest, 'bin/tool'))).mode & 0o777, 0o755);
    assert.equal((await fsp.stat(path.join(dest, 'bin/blob'))).mode & 0o777, 0o644);
    assert.equal((await fsp.readFile(path.join(dest, 'empty.txt'))).length, 0);
    assert.ok((await fsp.stat(path.join(dest, 'emptydir'))).isDirectory());
    assert.equal(await exists(path.join(dest, 'link')), false); // links are never created
  });

  for (const bad of ['../evil', 'ok/../../evil', '/abs/evil', 'sub\\evil']) {
    it(`refuses the entry ${JSON.stringify(bad)} naming it, writing nothing outside`, async () => {
      const base = await fsp.mkdtemp(path.join(tmp, 'bad-'));
      const dest = path.join(base, 'dest');
      const archive = await makeTar([
        { name: 'first.txt', body: '1' },
        { name: bad, body: 'pwned' },
      ]);
      await assert.rejects(extractTar(archive, dest), (err: unknown) => {
        assert.ok(err instanceof PackError);
        assert.ok(err.message.includes(JSON.stringify(bad)), err.message);
        return true;
      });
      assert.equal(await fsp.readFile(path.join(dest, 'first.txt'), 'utf8'), '1'); // earlier work is left
      assert.deepEqual((await fsp.readdir(base)).sort(), ['dest']);
      assert.deepEqual(await fsp.readdir(dest), ['first.txt']);
      assert.equal(await exists('/abs/evil'), false);
    });
  }

  it('does not create symlink entries (and does not fail on them)', async () => {
    const dest = path.join(tmp, 'symentry');
    const archive = await makeTar([
      { name: 'pw', type: 'symlink', linkname: '/etc/passwd' },
      { name: 'pw', body: 'would write through the link if it existed' },
      { name: 'd', type: 'directory' },
    ]);
    const out = await extractTar(archive, dest);
    assert.deepEqual(out.files, ['pw']);
    assert.ok((await fsp.lstat(path.join(dest, 'pw'))).isFile());
    assert.ok((await fsp.lstat(path.join(dest, 'd'))).isDirectory());
  });

  it('refuses to write through a symlink already in destDir', async () => {
    const base = await fsp.mkdtemp(path.join(tmp, 'predest-'));
    const elsewhere = path.join(base, 'elsewhere');
    const dest = path.join(base, 'dest');
    await fsp.mkdir(elsewhere);
    await fsp.mkdir(dest);
    await fsp.symlink(elsewhere, path.join(dest, 'sub'));
    await write(path.join(elsewhere, 'y'), 'original');
    await fsp.symlink(path.join(elsewhere, 'y'), path.join(dest, 'y'));
    await assert.rejects(
      extractTar(await makeTar([{ name: 'sub/x', body: 'pwned' }]), dest),
      (err: unknown) => err instanceof PackError && err.message.includes('sub/x'),
    );
    await assert.rejects(
      extractTar(await makeTar([{ name: 'y', body: 'pwned' }]), dest),
      (err: unknown) => err instanceof PackError && err.message.includes('"y"'),
    );
    assert.deepEqual(await fsp.readdir(elsewhere), ['y']);
    assert.equal(await fsp.readFile(path.join(elsewhere, 'y'), 'utf8'), 'original');
  });
});
