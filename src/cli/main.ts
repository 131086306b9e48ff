import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { parseArgs, ParseArgsConfig } from 'node:util';
import { CliError, EXIT, KilnClient } from './client';
import { loadCliConfig, saveCliConfig } from './config';
import { extractTar, packDirectory, PackError } from './pack';
import { visible } from '../common/visible';

interface StepView { index: number; name: string; outcome: string | null; conclusion: string | null; exitCode: number | null; reason: string | null; startedAt: string | null; finishedAt: string | null }
interface JobView { id: string; key: string; environment: string; status: string; conclusion: string | null; error: string | null; startedAt: string | null; finishedAt: string | null; steps: StepView[] }
interface RunView { id: string; status: string; conclusion: string | null; workflow: { name: string }; createdAt: string; finishedAt: string | null; jobs: JobView[]; artifacts: { name: string; sizeBytes: number; url: string }[] }

const HELP: Record<string, string> = {
  main: `kiln: run code in Kiln's published environments

usage: kiln <command> [options]

  run [DIR]                 pack DIR (default .), submit it, follow the logs
  exec [--env NAME] [DIR] -- CMD...   run one command (no workflow file)
  runs                      your recent runs
  status RUN                a run's jobs and steps
  logs RUN [--job J] [--follow]
  artifacts RUN [--download NAME] [-o DIR]
  cancel RUN
  envs                      the environment catalogue
  env show NAME[@VERSION] [--packages]
  env diff NAME A B
  env which PACKAGE
  login [--url URL] [--token TOKEN]
  serve | api | worker | images   run the Kiln server itself (see kiln serve --help)

Configuration: KILN_URL (default http://127.0.0.1:3000) and KILN_TOKEN, or kiln login.
Exit codes: 0 success, 1 the run failed or was cancelled, 2 usage or input error, 3 server unreachable.
\`kiln <command> --help\` for a command's options.`,
  run: `usage: kiln run [DIR] [options]

Packs DIR (default .) respecting .gitignore and .kilnignore, never following links out of DIR,
uploads it, and follows the logs live. The workflow is .kiln.yml or .github/workflows/*.yml.

  -W, --workflow FILE        a workflow file to run (from anywhere)
  -j, --job ID               run only this job (and the jobs it needs)
  -P, --platform LABEL=ENV   map a runs-on label to an environment (repeatable)
      --repo URL --ref REF   run a git repository instead of DIR
  -d, --detach               submit and print the run id; do not follow
      --json                 print a final JSON summary on stdout (logs go to stderr)
      --cancel-on-interrupt  Ctrl-C cancels the run without asking
  -h, --help`,
  exec: `usage: kiln exec [--env NAME] [--shell bash|sh|python] [DIR] -- CMD [ARGS...]

Runs one command in an environment (default: the server's default), with DIR packed into the
workspace if given. Streams its output and exits with its exit code.`,
  logs: 'usage: kiln logs RUN [--job JOB_ID] [-f|--follow]',
  artifacts: 'usage: kiln artifacts RUN [--download NAME] [-o DIR]   (download extracts into DIR/NAME, default ./NAME)',
  env: 'usage: kiln env show NAME[@VERSION] [--packages] | kiln env diff NAME A B | kiln env which PACKAGE',
  login: 'usage: kiln login [--url URL] [--token TOKEN]   (without --token, reads it from standard input)',
};

const isTTY = Boolean(process.stdout.isTTY) && !process.env.NO_COLOR;
/**
 * Text from the server (job names, step names, log lines: a job chose them) is data: on a terminal its
 * control characters are shown as \xNN, never obeyed, with or without colours. Piped, bytes pass unchanged.
 */
const shownOut = (s: string) => (process.stdout.isTTY ? visible(s) : s);
const shownErr = (s: string) => (process.stderr.isTTY ? visible(s) : s);
const paint = (code: string, s: string, tty = isTTY) => (tty ? `\x1b[${code}m${s}\x1b[0m` : s);
const err = (s: string) => process.stderr.write(s + '\n');

export async function cli(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (!command || command === '-h' || command === '--help' || command === 'help') {
      process.stdout.write(HELP.main + '\n');
      return command ? EXIT.ok : EXIT.usage;
    }
    if (rest.includes('--help') || rest.includes('-h')) {
      const key = command === 'env' || command === 'envs' ? 'env' : command;
      if (!Object.hasOwn(HELP, key)) throw new CliError(`kiln: unknown command '${command}'\n\n${HELP.main}`, EXIT.usage);
      process.stdout.write(HELP[key] + '\n');
      return EXIT.ok;
    }
    switch (command) {
      case 'run': return await run(rest);
      case 'exec': return await exec(rest);
      case 'runs': return await runs();
      case 'status': return await status(rest);
      case 'logs': return await logs(rest);
      case 'artifacts': return await artifacts(rest);
      case 'cancel': return await cancel(rest);
      case 'envs': return await envs();
      case 'env': return await env(rest);
      case 'login': return await login(rest);
      default: throw new CliError(`kiln: unknown command '${command}'\n\n${HELP.main}`, EXIT.usage);
    }
  } catch (e) {
    if (e instanceof CliError) {
      err(e.message);
      return e.code;
    }
    if (e instanceof PackError) {
      err(`kiln: ${e.message}`);
      return EXIT.usage;
    }
    if ((e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      err(`kiln: ${(e as Error).message}\n(see kiln ${command} --help)`);
      return EXIT.usage;
    }
    throw e;
  }
}

function args(argv: string[], options: ParseArgsConfig['options'], max: number): { values: Record<string, unknown>; positionals: string[] } {
  const parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true }) as { values: Record<string, unknown>; positionals: string[] };
  if (parsed.positionals.length > max) throw new CliError(`kiln: unexpected argument '${parsed.positionals[max]}'`, EXIT.usage);
  return parsed;
}

function client(): KilnClient {
  return new KilnClient(loadCliConfig((m) => err(paint('2', `kiln: ${m}`, Boolean(process.stderr.isTTY)))));
}

function need(value: string | undefined, what: string): string {
  if (!value) throw new CliError(`kiln: ${what} is required`, EXIT.usage);
  return value;
}

// ---- run / exec -------------------------------------------------------------------------------

async function run(argv: string[]): Promise<number> {
  const { values: o, positionals } = args(argv, {
    workflow: { type: 'string', short: 'W' }, job: { type: 'string', short: 'j' }, platform: { type: 'string', short: 'P', multiple: true },
    repo: { type: 'string' }, ref: { type: 'string' }, detach: { type: 'boolean', short: 'd' }, json: { type: 'boolean' },
    'cancel-on-interrupt': { type: 'boolean' },
  }, 1);
  const k = client();
  const platform = Object.fromEntries(((o.platform as string[] | undefined) ?? []).map((p) => {
    const [label, envName] = p.split('=');
    if (!label || !envName) throw new CliError(`kiln: --platform takes LABEL=ENVIRONMENT (got '${p}')`, EXIT.usage);
    return [label, envName];
  }));
  const workflow = o.workflow ? readWorkflow(o.workflow as string) : undefined;
  let submitted: RunView;
  if (o.repo) {
    if (positionals.length) throw new CliError('kiln: give either DIR or --repo, not both', EXIT.usage);
    const ref = need(o.ref as string | undefined, '--ref (with --repo)');
    submitted = await k.json<RunView>('/api/v1/runs', {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ repo: o.repo, ref, workflow, job: o.job, platform: Object.keys(platform).length ? platform : undefined }),
    });
  } else {
    const fields: Record<string, string> = {};
    if (workflow) fields.workflow = workflow;
    if (o.job) fields.job = o.job as string;
    if (Object.keys(platform).length) fields.platform = Object.entries(platform).map(([a, b]) => `${a}=${b}`).join(',');
    submitted = await upload(k, positionals[0] ?? '.', fields, Boolean(o.json));
  }
  return follow(k, submitted, { detach: Boolean(o.detach), json: Boolean(o.json), cancelOnInterrupt: Boolean(o['cancel-on-interrupt']) });
}

async function exec(argv: string[]): Promise<number> {
  const dash = argv.indexOf('--');
  if (dash < 0 || dash === argv.length - 1) throw new CliError(`kiln: exec needs a command after --\n${HELP.exec}`, EXIT.usage);
  const { values: o, positionals } = args(argv.slice(0, dash), { env: { type: 'string', short: 'e' }, shell: { type: 'string' }, json: { type: 'boolean' } }, 1);
  const command = argv.slice(dash + 1).map(shellQuote).join(' ');
  const k = client();
  let submitted: RunView;
  const base = { command, ...(o.env ? { environment: o.env as string } : {}), ...(o.shell ? { shell: o.shell as string } : {}) };
  if (positionals[0]) submitted = await upload(k, positionals[0], base as Record<string, string>, Boolean(o.json));
  else submitted = await k.json<RunView>('/api/v1/runs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(base) });
  const code = await follow(k, submitted, { detach: false, json: Boolean(o.json), cancelOnInterrupt: false, quiet: true });
  if (code !== EXIT.ok && code !== EXIT.failed) return code;
  const final = await k.json<RunView>(`/api/v1/runs/${submitted.id}`);
  const step = final.jobs[0]?.steps[0];
  return step?.exitCode ?? (final.conclusion === 'success' ? 0 : 1);
}

function readWorkflow(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new CliError(`kiln: cannot read the workflow ${file}: ${(e as Error).message}`, EXIT.usage);
  }
}

/** Packs DIR and uploads it as multipart with a progress bar on a terminal. */
async function upload(k: KilnClient, dir: string, fields: Record<string, string>, quiet: boolean): Promise<RunView> {
  const packed = await packDirectory(dir);
  for (const l of packed.skippedLinks) err(`kiln: left out ${l.path} -> ${l.target}: the link points outside ${dir}`);
  const boundary = `kiln-${Date.now().toString(36)}${Math.random().toString(36).slice(2)}`;
  const parts: Buffer[] = [];
  for (const [name, value] of Object.entries(fields)) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`));
  }
  parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="source"; filename="source.tar.gz"\r\nContent-Type: application/gzip\r\n\r\n`));
  const head = Buffer.concat(parts);
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const total = head.length + packed.tarGz.length + tail.length;
  const bar = process.stderr.isTTY && !quiet;
  let sent = 0;
  async function* body() {
    yield head;
    for (let i = 0; i < packed.tarGz.length; i += 256 * 1024) {
      const chunk = packed.tarGz.subarray(i, i + 256 * 1024);
      sent += chunk.length;
      if (bar) process.stderr.write(`\r${progress(sent, packed.tarGz.length)} uploading ${packed.files} files`);
      yield chunk;
    }
    yield tail;
  }
  const res = await k.raw('/api/v1/runs', {
    method: 'POST',
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': String(total) },
    body: body(),
  });
  if (bar) process.stderr.write('\n');
  return (await res.json()) as RunView;
}

function progress(done: number, total: number): string {
  const width = 24;
  const n = total ? Math.round((done / total) * width) : width;
  return `[${'#'.repeat(n)}${' '.repeat(width - n)}] ${(done / 1024 / 1024).toFixed(1)}/${(total / 1024 / 1024).toFixed(1)} MiB`;
}

/** Follows a run's logs to its end; returns 0 when it succeeded, 1 when it failed or was cancelled. */
async function follow(k: KilnClient, submitted: RunView, o: { detach: boolean; json: boolean; cancelOnInterrupt: boolean; quiet?: boolean }): Promise<number> {
  const out = o.json ? (s: string) => process.stderr.write(s) : (s: string) => process.stdout.write(s);
  if (o.detach) {
    if (o.json) process.stdout.write(JSON.stringify({ id: submitted.id, status: submitted.status, url: `${k.config.url}/api/v1/runs/${submitted.id}` }) + '\n');
    else process.stdout.write(`${submitted.id}\n`);
    return EXIT.ok;
  }
  if (!o.quiet) err(`kiln: run ${submitted.id} (${submitted.jobs.length} job${submitted.jobs.length === 1 ? '' : 's'}): ${k.config.url}/api/v1/runs/${submitted.id}`);
  const abort = new AbortController();
  let interrupted = false;
  const onInt = async () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    const cancelIt = o.cancelOnInterrupt || (process.stdin.isTTY && (await ask(`\ncancel run ${submitted.id}? [y/N] `)));
    if (cancelIt) {
      await k.raw(`/api/v1/runs/${submitted.id}/cancel`, { method: 'POST' }).catch(() => undefined);
      err(`kiln: cancelling ${submitted.id}`);
      interrupted = false;
    } else {
      err(`kiln: left run ${submitted.id} running`);
      process.exit(130);
    }
  };
  process.on('SIGINT', onInt);
  try {
    await streamLogs(k, submitted.id, null, out, submitted.jobs.length > 1, abort.signal, Boolean(o.quiet));
  } finally {
    process.off('SIGINT', onInt);
  }
  const final = await k.json<RunView>(`/api/v1/runs/${submitted.id}`);
  if (o.json) process.stdout.write(JSON.stringify(summary(final), null, 2) + '\n');
  else if (!o.quiet) printSummary(final);
  return final.conclusion === 'success' ? EXIT.ok : EXIT.failed;
}

function ask(question: string): Promise<boolean> {
  return new Promise((resolve) => {
    const rl = readline.createInterface({ input: process.stdin, output: process.stderr });
    rl.question(question, (a) => { rl.close(); resolve(/^y(es)?$/i.test(a.trim())); });
  });
}

interface LogRecord { t: number; i: number; s: 'o' | 'e' | 'k' | 'g' | 'G'; l: string; job: string }

async function streamLogs(k: KilnClient, runId: string, job: string | null, out: (s: string) => void, prefix: boolean, signal: AbortSignal, quiet: boolean): Promise<void> {
  const res = await k.raw(`/api/v1/runs/${runId}/logs?follow=1${job ? `&job=${encodeURIComponent(job)}` : ''}`, { signal });
  const decoder = new TextDecoder();
  let buf = '';
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buf += decoder.decode(chunk, { stream: true });
    // One write per chunk received, not per line: a job printing millions of lines is followed at speed.
    const lines: string[] = [];
    let at = 0;
    let i: number;
    let ended = false;
    while ((i = buf.indexOf('\n\n', at)) >= 0) {
      const event = buf.slice(at, i);
      at = i + 2;
      if (event.startsWith('event: end')) { ended = true; break; }
      const data = event.split('\n').find((l) => l.startsWith('data: '));
      if (data) lines.push(renderLine(JSON.parse(data.slice(6)) as LogRecord, prefix, quiet));
    }
    buf = buf.slice(at);
    if (lines.length) out(lines.join(''));
    if (ended) return;
  }
}

/** One log line for a terminal: Kiln's own lines bold, stderr red; nothing from the job is interpreted. */
function renderLine(r: LogRecord, prefix: boolean, quiet: boolean): string {
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

function summary(r: RunView) {
  return {
    id: r.id, status: r.status, conclusion: r.conclusion, workflow: r.workflow.name,
    jobs: r.jobs.map((j) => ({
      id: j.id, key: j.key, environment: j.environment, conclusion: j.conclusion, error: j.error, durationSeconds: duration(j.startedAt, j.finishedAt),
      steps: j.steps.map((s) => ({ index: s.index, name: s.name, outcome: s.outcome, conclusion: s.conclusion, exitCode: s.exitCode, reason: s.reason, durationSeconds: duration(s.startedAt, s.finishedAt) })),
    })),
    artifacts: r.artifacts.map((a) => a.name),
  };
}

function printSummary(r: RunView): void {
  const mark = (c: string | null) => (c === 'success' ? paint('32', '✓') : c === 'skipped' ? paint('2', '-') : c === 'cancelled' ? paint('33', '○') : paint('31', '✗'));
  for (const j of r.jobs) {
    err(`${mark(j.conclusion)} ${shownErr(j.key)} (${j.environment}): ${j.conclusion}${j.error ? `: ${shownErr(j.error)}` : ''}`);
    for (const s of j.steps) if (s.conclusion !== 'success') err(`    ${mark(s.conclusion)} ${shownErr(s.name)}: ${s.outcome}${s.exitCode !== null ? ` (exit ${s.exitCode})` : ''}${s.reason ? `, ${s.reason}` : ''}`);
  }
  if (r.artifacts.length) err(`artifacts: ${r.artifacts.map((a) => a.name).join(', ')}  (kiln artifacts ${r.id} --download NAME)`);
  err(`run ${r.id}: ${r.conclusion}`);
}

function shellQuote(a: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

// ---- reading ------------------------------------------------------------------------------------

async function runs(): Promise<number> {
  const list = await client().json<{ id: string; status: string; conclusion: string | null; workflow: string; createdAt: string }[]>('/api/v1/runs');
  table(['RUN', 'STATUS', 'CONCLUSION', 'WORKFLOW', 'CREATED'], list.map((r) => [r.id, r.status, r.conclusion ?? '', r.workflow, r.createdAt]));
  return EXIT.ok;
}

async function status(argv: string[]): Promise<number> {
  const { values: o, positionals } = args(argv, { json: { type: 'boolean' } }, 1);
  const r = await client().json<RunView>(`/api/v1/runs/${encodeURIComponent(need(positionals[0], 'RUN'))}`);
  if (o.json) {
    process.stdout.write(JSON.stringify(summary(r), null, 2) + '\n');
    return EXIT.ok;
  }
  process.stdout.write(`run ${r.id}: ${r.status}${r.conclusion ? ` (${r.conclusion})` : ''}, workflow ${shownOut(r.workflow.name)}\n`);
  for (const j of r.jobs) {
    process.stdout.write(`  ${shownOut(j.key)} [${j.id}] on ${j.environment}: ${j.status}${j.conclusion ? ` (${j.conclusion})` : ''}${j.error ? `: ${shownOut(j.error)}` : ''}\n`);
    for (const s of j.steps) process.stdout.write(`    #${s.index} ${shownOut(s.name)}: ${s.conclusion ?? s.outcome ?? 'pending'}${s.exitCode !== null ? ` exit ${s.exitCode}` : ''}${s.reason ? ` ${s.reason}` : ''}\n`);
  }
  return EXIT.ok;
}

async function logs(argv: string[]): Promise<number> {
  const { values: o, positionals } = args(argv, { job: { type: 'string' }, follow: { type: 'boolean', short: 'f' } }, 1);
  const id = need(positionals[0], 'RUN');
  const k = client();
  if (o.follow) {
    const r = await k.json<RunView>(`/api/v1/runs/${encodeURIComponent(id)}`);
    await streamLogs(k, id, (o.job as string) ?? null, (s) => process.stdout.write(s), r.jobs.length > 1 && !o.job, new AbortController().signal, false);
    return EXIT.ok;
  }
  const res = await k.raw(`/api/v1/runs/${encodeURIComponent(id)}/logs?format=json${o.job ? `&job=${encodeURIComponent(o.job as string)}` : ''}`);
  const lines = (await res.text()).split('\n').filter(Boolean).map((l) => JSON.parse(l) as LogRecord);
  const multi = new Set(lines.map((l) => l.job)).size > 1;
  for (const l of lines) process.stdout.write(renderLine(l, multi, false));
  return EXIT.ok;
}

async function artifacts(argv: string[]): Promise<number> {
  const { values: o, positionals } = args(argv, { download: { type: 'string' }, output: { type: 'string', short: 'o' } }, 1);
  const id = need(positionals[0], 'RUN');
  const k = client();
  if (!o.download) {
    const list = await k.json<{ name: string; sizeBytes: number; files: number; expiresAt: string }[]>(`/api/v1/runs/${encodeURIComponent(id)}/artifacts`);
    table(['NAME', 'FILES', 'BYTES', 'EXPIRES'], list.map((a) => [a.name, String(a.files), String(a.sizeBytes), a.expiresAt]));
    return EXIT.ok;
  }
  const name = o.download as string;
  const res = await k.raw(`/api/v1/runs/${encodeURIComponent(id)}/artifacts/${encodeURIComponent(name)}`);
  const dest = path.resolve((o.output as string | undefined) ?? '.', name.replace(/[^A-Za-z0-9._-]/g, '_'));
  const { files } = await extractTar(Buffer.from(await res.arrayBuffer()), dest);
  err(`kiln: ${files.length} file(s) of '${name}' in ${dest}`);
  return EXIT.ok;
}

async function cancel(argv: string[]): Promise<number> {
  const { positionals } = args(argv, {}, 1);
  const r = await client().json<RunView>(`/api/v1/runs/${encodeURIComponent(need(positionals[0], 'RUN'))}/cancel`, { method: 'POST' });
  process.stdout.write(`run ${r.id}: ${r.status}${r.conclusion ? ` (${r.conclusion})` : ', cancelling'}\n`);
  return EXIT.ok;
}

interface EnvSummary { name: string; latest: string; status: string; removal: string | null; os: string; python: string | null; labels: string[]; default: boolean; package?: { python?: string; debian?: string } }

async function envs(): Promise<number> {
  const { environments } = await client().json<{ environments: EnvSummary[] }>('/api/v1/environments');
  table(['NAME', 'VERSION', 'STATUS', 'OS', 'PYTHON', 'LABELS'], environments.map((e) => [
    e.name + (e.default ? ' (default)' : ''), e.latest, e.status + (e.removal ? ` until ${e.removal}` : ''), e.os, e.python ?? '', e.labels.join(','),
  ]));
  return EXIT.ok;
}

async function env(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const k = client();
  if (sub === 'show') {
    const { values: o, positionals } = args(rest, { packages: { type: 'boolean' } }, 1);
    const [name, version = 'latest'] = need(positionals[0], 'NAME').split('@');
    const r = await k.json<{ name: string; version: string; status: string; os: { prettyName: string }; python: string | null; labels: string[]; image: { ref: string; sizeBytes: number }; tools: { name: string; version: string }[]; pythonPackages: { name: string; version: string }[]; debPackages: { name: string; version: string }[] }>(`/api/v1/environments/${encodeURIComponent(name)}/${encodeURIComponent(version)}`);
    process.stdout.write(`${r.name}@${r.version} (${r.status})\n  OS: ${r.os.prettyName}\n  Python: ${r.python ?? 'none'}\n  labels: ${r.labels.join(', ')}\n  image: ${r.image.ref} (${Math.round(r.image.sizeBytes / 1024 / 1024)} MiB)\n`);
    for (const t of r.tools) process.stdout.write(`  ${t.name}: ${t.version}\n`);
    process.stdout.write(`  ${r.pythonPackages.length} Python packages, ${r.debPackages.length} Debian packages${o.packages ? '' : ' (--packages lists them)'}\n`);
    if (o.packages) {
      table(['PYTHON PACKAGE', 'VERSION'], r.pythonPackages.map((p) => [p.name, p.version]));
      table(['DEBIAN PACKAGE', 'VERSION'], r.debPackages.map((p) => [p.name, p.version]));
    }
    return EXIT.ok;
  }
  if (sub === 'diff') {
    const { positionals } = args(rest, {}, 3);
    const [name, a, b] = [need(positionals[0], 'NAME'), need(positionals[1], 'version A'), need(positionals[2], 'version B')];
    const res = await k.raw(`/api/v1/environments/${encodeURIComponent(name)}/diff?from=${encodeURIComponent(a)}&to=${encodeURIComponent(b)}&format=md`);
    process.stdout.write(await res.text() + '\n');
    return EXIT.ok;
  }
  if (sub === 'which') {
    const { positionals } = args(rest, {}, 1);
    const pkg = need(positionals[0], 'PACKAGE');
    const { environments } = await k.json<{ environments: EnvSummary[] }>(`/api/v1/environments?package=${encodeURIComponent(pkg)}`);
    if (!environments.length) {
      err(`kiln: no environment has ${pkg}`);
      return EXIT.failed;
    }
    table(['ENVIRONMENT', 'VERSION', 'PYTHON PACKAGE', 'DEBIAN PACKAGE'], environments.map((e) => [e.name, e.latest, e.package?.python ?? '', e.package?.debian ?? '']));
    return EXIT.ok;
  }
  throw new CliError(`kiln: ${HELP.env}`, EXIT.usage);
}

async function login(argv: string[]): Promise<number> {
  const { values: o } = args(argv, { url: { type: 'string' }, token: { type: 'string' } }, 0);
  const url = ((o.url as string | undefined) ?? process.env.KILN_URL ?? 'http://127.0.0.1:3000').replace(/\/+$/, '');
  let token = o.token as string | undefined;
  if (!token) {
    if (process.stdin.isTTY) process.stderr.write('token: ');
    token = (await readStdin()).trim();
  }
  if (!token) throw new CliError('kiln: no token given (--token, or on standard input)', EXIT.usage);
  const me = await new KilnClient({ url, token, tokenSource: 'kiln login' }).json<{ name: string }>('/api/v1/me');
  const file = saveCliConfig(url, token);
  err(`kiln: logged in to ${url} as ${me.name}; saved in ${file} (mode 600)`);
  return EXIT.ok;
}

function readStdin(): Promise<string> {
  return new Promise((resolve) => {
    let s = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (d) => { s += d; });
    process.stdin.on('end', () => resolve(s));
  });
}

function table(head: string[], rows: string[][]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ') + '\n';
  process.stdout.write(paint('1', line(head).trimEnd()) + '\n');
  for (const r of rows) process.stdout.write(line(r));
}
