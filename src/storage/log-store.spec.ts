import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { KilnConfig } from '../config/config';
import { LogStore, LogWriter } from './log-store';
import type { LogRecord } from './log-wire';

function read(file: string): LogRecord[] {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as LogRecord);
}

function writer(cap: number): LogWriter {
  return new LogWriter(path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-log-')), 'job.jsonl'), cap);
}

test('lines are split per step and stream; partial lines and split UTF-8 survive chunking', () => {
  const w = writer(1024 * 1024);
  const euro = Buffer.from('€');
  w.write(0, 'stdout', Buffer.from('hel'));
  w.write(0, 'stderr', Buffer.from('err line\n'));
  w.write(0, 'stdout', Buffer.concat([Buffer.from('lo '), euro.subarray(0, 1)]));
  w.write(0, 'stdout', Buffer.concat([euro.subarray(1), Buffer.from('\r\nsecond')]));
  w.close();
  const recs = read(w.file);
  assert.deepEqual(
    recs.map((r) => [r.i, r.s, r.l]),
    [
      [0, 'e', 'err line'],
      [0, 'o', 'hello €'],
      [0, 'o', 'second'],
    ],
  );
  assert.ok(recs.every((r) => typeof r.t === 'number'));
});

test('a single huge line is cut into 64 KiB pieces instead of held in memory', () => {
  const w = writer(10 * 1024 * 1024);
  w.write(1, 'stdout', Buffer.alloc(200 * 1024, 'x'));
  w.close();
  const lens = read(w.file).map((r) => r.l.length);
  assert.deepEqual(lens, [65536, 65536, 65536, 8192]);
});

test('a follower reads the file in small blocks, and a line longer than a block whole', async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-log-'));
  const store = new LogStore({ dataDir, logCapBytes: 64 * 1024 * 1024, queuePrefix: 'test' } as KilnConfig, { publish: async () => 0 });
  const w = store.writer('run', 'job');
  // 64 Ki control characters: each is 6 bytes of JSON (\u0001), a record of about 384 KiB.
  w.write(0, 'stdout', Buffer.from(`short\n${'\u0001'.repeat(65536)}\n`));
  for (let i = 0; i < 3000; i++) w.write(0, 'stdout', Buffer.from(`line ${i}\n`));
  w.close();
  const size = fs.statSync(w.file).size;
  const got: string[] = [];
  let reads = 0;
  for (let at = 0; at < size; reads++) {
    const { lines, next } = await store.readLines('run', 'job', at);
    assert.ok(next > at, `no progress at byte ${at}`);
    got.push(...lines.map((l) => (JSON.parse(l) as LogRecord).l));
    if (reads === 0) assert.deepEqual(got, ['short'], 'the first block ends before the long line');
    at = next;
  }
  assert.deepEqual(got.length, 3002);
  assert.equal(got[1], '\u0001'.repeat(65536), 'the long line, whole');
  assert.equal(got[3001], 'line 2999');
  assert.equal(reads, 2);
});

test('the cap truncates with one visible notice and counts what was dropped', () => {
  const w = writer(4096);
  for (let i = 0; i < 1000; i++) w.write(0, 'stdout', Buffer.from(`line ${i}\n`));
  w.notice(0, 'step ended');
  w.close();
  const recs = read(w.file);
  assert.ok(fs.statSync(w.file).size < 4096 + 1024, 'the file stays near the cap');
  const notices = recs.filter((r) => r.s === 'k').map((r) => r.l);
  assert.equal(notices.filter((n) => n.startsWith('log cap of 4096 bytes reached')).length, 1);
  assert.ok(notices.includes('step ended'), 'Kiln notices are kept past the cap');
  assert.match(notices[notices.length - 1], /^log truncated: \d+ more bytes of output were not kept/);
});

test('secrets are masked: the value, each line of a multi-line value, and base64 at any alignment', () => {
  const secret = 'hunter2-very-secret-value';
  const w = new LogWriter(path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-log-')), 'job.jsonl'), 1024 * 1024, [
    secret,
    'line-one-of-key\nline-two-of-key',
    'ab',
  ]);
  w.write(0, 'stdout', Buffer.from(`password=${secret}\n`));
  w.write(0, 'stdout', Buffer.from(`${Buffer.from(secret).toString('base64')}\n`));
  for (let prefix = 0; prefix < 6; prefix++) {
    const text = 'p'.repeat(prefix) + 'Authorization: ' + secret + ' trailing';
    w.write(0, 'stdout', Buffer.from(`b64-${prefix}: ${Buffer.from(text).toString('base64')}\n`));
  }
  w.write(0, 'stderr', Buffer.from('key: line-two-of-key\n'));
  w.write(0, 'stdout', Buffer.from('ab is too short to mask\n'));
  w.close();
  const text = fs.readFileSync(w.file, 'utf8');
  assert.ok(!text.includes(secret), 'the value');
  assert.ok(!text.includes('line-two-of-key'), 'a line of a multi-line value');
  assert.match(text, /password=\*\*\*/);
  for (let prefix = 0; prefix < 6; prefix++) {
    const line = read(w.file).find((r) => r.l.startsWith(`b64-${prefix}: `))!.l;
    assert.match(line, /\*\*\*/, `base64 with a ${prefix}-byte prefix is masked: ${line}`);
    const encoded = Buffer.from('p'.repeat(prefix) + 'Authorization: ' + secret + ' trailing').toString('base64');
    assert.ok(!line.includes(encoded), 'the whole encoded text is not left intact');
  }
  assert.match(text, /ab is too short to mask/);
});

test('a secret split across output chunks, or across the 64 KiB cut of a long line, is still masked', () => {
  const secret = 'split-across-chunks-secret';
  const w = new LogWriter(path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-log-')), 'job.jsonl'), 4 * 1024 * 1024, [secret]);
  w.write(0, 'stdout', Buffer.from(`one ${secret.slice(0, 9)}`));
  w.write(0, 'stdout', Buffer.from(`${secret.slice(9)} two\n`));
  // A line without newline whose 64 KiB cut would fall inside the secret, at every offset around it.
  for (let back = 0; back <= secret.length; back++) {
    const line = 'z'.repeat(64 * 1024 - back) + secret + 'tail';
    w.write(1, 'stdout', Buffer.from(line.slice(0, 64 * 1024 - 3)));
    w.write(1, 'stdout', Buffer.from(line.slice(64 * 1024 - 3)));
    w.write(1, 'stdout', Buffer.from('\n'));
  }
  w.close();
  const recs = read(w.file);
  assert.equal(recs[0].l, 'one *** two');
  for (const r of recs) {
    assert.ok(!r.l.includes(secret.slice(0, 6)) && !r.l.includes(secret.slice(-6)), `a piece of the secret in a ${r.l.length}-character record`);
  }
  assert.equal(
    recs
      .filter((r) => r.i === 1)
      .map((r) => r.l)
      .join('')
      .split('***').length - 1,
    secret.length + 1,
    'each long line kept its masked secret',
  );
});

test('workflow commands see masked text: a secret in an annotation title or file never reaches the parser', () => {
  const secret = 'title-file-secret-value';
  const w = new LogWriter(path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-log-')), 'job.jsonl'), 1024 * 1024, [secret]);
  const seen: string[] = [];
  w.setFilter((_step, text) => {
    seen.push(text);
    return { kind: 'text', text };
  });
  w.write(0, 'stdout', Buffer.from(`::error title=${secret},file=${secret}.py::msg ${Buffer.from(`x${secret}`).toString('base64')}\n`));
  w.close();
  assert.equal(seen.length, 1);
  assert.ok(!seen[0].includes(secret), seen[0]);
  assert.match(seen[0], /^::error title=\*\*\*,file=\*\*\*\.py::msg \S*\*\*\*/);
});
