import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatRule, grantFor, parseRule, parseRules, ruleCovers, ruleMatches, type EgressRule } from './egress-rules';

const rule = (t: string) => parseRule(t) as EgressRule;

test('rules: names, *.wildcards and IPv4 addresses with a port; anything else says what to write', () => {
  assert.deepEqual(parseRule('PyPI.org:443'), { host: 'pypi.org', port: 443, kind: 'name' });
  assert.deepEqual(parseRule('*.pythonhosted.org:443'), { host: 'pythonhosted.org', port: 443, kind: 'wildcard' });
  assert.deepEqual(parseRule('10.1.2.3:3141'), { host: '10.1.2.3', port: 3141, kind: 'ipv4' });
  assert.match((parseRule('pypi.org') as { error: string }).error, /no port: write host:port/);
  assert.match((parseRule('pypi.org:0') as { error: string }).error, /between 1 and 65535/);
  assert.match((parseRule('[::1]:443') as { error: string }).error, /IPv6/);
  assert.match((parseRule('*.org:443') as { error: string }).error, /at least two labels/);
  assert.match((parseRule('a..b:443') as { error: string }).error, /not a host name/);
  assert.match((parseRule('pypi.org/simple:443') as { error: string }).error, /not a host name/);
  assert.match((parseRule('1.2.3:80') as { error: string }).error, /IPv4 address written in full/);
  assert.match((parseRule('foo.*.org:443') as { error: string }).error, /not a host name/);
  assert.equal(formatRule(rule('*.Files.Example.org:8443')), '*.files.example.org:8443');
});

test('a list: commas or spaces, duplicates once, every bad entry named', () => {
  assert.deepEqual(parseRules('pypi.org:443, *.pythonhosted.org:443 pypi.org:443', 'X').map(formatRule), ['pypi.org:443', '*.pythonhosted.org:443']);
  assert.deepEqual(parseRules('', 'X'), []);
  assert.throws(() => parseRules('pypi.org,ok.org:1,[::1]:2', 'KILN_EGRESS_ALLOW'), /^Error: KILN_EGRESS_ALLOW: "pypi.org" has no port.*; "\[::1\]:2": IPv6/);
});

test('matching: host and port together; a wildcard is any subdomain, not the bare domain nor a look-alike', () => {
  const w = rule('*.pythonhosted.org:443');
  assert.equal(ruleMatches(w, 'files.pythonhosted.org', 443), true);
  assert.equal(ruleMatches(w, 'a.b.PYTHONHOSTED.org.', 443), true);
  assert.equal(ruleMatches(w, 'pythonhosted.org', 443), false);
  assert.equal(ruleMatches(w, 'evilpythonhosted.org', 443), false);
  assert.equal(ruleMatches(w, 'files.pythonhosted.org', 80), false);
  assert.equal(ruleMatches(rule('pypi.org:443'), 'pypi.org', 443), true);
  assert.equal(ruleMatches(rule('pypi.org:443'), 'x.pypi.org', 443), false);
  assert.equal(ruleCovers(w, rule('files.pythonhosted.org:443')), true);
  assert.equal(ruleCovers(w, rule('*.a.pythonhosted.org:443')), true);
  assert.equal(ruleCovers(rule('files.pythonhosted.org:443'), w), false);
  assert.equal(ruleCovers(w, rule('*.pythonhosted.org:80')), false);
});

test('a grant: the server allows nothing by default; a workflow may narrow it or ask for none, never widen it', () => {
  const server = { allow: parseRules('pypi.org:443,*.pythonhosted.org:443', 'X'), internal: parseRules('mirror.corp:3141', 'Y') };
  assert.deepEqual(grantFor({ allow: [], internal: [] }, undefined), { grant: { rules: [], internal: [] }, problems: [] });
  assert.match(grantFor({ allow: [], internal: [] }, [rule('pypi.org:443')]).problems[0], /allows no egress/);
  const all = grantFor(server, undefined).grant;
  assert.deepEqual(all.rules.map(formatRule), ['pypi.org:443', '*.pythonhosted.org:443', 'mirror.corp:3141']);
  assert.deepEqual(all.internal.map(formatRule), ['mirror.corp:3141']);
  assert.deepEqual(grantFor(server, 'none').grant.rules, []);
  const narrow = grantFor(server, [rule('files.pythonhosted.org:443'), rule('mirror.corp:3141')]);
  assert.deepEqual(narrow.problems, []);
  assert.deepEqual(narrow.grant.rules.map(formatRule), ['files.pythonhosted.org:443', 'mirror.corp:3141']);
  assert.deepEqual(narrow.grant.internal.map(formatRule), ['mirror.corp:3141']);
  const wider = grantFor(server, [rule('*.org:443'.replace('*.org', '*.example.org')), rule('pypi.org:80')]);
  assert.deepEqual(wider.problems, [
    "*.example.org:443 is not on this server's egress list (it allows pypi.org:443, *.pythonhosted.org:443, mirror.corp:3141)",
    "pypi.org:80 is not on this server's egress list (it allows pypi.org:443, *.pythonhosted.org:443, mirror.corp:3141)",
  ]);
});
