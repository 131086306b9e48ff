import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ipaddr from 'ipaddr.js';
import { parseRules } from '../common/egress-rules';
import { classifyAddress } from '../sources/outbound';
import { dnsmasqArgs, SPECIAL_V4, SPECIAL_V6, squidConf } from './squid-config';

/** Whether an address is in one of the CIDRs. */
function inAny(address: string, cidrs: string[]): boolean {
  const a = ipaddr.parse(address);
  return cidrs.some((c) => {
    const [net, bits] = ipaddr.parseCIDR(c);
    return net.kind() === a.kind() && a.match(net, bits);
  });
}

test("the gateway's special ranges are the server's outbound policy's: every address they hold is refused by it, and its refused samples are in them", () => {
  for (const cidr of SPECIAL_V4) {
    const [net, bits] = ipaddr.IPv4.parseCIDR(cidr);
    const first = net.toString();
    const last = ipaddr.IPv4.broadcastAddressFromCIDR(`${first}/${bits}`).toString();
    for (const a of [first, last]) assert.equal(classifyAddress(a).allowed, false, `${a} of ${cidr} is public to the outbound policy`);
  }
  const refused = [
    '0.1.2.3',
    '10.9.9.9',
    '100.64.1.1',
    '127.0.0.1',
    '169.254.169.254',
    '172.17.0.1',
    '172.31.255.255',
    '192.0.0.8',
    '192.0.2.5',
    '192.88.99.1',
    '192.168.1.1',
    '198.18.0.1',
    '198.51.100.7',
    '203.0.113.9',
    '224.0.0.251',
    '240.0.0.1',
    '255.255.255.255',
  ];
  for (const a of refused) {
    assert.equal(classifyAddress(a).allowed, false);
    assert.ok(inAny(a, SPECIAL_V4), `${a} is refused by the outbound policy but not by the gateway`);
  }
  for (const a of ['8.8.8.8', '151.101.0.223', '1.1.1.1']) assert.equal(inAny(a, SPECIAL_V4), false, `${a} is public`);
  const v6refused = ['::1', '::', 'fe80::1', 'fc00::1', 'fd12::1', 'ff02::1', '2001:db8::1', '2002:a00:1::', '64:ff9b::a00:1', '100::1', '::a00:1', '3fff::1'];
  for (const a of v6refused) assert.ok(inAny(a, SPECIAL_V6), `${a} is not refused by the gateway`);
  for (const a of ['2a00:1450:4001::1', '2606:4700::1111']) assert.equal(inAny(a, SPECIAL_V6), false, `${a} is public`);
  // squid keeps IPv4 addresses as ::ffff:a.b.c.d: the IPv6 list must leave that block to the IPv4 one
  assert.equal(inAny('::ffff:8.8.8.8', SPECIAL_V6), false);
  assert.ok(inAny('::fffe:0:1', SPECIAL_V6) && inAny('::1:ffff:0:1', SPECIAL_V6));
});

test('squid.conf: the manager and unlisted hosts are refused before any lookup; internal rules pass before the special ranges, the others after', () => {
  const allow = parseRules('pypi.org:443,*.pythonhosted.org:443,10.0.0.5:3141,mirror.corp:8080', 'X');
  const internal = parseRules('mirror.corp:8080,10.0.0.5:3141', 'Y');
  const conf = squidConf({ rules: allow, internal }, { maxReplyBytes: 1000, clients: '172.30.0.0/16' });
  const access = conf.split('\n').filter((l) => l.startsWith('http_access'));
  assert.match(conf, /^acl kiln_job src 172\.30\.0\.0\/16$/m);
  assert.deepEqual(access, [
    'http_access deny manager',
    'http_access deny !kiln_job',
    'http_access deny !kiln_any_host',
    'http_access allow kiln_host_2 kiln_port_2',
    'http_access allow kiln_host_3 kiln_port_3',
    'http_access deny kiln_special',
    'http_access allow kiln_host_0 kiln_port_0',
    'http_access allow kiln_host_1 kiln_port_1',
    'http_access deny all',
  ]);
  assert.match(conf, /^acl kiln_host_0 dstdomain -n pypi\.org$/m);
  assert.match(conf, /^acl kiln_host_1 dstdom_regex -n -i \^\.\+\\\.pythonhosted\\\.org\$$/m);
  assert.match(conf, /^acl kiln_host_2 dstdomain -n 10\.0\.0\.5$/m);
  assert.match(conf, /^acl kiln_port_1 port 443$/m);
  assert.match(conf, /^reply_body_max_size 1000 bytes$/m);
  assert.match(conf, /^dns_nameservers 127\.0\.0\.1$/m);
  // nothing allowed at all: everything refused
  assert.deepEqual(
    squidConf({ rules: [], internal: [] }, { maxReplyBytes: 1 })
      .split('\n')
      .filter((l) => l.startsWith('http_access')),
    ['http_access deny manager', 'http_access deny all'],
  );
});

test('dnsmasq refuses private answers but for the internal names the operator listed', () => {
  const args = dnsmasqArgs({ rules: parseRules('pypi.org:443,mirror.corp:8080', 'X'), internal: parseRules('mirror.corp:8080,10.0.0.5:1', 'Y') });
  assert.ok(args.includes('--stop-dns-rebind'));
  assert.ok(args.includes('--server=127.0.0.11'));
  assert.deepEqual(
    args.filter((a) => a.startsWith('--rebind-domain-ok')),
    ['--rebind-domain-ok=/mirror.corp/'],
  );
});
