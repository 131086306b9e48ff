import { test } from 'node:test';
import assert from 'node:assert/strict';
import { visible } from '../common/visible';
import type { EgressReport } from '../common/egress-rules';
import { egressSection, egressText, hostPort, withEgress } from './egress';

const MiB = 1024 * 1024;

const pip: EgressReport = {
  rules: ['pypi.org:443', '*.pythonhosted.org:443'],
  hosts: [
    { host: 'pypi.org', port: 443, allowed: true, requests: 3, bytesIn: 48 * 1024, bytesOut: 2048 },
    { host: 'files.pythonhosted.org', port: 443, allowed: true, requests: 1, bytesIn: 1.5 * MiB, bytesOut: 900 },
    { host: 'evil.example', port: 80, allowed: false, requests: 2, bytesIn: 0, bytesOut: 0 },
  ],
  lookups: ['pypi.org', 'files.pythonhosted.org'],
  totalBytes: 1.6 * MiB,
  maxBytes: 100 * MiB,
  capReached: false,
};

test('a job without a gateway has no network; one the server did not report on is not called network-less', () => {
  assert.equal(egressText({ key: 'lint', egress: null }), 'lint: no network\n');
  assert.equal(egressText({ key: 'old', egress: undefined }), 'old: no egress report from the server\n');
});

test('allowed and refused hosts: rules, a table with verdicts and human sizes, the total against the cap', () => {
  assert.equal(
    egressText({ key: 'test (3.11)', egress: pip }),
    [
      'test (3.11): may reach pypi.org:443, *.pythonhosted.org:443',
      '  HOST:PORT                   VERDICT  REQUESTS  IN       OUT',
      '  pypi.org:443                allowed  3         48 KiB   2 KiB',
      '  files.pythonhosted.org:443  allowed  1         1.5 MiB  900 bytes',
      '  evil.example:80             refused  2         0 bytes  0 bytes',
      '  names looked up: pypi.org, files.pythonhosted.org',
      '  total 1.6 MiB of 100 MiB cap',
      '',
    ].join('\n'),
  );
});

test('cap reached: said under the total; a gateway nobody used says so instead of an empty table', () => {
  const capped: EgressReport = {
    rules: ['example.org:443'],
    hosts: [{ host: 'example.org', port: 443, allowed: true, requests: 1, bytesIn: 10 * MiB, bytesOut: 100 }],
    lookups: [],
    totalBytes: 10 * MiB,
    maxBytes: 10 * MiB,
    capReached: true,
  };
  const text = egressText({ key: 'big', egress: capped });
  assert.match(text, /\n {2}total 10 MiB of 10 MiB cap\n {2}\(byte cap reached: the gateway was cut off\)\n$/);
  assert.doesNotMatch(egressText({ key: 'test', egress: pip }), /cap reached/);
  const idle = egressText({ key: 'idle', egress: { ...capped, hosts: [], totalBytes: 0, capReached: false } });
  assert.equal(idle, 'idle: may reach example.org:443\n  no requests\n  total 0 bytes of 10 MiB cap\n');
  assert.equal(egressText({ key: 'none', egress: { ...capped, rules: [], hosts: [], capReached: false } }).split('\n')[0], 'none: may reach nothing');
});

test('what a job chose (its key, the hosts it asked for) goes through shown(); the header through header()', () => {
  const hostile: EgressReport = { ...pip, rules: ['ok.org:443'], hosts: [{ ...pip.hosts[2], host: 'x\x1b[2J\x07.example' }], lookups: ['y\x1b]0;t\x07'] };
  const text = egressSection([{ key: 'k\x1b[31m', egress: hostile }], { shown: visible, header: (h) => `<b>${h}</b>` });
  assert.doesNotMatch(text, /[\x00-\x08\x0b-\x1f\x7f]/, 'no control character left');
  assert.match(text, /^k\\x1b\[31m: may reach ok\.org:443\n {2}<b>HOST:PORT/);
  assert.match(text, /x\\x1b\[2J\\x07\.example:80 {2}refused/);
});

test('several jobs: one block each, a blank line between; IPv6 literals in brackets', () => {
  assert.equal(
    egressSection([
      { key: 'a', egress: null },
      { key: 'b', egress: null },
    ]),
    'a: no network\n\nb: no network\n',
  );
  assert.equal(hostPort('2001:db8::1', 443), '[2001:db8::1]:443');
  assert.equal(hostPort('pypi.org', 443), 'pypi.org:443');
});

test('--json: each summary job gets its egress (report or null), matched by id; absent when the server sent none', () => {
  const summaryJobs = [
    { id: 'j1', key: 'a', conclusion: 'success' },
    { id: 'j2', key: 'b', conclusion: 'success' },
    { id: 'j3', key: 'c', conclusion: 'success' },
  ];
  const out = withEgress(summaryJobs, [
    { id: 'j2', key: 'b', egress: pip },
    { id: 'j1', key: 'a', egress: null },
    { id: 'j3', key: 'c' },
  ]);
  assert.deepEqual(JSON.parse(JSON.stringify(out)), [
    { id: 'j1', key: 'a', conclusion: 'success', egress: null },
    { id: 'j2', key: 'b', conclusion: 'success', egress: JSON.parse(JSON.stringify(pip)) },
    { id: 'j3', key: 'c', conclusion: 'success' },
  ]);
});
