import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { KilnConfig } from '../config/config';
import { DockerContainerReaper } from './container-reaper';
import type { DockerEngine } from './docker-engine';

/** A scripted engine: what listContainers was asked, what it answers, and what removing answers. */
function engineWith(listed: object[], removeError?: { statusCode: number }, networks: object[] = []) {
  const asked: string[][] = [];
  const removed: string[] = [];
  const engine = {
    listContainers: async (labels: string[]) => {
      asked.push(labels);
      return listed;
    },
    docker: {
      listNetworks: async (opts: { filters: { label: string[] } }) => {
        asked.push(opts.filters.label);
        return networks;
      },
      getNetwork: (id: string) => ({
        remove: async () => {
          if (removeError) throw Object.assign(new Error('refused'), removeError);
          removed.push(`network ${id}`);
        },
      }),
      getContainer: (id: string) => ({
        remove: async (opts: object) => {
          if (removeError) throw Object.assign(new Error('refused'), removeError);
          assert.deepEqual(opts, { force: true, v: true });
          removed.push(id);
        },
      }),
    },
  } as unknown as DockerEngine;
  return { engine, asked, removed };
}

test("lists only this deployment's containers, by Kiln's labels; a job's id comes from its label or its name", async () => {
  const { engine, asked } = engineWith(
    [
      { Id: 'a', Names: ['/kiln-job-Made'], Labels: { 'kiln.job': 'Made', 'kiln.run': 'R' } },
      { Id: 'b', Names: ['/kiln-job-Taken'], Labels: { 'kiln.pool': 'pool~h~1~aa' } },
      { Id: 'c', Names: ['/kiln-pool-0a1b'], Labels: { 'kiln.pool': 'pool~h~2~bb' } },
      { Id: 'd', Labels: {} },
    ],
    undefined,
    [{ Id: 'n', Name: 'kiln-net-Made', Labels: { 'kiln.job': 'Made' } }],
  );
  const list = await new DockerContainerReaper(engine, { queuePrefix: 'kiln-x' } as KilnConfig).list();
  assert.deepEqual(asked, [
    ['kiln.managed=true', 'kiln.deployment=kiln-x'],
    ['kiln.managed=true', 'kiln.deployment=kiln-x'],
  ]);
  assert.deepEqual(list, [
    { id: 'a', name: '/kiln-job-Made', jobId: 'Made', pool: undefined },
    { id: 'b', name: '/kiln-job-Taken', jobId: 'Taken', pool: 'pool~h~1~aa' },
    { id: 'c', name: '/kiln-pool-0a1b', jobId: undefined, pool: 'pool~h~2~bb' },
    { id: 'd', name: '', jobId: undefined, pool: undefined },
    // a job's network (its egress gateway's), after the containers
    { id: 'n', name: 'kiln-net-Made', jobId: 'Made', network: true },
  ]);
});

test('removes a container with its volumes; one gone already is false; any other refusal is thrown', async () => {
  const ok = engineWith([]);
  assert.equal(await new DockerContainerReaper(ok.engine, {} as KilnConfig).remove('a'), true);
  assert.deepEqual(ok.removed, ['a']);
  assert.equal(await new DockerContainerReaper(ok.engine, {} as KilnConfig).remove('n', true), true);
  assert.deepEqual(ok.removed, ['a', 'network n']);
  assert.equal(await new DockerContainerReaper(engineWith([], { statusCode: 404 }).engine, {} as KilnConfig).remove('b'), false);
  await assert.rejects(new DockerContainerReaper(engineWith([], { statusCode: 409 }).engine, {} as KilnConfig).remove('c'), /refused/);
});
