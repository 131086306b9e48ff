import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadManifests, ManifestError, parseManifest, type Manifest } from './manifest';
import { projectRoot } from '../config/config';

const FILE = '/envs/demo/20261128.1.yaml';
const GOOD = `
name: demo
version: "20261128.1"
status: ga
labels: [demo, debian-12]
base: bookworm
python: "3.11"
apt: [python3, make]
pip: ["attrs==23.1.0"]
env: { A: "1" }
`;

function withChange(change: string): string {
  return GOOD + change;
}

test('a good manifest parses, with a content hash', () => {
  const l = parseManifest(GOOD, FILE);
  assert.equal(l.manifest.name, 'demo');
  assert.deepEqual(l.manifest.apt, ['python3', 'make']);
  assert.match(l.hash, /^[0-9a-f]{64}$/);
});

test('an unquoted version (a YAML number) is read as text', () => {
  const l = parseManifest(GOOD.replace('"20261128.1"', '20261128.1'), FILE);
  assert.equal(l.manifest.version, '20261128.1');
});

// Each bad manifest must fail with a message naming the file and the field.
const cases: [string, string, RegExp][] = [
  ['missing name', GOOD.replace('name: demo\n', ''), /name: name must be lower-case/],
  ['bad version', GOOD.replace('"20261128.1"', '"2026-11-28"'), /version: version must look like YYYYMMDD\.N/],
  ['unknown status', GOOD.replace('status: ga', 'status: stable'), /status: status must be one of beta, ga, deprecated/],
  ['deprecated without removal', GOOD.replace('status: ga', 'status: deprecated'), /removal: removal must be a date/],
  ['unknown base', GOOD.replace('base: bookworm', 'base: jessie'), /base: base must be a Debian suite/],
  ['empty apt', GOOD.replace('apt: [python3, make]', 'apt: []'), /apt: apt must list at least one/],
  ['apt option injection', GOOD.replace('apt: [python3, make]', 'apt: ["--allow-unauthenticated"]'), /apt: each apt entry must be a Debian package name/],
  ['apt shell injection', GOOD.replace('apt: [python3, make]', 'apt: ["make; rm -rf /"]'), /apt: each apt entry/],
  ['unpinned pip', GOOD.replace('"attrs==23.1.0"', 'attrs'), /pip: each pip entry must be pinned exactly/],
  ['bad env name', withChange('').replace('A: "1"', '"BAD-NAME": "1"'), /env\.BAD-NAME: variable names must match/],
  ['multi-line env value', withChange('').replace('A: "1"', 'A: "x\\ny"'), /env\.A: value must be one line/],
  ['unknown field', withChange('image: evil/image\n'), /image: unknown field/],
  ['labels without the name', GOOD.replace('[demo, debian-12]', '[debian-12]'), /labels: must include the name demo/],
  ['version not the file name', GOOD.replace('20261128.1', '20261128.2'), /version: is 20261128\.2 but the file is named 20261128\.1\.yaml/],
  ['not a mapping', '- a\n- b\n', /the file must be a YAML mapping/],
  ['YAML syntax', 'name: [unclosed\n', /YAML:/],
  ['duplicate key', GOOD + 'name: again\n', /YAML:.*[Mm]ap keys must be unique/],
  ['bad python', GOOD.replace('python: "3.11"', 'python: "three"'), /python: python must be MAJOR\.MINOR/],
];
for (const [what, text, message] of cases) {
  test(`manifest validation: ${what}`, () => {
    assert.throws(
      () => parseManifest(text, FILE),
      (e: unknown) => {
        assert.ok(e instanceof ManifestError, 'a ManifestError');
        assert.ok(e.message.startsWith(FILE), `names the file: ${e.message}`);
        assert.match(e.message, message);
        return true;
      },
    );
  });
}

test('an alias bomb is refused, not expanded', () => {
  const bomb = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]'];
  for (let i = 1; i < 12; i++)
    bomb.push(
      `${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10)
        .fill('*' + String.fromCharCode(96 + i))
        .join(',')}]`,
    );
  assert.throws(
    () => parseManifest(bomb.join('\n'), FILE),
    (e: unknown) => e instanceof ManifestError && /^\/envs\/demo\/20261128\.1\.yaml: YAML: .*alias/i.test(e.message),
  );
});

test('the shipped environments/ all validate: CPython 3.9 to 3.14, PyPy 3.9 and 3.11, the latest of each with the workflow tools', () => {
  const loaded = loadManifests(path.join(projectRoot(), 'environments'));
  const latest = new Map<string, Manifest>();
  for (const { manifest } of loaded) if ((latest.get(manifest.name)?.version ?? '') < manifest.version) latest.set(manifest.name, manifest);
  const bySuite = Object.fromEntries([...latest.values()].map((m) => [m.name, m.base]));
  assert.deepEqual(bySuite, {
    'pypy-3.11': 'trixie',
    'pypy-3.9': 'bookworm',
    'python-3.11': 'bookworm',
    'python-3.13': 'trixie',
    'python-3.14': 'forky',
    'python-3.9': 'bullseye',
  });
  const cpython = [
    'python3',
    'python3-pip',
    'python3-venv',
    'python3-pytest',
    'python3-hypothesis',
    'python3-numpy',
    'python3-scipy',
    'python3-pandas',
    'python3-matplotlib',
  ];
  for (const m of latest.values()) {
    const pypy = m.name.startsWith('pypy-');
    assert.equal(pypy ? m.pypy : m.python, m.name.replace(/^[a-z]+-/, ''), `${m.name} declares the Python its name says`);
    for (const p of [...(pypy ? ['pypy3', 'pypy3-venv'] : cpython), 'tox', 'nox', 'pre-commit', 'git', 'make', 'gcc']) {
      assert.ok(m.apt.includes(p), `${m.name} declares ${p}`);
    }
  }
});

test('pypy is MAJOR.MINOR, and forky (testing) is a suite', () => {
  const m = parseManifest(GOOD.replace('python: "3.11"', 'pypy: "3.9"').replace('base: bookworm', 'base: forky'), FILE).manifest;
  assert.equal(m.pypy, '3.9');
  assert.equal(m.base, 'forky');
  assert.throws(() => parseManifest(GOOD.replace('python: "3.11"', 'pypy: "7.3.11"'), FILE), /pypy: pypy must be the MAJOR\.MINOR/);
});

test('loadManifests reports every bad file, and a label claimed by two environments', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-manifests-'));
  try {
    const write = (name: string, version: string, text: string) => {
      fs.mkdirSync(path.join(dir, name), { recursive: true });
      fs.writeFileSync(path.join(dir, name, `${version}.yaml`), text);
    };
    write('one', '20261128.1', GOOD.replace(/demo/g, 'one').replace('debian-12', 'shared'));
    write('two', '20261128.1', GOOD.replace(/demo/g, 'two').replace('debian-12', 'shared'));
    write('three', '20261128.1', GOOD.replace(/demo/g, 'three').replace('status: ga', 'status: nope'));
    assert.throws(
      () => loadManifests(dir),
      (e: unknown) => {
        const m = (e as Error).message;
        assert.match(m, /three\/20261128\.1\.yaml: status: status must be one of/);
        assert.match(m, /two\/20261128\.1\.yaml: labels: shared is already a label of one/);
        return true;
      },
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
