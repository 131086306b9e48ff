import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DockerEngine, EngineUnavailableError } from './docker-engine';

// dockerd shutting down removes its socket but goes on answering on connections already open (Node
// keeps them alive). The engine's ping must not be fooled by one of those.
test('ping opens a new connection: an engine whose socket is gone is unavailable even over a kept-alive connection', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-engine-'));
  const sock = path.join(dir, 'docker.sock');
  const server = http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ ApiVersion: '1.41', Version: '20.10.24' }));
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((r) => server.listen(sock, r));
  const saved = process.env.DOCKER_HOST;
  process.env.DOCKER_HOST = `unix://${sock}`;
  try {
    const engine = new DockerEngine();
    assert.deepEqual(await engine.ping(), { apiVersion: '1.41', version: '20.10.24' });
    await engine.docker.version(); // leaves a kept-alive connection in the client's pool
    fs.unlinkSync(sock); // what dockerd's listener going away looks like to a new client
    assert.equal((await engine.docker.version()).Version, '20.10.24', 'the kept-alive connection still answers (the hazard)');
    await assert.rejects(engine.ping(), EngineUnavailableError);
  } finally {
    if (saved === undefined) delete process.env.DOCKER_HOST;
    else process.env.DOCKER_HOST = saved;
    server.closeAllConnections();
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
