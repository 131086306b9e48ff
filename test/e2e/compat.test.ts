import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeTar } from '../fixtures/archives';
import { ROOT, runKiln, startServer, tmpDir } from '../helpers';
import { Client, RunView } from './runs-helpers';

/**
 * The compatibility suite: each folder of test/compat is a project with a workflow and an
 * expect.json of what GitHub would produce (conclusion, key log lines, job results, outputs,
 * annotations, summary), or of the refusal at submission. docs/compatibility.md points here.
 */
interface Expect {
  /** Fields sent with the submission (e.g. strict, inputs as JSON text). */
  submit?: Record<string, string>;
  conclusion?: string;
  refused?: string;
  jobs?: Record<string, string>;
  /** Job key -> a pattern its recorded reason (error) must match: why it was skipped, not runnable, or failed. */
  reasons?: Record<string, string>;
  logs?: string[];
  absent?: string[];
  outputs?: Record<string, Record<string, string>>;
  annotations?: Record<string, unknown>[];
  summary?: Record<string, string>;
}

const SUITE = path.join(ROOT, 'test', 'compat');
/** KILN_COMPAT_ONLY=a,b runs only those cases (while working on them); unset, every case runs. */
const ONLY = process.env.KILN_COMPAT_ONLY ? new Set(process.env.KILN_COMPAT_ONLY.split(',')) : null;
const selected = (name: string) => !ONLY || ONLY.has(name);

function filesOf(dir: string, base = dir): [string, string][] {
  const out: [string, string][] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...filesOf(p, base));
    else if (e.name !== 'expect.json') out.push([path.relative(base, p), fs.readFileSync(p, 'utf8')]);
  }
  return out;
}

function expectOf(name: string): Expect {
  return JSON.parse(fs.readFileSync(path.join(SUITE, name, 'expect.json'), 'utf8')) as Expect;
}

describe('GitHub Actions compatibility suite (real engine)', () => {
  const data = tmpDir();
  let server: Awaited<ReturnType<typeof startServer>>;
  let kiln: Client;
  const cases = fs
    .readdirSync(SUITE)
    .filter((d) => fs.existsSync(path.join(SUITE, d, 'expect.json')) && selected(d))
    .sort();
  const submitted = new Map<string, Promise<Response>>();

  before(async () => {
    const images = await runKiln(['images'], { KILN_DATA_DIR: data, KILN_LOG_LEVEL: 'warn' });
    assert.equal(images.code, 0, images.stderr);
    server = await startServer({
      KILN_DATA_DIR: data,
      KILN_QUEUE_PREFIX: `compat-${process.pid}`,
      KILN_WORKER_CONCURRENCY: '3',
      KILN_LOG_LEVEL: 'warn',
      KILN_QUOTA_CONCURRENT_JOBS: '3',
      KILN_QUOTA_QUEUED_RUNS: '100', // every case is submitted at once
    });
    kiln = new Client(server.url);
    // All cases are submitted at once and run side by side.
    for (const c of cases)
      submitted.set(
        c,
        makeTar(filesOf(path.join(SUITE, c))).then((tar) => kiln.submitTarball(tar, expectOf(c).submit ?? {})),
      );
  });
  after(async () => server?.stop());

  test('the suite has a case for every compatibility area', () => {
    assert.ok(cases.length >= (ONLY ? ONLY.size : 12), cases.join(', '));
  });

  for (const name of fs.readdirSync(SUITE).filter(selected).sort()) {
    test(name, async () => {
      const expect = expectOf(name);
      const res = await submitted.get(name)!;
      const body = (await res.json()) as RunView & { message?: string };
      if (expect.refused) {
        assert.equal(res.status, 400, JSON.stringify(body));
        assert.match(body.message ?? '', new RegExp(expect.refused));
        return;
      }
      assert.equal(res.status, 201, JSON.stringify(body));
      type JobWithResults = RunView['jobs'][number] & { outputs: Record<string, string>; summary: string | null };
      const done = (await kiln.waitFor(body.id, 240_000)) as unknown as Omit<RunView, 'jobs'> & {
        annotations: Record<string, unknown>[];
        jobs: JobWithResults[];
      };
      const log = await kiln.logs(body.id);
      const context = `\n--- log ---\n${log}\n--- run ---\n${JSON.stringify(done.jobs.map((j) => [j.key, j.conclusion, j.error]))}`;
      if (expect.conclusion) assert.equal(done.conclusion, expect.conclusion, context);
      if (expect.jobs) assert.deepEqual(Object.fromEntries(done.jobs.map((j) => [j.key, j.conclusion])), expect.jobs, context);
      for (const [key, re] of Object.entries(expect.reasons ?? {})) {
        assert.match(done.jobs.find((j) => j.key === key)?.error ?? '', new RegExp(re), context);
      }
      for (const re of expect.logs ?? []) assert.match(log, new RegExp(re, 'm'), context);
      for (const text of expect.absent ?? []) assert.ok(!log.includes(text), `'${text}' must not be in the log${context}`);
      for (const [key, outputs] of Object.entries(expect.outputs ?? {})) {
        assert.deepEqual(done.jobs.find((j) => j.key === key)?.outputs, outputs);
      }
      if (expect.annotations) {
        const got = done.annotations.map((a) =>
          Object.fromEntries(Object.entries(a).filter(([k, v]) => v !== null && !['jobId', 'job', 'step', 'endLine', 'endColumn'].includes(k))),
        );
        assert.deepEqual(
          got,
          expect.annotations.map((a) => Object.fromEntries(Object.entries(a).filter(([, v]) => v !== null))),
        );
      }
      for (const [key, re] of Object.entries(expect.summary ?? {})) {
        assert.match(done.jobs.find((j) => j.key === key)?.summary ?? '', new RegExp(re));
      }
    });
  }
});
