import type { Readable, Writable } from 'node:stream';

/** Docker's multiplexed attach stream (Tty off): frames of an 8-byte header (type, 0, 0, 0, length BE32) and the payload. */
const HEADER = 8;

/**
 * Splits an exec's attach stream into stdout and stderr, as docker-modem's demuxStream does, but
 * without copying: a payload that lies in one chunk is handed on as a view of it, and only a frame
 * split across chunks is joined. And with backpressure: while a destination is full the attach
 * stream is paused, so a slow consumer (a disk, a follower) holds the engine back instead of
 * filling Kiln's memory. A stream that is not multiplexed (a header of another type) is passed to
 * stdout as it is, from there on.
 */
export function demux(source: Readable, stdout: Writable, stderr: Writable): void {
  let header: Buffer | null = null; // a header split across chunks, being gathered
  let headerHave = 0;
  let type = 0;
  let left = 0; // payload bytes of the current frame still to come
  let raw = false;
  const full = new Set<Writable>(); // destinations waiting for their drain

  const push = (dest: Writable, data: Buffer) => {
    if (dest.write(data) || dest.destroyed || full.has(dest)) return;
    full.add(dest);
    source.pause();
    // A destination destroyed while full never drains: its close lets the stream go on too.
    const go = () => {
      dest.off('drain', go);
      dest.off('close', go);
      full.delete(dest);
      if (full.size === 0) source.resume();
    };
    dest.on('drain', go);
    dest.on('close', go);
  };

  source.on('data', (chunk: Buffer) => {
    if (raw) return push(stdout, chunk);
    let at = 0;
    while (at < chunk.length) {
      if (left > 0) {
        const n = Math.min(left, chunk.length - at);
        push(type === 2 ? stderr : stdout, chunk.subarray(at, at + n));
        left -= n;
        at += n;
        continue;
      }
      let h: Buffer;
      if (header === null && chunk.length - at >= HEADER) {
        h = chunk.subarray(at, at + HEADER);
        at += HEADER;
      } else {
        header ??= Buffer.alloc(HEADER);
        const n = Math.min(HEADER - headerHave, chunk.length - at);
        chunk.copy(header, headerHave, at, at + n);
        headerHave += n;
        at += n;
        if (headerHave < HEADER) return;
        h = header;
        header = null;
        headerHave = 0;
      }
      if (h[0] > 2) {
        // Not multiplexed after all: everything from this header on is output.
        raw = true;
        push(stdout, Buffer.concat([h, chunk.subarray(at)]));
        return;
      }
      type = h[0];
      left = h.readUInt32BE(4);
    }
  });
}
