import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { KilnConfig } from '../config/config';
import type { AuthService } from '../auth/auth.service';
import type { Run } from '../runs/runs.types';
import type { RepositoriesRepository } from './repositories.repository';
import { StatusReporter } from './status-reporter';

test('a commit status description is masked with the run owner\'s secrets before it is sent', async () => {
  const secret = 'status-secret-value-123';
  const auth = { secretsOf: async (owner: string | null) => (owner === 'owner-1' ? { DEPLOY: secret } : {}), unseal: (v: string) => v } as unknown as AuthService;
  const repos = { byId: async () => ({ id: 'repo-1', fullName: 'octo/demo', statusUrl: 'https://forge.example/api', statusToken: null }) } as unknown as RepositoriesRepository;
  const reporter = new StatusReporter({ publicUrl: 'http://kiln.example' } as KilnConfig, repos, auth);
  const run = { id: 'run-1', ownerId: 'owner-1', repositoryId: 'repo-1', workflowName: 'ci', context: { sha: 'a'.repeat(40) } } as unknown as Run;
  const sent: string[] = [];
  const realFetch = globalThis.fetch;
  // The forge is replaced: the body that would be posted is recorded.
  globalThis.fetch = (async (_url: unknown, init?: RequestInit) => { sent.push(String(init?.body)); return new Response('{}', { status: 201 }); }) as typeof fetch;
  try {
    const b64 = Buffer.from(`x${secret}`).toString('base64');
    assert.equal(await reporter.send(run, 'failure', `failed: ${secret} (${b64})`), true);
  } finally {
    globalThis.fetch = realFetch;
  }
  assert.equal(sent.length, 1);
  const description = (JSON.parse(sent[0]) as { description: string }).description;
  assert.match(description, /^failed: \*\*\* \(\S*\*\*\*\S*\)$/);
  assert.ok(!sent[0].includes(secret));
  assert.ok(!sent[0].includes(Buffer.from(`x${secret}`).toString('base64').slice(4, 20)));
});
