/** `kiln status RUN --egress`: what each job reached through its egress gateway, as text or JSON. */
import type { EgressReport } from '../common/egress-rules';
import { formatBytes } from '../common/size';
import { tableText } from './output';

/**
 * null: the job had no gateway, so no network at all. undefined: the server sent no report (a server
 * older than egress reports); saying "no network" then would be a claim nobody measured.
 */
export type JobEgress = { key: string; egress?: EgressReport | null };

export interface EgressTextOptions {
  /** Makes text a job chose (job keys, host names, rules) safe to print: on a terminal, control characters shown. */
  shown: (s: string) => string;
  /** The table's header style (bold on a terminal). */
  header: (s: string) => string;
}

const PLAIN: EgressTextOptions = { shown: (s) => s, header: (s) => s };

/** An IPv6 literal in brackets, so its colons are not read as the port's. */
export function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** One job's network, as lines of text ending in a newline. */
export function egressText(job: JobEgress, o: EgressTextOptions = PLAIN): string {
  const key = o.shown(job.key);
  if (job.egress === undefined) return `${key}: no egress report from the server\n`;
  if (job.egress === null) return `${key}: no network\n`;
  const e = job.egress;
  let out = `${key}: may reach ${e.rules.length ? e.rules.map(o.shown).join(', ') : 'nothing'}\n`;
  if (e.hosts.length)
    out += tableText(
      ['HOST:PORT', 'VERDICT', 'REQUESTS', 'IN', 'OUT'],
      e.hosts.map((h) => [
        o.shown(hostPort(h.host, h.port)),
        h.allowed ? 'allowed' : 'refused',
        String(h.requests),
        formatBytes(h.bytesIn),
        formatBytes(h.bytesOut),
      ]),
      o.header,
      '  ',
    );
  else out += '  no requests\n';
  if (e.lookups.length) out += `  names looked up: ${e.lookups.map(o.shown).join(', ')}\n`;
  out += `  total ${formatBytes(e.totalBytes)} of ${formatBytes(e.maxBytes)} cap\n`;
  if (e.capReached) out += '  (byte cap reached: the gateway was cut off)\n';
  return out;
}

/** Every job's network, one block per job, blank lines between. */
export function egressSection(jobs: JobEgress[], o: EgressTextOptions = PLAIN): string {
  return jobs.map((j) => egressText(j, o)).join('\n');
}

/**
 * The JSON summary's jobs with their egress parts added (matched by job id): `egress` is the report,
 * null for no network, and absent when the server sent none.
 */
export function withEgress<T extends { id: string }>(summaryJobs: T[], jobs: (JobEgress & { id: string })[]): (T & { egress?: EgressReport | null })[] {
  const byId = new Map(jobs.map((j) => [j.id, j.egress]));
  return summaryJobs.map((j) => {
    const egress = byId.get(j.id);
    return egress === undefined ? j : { ...j, egress };
  });
}
