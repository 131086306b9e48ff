import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { makeTar } from '../fixtures/archives';
import { runKiln, startServer, tmpDir, uniquePrefix } from '../helpers';
import { Client } from './runs-helpers';

const run = promisify(execFile);

async function docker(args: string[]): Promise<string> {
  return (await run('docker', args, { encoding: 'utf8' })).stdout.trim();
}

/** Idle warm sandboxes of a deployment (not yet taken by a job). */
async function idle(prefix: string): Promise<string[]> {
  const out = await docker(['ps', '-a', '--filter', `label=kiln.deployment=${prefix}`, '--filter', 'label=kiln.pool', '--format', '{{.ID}} {{.Names}}']);
  return out
    .split('\n')
    .filter((l) => / kiln-pool-/.test(l))
    .map((l) => l.split(' ')[0]);
}

async function until<T>(what: string, fn: () => Promise<T | null | false>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

interface Inspect {
  Id: string;
  Name: string;
  Config: { User: string; Cmd: string[]; Labels: Record<string, string>; Image: string; WorkingDir: string };
  HostConfig: Record<string, unknown>;
  State: { Running: boolean };
}

/** The warm pool (KILN_WARM_POOL): sandboxes started ahead of jobs, used once, made exactly as a job's own. */
describe('warm pool: a job takes a pre-started sandbox, used once, hardened as a fresh one', () => {
  const prefix = uniquePrefix();
  let server: Awaited<ReturnType<typeof startServer>>;
  let kiln: Client;

  before(async () => {
    const data = tmpDir();
    const images = await runKiln(['images', 'python-3.11'], { KILN_DATA_DIR: data, KILN_LOG_LEVEL: 'warn' });
    assert.equal(images.code, 0, images.stderr);
    server = await startServer({ KILN_DATA_DIR: data, KILN_QUEUE_PREFIX: prefix, KILN_WORKER_CONCURRENCY: '1', KILN_WARM_POOL: '1', KILN_LOG_LEVEL: 'log' });
    kiln = new Client(server.url);
  });
  after(async () => {
    await server?.stop();
    const left = await idle(prefix).catch(() => []);
    if (left.length) await docker(['rm', '-f', ...left]).catch(() => undefined);
  });

  /** The worker's own count of sandboxes ready to take (a container shows in `docker ps` before it is). */
  const ready = async () =>
    Number(/^kiln_warm_pool_idle_sandboxes\{runtime="runc"\} (\d+)$/m.exec(await (await fetch(`${server.url}/metrics`)).text())?.[1] ?? 0);

  test('the pool fills; a job runs in the warm sandbox (renamed for it), which is destroyed after; the pool refills; shutdown empties it', async () => {
    await until('the worker reports one warm sandbox ready', async () => (await ready()) === 1);
    const [warm] = await until('one warm sandbox', async () => ((await idle(prefix)).length === 1 ? idle(prefix) : null));
    const before = JSON.parse(await docker(['inspect', warm]))[0] as Inspect;
    assert.equal(before.State.Running, true);
    assert.equal(before.Config.Labels['kiln.job'], undefined, 'an idle sandbox belongs to no job');

    const r = await kiln.accepted(kiln.submitJson({ command: 'echo in-the-sandbox; id -u; sleep 3' }));
    const jobId = r.jobs[0].id;
    const running = await until('the job container', async () => docker(['ps', '-q', '--no-trunc', '--filter', `name=kiln-job-${jobId}`]));
    assert.equal(running, before.Id, 'the job took the warm sandbox');
    const done = await kiln.waitFor(r.id);
    assert.equal(done.conclusion, 'success', JSON.stringify(done.jobs));
    const log = await kiln.logs(r.id);
    assert.match(log, /\| in-the-sandbox\n/);
    assert.match(log, /\| 1001\n/, 'steps run as the job user');
    await until('the used sandbox destroyed', async () => (await docker(['ps', '-aq', '--no-trunc', '--filter', `id=${before.Id}`])) === '');
    await until('the worker reports the pool refilled', async () => (await ready()) === 1);
    const [next] = await until('the pool refilled', async () => ((await idle(prefix)).length === 1 ? idle(prefix) : null));
    assert.ok(!before.Id.startsWith(next), 'a new sandbox, never the used one');
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(metrics, /kiln_warm_pool_takes_total\{result="hit"\} 1\b/);
    // Under runc beside the engine, a step that leaves nothing running is read back from the host (no exec).
    assert.match(metrics, /kiln_step_readbacks_total\{how="host"\} 1\b/);
    assert.doesNotMatch(metrics, /kiln_step_readbacks_total\{how="exec"\}/);

    // A job asking for other limits gets a sandbox made for it: compare the two, setting by setting.
    const other = await kiln.accepted(
      kiln.submitTarball(
        await makeTar([
          [
            '.kiln.yml',
            'jobs:\n  j:\n    runs-on: python-3.11\n    limits: { memory: 1g }\n    steps:\n      - run: sleep 3\n      - run: setsid sleep 60 > /dev/null 2>&1 &\n',
          ],
        ]),
      ),
    );
    const otherJob = other.jobs[0].id;
    const freshId = await until('the fresh job container', async () => docker(['ps', '-q', '--no-trunc', '--filter', `name=kiln-job-${otherJob}`]));
    const fresh = JSON.parse(await docker(['inspect', freshId]))[0] as Inspect;
    assert.notEqual(fresh.Id, next, 'other limits miss the pool');
    const strip = (h: Record<string, unknown>) => ({ ...h, Memory: 0, MemorySwap: 0 });
    assert.deepEqual(strip(before.HostConfig), strip(fresh.HostConfig), 'the same HostConfig but for the memory asked for');
    assert.equal(fresh.HostConfig.Memory, 1024 ** 3);
    for (const k of ['User', 'Cmd', 'WorkingDir', 'Image'] as const) assert.deepEqual(before.Config[k], fresh.Config[k], `Config.${k}`);
    assert.equal((await kiln.waitFor(other.id)).conclusion, 'success');
    const after = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(after, /kiln_warm_pool_takes_total\{result="miss"\} 1\b/);
    // A sandbox made for the job is seen from the host too; a step that left a process running is read by an exec.
    assert.match(after, /kiln_step_readbacks_total\{how="host"\} 2\b/);
    assert.match(after, /kiln_step_readbacks_total\{how="exec"\} 1\b/);

    await server.stop();
    assert.deepEqual(await idle(prefix), [], 'a stopped worker removes its idle sandboxes');
  });
});
