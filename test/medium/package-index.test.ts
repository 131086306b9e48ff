import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import Dockerode from 'dockerode';
import { type PackageIndex, startPackageIndex } from '../fixtures/package-index';

const docker = new Dockerode();
const suffix = crypto.randomBytes(4).toString('hex');
const networkName = `kiln-index-${suffix}`;
const clients: Dockerode.Container[] = [];
let network: Dockerode.Network | undefined;
let index: PackageIndex | undefined;
let image = '';

/** The newest local kiln/python-3.11 runner image. */
async function pythonImage(): Promise<string> {
  const images = await docker.listImages();
  const tagged = images
    .flatMap((i) => (i.RepoTags ?? []).map((tag) => ({ tag, created: i.Created })))
    .filter((i) => i.tag.startsWith('kiln/python-3.11:'))
    .sort((a, b) => b.created - a.created || b.tag.localeCompare(a.tag));
  if (!tagged.length) throw new Error('no kiln/python-3.11 image on this engine: build it first (npm run images)');
  return tagged[0].tag;
}

/** Runs a script in a throwaway container of the image on the test network; its exit code and output. */
async function runClient(script: string): Promise<{ code: number; output: string }> {
  const container = await docker.createContainer({
    Image: image,
    User: '1001:1001',
    Cmd: ['bash', '-c', script],
    Labels: { 'kiln.test': 'package-index-client' },
    HostConfig: { NetworkMode: networkName, CapDrop: ['ALL'], SecurityOpt: ['no-new-privileges'] },
  });
  clients.push(container);
  await container.start();
  const { StatusCode } = (await container.wait()) as { StatusCode: number };
  const raw = (await container.logs({ stdout: true, stderr: true, follow: false })) as unknown as Buffer;
  const parts: Buffer[] = [];
  for (let at = 0; at + 8 <= raw.length; at += 8 + raw.readUInt32BE(at + 4)) parts.push(raw.subarray(at + 8, at + 8 + raw.readUInt32BE(at + 4)));
  return { code: StatusCode, output: Buffer.concat(parts).toString('utf8') };
}

before(async () => {
  image = await pythonImage();
  network = await docker.createNetwork({ Name: networkName, Internal: true, Labels: { 'kiln.test': '1' } });
  index = await startPackageIndex({
    docker,
    image,
    network: networkName,
    host: `index-${suffix}.test`,
    packages: [
      { name: 'kilnpkga', version: '1.0' },
      { name: 'kilnpkga', version: '2.0' },
      { name: 'kilnpkgb', version: '1.0', dependencies: ['kilnpkga'] },
    ],
  });
});

after(async () => {
  for (const c of clients) await c.remove({ force: true }).catch(() => undefined);
  await index?.close();
  await network?.remove().catch(() => undefined);
});

test('pip in another container on the network installs a package and its dependency (newest) from the index', async () => {
  assert.ok(index);
  assert.equal(index.simpleUrl, `http://index-${suffix}.test:8080/simple/`);
  assert.match(index.address, /^\d+\.\d+\.\d+\.\d+$/);
  const { code, output } = await runClient(
    'python3 -m venv /tmp/v --system-site-packages && ' +
      // plain HTTP to a host other than localhost is ignored by pip unless it is trusted
      `/tmp/v/bin/pip install --disable-pip-version-check --no-cache-dir --index-url ${index.simpleUrl} --trusted-host ${index.host} kilnpkgb==1.0 && ` +
      '/tmp/v/bin/python -c "import kilnpkga, kilnpkgb; print(kilnpkga.__version__); print(kilnpkgb.hello())"',
  );
  assert.equal(code, 0, output);
  const lines = output.trim().split('\n');
  assert.deepEqual(lines.slice(-2), ['2.0', 'hello from kilnpkgb 1.0'], output);
  const seen = (await index.requests()).filter((r) => r.method === 'GET' && r.status === 200).map((r) => r.path);
  for (const path of ['/simple/kilnpkgb/', '/simple/kilnpkga/', '/files/kilnpkgb-1.0-py3-none-any.whl', '/files/kilnpkga-2.0-py3-none-any.whl'])
    assert.ok(seen.includes(path), `GET ${path} 200 in ${JSON.stringify(seen)}`);
  assert.ok(!seen.includes('/files/kilnpkga-1.0-py3-none-any.whl'), 'the older kilnpkga is not downloaded');
});

test('/big/<n> streams exactly n bytes and logs them; an unknown path is 404', async () => {
  assert.ok(index);
  const base = `http://${index.host}:${index.port}`;
  const { code, output } = await runClient(
    'python3 -c "' +
      'import urllib.request, urllib.error\n' +
      `print(len(urllib.request.urlopen('${base}/big/1000000').read()))\n` +
      'try:\n' +
      `    urllib.request.urlopen('${base}/nope?x=1')\n` +
      'except urllib.error.HTTPError as e:\n' +
      '    print(e.code)"',
  );
  assert.equal(code, 0, output);
  assert.deepEqual(output.trim().split('\n'), ['1000000', '404']);
  const requests = await index.requests();
  assert.ok(
    requests.some((r) => r.method === 'GET' && r.path === '/big/1000000' && r.status === 200 && r.bytes === 1000000),
    JSON.stringify(requests),
  );
  assert.ok(requests.some((r) => r.path === '/nope?x=1' && r.status === 404));
});
