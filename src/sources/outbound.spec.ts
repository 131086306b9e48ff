import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ipaddr from 'ipaddr.js';
import {
  checkHttpUrl,
  classifyAddress,
  DEFAULT_OUTBOUND_POLICY,
  isPublicAddress,
  OutboundError,
  parseHttpUrl,
  pinnedLookup,
  resolveOutbound,
} from './outbound';

// [address, range expected] for every range the policy must refuse, in v4 and v6 spellings.
const refused: [string, string][] = [
  // IANA IPv4 special-purpose registry, and multicast/broadcast
  ['0.0.0.0', 'unspecified'],
  ['0.1.2.3', 'unspecified'],
  ['10.0.0.1', 'private'],
  ['10.255.255.255', 'private'],
  ['172.16.0.1', 'private'],
  ['172.31.255.254', 'private'],
  ['192.168.1.1', 'private'],
  ['100.64.0.1', 'carrierGradeNat'],
  ['100.127.255.254', 'carrierGradeNat'],
  ['127.0.0.1', 'loopback'],
  ['127.255.255.254', 'loopback'],
  ['169.254.169.254', 'linkLocal'],
  ['192.0.0.1', 'reserved'],
  ['192.0.0.9', 'reserved'],
  ['192.0.0.170', 'reserved'],
  ['192.0.2.1', 'reserved'],
  ['198.51.100.7', 'reserved'],
  ['203.0.113.9', 'reserved'], // documentation
  ['192.31.196.1', 'as112'],
  ['192.175.48.1', 'as112'],
  ['192.52.193.1', 'amt'],
  ['192.88.99.1', 'reserved'],
  ['198.18.0.1', 'reserved'],
  ['198.19.255.254', 'reserved'], // benchmarking 198.18.0.0/15
  ['240.0.0.1', 'reserved'],
  ['255.255.255.254', 'reserved'],
  ['255.255.255.255', 'broadcast'],
  ['224.0.0.1', 'multicast'],
  ['239.255.255.250', 'multicast'],
  // IPv6
  ['::', 'unspecified'],
  ['::1', 'loopback'],
  ['0:0:0:0:0:0:0:1', 'loopback'],
  ['::127.0.0.1', 'ipv4Compatible'],
  ['::7f00:1', 'ipv4Compatible'],
  ['::8.8.8.8', 'ipv4Compatible'],
  ['::2', 'ipv4Compatible'],
  ['::ffff:127.0.0.1', 'ipv4Mapped'],
  ['::ffff:7f00:1', 'ipv4Mapped'],
  ['::ffff:8.8.8.8', 'ipv4Mapped'],
  ['::ffff:10.0.0.1', 'ipv4Mapped'],
  ['::ffff:0:127.0.0.1', 'rfc6145'],
  ['64:ff9b::127.0.0.1', 'rfc6052'],
  ['64:ff9b::7f00:1', 'rfc6052'],
  ['64:ff9b::a00:1', 'rfc6052'],
  ['64:ff9b::c612:1', 'rfc6052'],
  ['64:ff9b:1::1', 'rfc6052'],
  ['64:ff9b:1:808:8:800::', 'rfc6052'],
  ['2002:7f00:1::1', '6to4'],
  ['2002:808:808::1', '6to4'],
  ['2002::', '6to4'],
  ['2001:0:4136:e378:8000:63bf:80ff:fffe', 'teredo'],
  ['2001::1', 'teredo'],
  ['2001:2::1', 'benchmarking'],
  ['2001:3::1', 'amt'],
  ['2001:4:112::1', 'as112v6'],
  ['2620:4f:8000::1', 'as112v6'],
  ['2001:10::1', 'deprecatedOrchid'],
  ['2001:20::1', 'orchid2'],
  ['2001:30::1', 'droneRemoteIdProtocolEntityTags'],
  ['2001:1::1', 'reserved'],
  ['2001:db8::1', 'reserved'],
  ['2001:db8:ffff::1', 'reserved'],
  ['3fff::1', 'reserved'],
  ['100::1', 'discard'],
  ['100:0:0:1::1', 'dummyPrefix'],
  ['5f00::1', 'segmentRouting'],
  ['fc00::1', 'uniqueLocal'],
  ['fd12:3456::1', 'uniqueLocal'],
  ['fdff:ffff::1', 'uniqueLocal'],
  ['fe80::1', 'linkLocal'],
  ['febf::1', 'linkLocal'],
  ['fe80::1%eth0', 'linkLocal'],
  ['fec0::1', 'deprecatedSiteLocal'],
  ['ff00::1', 'multicast'],
  ['ff02::1', 'multicast'],
  ['ff05::1:3', 'multicast'],
  ['1::1', 'notGlobalUnicast'],
  ['4000::1', 'notGlobalUnicast'],
  ['e000::1', 'notGlobalUnicast'],
  ['::1:0:0:1', 'notGlobalUnicast'],
  ['[::1]', 'loopback'],
  ['not-an-ip', 'invalid'],
  ['', 'invalid'],
  ['0x7f.1', 'invalid'],
  ['2130706433', 'invalid'],
];

const accepted = [
  '8.8.8.8',
  '1.1.1.1',
  '140.82.112.3',
  '172.15.255.255',
  '172.32.0.1',
  '192.169.0.1',
  '100.63.255.255',
  '100.128.0.1',
  '198.17.255.255',
  '198.20.0.1',
  '223.255.255.254',
  '11.0.0.1',
  '192.0.1.1',
  '203.0.114.1',
  '2606:4700::1111',
  '2001:4860:4860::8888',
  '2a00:1450:4001::1',
  '2001:200::1',
  '3ffe::1',
  '2c0f:fb50::1',
  '64:ff9b::8.8.8.8',
  '64:ff9b::808:808', // NAT64 (well-known prefix) of a public address: what DNS64 hands out
];

for (const [address, range] of refused) {
  test(`refuses ${address || '(empty)'} (${range})`, () => {
    const verdict = classifyAddress(address);
    assert.equal(verdict.allowed, false, JSON.stringify(verdict));
    assert.equal(verdict.range, range);
    assert.equal(isPublicAddress(address), false);
  });
}

for (const address of accepted) {
  test(`accepts the public address ${address}`, () => {
    assert.equal(isPublicAddress(address), true, JSON.stringify(classifyAddress(address)));
  });
}

test('the IPv4 address inside mapped, compatible, NAT64, 6to4 and Teredo forms is found', () => {
  const cases: [string, string, string][] = [
    ['::ffff:127.0.0.1', '127.0.0.1', 'loopback'],
    ['::127.0.0.1', '127.0.0.1', 'loopback'],
    ['::ffff:0:10.1.2.3', '10.1.2.3', 'private'],
    ['64:ff9b::7f00:1', '127.0.0.1', 'loopback'],
    ['64:ff9b::a9fe:a9fe', '169.254.169.254', 'linkLocal'],
    ['64:ff9b::c612:1', '198.18.0.1', 'reserved'],
    ['64:ff9b:1:7f00:0:100::', '127.0.0.1', 'loopback'], // RFC 6052 /48: bits 48-63 and 72-87
    ['2002:7f00:1::1', '127.0.0.1', 'loopback'],
    ['2002:a9fe:a9fe::', '169.254.169.254', 'linkLocal'],
    ['2001:0:4136:e378:8000:63bf:80ff:fffe', '127.0.0.1', 'loopback'], // Teredo client, obfuscated (xor 0xffff)
  ];
  for (const [address, embedded, range] of cases) {
    const verdict = classifyAddress(address);
    assert.equal(verdict.allowed, false, address);
    assert.equal(verdict.embedded, embedded, address);
    assert.equal(verdict.embeddedRange, range, address);
  }
  assert.deepEqual(classifyAddress('64:ff9b::8.8.8.8'), { allowed: true, range: 'rfc6052', embedded: '8.8.8.8', embeddedRange: 'unicast' });
  assert.equal(classifyAddress('2002:808:808::1').allowed, false, '6to4 is refused even around a public address');
  assert.equal(classifyAddress('64:ff9b:1:808:8:800::').allowed, false, 'the NAT64 local-use prefix is refused');
});

test("ipaddr.js's table holds every IANA IPv4 special-purpose entry the policy relies on", () => {
  // If a later ipaddr.js drops one, this fails rather than the policy silently letting it through.
  const registry = [
    '0.0.0.0/8',
    '10.0.0.0/8',
    '100.64.0.0/10',
    '127.0.0.0/8',
    '169.254.0.0/16',
    '172.16.0.0/12',
    '192.0.0.0/24',
    '192.0.2.0/24',
    '192.31.196.0/24',
    '192.52.193.0/24',
    '192.88.99.0/24',
    '192.168.0.0/16',
    '192.175.48.0/24',
    '198.18.0.0/15',
    '198.51.100.0/24',
    '203.0.113.0/24',
    '240.0.0.0/4',
    '255.255.255.255/32',
    '224.0.0.0/4',
  ];
  for (const cidr of registry) {
    const [first, bits] = ipaddr.IPv4.parseCIDR(cidr);
    const last = ipaddr.IPv4.broadcastAddressFromCIDR(cidr);
    for (const a of [first, last]) assert.equal(isPublicAddress(a.toString()), false, `${a} of ${cidr} (/${bits})`);
  }
});

test('resolveOutbound: IP literals need no DNS; names are resolved once and every answer must be public', async () => {
  const policy = DEFAULT_OUTBOUND_POLICY;
  let asked = 0;
  const dns = (answers: string[]) => async () => {
    asked++;
    return answers;
  };
  assert.deepEqual(await resolveOutbound('8.8.8.8', policy, dns(['127.0.0.1'])), []);
  assert.deepEqual(await resolveOutbound('[2606:4700::1111]', policy, dns([])), []);
  assert.equal(asked, 0);
  assert.deepEqual(await resolveOutbound('forge.example', policy, dns(['140.82.112.3', '2606:4700::1111'])), ['140.82.112.3', '2606:4700::1111']);
  await assert.rejects(
    resolveOutbound('forge.example', policy, dns(['140.82.112.3', '10.0.0.5'])),
    /the host 'forge.example' is a private or local address \(10\.0\.0\.5: private\); only public hosts are accepted/,
  );
  await assert.rejects(resolveOutbound('forge.example', policy, dns(['64:ff9b::7f00:1'])), /64:ff9b::7f00:1: rfc6052, which carries 127\.0\.0\.1 \(loopback\)/);
  await assert.rejects(resolveOutbound('[::127.0.0.1]', policy), /::127\.0\.0\.1: ipv4Compatible/);
  await assert.rejects(resolveOutbound('198.18.0.1', policy), /198\.18\.0\.1: reserved/);
  await assert.rejects(resolveOutbound('LocalHost.', policy), /private or local address \(localhost\)/);
  await assert.rejects(resolveOutbound('a.localhost', policy), /private or local address \(localhost\)/);
  const failed = await resolveOutbound('nowhere.example', policy, async () => {
    throw Object.assign(new Error('x'), { code: 'ENOTFOUND' });
  }).catch((e: unknown) => e);
  assert.ok(failed instanceof OutboundError && !failed.permanent && /could not resolve the host 'nowhere.example' \(ENOTFOUND\)/.test(failed.message));
  // The operator's own network: nothing checked, nothing pinned.
  assert.deepEqual(await resolveOutbound('127.0.0.1', { ...policy, allowPrivateHosts: true }), []);
});

test('pinnedLookup answers with the checked addresses only, in the shape net asks for', async () => {
  const lookup = pinnedLookup(['140.82.112.3', '2606:4700::1111']) as unknown as (h: string, o: object, cb: (...a: unknown[]) => void) => void;
  const ask = (o: object) => new Promise<unknown[]>((resolve) => lookup('anything.example', o, (...a) => resolve(a)));
  assert.deepEqual(await ask({ all: true }), [
    null,
    [
      { address: '140.82.112.3', family: 4 },
      { address: '2606:4700::1111', family: 6 },
    ],
  ]);
  assert.deepEqual(await ask({}), [null, '140.82.112.3', 4]);
  assert.deepEqual(await ask({ family: 6 }), [null, '2606:4700::1111', 6]);
  const [err] = await new Promise<unknown[]>((resolve) =>
    (pinnedLookup(['140.82.112.3']) as unknown as typeof lookup)('x', { family: 6 }, (...a) => resolve(a)),
  );
  assert.match(String(err), /no checked address/);
});

test('parseHttpUrl: https only by default, no credentials, no query or fragment', () => {
  const p = DEFAULT_OUTBOUND_POLICY;
  assert.equal(parseHttpUrl('https://api.github.com', p, 'statusUrl').host, 'api.github.com');
  assert.equal(parseHttpUrl('https://gitea.example/api/v1', p, 'statusUrl').pathname, '/api/v1');
  const cases: [string, RegExp][] = [
    ['http://127.0.0.1:6379/', /statusUrl: the URL scheme 'http' is not accepted; allowed schemes: https:\/\/$/],
    ['ftp://forge.example', /the URL scheme 'ftp' is not accepted/],
    ['gopher://127.0.0.1:6379/_INFO', /the URL scheme 'gopher' is not accepted/],
    ['https://user:pw@forge.example', /credentials in the URL are not accepted/],
    ['https://forge.example/x?', /without '\?' or '#'/],
    ['https://forge.example/x?a=1', /without '\?' or '#'/],
    ['https://forge.example/#x', /without '\?' or '#'/],
    ['https://forge.example/a b', /whitespace or control characters/],
    ['not a url', /whitespace|not a valid URL/],
    ['', /statusUrl is empty/],
  ];
  for (const [url, message] of cases) assert.throws(() => parseHttpUrl(url, p, 'statusUrl'), message, url);
  assert.equal(parseHttpUrl('http://forge.internal', { allowedSchemes: ['https', 'http'], allowPrivateHosts: true }, 'statusUrl').protocol, 'http:');
});

test('checkHttpUrl names the field and the refused address', async () => {
  const p = DEFAULT_OUTBOUND_POLICY;
  await assert.rejects(
    checkHttpUrl('https://127.0.0.1:6379', p, 'statusUrl'),
    /^OutboundError: statusUrl: the host '127.0.0.1' is a private or local address \(127\.0\.0\.1: loopback\)/,
  );
  await assert.rejects(checkHttpUrl('https://[::ffff:169.254.169.254]/', p, 'statusUrl'), /which carries 169\.254\.169\.254 \(linkLocal\)/);
  await assert.rejects(checkHttpUrl('https://0x7f.1/', p, 'statusUrl'), /127\.0\.0\.1: loopback/); // WHATWG URL normalizes the host first
  await assert.rejects(checkHttpUrl('https://2130706433/', p, 'statusUrl'), /127\.0\.0\.1: loopback/);
  assert.deepEqual((await checkHttpUrl('https://forge.example/api', p, 'statusUrl', async () => ['140.82.112.3'])).pinned, ['140.82.112.3']);
});
