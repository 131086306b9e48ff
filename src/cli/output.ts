/** What the kiln CLI prints: run views from the API, log lines, summaries, tables, the upload bar. */
import { visible } from '../common/visible';
import type { EgressReport } from '../common/egress-rules';

export interface StepView {
  index: number;
  name: string;
  outcome: string | null;
  conclusion: string | null;
  exitCode: number | null;
  reason: string | null;
  startedAt: string | null;
  finishedAt: string | null;
}
export interface JobView {
  id: string;
  key: string;
  environment: string;
  status: string;
  conclusion: string | null;
  error: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  steps: StepView[];
  /** What the job reached through its egress gateway; null: no network; absent from an older server. */
  egress?: EgressReport | null;
}
export interface RunView {
  id: string;
  status: string;
  conclusion: string | null;
  workflow: { name: string };
  createdAt: string;
  finishedAt: string | null;
  jobs: JobView[];
  artifacts: { name: string; sizeBytes: number; url: string }[];
}

export const isTTY = Boolean(process.stdout.isTTY) && !process.env.NO_COLOR;
/**
 * Text from the server (job names, step names, log lines: a job chose them) is data: on a terminal its
 * control characters are shown as \xNN, never obeyed, with or without colours. Piped, bytes pass unchanged.
 */
export const shownOut = (s: string) => (process.stdout.isTTY ? visible(s) : s);
export const shownErr = (s: string) => (process.stderr.isTTY ? visible(s) : s);
export const paint = (code: string, s: string, tty = isTTY) => (tty ? `\x1b[${code}m${s}\x1b[0m` : s);
export const err = (s: string) => process.stderr.write(s + '\n');

export function progress(done: number, total: number): string {
  const width = 24;
  const n = total ? Math.round((done / total) * width) : width;
  return `[${'#'.repeat(n)}${' '.repeat(width - n)}] ${(done / 1024 / 1024).toFixed(1)}/${(total / 1024 / 1024).toFixed(1)} MiB`;
}

export interface LogRecord {
  t: number;
  i: number;
  s: 'o' | 'e' | 'k' | 'g' | 'G';
  l: string;
  job: string;
}

/** One log line for a terminal: Kiln's own lines bold, stderr red; nothing from the job is interpreted. */
export function renderLine(r: LogRecord, prefix: boolean, quiet: boolean): string {
  const p = prefix ? paint('36', `[${shownOut(r.job)}] `) : '';
  const text = shownOut(r.l);
  if (r.s === 'k') return quiet ? '' : `${p}${paint('1', text.startsWith('▶') || text.startsWith('■') ? text : `## ${text}`)}\n`;
  if (r.s === 'g') return `${p}${paint('1', `▸ ${text}`)}\n`;
  if (r.s === 'G') return '';
  if (r.s === 'e') return `${p}${paint('31', text)}\n`;
  return `${p}${text}\n`;
}

function duration(a: string | null, b: string | null): number | null {
  return a && b ? (Date.parse(b) - Date.parse(a)) / 1000 : null;
}

export function summary(r: RunView) {
  return {
    id: r.id,
    status: r.status,
    conclusion: r.conclusion,
    workflow: r.workflow.name,
    jobs: r.jobs.map((j) => ({
      id: j.id,
      key: j.key,
      environment: j.environment,
      conclusion: j.conclusion,
      error: j.error,
      durationSeconds: duration(j.startedAt, j.finishedAt),
      steps: j.steps.map((s) => ({
        index: s.index,
        name: s.name,
        outcome: s.outcome,
        conclusion: s.conclusion,
        exitCode: s.exitCode,
        reason: s.reason,
        durationSeconds: duration(s.startedAt, s.finishedAt),
      })),
    })),
    artifacts: r.artifacts.map((a) => a.name),
  };
}

export function printSummary(r: RunView): void {
  const mark = (c: string | null) =>
    c === 'success' ? paint('32', '✓') : c === 'skipped' ? paint('2', '-') : c === 'cancelled' ? paint('33', '○') : paint('31', '✗');
  for (const j of r.jobs) {
    err(`${mark(j.conclusion)} ${shownErr(j.key)} (${j.environment}): ${j.conclusion}${j.error ? `: ${shownErr(j.error)}` : ''}`);
    for (const s of j.steps)
      if (s.conclusion !== 'success')
        err(
          `    ${mark(s.conclusion)} ${shownErr(s.name)}: ${s.outcome}${s.exitCode !== null ? ` (exit ${s.exitCode})` : ''}${s.reason ? `, ${s.reason}` : ''}`,
        );
  }
  if (r.artifacts.length) err(`artifacts: ${r.artifacts.map((a) => a.name).join(', ')}  (kiln artifacts ${r.id} --download NAME)`);
  err(`run ${r.id}: ${r.conclusion}`);
}

/** Columns padded to their widest cell, two spaces apart (the last not padded); the header through `header`. */
export function tableText(head: string[], rows: string[][], header: (s: string) => string = (s) => s, indent = ''): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ');
  return [header(line(head).trimEnd()), ...rows.map(line)].map((l) => `${indent}${l}\n`).join('');
}

export function table(head: string[], rows: string[][]): void {
  process.stdout.write(tableText(head, rows, (s) => paint('1', s)));
}
