import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as os from 'node:os';
import type { KilnConfig } from '../config/config';
import type { ContainerReaper, KilnContainer } from '../docker/container-reaper';
import { Metrics } from '../common/metrics';
import { Reaper } from './reaper';
import type { RunsRepository } from './runs.repository';

/** The reaper's policy over a scripted engine: which of this deployment's containers are lost. */
function reaper(containers: KilnContainer[], jobs: Record<string, string>, refuse: Record<string, 'gone' | 'fails'> = {}) {
  const removed: string[] = [];
  const engine: ContainerReaper = {
    list: async () => containers,
    remove: async (id) => {
      if (refuse[id] === 'fails') throw new Error('the engine said no');
      if (refuse[id] === 'gone') return false;
      removed.push(id);
      return true;
    },
  };
  const repo = { job: async (id: string) => (jobs[id] ? { id, status: jobs[id] } : null) } as unknown as RunsRepository;
  const metrics = new Metrics();
  return { reaper: new Reaper({ sweepSeconds: 300 } as KilnConfig, engine, repo, metrics), removed, metrics };
}

const id = (n: number) => `${String(n).repeat(12)}${'0'.repeat(52)}`;

test("removes the containers of finished and unknown jobs; a running or queued job's container is kept", async () => {
  const {
    reaper: r,
    removed,
    metrics,
  } = reaper(
    [
      { id: id(1), name: '/kiln-job-Done', jobId: 'Done' },
      { id: id(2), name: '/kiln-job-Running', jobId: 'Running' },
      { id: id(3), name: '/kiln-job-Queued', jobId: 'Queued' },
      { id: id(4), name: '/kiln-job-Unknown', jobId: 'Unknown' },
    ],
    { Done: 'completed', Running: 'in_progress', Queued: 'queued' },
  );
  const report = await r.sweep();
  assert.deepEqual(removed, [id(1), id(4)]);
  assert.deepEqual(report.containers, [id(1).slice(0, 12), id(4).slice(0, 12)]);
  assert.match(await metrics.registry.metrics(), /kiln_reaped_containers_total 2/);
});

test('an idle warm sandbox is removed only when its worker on this host is gone', async () => {
  const dead = spawnSync(process.execPath, ['-e', '0']).pid;
  const host = os.hostname();
  const { reaper: r, removed } = reaper(
    [
      { id: id(1), name: '/kiln-pool-a', pool: `pool~${host}~${dead}~00aa11bb` },
      { id: id(2), name: '/kiln-pool-b', pool: `pool~${host}~${process.pid}~22cc33dd` },
      { id: id(3), name: '/kiln-pool-c', pool: `pool~another-host~${dead}~44ee55ff` },
    ],
    {},
  );
  await r.sweep();
  assert.deepEqual(removed, [id(1)]);
});

test('a container gone already is not reported; one that cannot be removed does not stop the sweep', async () => {
  const { reaper: r, removed } = reaper(
    [
      { id: id(1), name: '/kiln-job-A', jobId: 'A' },
      { id: id(2), name: '/kiln-job-B', jobId: 'B' },
      { id: id(3), name: '/kiln-job-C', jobId: 'C' },
    ],
    {},
    { [id(1)]: 'gone', [id(2)]: 'fails' },
  );
  const report = await r.sweep();
  assert.deepEqual(removed, [id(3)]);
  assert.deepEqual(report.containers, [id(3).slice(0, 12)]);
});
