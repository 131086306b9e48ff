import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AuthService } from '../auth/auth.service';
import type { KilnConfig } from '../config/config';
import type { Run } from '../runs/runs.types';
import type { RegisteredRepository, RepositoriesRepository } from './repositories.repository';
import { StatusReporter, statusesUrl } from './status-reporter';

test('statusesUrl keeps the base path and appends the statuses path, encoded', () => {
  const sha = 'a'.repeat(40);
  assert.equal(statusesUrl('https://api.github.com', 'octo/demo', sha), `https://api.github.com/repos/octo/demo/statuses/${sha}`);
  assert.equal(statusesUrl('https://gitea.example/api/v1/', 'octo/demo', sha), `https://gitea.example/api/v1/repos/octo/demo/statuses/${sha}`);
  // Registration refuses a base with '?' or '#'; a stored one cannot swallow the path either.
  assert.equal(statusesUrl('https://forge.example/x?', 'octo/demo', sha), `https://forge.example/x/repos/octo/demo/statuses/${sha}`);
});

let hits = 0;
let answers: number[] = [];
const bodies: string[] = [];
let server: http.Server;
let port = 0;
before(async () => {
  server = http.createServer((req, res) => {
    hits++;
    let body = '';
    req.on('data', (d: Buffer) => {
      body += d;
    });
    req.on('end', () => bodies.push(body));
    const status = answers.shift() ?? 201;
    res.writeHead(status, status === 302 ? { location: 'http://127.0.0.1:1/elsewhere' } : {}).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  port = (server.address() as AddressInfo).port;
});
after(
  () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
);

const noSecrets = { secretsOf: async () => ({}), unseal: (v: string) => v } as unknown as AuthService;

function reporter(statusUrl: string, outbound: KilnConfig['outbound'], auth = noSecrets): StatusReporter {
  const repo = { id: 'r1', fullName: 'octo/demo', statusUrl, statusToken: null } as RegisteredRepository;
  const repos = { byId: async () => repo } as unknown as RepositoriesRepository;
  const config = { publicUrl: 'http://kiln.example', outbound } as KilnConfig;
  return new StatusReporter(config, repos, auth);
}
const run = { id: 'run1', repositoryId: 'r1', workflowName: 'ci', context: { sha: 'b'.repeat(40) } } as unknown as Run;
const open = { allowedSchemes: ['https', 'http'], allowPrivateHosts: true };

test('a refused address is not sent and not retried', async () => {
  const before = hits;
  assert.equal(await reporter(`http://127.0.0.1:${port}`, { allowedSchemes: ['https', 'http'], allowPrivateHosts: false }).send(run, 'success', 'done'), false);
  const r = reporter(`http://status.example:${port}`, { allowedSchemes: ['https', 'http'], allowPrivateHosts: false });
  r.resolve = async () => ['127.0.0.1']; // what DNS answers at send time
  assert.equal(await r.send(run, 'success', 'done'), false);
  assert.equal(await reporter(`http://127.0.0.1:${port}`, { allowedSchemes: ['https'], allowPrivateHosts: true }).send(run, 'success', 'done'), false);
  assert.equal(hits, before, 'nothing reached the listener');
});

test('a redirect is not followed and not retried; a 5xx is retried', async () => {
  answers = [302];
  let before = hits;
  assert.equal(await reporter(`http://127.0.0.1:${port}`, open).send(run, 'success', 'done'), false);
  assert.equal(hits - before, 1, 'one request, no retry after the 302');
  answers = [500, 201];
  before = hits;
  assert.equal(await reporter(`http://127.0.0.1:${port}`, open).send(run, 'pending', 'queued'), true);
  assert.equal(hits - before, 2);
});

test('statuses of one run are sent in order: a retried pending never lands after success', async () => {
  answers = [500];
  const r = reporter(`http://127.0.0.1:${port}`, open);
  const states: string[] = [];
  const send = r.send.bind(r);
  r.send = async (run, state, description) => {
    const ok = await send(run, state, description);
    states.push(state);
    return ok;
  };
  r.report(run, 'pending', 'queued');
  r.report(run, 'success', 'done');
  for (let i = 0; i < 100 && states.length < 2; i++) await new Promise((x) => setTimeout(x, 50));
  assert.deepEqual(states, ['pending', 'success']);
});

test("a commit status description is masked with the run owner's secrets before it is sent", async () => {
  const secret = 'status-secret-value-123';
  const auth = {
    secretsOf: async (owner: string | null) => (owner === 'owner-1' ? { DEPLOY: secret } : {}),
    unseal: (v: string) => v,
  } as unknown as AuthService;
  const owned = { ...run, ownerId: 'owner-1' } as Run;
  const b64 = Buffer.from(`x${secret}`).toString('base64');
  const before = bodies.length;
  assert.equal(await reporter(`http://127.0.0.1:${port}`, open, auth).send(owned, 'failure', `failed: ${secret} (${b64})`), true);
  for (let i = 0; i < 50 && bodies.length === before; i++) await new Promise((x) => setTimeout(x, 20));
  const sent = bodies.slice(before);
  assert.equal(sent.length, 1);
  const description = (JSON.parse(sent[0]) as { description: string }).description;
  assert.match(description, /^failed: \*\*\* \(\S*\*\*\*\S*\)$/);
  assert.ok(!sent[0].includes(secret));
  assert.ok(!sent[0].includes(b64.slice(4, 20)));
});
