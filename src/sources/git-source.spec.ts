import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_GIT_OPTIONS, type GitSourceErrorCode } from './git-policy';
import { classifyGitError, gitConfigFor } from './git-source';

test('every git command is hardened: protocols, hooks, credentials, submodules, redirects', () => {
  const config = new Map(gitConfigFor({ ...DEFAULT_GIT_OPTIONS }));
  assert.equal(config.get('protocol.allow'), 'never');
  assert.equal(config.get('protocol.https.allow'), 'always');
  assert.equal(config.has('protocol.http.allow'), false);
  assert.equal(config.get('core.hooksPath'), '/dev/null');
  assert.equal(config.get('submodule.recurse'), 'false');
  assert.equal(config.get('core.symlinks'), 'true');
  assert.equal(config.get('core.fsmonitor'), 'false');
  assert.equal(config.get('credential.helper'), '');
  assert.equal(config.get('http.followRedirects'), 'false');
  const withHttp = new Map(gitConfigFor({ ...DEFAULT_GIT_OPTIONS, allowedSchemes: ['https', 'http'] }));
  assert.equal(withHttp.get('protocol.http.allow'), 'always');
});

test('resolved addresses are pinned for libcurl (no DNS rebinding between check and fetch)', () => {
  const url = new URL('https://git.example.com/a/b.git');
  const config = new Map(gitConfigFor(DEFAULT_GIT_OPTIONS, url, ['93.184.216.34', '2606:2800:220:1::1']));
  assert.equal(config.get('http.curloptResolve'), 'git.example.com:443:93.184.216.34,[2606:2800:220:1::1]');
});

const gitErrors: [string, RegExp, GitSourceErrorCode, boolean][] = [
  ["fatal: couldn't find remote ref nope", /the ref 'nope' was not found in https:\/\/h\/r.git/, 'ref-not-found', true],
  ["fatal: repository 'https://h/r.git/' not found", /the repository https:\/\/h\/r.git was not found/, 'repo-not-found', true],
  ["fatal: unable to access 'https://h/r.git/': The requested URL returned error: 403", /requires authentication/, 'auth-required', true],
  ["fatal: could not read Username for 'https://h': terminal prompts disabled", /requires authentication/, 'auth-required', true],
  ["fatal: unable to access 'https://h/r.git/': The requested URL returned error: 301", /redirected .*redirects are not followed/, 'redirected', true],
  ["fatal: unable to access 'https://h/r.git/': Could not resolve host: h", /could not resolve the host 'h'/, 'unreachable', false],
  [
    "fatal: unable to access 'https://h/r.git/': Failed to connect to h port 443: Connection refused",
    /could not fetch from 'h'.*try again later/,
    'unreachable',
    false,
  ],
  ["fatal: unable to access 'https://h/r.git/': The requested URL returned error: 503", /try again later/, 'unreachable', false],
  ["fatal: unable to access 'https://h/r.git/': SSL certificate problem: self-signed certificate", /TLS error/, 'tls', true],
  ['fatal: https://h/r.git/info/refs not valid: is this a git repository?', /did not answer as a git repository/, 'not-a-repository', true],
  ['fatal: something new', /git failed to fetch .*something new/, 'git-failed', false],
];
for (const [stderr, message, code, permanent] of gitErrors) {
  test(`classifies git's "${stderr.slice(0, 60)}"`, () => {
    const e = classifyGitError(stderr, 'https://h/r.git', 'nope');
    assert.match(e.message, message);
    assert.equal(e.code, code);
    assert.equal(e.permanent, permanent);
  });
}
test("more of git's failures, each with its code", () => {
  const more: [string, GitSourceErrorCode][] = [
    ['fatal: remote error: upload-pack: not our ref 0123', 'ref-not-found'],
    ["fatal: transport 'file' not allowed", 'invalid-url'],
    ["error: invalid path '.git/hooks/post-checkout'", 'unsafe-tree'],
  ];
  for (const [stderr, code] of more) assert.equal(classifyGitError(stderr, 'https://h/r.git', 'main').code, code, stderr);
});
