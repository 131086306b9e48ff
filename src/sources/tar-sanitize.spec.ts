// sanitizeTar (tar-sanitize.ts): good archives round-trip clean; corrupt input, bombs and failures
// of the caller's streams are told apart; readFilesFromTar reads back what it wrote.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createGzip, gzipSync } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import { pack as tarPack } from 'tar-stream';
import {
  assertRefusedAt,
  collect,
  dir,
  file,
  limits,
  makeTar,
  MiB,
  MTIME,
  readTar,
  streamOf,
  symlink,
  workDir,
  type Headers,
  type Refusal,
  type Spec,
} from '../../test/fixtures/tar-specs';
import { packFiles } from './tar-pack';
import { ArchiveError, type TarLimits } from './tar-safety';
import { readFilesFromTar, sanitizeTar } from './tar-sanitize';

const work = workDir();
const assertRefused = (run: (out: string) => Promise<unknown>, expected: Refusal) => assertRefusedAt(work.out(), run, expected);

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
      const out = work.out();
      const res = await sanitizeTar(streamOf(input, 100), out, limits());
      assert.equal(res.file, out);
      assert.deepEqual(
        res.paths,
        expected.map(([n]) => n),
      );
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
    const out = work.out();
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
    const out = work.out();
    const res = await sanitizeTar(streamOf(raw), out, limits(), { dropLinks: true });
    assert.deepEqual(res.paths, ['dist/app.js']);
    assert.equal(res.droppedLinks, 2);
    assert.deepEqual(
      (await readTar(out)).map((e) => e.header.name),
      ['dist/app.js'],
    );
    // Without dropLinks the same archive is refused.
    await assertRefused((o) => sanitizeTar(streamOf(raw), o, limits()), {
      code: 'unsafe-path',
      entry: 'dist/lib',
      parts: ["symlink target '/usr/lib' is absolute"],
    });
  });
});

describe('failures that are not the archive', () => {
  test('an unwritable outFile fails with the file system error (sanitizeTar)', { timeout: 5000 }, async () => {
    const raw = await makeTar([file('a', 'x')]);
    await assert.rejects(sanitizeTar(streamOf(raw), join(work.path, 'missing-dir', 'o.tar'), limits()), { code: 'ENOENT' });
  });

  test('an unwritable outFile fails with the file system error (packFiles)', { timeout: 5000 }, async () => {
    await assert.rejects(packFiles({ a: 'x' }, join(work.path, 'missing-dir', 'o.tar'), limits()), { code: 'ENOENT' });
  });

  test('an input stream error is passed through and the output deleted', { timeout: 5000 }, async () => {
    const raw = await makeTar([file('a', Buffer.alloc(100000))]);
    const input = new Readable({ read() {} });
    input.push(raw.subarray(0, 4096));
    setTimeout(() => input.destroy(new Error('client went away')), 20);
    const out = work.out();
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
        code: 'invalid',
        entry: c.entry,
        parts: [invalid],
      });
      if (c.entry !== undefined) assert.ok(err.message.includes(`while reading entry '${c.entry}'`));
    });
  }

  test('zero bytes is an empty archive', async () => {
    await assertRefused((out) => sanitizeTar(streamOf(Buffer.alloc(0)), out, limits()), {
      code: 'empty',
      parts: [/^the archive is empty/],
    });
  });
});

// ---------------------------------------------------------------------------------------------

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
        await assertRefused((out) => sanitizeTar(streamOf(input), out, limits({ maxTotalBytes: 10 * MiB, ...b.over })), {
          code: 'too-large',
          entry: b.entry,
          parts: [b.part],
        });
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
    tarFile = work.out();
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
        assert.equal(e.code, 'too-large');
        assert.equal(e.entry, '.github/workflows/big.yml');
        assert.match(e.message, /^file '\.github\/workflows\/big\.yml' is 4\.9 KiB, over the limit of 1 KiB/);
        return true;
      },
    );
  });

  test('a corrupt file is an ArchiveError', async () => {
    const bad = join(work.path, 'bad.tar');
    await writeFile(bad, randomBytes(2048));
    await assert.rejects(
      readFilesFromTar(bad, () => true, 1024),
      (e: unknown) => {
        assert.ok(e instanceof ArchiveError);
        assert.equal(e.code, 'invalid');
        assert.match(e.message, /not a valid tar or tar\.gz/);
        return true;
      },
    );
  });
});
