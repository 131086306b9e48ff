/**
 * A live-log follower as a process of its own (`node follower.js URL TOKEN`): reads a run's
 * server-sent events to their `end` and prints {events, bytes} as JSON. Lines are counted by their
 * `data: ` prefix with Buffer.indexOf, never parsed: with two million lines the follower must cost
 * little next to the server it measures, and being its own process it does not share the bench's
 * event loop.
 */
import * as http from 'node:http';

/** Counts the occurrences of a byte pattern across a stream's chunks, each once. */
class Counter {
  count = 0;
  // Shorter than the pattern: a match split across chunks is counted once, and none twice.
  private carry: Buffer;

  constructor(
    private readonly pattern: Buffer,
    lead = '',
  ) {
    this.carry = Buffer.from(lead);
  }

  add(chunk: Buffer): void {
    const buf = this.carry.length ? Buffer.concat([this.carry, chunk]) : chunk;
    for (let i = buf.indexOf(this.pattern); i >= 0; i = buf.indexOf(this.pattern, i + this.pattern.length)) this.count++;
    this.carry = Buffer.from(buf.subarray(Math.max(0, buf.length - (this.pattern.length - 1))));
  }
}

const END = Buffer.from('\nevent: end');

export interface Followed {
  /** server-sent events with data (log lines of any kind) */
  events: number;
  /** of them, lines of the job's standard output (`"s":"o"`) */
  stdoutLines: number;
  bytes: number;
  /** the stream closed with Kiln's `event: end` */
  ended: boolean;
}

export function follow(url: string, token: string): Promise<Followed> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers: { authorization: `Bearer ${token}` } }, (res) => {
      if (res.statusCode !== 200) {
        reject(new Error(`follow answered ${res.statusCode}`));
        res.resume();
        return;
      }
      // The leading newline lets the first event (at offset 0) match like the others.
      const data = new Counter(Buffer.from('\ndata: '), '\n');
      const stdout = new Counter(Buffer.from('"s":"o"'));
      let bytes = 0;
      let last = Buffer.alloc(0);
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        data.add(chunk);
        stdout.add(chunk);
        last = Buffer.concat([last, chunk]).subarray(-512);
      });
      // The server ends the stream with `event: end` (then `data: {status}`), which is not a log line.
      res.on('end', () => {
        const ended = last.indexOf(END) >= 0;
        resolve({ events: ended ? data.count - 1 : data.count, stdoutLines: stdout.count, bytes, ended });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

if (require.main === module) {
  const [url, token] = process.argv.slice(2);
  follow(url, token).then(
    (r) => {
      process.stdout.write(JSON.stringify(r) + '\n');
    },
    (e: Error) => {
      process.stderr.write(`follower: ${e.message}\n`);
      process.exit(1);
    },
  );
}
