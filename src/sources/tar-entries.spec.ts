// The per-entry rules (tar-entries.ts) and the upload caps (tar-streams.ts), as sanitizeTar applies
// them: each refusal with its code, the entry it names and its words.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { pack as tarPack } from 'tar-stream';
import {
  assertRefusedAt,
  dir,
  file,
  limits,
  makeTar,
  MiB,
  MTIME,
  special,
  streamOf,
  symlink,
  withTypeflag,
  workDir,
  type Refusal,
  type Spec,
} from '../../test/fixtures/tar-specs';
import type { ArchiveErrorCode, TarLimits } from './tar-safety';
import { sanitizeTar } from './tar-sanitize';

const work = workDir();
const assertRefused = (run: (out: string) => Promise<unknown>, expected: Refusal) => assertRefusedAt(work.out(), run, expected);

interface RefusalCase extends Refusal {
  name: string;
  specs: Spec[];
  limits?: Partial<TarLimits>;
  gzip?: boolean;
}

const deepName = `${Array.from({ length: 33 }, (_, i) => `d${i}`).join('/')}`;
const longName = `${'a'.repeat(100)}/${'b'.repeat(100)}/${'c'.repeat(900)}`;

const refusals: RefusalCase[] = [
  {
    name: 'path traversal with ..',
    code: 'unsafe-path',
    specs: [file('ok.txt', 'x'), file('../etc/passwd', 'root::0:0')],
    entry: '../etc/passwd',
    parts: [],
    exact: "entry '../etc/passwd': path leaves the workspace ('..' is not allowed)",
  },
  {
    name: 'traversal hidden in the middle of a path (gzip)',
    code: 'unsafe-path',
    specs: [file('src/../../x', 'x')],
    gzip: true,
    entry: 'src/../../x',
    parts: ["path leaves the workspace ('..' is not allowed)"],
  },
  {
    name: 'absolute path',
    code: 'unsafe-path',
    specs: [file('/etc/passwd', 'x')],
    entry: '/etc/passwd',
    parts: ["entry '/etc/passwd'", 'absolute paths are not allowed', 'relative'],
  },
  {
    name: 'Windows absolute path',
    code: 'unsafe-path',
    specs: [file('C:\\Windows\\x', 'x')],
    entry: 'C:\\Windows\\x',
    parts: ['absolute paths are not allowed'],
  },
  {
    name: 'backslash in a name',
    code: 'unsafe-path',
    specs: [file('src\\main.c', 'x')],
    entry: 'src\\main.c',
    parts: ["entry 'src\\main.c'", 'backslashes are not allowed', "use '/'"],
  },
  {
    name: 'newline in a name',
    code: 'unsafe-path',
    specs: [file('a\nb', 'x')],
    entry: 'a\\x0ab',
    parts: ["entry 'a\\x0ab'", 'control characters'],
  },
  {
    name: 'NUL in a name (via a pax path record)',
    code: 'unsafe-path',
    specs: [file('a\u0000é', 'x')],
    entry: 'a\\x00é',
    parts: ['control characters'],
  },
  {
    name: 'symlink with an absolute target',
    code: 'unsafe-path',
    specs: [symlink('etc', '/etc')],
    entry: 'etc',
    parts: ["entry 'etc'", "symlink target '/etc' is absolute"],
  },
  {
    name: 'symlink climbing out of the root',
    code: 'unsafe-path',
    specs: [dir('sub'), symlink('sub/link', '../../etc')],
    entry: 'sub/link',
    parts: ["symlink target '../../etc' points outside the workspace"],
  },
  {
    name: "symlink with '..' after a name (could resolve through another link)",
    code: 'unsafe-path',
    specs: [symlink('q/s', '..'), symlink('t', 'q/s/..')],
    entry: 't',
    parts: ["symlink target 'q/s/..' has '..' after a directory name"],
  },
  {
    name: 'link-then-write through an earlier symlink',
    code: 'unsafe-path',
    specs: [symlink('a', 'b'), file('a/x', 'payload')],
    entry: 'a/x',
    parts: ["entry 'a/x'", "goes through the symlink 'a'"],
  },
  {
    name: 'link-then-write with a disguised path',
    code: 'unsafe-path',
    specs: [dir('b'), symlink('b/a', '.'), file('./b//a/./x', 'payload')],
    entry: './b//a/./x',
    parts: ["goes through the symlink 'b/a'"],
  },
  {
    name: 'hard link',
    code: 'unsupported-type',
    specs: [file('a', 'x'), special('b', 'link', { linkname: 'a' })],
    entry: 'b',
    parts: ["entry 'b'", 'hard links are not accepted', 'tar --hard-dereference'],
  },
  {
    name: 'character device',
    code: 'unsupported-type',
    specs: [special('dev/null', 'character-device', { devmajor: 1, devminor: 3 })],
    entry: 'dev/null',
    parts: ["entry 'dev/null'", 'character devices are not accepted', 'only regular files, directories and symlinks'],
  },
  {
    name: 'block device',
    code: 'unsupported-type',
    specs: [special('sda', 'block-device', { devmajor: 8, devminor: 0 })],
    entry: 'sda',
    parts: ['block devices are not accepted'],
  },
  {
    name: 'FIFO',
    code: 'unsupported-type',
    specs: [special('pipe', 'fifo')],
    entry: 'pipe',
    parts: ["entry 'pipe'", 'FIFOs (named pipes) are not accepted'],
  },
  {
    name: 'contiguous file',
    code: 'unsupported-type',
    specs: [{ header: { name: 'c', type: 'contiguous-file', mtime: MTIME }, body: '' }],
    entry: 'c',
    parts: ['contiguous files are not accepted'],
  },
  {
    name: 'duplicate names after normalization',
    code: 'path-conflict',
    specs: [file('a', 'one'), file('./a', 'two')],
    entry: './a',
    parts: ["entry './a'", "duplicate name: 'a' appears more than once"],
  },
  {
    name: 'duplicate name with different types',
    code: 'path-conflict',
    specs: [dir('src'), file('src', 'x')],
    entry: 'src',
    parts: ['duplicate name'],
  },
  {
    name: 'a symlink that replaces an implicit directory',
    code: 'path-conflict',
    specs: [file('lib/x', 'x'), symlink('lib', '.')],
    entry: 'lib',
    parts: ["'lib' is already a directory"],
  },
  {
    name: 'a file used as a directory',
    code: 'path-conflict',
    specs: [file('a', 'x'), file('a/b', 'y')],
    entry: 'a/b',
    parts: ["its parent 'a' is a regular file"],
  },
  {
    name: 'too many entries',
    code: 'too-many-entries',
    specs: [file('f0'), file('f1'), file('f2'), file('f3')],
    limits: { maxEntries: 3 },
    entry: 'f3',
    parts: ['more than 3 entries'],
  },
  {
    name: 'too deep',
    code: 'too-deep',
    specs: [file(deepName, 'x')],
    entry: deepName,
    parts: ['33 levels deep, over the limit of 32'],
  },
  {
    name: 'path too long',
    code: 'name-too-long',
    specs: [file(longName, 'x')],
    entry: longName,
    parts: ['1102 bytes long, over the limit of 1024', '…'],
  },
  {
    name: 'total size over maxTotalBytes',
    code: 'too-large',
    specs: [file('a', Buffer.alloc(600)), file('b', Buffer.alloc(600))],
    limits: { maxTotalBytes: 1000 },
    entry: 'b',
    parts: ["entry 'b'", 'add up to more than 1000 bytes uncompressed'],
  },
  {
    name: 'empty archive',
    code: 'empty',
    specs: [],
    parts: [/^the archive is empty/],
  },
  {
    name: 'archive holding only the root directory',
    code: 'empty',
    specs: [dir('.'), dir('./')],
    parts: [/^the archive is empty/],
  },
  {
    name: 'symlink target over maxPathLength',
    code: 'name-too-long',
    specs: [symlink('far', `${'x/'.repeat(30)}y`)],
    limits: { maxPathLength: 50 },
    entry: 'far',
    parts: ["entry 'far'", 'symlink target is over the limit of 50 bytes'],
  },
  {
    name: 'symlink target with a control character',
    code: 'unsafe-path',
    specs: [symlink('ctl', 'a\tb')],
    entry: 'ctl',
    parts: ["symlink target 'a\\x09b' contains control characters"],
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
      code: 'too-large',
      entry: 'big.bin',
      parts: ["entry 'big.bin'", 'file is 300 MiB, over the limit of 256 MiB per file'],
    });
    assert.equal(input.destroyed, true, 'the input is destroyed');
  });

  const crafted: Array<{ name: string; flag: string; code: ArchiveErrorCode; part: string }> = [
    { name: 'an unknown entry type (GNU sparse file)', flag: 'S', code: 'unsupported-type', part: 'entries of an unknown type' },
    { name: 'a directory entry carrying data', flag: '5', code: 'invalid', part: 'a directory entry must not carry data (3 bytes)' },
  ];
  for (const c of crafted) {
    test(c.name, async () => {
      const raw = withTypeflag(await makeTar([file('weird', 'abc')]), c.flag);
      await assertRefused((out) => sanitizeTar(streamOf(raw), out, limits()), {
        code: c.code,
        entry: 'weird',
        parts: ["entry 'weird'", c.part],
      });
    });
  }

  test('an upload over maxCompressedBytes', async () => {
    const raw = await makeTar([file('noise.bin', randomBytes(200 * 1024))]);
    const input = streamOf(gzipSync(raw));
    await assertRefused((out) => sanitizeTar(input, out, limits({ maxCompressedBytes: 64 * 1024 })), {
      code: 'too-large',
      parts: ['the upload is larger than the limit of 64 KiB'],
    });
    assert.equal(input.destroyed, true);
  });
});
