/**
 * A live-log follower as a process of its own (`node follower.js URL TOKEN`): reads a run's
 * server-sent events to their `end` and prints {events, bytes} as JSON. Lines are counted by their
 * `data: ` prefix with Buffer.indexOf, never parsed: with two million lines the follower must cost
 * little next to the server it measures, and being its own process it does not share the bench's
 * event loop.
 */
import * as http from 'node:http';

const DATA = Buffer.from('\ndata: ');
const END = Buffer.from('\nevent: end');

export function follow(url: string, token: string): Promise<{ events: number; bytes: number; ended: boolean }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers: { authorization: `Bearer ${token}` } }, (res) => {
      if (res.statusCode !== 200) {
        reject(new Error(`follow answered ${res.statusCode}`));
        res.resume();
        return;
      }
      let events = 0;
      let bytes = 0;
      // A leading newline so that the first event (at offset 0) matches like the others. The carry is
      // shorter than the prefix: a prefix split across chunks is counted once, and none twice.
      let carry = Buffer.from('\n');
      let last = Buffer.alloc(0);
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        const buf = Buffer.concat([carry, chunk]);
        let i = 0;
        while ((i = buf.indexOf(DATA, i)) >= 0) {
          events++;
          i += DATA.length;
        }
        carry = buf.subarray(Math.max(0, buf.length - (DATA.length - 1)));
        last = Buffer.concat([last, chunk]).subarray(-512);
      });
      // The server ends the stream with `event: end` (then `data: {status}`), which is not a log line.
      res.on('end', () => {
        const ended = last.indexOf(END) >= 0;
        resolve({ events: ended ? events - 1 : events, bytes, ended });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

if (require.main === module) {
  const [url, token] = process.argv.slice(2);
  follow(url, token).then(
    (r) => { process.stdout.write(JSON.stringify(r) + '\n'); },
    (e: Error) => { process.stderr.write(`follower: ${e.message}\n`); process.exit(1); },
  );
}
