import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { CliError, EXIT, KilnClient } from './client';
import { saveCliConfig } from './config';
import { extractTar } from './extract';
import { HELP } from './help';
import { args, client, need } from './args';
import { env, envs } from './catalogue-commands';
import { egressSection, withEgress } from './egress';
import { err, paint, printSummary, progress, renderLine, shownOut, summary, table, type LogRecord, type RunView } from './output';
import { packDirectory, PackError } from './pack';

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
      case 'run':
        return await run(rest);
      case 'exec':
        return await exec(rest);
      case 'runs':
        return await runs();
      case 'status':
        return await status(rest);
      case 'logs':
        return await logs(rest);
      case 'artifacts':
        return await artifacts(rest);
      case 'cancel':
        return await cancel(rest);
      case 'envs':
        return await envs();
      case 'env':
        return await env(rest);
      case 'login':
        return await login(rest);
      default:
        throw new CliError(`kiln: unknown command '${command}'\n\n${HELP.main}`, EXIT.usage);
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

// ---- run / exec -------------------------------------------------------------------------------

async function run(argv: string[]): Promise<number> {
  const { values: o, positionals } = args(
    argv,
    {
      workflow: { type: 'string', short: 'W' },
      job: { type: 'string', short: 'j' },
      platform: { type: 'string', short: 'P', multiple: true },
      input: { type: 'string', short: 'i', multiple: true },
      repo: { type: 'string' },
      ref: { type: 'string' },
      detach: { type: 'boolean', short: 'd' },
      json: { type: 'boolean' },
      'cancel-on-interrupt': { type: 'boolean' },
      strict: { type: 'boolean' },
    },
    1,
  );
  const k = client();
  const platform = Object.fromEntries(
    ((o.platform as string[] | undefined) ?? []).map((p) => {
      const [label, envName] = p.split('=');
      if (!label || !envName) throw new CliError(`kiln: --platform takes LABEL=ENVIRONMENT (got '${p}')`, EXIT.usage);
      return [label, envName];
    }),
  );
  const inputs = inputArgs(o.input as string[] | undefined);
  const workflow = o.workflow ? readWorkflow(o.workflow as string) : undefined;
  let submitted: RunView;
  if (o.repo) {
    if (positionals.length) throw new CliError('kiln: give either DIR or --repo, not both', EXIT.usage);
    const ref = need(o.ref as string | undefined, '--ref (with --repo)');
    submitted = await k.json<RunView>('/api/v1/runs', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        repo: o.repo,
        ref,
        workflow,
        job: o.job,
        platform: Object.keys(platform).length ? platform : undefined,
        inputs,
        ...(o.strict ? { strict: true } : {}),
      }),
    });
  } else {
    const fields: Record<string, string> = {};
    if (workflow) fields.workflow = workflow;
    if (o.job) fields.job = o.job as string;
    if (o.strict) fields.strict = 'true';
    if (Object.keys(platform).length)
      fields.platform = Object.entries(platform)
        .map(([a, b]) => `${a}=${b}`)
        .join(',');
    if (inputs) fields.inputs = JSON.stringify(inputs);
    submitted = await upload(k, positionals[0] ?? '.', fields, Boolean(o.json));
  }
  return follow(k, submitted, { detach: Boolean(o.detach), json: Boolean(o.json), cancelOnInterrupt: Boolean(o['cancel-on-interrupt']) });
}

async function exec(argv: string[]): Promise<number> {
  const dash = argv.indexOf('--');
  if (dash < 0 || dash === argv.length - 1) throw new CliError(`kiln: exec needs a command after --\n${HELP.exec}`, EXIT.usage);
  const { values: o, positionals } = args(
    argv.slice(0, dash),
    { env: { type: 'string', short: 'e' }, shell: { type: 'string' }, json: { type: 'boolean' } },
    1,
  );
  const command = argv
    .slice(dash + 1)
    .map(shellQuote)
    .join(' ');
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

/** `--input NAME=VALUE` (repeatable; `NAME=` is an empty value) as the submission's inputs; none given: undefined. */
function inputArgs(given: string[] | undefined): Record<string, string> | undefined {
  if (!given?.length) return undefined;
  const inputs = new Map<string, string>();
  for (const pair of given) {
    const eq = pair.indexOf('=');
    const name = eq < 0 ? '' : pair.slice(0, eq);
    if (!/^[A-Za-z_][A-Za-z0-9_-]*$/.test(name))
      throw new CliError(`kiln: --input takes NAME=VALUE, NAME an input of the workflow (got '${pair}')`, EXIT.usage);
    if (inputs.has(name)) throw new CliError(`kiln: --input ${name} is given twice`, EXIT.usage);
    inputs.set(name, pair.slice(eq + 1));
  }
  return Object.fromEntries(inputs);
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

/** Follows a run's logs to its end; returns 0 when it succeeded, 1 when it failed or was cancelled. */
async function follow(k: KilnClient, submitted: RunView, o: { detach: boolean; json: boolean; cancelOnInterrupt: boolean; quiet?: boolean }): Promise<number> {
  const out = o.json ? (s: string) => process.stderr.write(s) : (s: string) => process.stdout.write(s);
  if (o.detach) {
    if (o.json) process.stdout.write(JSON.stringify({ id: submitted.id, status: submitted.status, url: `${k.config.url}/api/v1/runs/${submitted.id}` }) + '\n');
    else process.stdout.write(`${submitted.id}\n`);
    return EXIT.ok;
  }
  if (!o.quiet)
    err(`kiln: run ${submitted.id} (${submitted.jobs.length} job${submitted.jobs.length === 1 ? '' : 's'}): ${k.config.url}/api/v1/runs/${submitted.id}`);
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
    rl.question(question, (a) => {
      rl.close();
      resolve(/^y(es)?$/i.test(a.trim()));
    });
  });
}

async function streamLogs(
  k: KilnClient,
  runId: string,
  job: string | null,
  out: (s: string) => void,
  prefix: boolean,
  signal: AbortSignal,
  quiet: boolean,
): Promise<void> {
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
      if (event.startsWith('event: end')) {
        ended = true;
        break;
      }
      const data = event.split('\n').find((l) => l.startsWith('data: '));
      if (data) lines.push(renderLine(JSON.parse(data.slice(6)) as LogRecord, prefix, quiet));
    }
    buf = buf.slice(at);
    if (lines.length) out(lines.join(''));
    if (ended) return;
  }
}

function shellQuote(a: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

// ---- reading ------------------------------------------------------------------------------------

async function runs(): Promise<number> {
  const list = await client().json<{ id: string; status: string; conclusion: string | null; workflow: string; createdAt: string }[]>('/api/v1/runs');
  table(
    ['RUN', 'STATUS', 'CONCLUSION', 'WORKFLOW', 'CREATED'],
    list.map((r) => [r.id, r.status, r.conclusion ?? '', r.workflow, r.createdAt]),
  );
  return EXIT.ok;
}

async function status(argv: string[]): Promise<number> {
  const { values: o, positionals } = args(argv, { json: { type: 'boolean' }, egress: { type: 'boolean' } }, 1);
  const r = await client().json<RunView>(`/api/v1/runs/${encodeURIComponent(need(positionals[0], 'RUN'))}`);
  if (o.json) {
    const s = summary(r);
    process.stdout.write(JSON.stringify(o.egress ? { ...s, jobs: withEgress(s.jobs, r.jobs) } : s, null, 2) + '\n');
    return EXIT.ok;
  }
  process.stdout.write(`run ${r.id}: ${r.status}${r.conclusion ? ` (${r.conclusion})` : ''}, workflow ${shownOut(r.workflow.name)}\n`);
  for (const j of r.jobs) {
    process.stdout.write(
      `  ${shownOut(j.key)} [${j.id}]${j.environment ? ` on ${j.environment}` : ''}: ${j.status}${j.conclusion ? ` (${j.conclusion})` : ''}${j.error ? `: ${shownOut(j.error)}` : ''}\n`,
    );
    for (const s of j.steps)
      process.stdout.write(
        `    #${s.index} ${shownOut(s.name)}: ${s.conclusion ?? s.outcome ?? 'pending'}${s.exitCode !== null ? ` exit ${s.exitCode}` : ''}${s.reason ? ` ${s.reason}` : ''}\n`,
      );
  }
  // After the usual status, so a script reading its first lines reads the same with or without --egress.
  if (o.egress) process.stdout.write(`\nnetwork:\n${egressSection(r.jobs, { shown: shownOut, header: (h) => paint('1', h) })}`);
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
  const lines = (await res.text())
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as LogRecord);
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
    table(
      ['NAME', 'FILES', 'BYTES', 'EXPIRES'],
      list.map((a) => [a.name, String(a.files), String(a.sizeBytes), a.expiresAt]),
    );
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
    process.stdin.on('data', (d) => {
      s += d;
    });
    process.stdin.on('end', () => resolve(s));
  });
}
