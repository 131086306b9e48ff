import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseManifest } from './manifest';
import { findPackage, parseProbeOutput, ProbeError, verifyAgainstManifest } from './report';
import { makeReport, PROBE_OUTPUT } from '../../test/fixtures/reports';

const manifest = (apt: string, extra = '') =>
  parseManifest(
    `name: demo\nversion: "20261128.1"\nstatus: ga\nlabels: [demo]\nbase: bookworm\npython: "3.11"\napt: ${apt}\n${extra}`,
    '/e/demo/20261128.1.yaml',
  ).manifest;

test('the probe output is parsed into os, python, tools and sorted packages', () => {
  const p = parseProbeOutput(PROBE_OUTPUT);
  assert.equal(p.os.prettyName, 'Debian GNU/Linux 12 (bookworm)');
  assert.equal(p.os.debianVersion, '12.15');
  assert.equal(p.python, '3.11.2');
  assert.deepEqual(
    p.debPackages.map((x) => x.name),
    ['make', 'mawk', 'python3'],
  );
  assert.deepEqual(p.pythonPackages, [
    { name: 'numpy', version: '1.24.2' },
    { name: 'PyYAML', version: '6.0' },
  ]);
});

test('a probe that did not finish is an error, not a short report', () => {
  assert.throws(() => parseProbeOutput(PROBE_OUTPUT.replace('end\n', '')), ProbeError);
  assert.throws(() => parseProbeOutput('os\tID\tdebian\nend\n'), /no Debian packages/);
});

test('verification: what the manifest declares is in the image', () => {
  assert.deepEqual(verifyAgainstManifest(manifest('[python3, make]'), parseProbeOutput(PROBE_OUTPUT)), []);
});

test('verification names a declared Debian package that is missing (e.g. a virtual package)', () => {
  const problems = verifyAgainstManifest(manifest('[python3, awk]'), parseProbeOutput(PROBE_OUTPUT));
  assert.deepEqual(problems, ['Debian package awk is declared but not installed in the image']);
});

test('verification names a pinned version that differs, a missing pip package and a wrong Python', () => {
  const m = manifest('[make=4.2-1]', 'pip: ["attrs==23.1.0", "pyyaml==6.0"]');
  m.python = '3.12';
  const problems = verifyAgainstManifest(m, parseProbeOutput(PROBE_OUTPUT));
  assert.deepEqual(problems, [
    'Debian package make is declared at 4.2-1 but 4.3-4.1 is installed',
    'Python package attrs is declared but not installed in the image',
    'python 3.12 is declared but the image has Python 3.11.2',
  ]);
});

test('python 3.1 is not satisfied by 3.11.2', () => {
  const m = manifest('[make]');
  m.python = '3.1';
  assert.equal(verifyAgainstManifest(m, parseProbeOutput(PROBE_OUTPUT)).length, 1);
});

test('findPackage: Python names normalized, Debian names exact', () => {
  const r = makeReport();
  assert.deepEqual(findPackage(r, 'NumPy'), { python: '1.24.2', debian: undefined });
  assert.deepEqual(findPackage(r, 'python3-numpy'), { python: undefined, debian: '1:1.24.2-1' });
  assert.deepEqual(findPackage(r, 'nothing'), { python: undefined, debian: undefined });
});

test("PyPy: the probe line gives the Python it implements and its own version; the manifest's pypy is checked against it", () => {
  const withPyPy = PROBE_OUTPUT.replace('end\n', 'pypy\tpypy3\t3.9.16\t7.3.11\nend\n');
  const p = parseProbeOutput(withPyPy);
  assert.deepEqual(p.pypy, { python: '3.9.16', version: '7.3.11' });
  assert.equal(p.python, '3.11.2');
  assert.equal(parseProbeOutput(PROBE_OUTPUT).pypy, null);
  const m = manifest('[make]');
  m.pypy = '3.9';
  assert.deepEqual(verifyAgainstManifest(m, p), []);
  m.pypy = '3.10';
  assert.deepEqual(verifyAgainstManifest(m, p), ["pypy 3.10 is declared but the image's PyPy 7.3.11 is Python 3.9.16"]);
  assert.deepEqual(verifyAgainstManifest(m, parseProbeOutput(PROBE_OUTPUT)), [
    'pypy 3.10 is declared but pypy3 is not in the image (or did not say its version)',
  ]);
});
