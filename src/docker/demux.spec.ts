import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough, Writable } from 'node:stream';
import { demux } from './demux';

function frame(type: number, payload: string | Buffer): Buffer {
  const body = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const h = Buffer.alloc(8);
  h[0] = type;
  h.writeUInt32BE(body.length, 4);
  return Buffer.concat([h, body]);
}

function collect(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  const parts: Buffer[] = [];
  stream.on('data', (d: Buffer) => parts.push(d));
  return { stream, text: () => Buffer.concat(parts).toString() };
}

test('frames are split into stdout and stderr wherever the chunks break (headers and payloads split, several frames per chunk, empty frames)', () => {
  const wire = Buffer.concat([frame(1, 'hello '), frame(2, 'oops\n'), frame(1, ''), frame(1, 'world\n'), frame(2, 'x'.repeat(70_000)), frame(1, 'end')]);
  for (const size of [1, 3, 7, 8, 9, 13, 64, 1000, 65_536, wire.length]) {
    const source = new PassThrough();
    const out = collect();
    const err = collect();
    demux(source, out.stream, err.stream);
    for (let i = 0; i < wire.length; i += size) source.write(wire.subarray(i, i + size));
    assert.equal(out.text(), 'hello world\nend', `chunks of ${size}`);
    assert.equal(err.text(), 'oops\n' + 'x'.repeat(70_000), `chunks of ${size}`);
  }
});

test('a stream that is not multiplexed is passed to stdout as it is', () => {
  const source = new PassThrough();
  const out = collect();
  const err = collect();
  demux(source, out.stream, err.stream);
  source.write(frame(1, 'framed '));
  source.write(Buffer.from('plain text, no header\n'));
  source.write(Buffer.from('more\n'));
  assert.equal(out.text(), 'framed plain text, no header\nmore\n');
  assert.equal(err.text(), '');
});

test('a full destination pauses the attach stream until it drains', async () => {
  const source = new PassThrough();
  let release: (() => void) | null = null;
  const got: Buffer[] = [];
  const slow = new Writable({
    highWaterMark: 1024,
    write(chunk: Buffer, _enc, cb) {
      got.push(chunk);
      release = cb;
    },
  });
  demux(source, slow, new PassThrough());
  source.write(frame(1, 'a'.repeat(4096)));
  source.write(Buffer.concat(Array.from({ length: 20 }, () => frame(1, 'b'.repeat(100)))));
  assert.equal(source.isPaused(), true, 'paused while the destination is full');
  assert.equal(slow.listenerCount('drain'), 1, 'one wait for the drain, however many frames arrived meanwhile');
  for (let i = 0; i < 30 && got.length < 21; i++) {
    (release as unknown as () => void)();
    await new Promise((r) => setImmediate(r));
  }
  (release as unknown as () => void)();
  await new Promise((r) => setImmediate(r));
  assert.equal(Buffer.concat(got).length, 4096 + 2000);
  assert.equal(source.isPaused(), false, 'resumed once it drained');
  assert.equal(slow.listenerCount('drain'), 0);
});
