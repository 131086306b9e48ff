import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LogBus, Subscriber } from './log-bus';
import { LocalLogHub, LogWriter, PUBLISH_INTERVAL_MS, PUBLISH_MAX_BYTES } from './log-store';
import { decodeLogMessage, encodeLogMessage, LogBatch, LogMessage, LogRecord } from './log-wire';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function tmpFile(): string {
  return path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-logbus-')), 'job.jsonl');
}

function fileLines(file: string): string[] {
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
}

type Data = Extract<LogBatch, { lines: string }>;
const isData = (b: LogBatch): b is Data => 'lines' in b;
/** A batch's records (its lines parsed). */
const recordsOf = (b: Data): LogRecord[] =>
  b.lines
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as LogRecord);

/** Every batch is contiguous with the one before, and together they are the file's lines, then one closing marker. */
function assertMatchesFile(batches: LogBatch[], file: string, startAt = 0): void {
  const data = batches.filter(isData);
  let at = startAt;
  for (const b of data) {
    assert.equal(b.from, at, 'each batch starts where the one before ended');
    assert.equal(b.next - b.from, Buffer.byteLength(b.lines), 'next - from is the bytes of its lines in the file');
    assert.ok(b.lines.length > 0 && b.lines.endsWith('\n'), 'no empty batches; whole lines only');
    at = b.next;
  }
  const all = fs.readFileSync(file);
  assert.equal(at, all.length, 'the last batch ends at the end of the file');
  assert.equal(data.map((b) => b.lines).join(''), all.subarray(startAt).toString('utf8'), 'the batches are the file, byte for byte');
  const last = batches[batches.length - 1];
  assert.deepEqual(last, { closed: true, next: all.length }, 'the closing marker comes last, at the end of the file');
  assert.equal(batches.filter((b) => 'closed' in b).length, 1, 'one closing marker');
}

test('lines written together go out as one batch after a short delay, not one message per line', async () => {
  const batches: LogBatch[] = [];
  const w = new LogWriter(tmpFile(), 1024 * 1024, [], (b) => {
    batches.push(structuredClone(b));
  });
  for (let i = 0; i < 500; i++) w.write(0, 'stdout', Buffer.from(`line ${i}\n`));
  assert.equal(batches.length, 0, 'nothing is published synchronously for small output');
  await sleep(PUBLISH_INTERVAL_MS * 4);
  assert.equal(batches.length, 1, 'one batch for 500 lines');
  w.write(0, 'stderr', Buffer.from('later\n'));
  w.notice(0, 'step ended');
  await sleep(PUBLISH_INTERVAL_MS * 4);
  assert.equal(batches.length, 2);
  w.close();
  assertMatchesFile(batches, w.file);
  assert.deepEqual(
    recordsOf(batches[1] as Data).map((r) => [r.s, r.l]),
    [
      ['e', 'later'],
      ['k', 'step ended'],
    ],
  );
});

test('big output is split into messages of at most about PUBLISH_MAX_BYTES, contiguous, equal to the file', async () => {
  const batches: LogBatch[] = [];
  const w = new LogWriter(tmpFile(), 64 * 1024 * 1024, [], (b) => {
    batches.push(structuredClone(b));
  });
  const chunk = Buffer.from(Array.from({ length: 1000 }, (_, i) => `${'x'.repeat(i % 300)} line ${i} ünïcode €\n`).join(''));
  for (let i = 0; i < 30; i++) w.write(i % 3, i % 2 ? 'stderr' : 'stdout', chunk);
  w.write(1, 'stdout', Buffer.alloc(200 * 1024, 'y')); // 64 KiB pieces
  w.write(1, 'stdout', Buffer.from('\u0001\u0002'.repeat(20_000) + '\n')); // escapes make the JSON longer than the text
  w.write(2, 'stdout', Buffer.from('no newline at the end'));
  w.close();
  const data = batches.filter(isData);
  assert.ok(data.length > 5, `several messages (${data.length})`);
  // A record longer than a block (the escaped line: about 240 KiB of JSON) travels alone.
  const alone = (b: LogBatch & { lines: string }) => b.lines.indexOf('\n') === b.lines.length - 1;
  for (const b of data)
    assert.ok(
      b.next - b.from <= PUBLISH_MAX_BYTES || alone(b),
      `a message carries at most ${PUBLISH_MAX_BYTES} bytes of lines, or one record (${b.next - b.from})`,
    );
  assert.ok(
    data.some((b) => b.next - b.from > PUBLISH_MAX_BYTES && alone(b)),
    'the long record went alone',
  );
  const total = data.reduce((n, b) => n + b.next - b.from, 0);
  assert.ok(data.length <= Math.ceil(total / (PUBLISH_MAX_BYTES / 2)) + 1, `batches are mostly full (${data.length} for ${total} bytes)`);
  assertMatchesFile(batches, w.file);
  assert.equal(fileLines(w.file).length, 30_000 + 4 + 1);
});

test('a writer on an existing file publishes from its end; the cap notices are published too', async () => {
  const file = tmpFile();
  const first = new LogWriter(file, 4096);
  first.write(0, 'stdout', Buffer.from('attempt 1\n'));
  first.close();
  const start = fs.statSync(file).size;
  const batches: LogBatch[] = [];
  const w = new LogWriter(file, 4096, ['s3cret-value'], (b) => {
    batches.push(structuredClone(b));
  });
  w.write(0, 'stdout', Buffer.from('the secret is s3cret-value\n'));
  for (let i = 0; i < 500; i++) w.write(0, 'stdout', Buffer.from(`line ${i}\n`));
  w.close();
  assertMatchesFile(batches, file, start);
  const published = batches.filter(isData).flatMap(recordsOf);
  assert.equal(published[0].l, 'the secret is ***', 'what is published is masked like the file');
  assert.match(published[published.length - 1].l, /^log truncated/);
});

test('publishing that throws or rejects never reaches the job; the file has everything', async () => {
  let calls = 0;
  const throwing = new LogWriter(tmpFile(), 1024 * 1024, [], () => {
    calls++;
    throw new Error('redis down');
  });
  const rejecting = new LogWriter(tmpFile(), 1024 * 1024, [], () => {
    calls++;
    return Promise.reject(new Error('redis down'));
  });
  for (const w of [throwing, rejecting]) {
    for (let i = 0; i < 3; i++) {
      w.write(0, 'stdout', Buffer.from(`line ${i}\n`));
      await sleep(PUBLISH_INTERVAL_MS * 2);
    }
    w.close();
    assert.deepEqual(
      fileLines(w.file).map((l) => (JSON.parse(l) as LogRecord).l),
      ['line 0', 'line 1', 'line 2'],
    );
  }
  await sleep(10);
  assert.ok(calls >= 4, 'it kept trying (the next batch may get through)');
});

test('without a publish callback nothing is scheduled (the writer works as a plain file writer)', () => {
  const w = new LogWriter(tmpFile(), 1024);
  w.write(0, 'stdout', Buffer.from('a\nb\n'));
  w.close();
  w.close(); // a second close is harmless
  assert.equal(fileLines(w.file).length, 2);
});

/** An ioredis subscriber as far as the bus uses it; records the commands. */
class FakeSubscriber extends EventEmitter {
  status = 'ready';
  readonly commands: string[] = [];
  failNext = false;
  async subscribe(channel: string) {
    this.commands.push(`SUBSCRIBE ${channel}`);
    if (this.failNext) {
      this.failNext = false;
      throw new Error('Command timed out');
    }
    return 1;
  }
  async unsubscribe(channel: string) {
    this.commands.push(`UNSUBSCRIBE ${channel}`);
    return 0;
  }
  disconnect() {
    this.commands.push('DISCONNECT');
    this.status = 'end';
  }
  publish(channel: string, m: LogMessage) {
    const { job, ...batch } = m;
    this.message(channel, encodeLogMessage(job, batch as LogBatch));
  }
  /** What ioredis emits for a message on a subscribed channel (the bus listens for the Buffer form). */
  message(channel: string, text: string) {
    this.emit('messageBuffer', Buffer.from(channel), Buffer.from(text));
  }
}

test('LogBus: one connection, opened lazily; SUBSCRIBE on the first follower, UNSUBSCRIBE when the last leaves', async () => {
  const sub = new FakeSubscriber();
  let opened = 0;
  const bus = new LogBus(
    { queuePrefix: 'kp' },
    {
      duplicate: () => {
        opened++;
        return sub as unknown as Subscriber;
      },
    },
  );
  assert.equal(opened, 0, 'no connection before the first follower');
  const got: Record<string, LogMessage[]> = { a: [], b: [], c: [] };
  const offA = await bus.subscribe('run1', (m) => got.a.push(m));
  const offB = await bus.subscribe('run1', (m) => got.b.push(m));
  const offC = await bus.subscribe('run2', (m) => got.c.push(m));
  assert.equal(opened, 1, 'one connection for every follower');
  assert.deepEqual(sub.commands, ['SUBSCRIBE kp:logs:run1', 'SUBSCRIBE kp:logs:run2']);
  assert.equal(bus.live, true);
  const m1: LogMessage = { job: 'j', from: 0, next: 31, lines: '{"t":1,"i":0,"s":"o","l":"hi"}\n' };
  sub.publish('kp:logs:run1', m1);
  sub.message('kp:logs:run1', 'not json');
  sub.message('kp:logs:run1', '{"job":"j","next":1}'); // neither a batch (no from, no lines) nor a closing marker
  sub.publish('kp:logs:run2', { job: 'k', closed: true, next: 0 });
  assert.deepEqual(got.a, [m1]);
  assert.deepEqual(got.b, [m1]);
  assert.deepEqual(got.c, [{ job: 'k', closed: true, next: 0 }]);
  offA();
  offA();
  assert.equal(bus.followers('run1'), 1);
  assert.deepEqual(sub.commands.slice(2), [], 'still a follower of run1 here');
  sub.publish('kp:logs:run1', m1);
  assert.equal(got.a.length, 1, 'a follower that left gets nothing more');
  assert.equal(got.b.length, 2);
  offB();
  assert.deepEqual(sub.commands.slice(2), ['UNSUBSCRIBE kp:logs:run1']);
  const offB2 = await bus.subscribe('run1', (m) => got.b.push(m));
  assert.deepEqual(sub.commands.slice(3), ['SUBSCRIBE kp:logs:run1'], 'a new follower subscribes again');
  offB2();
  offC();
  bus.onApplicationShutdown();
  assert.equal(sub.commands[sub.commands.length - 1], 'DISCONNECT');
  await assert.rejects(
    bus.subscribe('run1', () => undefined),
    /shut down/,
  );
});

test('LogBus: a SUBSCRIBE that fails rejects the followers waiting on it; the next one tries again', async () => {
  const sub = new FakeSubscriber();
  const bus = new LogBus({ queuePrefix: 'kp' }, { duplicate: () => sub as unknown as Subscriber });
  sub.failNext = true;
  const [a, b] = await Promise.allSettled([bus.subscribe('r', () => undefined), bus.subscribe('r', () => undefined)]);
  assert.equal(a.status, 'rejected');
  assert.equal(b.status, 'rejected');
  assert.equal(bus.followers('r'), 0);
  const off = await bus.subscribe('r', () => undefined);
  assert.deepEqual(sub.commands, ['SUBSCRIBE kp:logs:r', 'SUBSCRIBE kp:logs:r']);
  off();
  bus.onApplicationShutdown();
});

test('the wire format: a header, a newline, the lines untouched; anything else is refused', () => {
  const lines = '{"t":1,"i":0,"s":"o","l":"a\\nb \\"q\\" ünï"}\n{"t":2,"i":0,"s":"e","l":""}\n';
  const text = encodeLogMessage('job1', { from: 5, next: 5 + Buffer.byteLength(lines), lines });
  assert.ok(text.endsWith(lines), 'the lines are sent as written, not re-encoded');
  assert.deepEqual(decodeLogMessage(text), { job: 'job1', from: 5, next: 5 + Buffer.byteLength(lines), lines });
  assert.deepEqual(decodeLogMessage(encodeLogMessage('job1', { closed: true, next: 9 })), { job: 'job1', closed: true, next: 9 });
  for (const bad of [
    '',
    'x',
    '{}',
    '{"job":1,"from":0,"next":1}\nx',
    '{"job":"j","next":"1","from":0}\nx',
    '{"job":"j","next":1}\nx',
    '{"job":"j","next":1}',
    'null\nx',
  ]) {
    assert.equal(decodeLogMessage(bad), null, JSON.stringify(bad));
    assert.equal(decodeLogMessage(Buffer.from(bad)), null, JSON.stringify(bad));
  }
  // As Redis hands it over (Buffers): the same; this node's own messages are refused on their header.
  const bytes = Buffer.from(encodeLogMessage('job1', { from: 5, next: 5 + Buffer.byteLength(lines), lines }, 'node-a'));
  assert.deepEqual(decodeLogMessage(bytes), { job: 'job1', from: 5, next: 5 + Buffer.byteLength(lines), lines, origin: 'node-a' });
  assert.deepEqual(decodeLogMessage(bytes, 'node-b'), { job: 'job1', from: 5, next: 5 + Buffer.byteLength(lines), lines, origin: 'node-a' });
  assert.equal(decodeLogMessage(bytes, 'node-a'), null);
});

test("LocalLogHub: a follower on the writer's node gets batches directly; their copies from Redis are dropped, other nodes' are not", async () => {
  const sub = new FakeSubscriber();
  const hub = new LocalLogHub();
  const bus = new LogBus({ queuePrefix: 'kp' }, { duplicate: () => sub as unknown as Subscriber }, hub);
  const got: LogMessage[] = [];
  const off = await bus.subscribe('run1', (m) => got.push(m));
  const mine: LogMessage = { job: 'j', from: 0, next: 31, lines: '{"t":1,"i":0,"s":"o","l":"hi"}\n' };
  hub.emit('kp:logs:run1', mine);
  assert.deepEqual(got, [mine], 'handed over without Redis');
  sub.message('kp:logs:run1', encodeLogMessage('j', { from: 0, next: 31, lines: mine.lines }, hub.origin));
  assert.equal(got.length, 1, 'its own copy from Redis is dropped');
  sub.message('kp:logs:run1', encodeLogMessage('k', { from: 0, next: 31, lines: mine.lines }, 'another-node'));
  sub.message('kp:logs:run1', encodeLogMessage('k', { closed: true, next: 31 }));
  assert.deepEqual(
    got.slice(1).map((m) => [m.job, m.origin ?? null, 'closed' in m]),
    [
      ['k', 'another-node', false],
      ['k', null, true],
    ],
  );
  hub.emit('kp:logs:other-run', mine);
  assert.equal(got.length, 3, 'only the channels followed here');
  off();
  bus.onApplicationShutdown();
});
