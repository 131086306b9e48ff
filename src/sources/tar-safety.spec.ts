import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createGzip, gzipSync } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import { extract as tarExtract, pack as tarPack, type Header } from 'tar-stream';

type Headers = Partial<Header> & Pick<Header, 'name'>;
import {
  ArchiveError,
  DEFAULT_SOURCE_LIMITS,
  packFiles,
  readFilesFromTar,
  sanitizeTar,
  type TarLimits,
} from './tar-safety';

const MiB = 1024 * 1024;
const MTIME = new Date('2024-05-01T12:00:00Z');

// ---------------------------------------------------------------------------------------------
// Building archives (malicious ones included) with tar-stream's pack

interface Spec {
  header: Headers;
  body?: Buffer | string;
}

const file = (name: string, body: Buffer | string = '', extra: Partial<Headers> = {}): Spec => ({
  header: { name, type: 'file', mode: 0o644, mtime: MTIME, ...extra },
  body,
});
const dir = (name: string, mode = 0o755): Spec => ({ header: { name, type: 'directory', mode, mtime: MTIME } });
const symlink = (name: string, linkname: string): Spec => ({
  header: { name, type: 'symlink', linkname, mtime: MTIME },
});
const special = (name: string, type: Headers['type'], extra: Partial<Headers> = {}): Spec => ({
  header: { name, type, mtime: MTIME, ...extra },
});

async function collect(source: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of source) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c as string));
  return Buffer.concat(chunks);
}

async function makeTar(specs: Spec[]): Promise<Buffer> {
  const p = tarPack();
  const done = collect(p);
  for (const s of specs) {
    if (s.body === undefined) p.entry({ ...s.header });
    else p.entry({ ...s.header }, s.body);
  }
  p.finalize();
  return done;
}

/** Rewrites the typeflag of the first header and fixes its checksum: entries tar-stream cannot pack. */
function withTypeflag(tar: Buffer, flag: string): Buffer {
  const out = Buffer.from(tar);
  out[156] = flag.charCodeAt(0);
  out.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += out[i];
  out.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return out;
}

function* slices(buf: Buffer, size: number): Generator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

/** Feeds a buffer in small chunks, like a network upload. */
function streamOf(buf: Buffer, size = 16 * 1024): Readable {
  return Readable.from(slices(buf, size), { objectMode: false });
}

interface ReadEntry {
  header: Headers;
  body: Buffer;
}

async function readTar(path: string): Promise<ReadEntry[]> {
  const ex = tarExtract();
  createReadStream(path).pipe(ex);
  const out: ReadEntry[] = [];
  for await (const e of ex) out.push({ header: e.header, body: await collect(e) });
  return out;
}

// ---------------------------------------------------------------------------------------------

let work = '';
let counter = 0;
const outPath = (): string => join(work, `out-${++counter}.tar`);
const limits = (over: Partial<TarLimits> = {}): TarLimits => ({ ...DEFAULT_SOURCE_LIMITS, ...over });

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'kiln-tar-safety-'));
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

/** Asserts an ArchiveError naming `entry` with every message part; and that nothing was left behind. */
async function assertRefused(
  run: (out: string) => Promise<unknown>,
  expected: { entry?: string; parts: (string | RegExp)[]; exact?: string },
): Promise<ArchiveError> {
  const out = outPath();
  let caught: unknown;
  await assert.rejects(run(out), (err: unknown) => {
    caught = err;
    return true;
  });
  assert.ok(caught instanceof ArchiveError, `expected ArchiveError, got ${String(caught)}`);
  assert.equal(caught.entry, expected.entry);
  if (expected.exact !== undefined) assert.equal(caught.message, expected.exact);
  for (const part of expected.parts) {
    if (typeof part === 'string') assert.ok(caught.message.includes(part), `'${caught.message}' lacks '${part}'`);
    else assert.match(caught.message, part);
  }
  assert.equal(existsSync(out), false, 'the output file must be deleted on failure');
  return caught;
}

// ---------------------------------------------------------------------------------------------

describe('sanitizeTar accepts good archives', () => {
  const good: Spec[] = [
    dir('./'),
    dir('src', 0o700),
    file('src/main.c', 'int main(void) { return 0; }\n', { mode: 0o4755 }),
    file('./README.md', '# hello\n', { mode: 0o666 }),
    file('private.txt', 'secret', { mode: 0o600 }),
    file('.//lib//util.js', 'module.exports = 1;\n', { mode: 0o2775 }),
    file('empty', ''),
    symlink('src/link.c', 'main.c'),
    symlink('docs/up', '../README.md'),
    dir('sticky', 0o1777),
  ];
  const expected: Array<[string, Headers['type'], number, string]> = [
    ['src', 'directory', 0o755, ''],
    ['src/main.c', 'file', 0o755, 'int main(void) { return 0; }\n'],
    ['README.md', 'file', 0o644, '# hello\n'],
    ['private.txt', 'file', 0o644, 'secret'],
    ['lib/util.js', 'file', 0o755, 'module.exports = 1;\n'],
    ['empty', 'file', 0o644, ''],
    ['src/link.c', 'symlink', 0o644, ''],
    ['docs/up', 'symlink', 0o644, ''],
    ['sticky', 'directory', 0o755, ''],
  ];

  for (const gzip of [false, true]) {
    test(`a good ${gzip ? 'tar.gz' : 'tar'} round-trips with clean headers`, async () => {
      const raw = await makeTar(good);
      const input = gzip ? gzipSync(raw) : raw;
      const out = outPath();
      const res = await sanitizeTar(streamOf(input, 100), out, limits());
      assert.equal(res.file, out);
      assert.deepEqual(res.paths, expected.map(([n]) => n));
      assert.equal(res.entries, expected.length);
      assert.equal(res.files, 5);
      assert.equal(res.totalBytes, 29 + 8 + 6 + 20);
      assert.equal(res.droppedLinks, 0);

      const back = await readTar(out);
      assert.deepEqual(
        back.map((e) => [e.header.name.replace(/\/$/, ''), e.header.type, e.header.mode, e.body.toString()]),
        expected,
      );
      for (const { header } of back) {
        assert.equal(header.uid, 1001);
        assert.equal(header.gid, 1001);
        assert.equal(header.uname, 'runner');
        assert.equal(header.gname, 'runner');
        assert.equal(header.mtime?.getTime(), MTIME.getTime());
      }
      assert.deepEqual(
        back.filter((e) => e.header.type === 'symlink').map((e) => e.header.linkname),
        ['main.c', '../README.md'],
      );
    });
  }

  test('setuid, setgid, sticky and group/other write bits are stripped', async () => {
    const raw = await makeTar([file('suid', 'x', { mode: 0o6777 }), dir('d', 0o3777), file('ro', 'y', { mode: 0o400 })]);
    const out = outPath();
    await sanitizeTar(streamOf(raw), out, limits());
    const modes = (await readTar(out)).map((e) => [e.header.name.replace(/\/$/, ''), e.header.mode]);
    assert.deepEqual(modes, [
      ['suid', 0o755],
      ['d', 0o755],
      ['ro', 0o644],
    ]);
  });

  test('dropLinks skips symlinks (even absolute ones) and counts them', async () => {
    const raw = await makeTar([file('dist/app.js', 'x'), symlink('dist/lib', '/usr/lib'), symlink('dist/up', '../../..')]);
    const out = outPath();
    const res = await sanitizeTar(streamOf(raw), out, limits(), { dropLinks: true });
    assert.deepEqual(res.paths, ['dist/app.js']);
    assert.equal(res.droppedLinks, 2);
    assert.deepEqual((await readTar(out)).map((e) => e.header.name), ['dist/app.js']);
    // Without dropLinks the same archive is refused.
    await assertRefused((o) => sanitizeTar(streamOf(raw), o, limits()), {
      entry: 'dist/lib',
      parts: ["symlink target '/usr/lib' is absolute"],
    });
  });
});

// ---------------------------------------------------------------------------------------------

interface RefusalCase {
  name: string;
  specs: Spec[];
  limits?: Partial<TarLimits>;
  gzip?: boolean;
  entry?: string;
  parts: (string | RegExp)[];
  exact?: string;
}

const deepName = `${Array.from({ length: 33 }, (_, i) => `d${i}`).join('/')}`;
const longName = `${'a'.repeat(100)}/${'b'.repeat(100)}/${'c'.repeat(900)}`;

const refusals: RefusalCase[] = [
  {
    name: 'path traversal with ..',
    specs: [file('ok.txt', 'x'), file('../etc/passwd', 'root::0:0')],
    entry: '../etc/passwd',
    parts: [],
    exact: "entry '../etc/passwd': path leaves the workspace ('..' is not allowed)",
  },
  {
    name: 'traversal hidden in the middle of a path (gzip)',
    specs: [file('src/../../x', 'x')],
    gzip: true,
    entry: 'src/../../x',
    parts: ["path leaves the workspace ('..' is not allowed)"],
  },
  {
    name: 'absolute path',
    specs: [file('/etc/passwd', 'x')],
    entry: '/etc/passwd',
    parts: ["entry '/etc/passwd'", 'absolute paths are not allowed', 'relative'],
  },
  {
    name: 'Windows absolute path',
    specs: [file('C:\\Windows\\x', 'x')],
    entry: 'C:\\Windows\\x',
    parts: ['absolute paths are not allowed'],
  },
  {
    name: 'backslash in a name',
    specs: [file('src\\main.c', 'x')],
    entry: 'src\\main.c',
    parts: ["entry 'src\\main.c'", 'backslashes are not allowed', "use '/'"],
  },
  {
    name: 'newline in a name',
    specs: [file('a\nb', 'x')],
    entry: 'a\\x0ab',
    parts: ["entry 'a\\x0ab'", 'control characters'],
  },
  {
    name: 'NUL in a name (via a pax path record)',
    specs: [file('a\u0000é', 'x')],
    entry: 'a\\x00é',
    parts: ['control characters'],
  },
  {
    name: 'symlink with an absolute target',
    specs: [symlink('etc', '/etc')],
    entry: 'etc',
    parts: ["entry 'etc'", "symlink target '/etc' is absolute"],
  },
  {
    name: 'symlink climbing out of the root',
    specs: [dir('sub'), symlink('sub/link', '../../etc')],
    entry: 'sub/link',
    parts: ["symlink target '../../etc' points outside the workspace"],
  },
  {
    name: "symlink with '..' after a name (could resolve through another link)",
    specs: [symlink('q/s', '..'), symlink('t', 'q/s/..')],
    entry: 't',
    parts: ["symlink target 'q/s/..' has '..' after a directory name"],
  },
  {
    name: 'link-then-write through an earlier symlink',
    specs: [symlink('a', 'b'), file('a/x', 'payload')],
    entry: 'a/x',
    parts: ["entry 'a/x'", "goes through the symlink 'a'"],
  },
  {
    name: 'link-then-write with a disguised path',
    specs: [dir('b'), symlink('b/a', '.'), file('./b//a/./x', 'payload')],
    entry: './b//a/./x',
    parts: ["goes through the symlink 'b/a'"],
  },
  {
    name: 'hard link',
    specs: [file('a', 'x'), special('b', 'link', { linkname: 'a' })],
    entry: 'b',
    parts: ["entry 'b'", 'hard links are not accepted', 'tar --hard-dereference'],
  },
  {
    name: 'character device',
    specs: [special('dev/null', 'character-device', { devmajor: 1, devminor: 3 })],
    entry: 'dev/null',
    parts: ["entry 'dev/null'", 'character devices are not accepted', 'only regular files, directories and symlinks'],
  },
  {
    name: 'block device',
    specs: [special('sda', 'block-device', { devmajor: 8, devminor: 0 })],
    entry: 'sda',
    parts: ['block devices are not accepted'],
  },
  {
    name: 'FIFO',
    specs: [special('pipe', 'fifo')],
    entry: 'pipe',
    parts: ["entry 'pipe'", 'FIFOs (named pipes) are not accepted'],
  },
  {
    name: 'contiguous file',
    specs: [{ header: { name: 'c', type: 'contiguous-file', mtime: MTIME }, body: '' }],
    entry: 'c',
    parts: ['contiguous files are not accepted'],
  },
  {
    name: 'duplicate names after normalization',
    specs: [file('a', 'one'), file('./a', 'two')],
    entry: './a',
    parts: ["entry './a'", "duplicate name: 'a' appears more than once"],
  },
  {
    name: 'duplicate name with different types',
    specs: [dir('src'), file('src', 'x')],
    entry: 'src',
    parts: ['duplicate name'],
  },
  {
    name: 'a symlink that replaces an implicit directory',
    specs: [file('lib/x', 'x'), symlink('lib', '.')],
    entry: 'lib',
    parts: ["'lib' is already a directory"],
  },
  {
    name: 'a file used as a directory',
    specs: [file('a', 'x'), file('a/b', 'y')],
    entry: 'a/b',
    parts: ["its parent 'a' is a regular file"],
  },
  {
    name: 'too many entries',
    specs: [file('f0'), file('f1'), file('f2'), file('f3')],
    limits: { maxEntries: 3 },
    entry: 'f3',
    parts: ['more than 3 entries'],
  },
  {
    name: 'too deep',
    specs: [file(deepName, 'x')],
    entry: deepName,
    parts: ['33 levels deep, over the limit of 32'],
  },
  {
    name: 'path too long',
    specs: [file(longName, 'x')],
    entry: longName,
    parts: ['1102 bytes long, over the limit of 1024', '…'],
  },
  {
    name: 'total size over maxTotalBytes',
    specs: [file('a', Buffer.alloc(600)), file('b', Buffer.alloc(600))],
    limits: { maxTotalBytes: 1000 },
    entry: 'b',
    parts: ["entry 'b'", 'add up to more than 1000 bytes uncompressed'],
  },
  {
    name: 'empty archive',
    specs: [],
    parts: [/^the archive is empty/],
  },
  {
    name: 'archive holding only the root directory',
    specs: [dir('.'), dir('./')],
    parts: [/^the archive is empty/],
  },
];

describe('sanitizeTar refuses', () => {
  for (const c of refusals) {
    test(c.name, async () => {
      const raw = await makeTar(c.specs);
      const input = c.gzip === true ? gzipSync(raw) : raw;
      await assertRefused((out) => sanitizeTar(streamOf(input), out, limits(c.limits)), c);
    });
  }

  test('a file over maxFileBytes from its header alone, before the body is read', { timeout: 5000 }, async () => {
    // Only the 512-byte header exists; the stream then stalls forever. A rejection proves the
    // body was never needed.
    const p = tarPack();
    p.entry({ name: 'big.bin', type: 'file', size: 300 * MiB, mtime: MTIME });
    const header = await new Promise<Buffer>((resolve) => p.once('data', (c: unknown) => resolve(c as Buffer)));
    assert.equal(header.length, 512);
    p.destroy();
    let pulls = 0;
    const input = new Readable({
      read() {
        if (pulls++ === 0) this.push(header);
      },
    });
    await assertRefused((out) => sanitizeTar(input, out, limits()), {
      entry: 'big.bin',
      parts: ["entry 'big.bin'", 'file is 300 MiB, over the limit of 256 MiB per file'],
    });
    assert.equal(input.destroyed, true, 'the input is destroyed');
  });

  const crafted: Array<{ name: string; flag: string; part: string }> = [
    { name: 'an unknown entry type (GNU sparse file)', flag: 'S', part: 'entries of an unknown type' },
    { name: 'a directory entry carrying data', flag: '5', part: 'a directory entry must not carry data (3 bytes)' },
  ];
  for (const c of crafted) {
    test(c.name, async () => {
      const raw = withTypeflag(await makeTar([file('weird', 'abc')]), c.flag);
      await assertRefused((out) => sanitizeTar(streamOf(raw), out, limits()), {
        entry: 'weird',
        parts: ["entry 'weird'", c.part],
      });
    });
  }

  test('an upload over maxCompressedBytes', async () => {
    const raw = await makeTar([file('noise.bin', randomBytes(200 * 1024))]);
    const input = streamOf(gzipSync(raw));
    await assertRefused((out) => sanitizeTar(input, out, limits({ maxCompressedBytes: 64 * 1024 })), {
      parts: ['the upload is larger than the limit of 64 KiB'],
    });
    assert.equal(input.destroyed, true);
  });
});

describe('failures that are not the archive', () => {
  test('an unwritable outFile fails with the file system error (sanitizeTar)', { timeout: 5000 }, async () => {
    const raw = await makeTar([file('a', 'x')]);
    await assert.rejects(sanitizeTar(streamOf(raw), join(work, 'missing-dir', 'o.tar'), limits()), { code: 'ENOENT' });
  });

  test('an unwritable outFile fails with the file system error (packFiles)', { timeout: 5000 }, async () => {
    await assert.rejects(packFiles({ a: 'x' }, join(work, 'missing-dir', 'o.tar'), limits()), { code: 'ENOENT' });
  });

  test('an input stream error is passed through and the output deleted', { timeout: 5000 }, async () => {
    const raw = await makeTar([file('a', Buffer.alloc(100000))]);
    const input = new Readable({ read() {} });
    input.push(raw.subarray(0, 4096));
    setTimeout(() => input.destroy(new Error('client went away')), 20);
    const out = outPath();
    await assert.rejects(sanitizeTar(input, out, limits()), { message: 'client went away' });
    assert.equal(existsSync(out), false);
  });
});

describe('sanitizeTar refuses corrupt input as not a valid tar', () => {
  const invalid = /the archive is not a valid tar or tar\.gz/;
  const cases: Array<{ name: string; input: () => Promise<Buffer>; entry?: string }> = [
    { name: 'garbage bytes', input: async () => randomBytes(4096) },
    { name: 'a few garbage bytes', input: async () => Buffer.from('hello') },
    {
      name: 'a tar truncated inside a body',
      input: async () => (await makeTar([file('a.txt', Buffer.alloc(10000, 0x61))])).subarray(0, 512 + 5000),
      entry: 'a.txt',
    },
    {
      name: 'a tar truncated inside a header',
      input: async () => (await makeTar([file('a.txt', 'x'), file('b.txt', 'y')])).subarray(0, 1024 + 100),
    },
    {
      name: 'a truncated tar.gz',
      input: async () => {
        const gz = gzipSync(await makeTar([file('a.txt', randomBytes(20000))]));
        return gz.subarray(0, gz.length - 2000);
      },
      entry: 'a.txt',
    },
    { name: 'gzip magic followed by garbage', input: async () => Buffer.concat([Buffer.from([0x1f, 0x8b]), randomBytes(1000)]) },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const buf = await c.input();
      const err = await assertRefused((out) => sanitizeTar(streamOf(buf, 256), out, limits()), {
        entry: c.entry,
        parts: [invalid],
      });
      if (c.entry !== undefined) assert.ok(err.message.includes(`while reading entry '${c.entry}'`));
    });
  }

  test('zero bytes is an empty archive', async () => {
    await assertRefused((out) => sanitizeTar(streamOf(Buffer.alloc(0)), out, limits()), {
      parts: [/^the archive is empty/],
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe('gzip bombs are stopped while streaming', () => {
  const zeros = Buffer.alloc(MiB);
  let manyFiles: Buffer = Buffer.alloc(0);
  let oneFile: Buffer = Buffer.alloc(0);
  let rawZeros: Buffer = Buffer.alloc(0);

  before(async () => {
    // 200 MiB of zeros as 200 files of 1 MiB, as one file, and as bare zero blocks.
    const p = tarPack();
    const many = collect(p.pipe(createGzip()));
    for (let i = 0; i < 200; i++) p.entry({ name: `z/${i}.bin`, mtime: MTIME }, zeros);
    p.finalize();
    manyFiles = await many;

    const p1 = tarPack();
    const one = collect(p1.pipe(createGzip()));
    const sink = p1.entry({ name: 'zeros.bin', size: 200 * MiB, mtime: MTIME });
    p1.finalize();
    for (let i = 0; i < 200; i++) {
      if (!sink.write(zeros)) await new Promise<void>((r) => sink.once('drain', () => r()));
    }
    sink.end(null);
    oneFile = await one;

    rawZeros = await collect(Readable.from(Array.from({ length: 200 }, () => zeros)).pipe(createGzip()));
  });

  const bombs: Array<{ name: string; input: () => Buffer; over: Partial<TarLimits>; entry?: string; part: string }> = [
    { name: '200 x 1 MiB files', input: () => manyFiles, over: {}, entry: 'z/10.bin', part: 'add up to more than 10 MiB' },
    { name: 'one 200 MiB file', input: () => oneFile, over: {}, entry: 'zeros.bin', part: 'add up to more than 10 MiB' },
    { name: '200 MiB of bare zero blocks', input: () => rawZeros, over: { maxEntries: 1000 }, part: 'looks like a compression bomb' },
  ];

  for (const b of bombs) {
    test(b.name, { timeout: 10000 }, async () => {
      const input = b.input();
      assert.ok(input.length < 2 * MiB, `the bomb is small (${input.length} bytes)`);
      global.gc?.();
      const base = process.memoryUsage().rss;
      let peak = base;
      const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
      const started = Date.now();
      try {
        await assertRefused(
          (out) => sanitizeTar(streamOf(input), out, limits({ maxTotalBytes: 10 * MiB, ...b.over })),
          { entry: b.entry, parts: [b.part] },
        );
      } finally {
        clearInterval(sampler);
      }
      peak = Math.max(peak, process.memoryUsage().rss);
      const elapsed = Date.now() - started;
      assert.ok(elapsed < 5000, `took ${elapsed} ms`);
      assert.ok(peak - base < 100 * MiB, `rss grew by ${((peak - base) / MiB).toFixed(1)} MiB`);
    });
  }
});

// ---------------------------------------------------------------------------------------------

describe('readFilesFromTar', () => {
  let tarFile = '';
  const kiln = 'jobs:\n  build:\n    steps: []\n';
  const ci = 'on: push\n';

  before(async () => {
    const raw = await makeTar([
      file('./.kiln.yml', kiln),
      file('.github/workflows/ci.yml', ci),
      file('.github/workflows/big.yml', Buffer.alloc(5000, 0x20)),
      file('src/main.c', 'int main;'),
      symlink('.github/workflows/link.yml', 'ci.yml'),
    ]);
    tarFile = outPath();
    await sanitizeTar(streamOf(raw), tarFile, limits());
  });

  test('picks only the selected regular files', async () => {
    const wanted = new Set(['.kiln.yml', '.github/workflows/ci.yml', '.github/workflows/link.yml']);
    const got = await readFilesFromTar(tarFile, (p) => wanted.has(p), 1024);
    assert.deepEqual([...got.keys()], ['.kiln.yml', '.github/workflows/ci.yml']);
    assert.equal(got.get('.kiln.yml')?.toString(), kiln);
    assert.equal(got.get('.github/workflows/ci.yml')?.toString(), ci);
  });

  test('rejects a selected file over maxBytes, naming it', async () => {
    await assert.rejects(
      readFilesFromTar(tarFile, (p) => p.startsWith('.github/workflows/'), 1024),
      (e: unknown) => {
        assert.ok(e instanceof ArchiveError);
        assert.equal(e.entry, '.github/workflows/big.yml');
        assert.match(e.message, /^file '\.github\/workflows\/big\.yml' is 4\.9 KiB, over the limit of 1 KiB/);
        return true;
      },
    );
  });

  test('a corrupt file is an ArchiveError', async () => {
    const bad = join(work, 'bad.tar');
    await writeFile(bad, randomBytes(2048));
    await assert.rejects(readFilesFromTar(bad, () => true, 1024), (e: unknown) => {
      assert.ok(e instanceof ArchiveError);
      assert.match(e.message, /not a valid tar or tar\.gz/);
      return true;
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe('packFiles', () => {
  test('builds a clean tar with parent directories', async () => {
    const out = outPath();
    const res = await packFiles(
      { 'src/lib/util.h': '#pragma once\n', './README.md': '# hi\n', 'src/main.c': 'int main;\n', 'empty.txt': '' },
      out,
      limits(),
    );
    const expected = ['README.md', 'empty.txt', 'src', 'src/lib', 'src/lib/util.h', 'src/main.c'];
    assert.deepEqual(res.paths, expected);
    assert.equal(res.files, 4);
    assert.equal(res.entries, 6);
    assert.equal(res.totalBytes, 13 + 5 + 10);
    const back = await readTar(out);
    assert.deepEqual(
      back.map((e) => [e.header.name.replace(/\/$/, ''), e.header.type, e.header.mode, e.header.uid, e.body.toString()]),
      [
        ['README.md', 'file', 0o644, 1001, '# hi\n'],
        ['empty.txt', 'file', 0o644, 1001, ''],
        ['src', 'directory', 0o755, 1001, ''],
        ['src/lib', 'directory', 0o755, 1001, ''],
        ['src/lib/util.h', 'file', 0o644, 1001, '#pragma once\n'],
        ['src/main.c', 'file', 0o644, 1001, 'int main;\n'],
      ],
    );
  });

  const bad: Array<{ name: string; files: Record<string, string>; over?: Partial<TarLimits>; entry?: string; part: string }> = [
    {
      name: 'traversal',
      files: { 'a.txt': 'x', '../x': 'y' },
      entry: '../x',
      part: "file '../x': path leaves the workspace ('..' is not allowed)",
    },
    { name: 'absolute', files: { '/etc/cron.d/x': 'y' }, entry: '/etc/cron.d/x', part: 'absolute paths are not allowed' },
    { name: 'backslash', files: { 'a\\b': 'y' }, entry: 'a\\b', part: 'backslashes are not allowed' },
    { name: 'control character', files: { 'a\rb': 'y' }, entry: 'a\\x0db', part: 'control characters' },
    { name: 'duplicate after normalization', files: { a: '1', './a': '2' }, entry: './a', part: 'duplicate name' },
    { name: 'file used as a directory', files: { a: '1', 'a/b': '2' }, entry: 'a/b', part: "its parent 'a' is a regular file" },
    { name: 'empty name', files: { '': 'x' }, entry: '', part: 'the name is empty' },
    { name: 'root as a file', files: { './': 'x' }, entry: './', part: 'empty name' },
    {
      name: 'file over maxFileBytes',
      files: { 'big.txt': 'x'.repeat(2000) },
      over: { maxFileBytes: 1024 },
      entry: 'big.txt',
      part: 'over the limit of 1 KiB per file',
    },
    {
      name: 'total over maxTotalBytes',
      files: { a: 'x'.repeat(600), b: 'y'.repeat(600) },
      over: { maxTotalBytes: 1000 },
      entry: 'b',
      part: 'add up to more than 1000 bytes',
    },
    {
      name: 'entries (with parent dirs) over maxEntries',
      files: { 'd/a': '', 'd/b': '' },
      over: { maxEntries: 2 },
      entry: 'd/b',
      part: 'more than 2 entries',
    },
    { name: 'no files at all', files: {}, part: 'no files were given' },
  ];
  for (const c of bad) {
    test(`refuses: ${c.name}`, async () => {
      await assertRefused((out) => packFiles(c.files, out, limits(c.over)), { entry: c.entry, parts: [c.part] });
    });
  }
});
