import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_GIT_OPTIONS, GitSourceError, GitSourceOptions, isPrivateAddress, validateRef, validateRepoUrl, type GitSourceErrorCode } from './git-policy';

// allowPrivateHosts: true keeps these tests off DNS; the private-host table below uses IP literals.
const opts: GitSourceOptions = { ...DEFAULT_GIT_OPTIONS, allowPrivateHosts: true };
const strict: GitSourceOptions = { ...DEFAULT_GIT_OPTIONS };

function refusal(fragment: RegExp, code: GitSourceErrorCode, permanent = true) {
  return (e: unknown) => {
    assert.ok(e instanceof GitSourceError, `expected a GitSourceError, got ${String(e)}`);
    assert.match(e.message, fragment);
    assert.equal(e.code, code);
    assert.equal(e.permanent, permanent);
    return true;
  };
}

test('defaults: https only, no private hosts, 120 s, 512 MiB', () => {
  assert.deepEqual(DEFAULT_GIT_OPTIONS.allowedSchemes, ['https']);
  assert.equal(DEFAULT_GIT_OPTIONS.allowPrivateHosts, false);
  assert.equal(DEFAULT_GIT_OPTIONS.timeoutMs, 120_000);
  assert.equal(DEFAULT_GIT_OPTIONS.maxBytes, 512 * 1024 * 1024);
});

const badUrls: [string, RegExp][] = [
  ['', /empty/],
  ['-uevil', /must not start with '-'/],
  ['--upload-pack=touch /tmp/x', /must not start with '-'/],
  ['-c core.sshCommand=x', /must not start with '-'/],
  ['--config=x', /must not start with '-'/],
  ['ext::sh -c touch% /tmp/pwned', /scheme 'ext' is not accepted; allowed schemes: https:\/\//],
  ['fd::3', /scheme 'fd' is not accepted; allowed schemes: https:\/\//],
  ['file:///etc', /scheme 'file' is not accepted/],
  ['ssh://x/y', /scheme 'ssh' is not accepted/],
  ['git://github.com/a/b.git', /scheme 'git' is not accepted/],
  ['http://github.com/a/b.git', /scheme 'http' is not accepted; allowed schemes: https:\/\//],
  ['/etc', /not a URL \(local paths are not accepted\); allowed schemes: https/],
  ['./repo', /not a URL \(local paths are not accepted\)/],
  ['repo', /not a URL/],
  ['git@github.com:a/b.git', /scp-like SSH addresses .* are not accepted/],
  ['https://user:pass@h/x', /credentials in the URL are not accepted/],
  ['https://token@github.com/a/b', /credentials in the URL are not accepted/],
  ['https://h/x\n', /whitespace or control characters/],
  ['https://h/a b', /whitespace or control characters/],
  ['https://h/x\tuploadpack', /whitespace or control characters/],
  ['https://h/\x00', /whitespace or control characters/],
  ['https://', /not a valid URL/],
  ['https://exa mple.com/', /whitespace/],
  [`https://example.com/${'a'.repeat(3000)}`, /3020 characters long; the limit is 2048/],
];
for (const [url, message] of badUrls) {
  test(`refuses the URL ${JSON.stringify(url.length > 60 ? `${url.slice(0, 40)}…` : url)}`, async () => {
    await assert.rejects(validateRepoUrl(url, opts), refusal(message, 'invalid-url'));
  });
}

const goodUrls: [string, string][] = [
  ['https://github.com/a/b.git', 'https://github.com/a/b.git'],
  ['HTTPS://GitHub.com/a/b', 'https://github.com/a/b'],
  ['https://example.com:8443/group/sub/repo.git', 'https://example.com:8443/group/sub/repo.git'],
  ['https://h.example/x?y=1', 'https://h.example/x?y=1'],
  ['https://h.example/a%20b', 'https://h.example/a%20b'],
];
for (const [url, normalized] of goodUrls) {
  test(`accepts ${url}`, async () => {
    assert.equal((await validateRepoUrl(url, opts)).href, normalized);
  });
}

test('http is accepted only when allowed', async () => {
  const url = await validateRepoUrl('http://127.0.0.1:8080/r.git', { ...opts, allowedSchemes: ['https', 'http'] });
  assert.equal(url.href, 'http://127.0.0.1:8080/r.git');
});

test('schemes other than https/http are never accepted, even if listed', async () => {
  const o = { ...opts, allowedSchemes: ['https', 'ssh', 'file', 'ext'] };
  for (const url of ['ssh://x/y', 'file:///etc', 'ext::sh -c x']) {
    await assert.rejects(validateRepoUrl(url, o), refusal(/is not accepted; allowed schemes: https:\/\/$/, 'invalid-url'));
  }
});

// IP literals (and localhost) need no DNS, so these run offline.
const privateHosts = [
  'https://127.0.0.1/x',
  'https://127.1.2.3/x',
  'https://10.0.0.1/x',
  'https://172.16.5.4/x',
  'https://172.31.255.255/x',
  'https://192.168.1.1/x',
  'https://169.254.169.254/latest/meta-data',
  'https://0.0.0.0/x',
  'https://100.64.0.1/x',
  'https://[::1]/x',
  'https://[::]/x',
  'https://[fc00::1]/x',
  'https://[fd12:3456::1]/x',
  'https://[fe80::1]/x',
  'https://[::ffff:127.0.0.1]/x',
  'https://[::ffff:8.8.8.8]/x',
  'https://2130706433/x',
  'https://0x7f.1/x',
  'https://localhost/x',
  'https://LOCALHOST:8443/x',
  'https://foo.localhost/x',
  // what the hand list before the outbound policy let through
  'https://[::127.0.0.1]/x',
  'https://[64:ff9b::7f00:1]/x',
  'https://[2002:7f00:1::1]/x',
  'https://198.18.0.1/x',
  'https://240.0.0.1/x',
  'https://224.0.0.1/x',
  'https://[ff02::1]/x',
  'https://[2001:db8::1]/x',
];
for (const url of privateHosts) {
  test(`refuses the private host in ${url} when allowPrivateHosts is false`, async () => {
    await assert.rejects(validateRepoUrl(url, strict), refusal(/is a private or local address .*only public hosts are accepted/, 'private-host'));
  });
}

test('public IP literals pass the private-host check without DNS', async () => {
  for (const url of ['https://8.8.8.8/x', 'https://172.32.0.1/x', 'https://11.0.0.1/x', 'https://[2001:4860:4860::8888]/x']) {
    assert.equal((await validateRepoUrl(url, strict)).href, url);
  }
});

test('isPrivateAddress covers the listed ranges and nothing public', () => {
  for (const a of [
    '127.0.0.1',
    '10.255.0.1',
    '172.16.0.1',
    '192.168.0.1',
    '169.254.1.1',
    '::1',
    'fc00::1',
    'fdff::1',
    '::ffff:10.0.0.1',
    '::127.0.0.1',
    '64:ff9b::a00:1',
    '198.19.0.1',
  ]) {
    assert.equal(isPrivateAddress(a), true, a);
  }
  for (const a of ['8.8.8.8', '172.15.255.255', '172.32.0.0', '192.169.0.1', '2606:4700::1111', 'not-an-ip']) {
    assert.equal(isPrivateAddress(a), false, a);
  }
});

const badRefs: [string, RegExp][] = [
  ['', /the ref is empty/],
  [' ', /whitespace or control characters/],
  ['main\n', /whitespace or control characters/],
  ['a b', /whitespace or control characters/],
  ['-b', /must not start with '-'/],
  ['--upload-pack=x', /must not start with '-'/],
  ['-', /must not start with '-'/],
  ['a..b', /must not contain '\.\.'/],
  ['../x', /must not contain '\.\.'/],
  ['x@{1}', /must not contain '@\{'/],
  ['@{-1}', /must not contain '@\{'/],
  ['a//b', /must not contain '\/\/'/],
  ['refs/heads/x.lock', /must not end with '\.lock'/],
  ['feature/', /must not start or end with '\/'/],
  ['/main', /must not start or end with '\/'/],
  ['main:refs/heads/evil', /may only contain letters, digits/],
  ['+main', /may only contain letters, digits/],
  ['^main', /may only contain letters, digits/],
  ['refs/*', /may only contain letters, digits/],
  ['main~1', /may only contain letters, digits/],
  ['.hidden', /part starting with '\.'/],
  ['a/.b', /part starting with '\.'/],
  ['x'.repeat(256), /256 characters long; the limit is 255/],
];
for (const [ref, message] of badRefs) {
  test(`refuses the ref ${JSON.stringify(ref.length > 40 ? `${ref.slice(0, 20)}…` : ref)}`, () => {
    assert.throws(() => validateRef(ref), refusal(message, 'invalid-ref'));
  });
}

test('accepts branches, tags and shas', () => {
  for (const ref of [
    'main',
    'v1',
    'v1.2.3',
    'release/2024-01',
    'feature/a_b-c',
    'refs/heads/main',
    'refs/tags/v1',
    'HEAD',
    'a8c3ab7',
    'a8c3ab73a1fa37a43ed59366eb1c8e8f9091a7a0',
    'x'.repeat(255),
  ]) {
    assert.equal(validateRef(ref), ref);
  }
});

test('every code but unreachable and git-failed is permanent', () => {
  for (const code of ['invalid-url', 'invalid-ref', 'private-host', 'ref-not-found', 'timeout', 'too-large', 'unsafe-tree'] as const) {
    assert.equal(new GitSourceError(code, 'x').permanent, true, code);
  }
  for (const code of ['unreachable', 'git-failed'] as const) assert.equal(new GitSourceError(code, 'x').permanent, false, code);
});
