// The log's wire format: a line as it is kept in a job's log file (LogRecord), and a batch of such
// lines as it travels from a writer to followers (encodeLogMessage/decodeLogMessage, logChannel).
// The writer (log-store.ts) and the readers (LogBus, the log API) agree through this file only.

/**
 * One log line: time (ms), step index (-1 = the job itself), stream (o = stdout, e = stderr,
 * k = Kiln, g = a group starts (l is its title), G = the group ends), text.
 */
export interface LogRecord {
  t: number;
  i: number;
  s: 'o' | 'e' | 'k' | 'g' | 'G';
  l: string;
}

/**
 * What a writer publishes, in file order: the lines it appended between byte offsets `from` and
 * `next` of the job's log file, as they are in the file (JSON records, each ending in a newline;
 * `from` of one batch is `next` of the one before), or, once, that it closed the file at `next`.
 * The lines travel as they were written: nobody between the job and a follower parses them again.
 */
export type LogBatch = { from: number; next: number; lines: string } | { closed: true; next: number };

/** A batch as it travels on the run's channel (logChannel): the job it belongs to, added; and the LocalLogHub it came from. */
export type LogMessage = LogBatch & { job: string; origin?: string };

/**
 * A batch on the wire: a JSON header ({job, from, next}), a newline, then the lines as in the file; a
 * closing marker is its header alone ({job, closed, next}).
 */
export function encodeLogMessage(job: string, batch: LogBatch, origin?: string): string {
  if ('closed' in batch) return JSON.stringify({ job, closed: true, next: batch.next, origin });
  return `${batchHeader(job, batch, origin)}${batch.lines}`;
}

/** encodeLogMessage's message as bytes, from the lines already encoded (a copy, not a second encoding). */
export function encodeLogMessageBytes(job: string, batch: LogBatch, encoded: Buffer | undefined, origin?: string): string | Buffer {
  if ('closed' in batch || !encoded) return encodeLogMessage(job, batch, origin);
  return Buffer.concat([Buffer.from(batchHeader(job, batch, origin)), encoded]);
}

/** A batch's header line, the lines follow it. */
function batchHeader(job: string, batch: { from: number; next: number }, origin: string | undefined): string {
  return `${JSON.stringify({ job, from: batch.from, next: batch.next, origin })}\n`;
}

/**
 * The message encodeLogMessage made, or null for anything else, or for a message from `ignoreOrigin`
 * (this node's own, back from Redis: its header alone is read, its lines are never decoded).
 */
export function decodeLogMessage(data: string | Buffer, ignoreOrigin?: string): LogMessage | null {
  const nl = data.indexOf('\n');
  const part = (from: number, to?: number) => (typeof data === 'string' ? data.slice(from, to) : data.subarray(from, to).toString());
  let head: { job?: unknown; from?: unknown; next?: unknown; closed?: unknown; origin?: unknown } | null;
  try {
    head = JSON.parse(nl < 0 ? part(0) : part(0, nl)) as typeof head;
  } catch {
    return null;
  }
  if (!head || typeof head.job !== 'string' || typeof head.next !== 'number') return null;
  if (ignoreOrigin !== undefined && head.origin === ignoreOrigin) return null;
  const origin = typeof head.origin === 'string' ? { origin: head.origin } : {};
  if (nl < 0) return head.closed === true ? { job: head.job, closed: true, next: head.next, ...origin } : null;
  if (typeof head.from !== 'number') return null;
  return { job: head.job, from: head.from, next: head.next, lines: part(nl + 1), ...origin };
}

/**
 * Hands a batch to whoever tells followers (Redis PUBLISH); may throw or reject: the writer ignores it.
 * `encoded` is the batch's lines as UTF-8, as written to the file (so they are not encoded twice).
 */
export type LogPublish = (batch: LogBatch, encoded?: Buffer) => unknown;

/** The Redis pub/sub channel that carries the live log lines of one run, for every job of it. */
export function logChannel(queuePrefix: string, runId: string): string {
  return `${queuePrefix}:logs:${runId}`;
}
