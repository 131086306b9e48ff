import { test } from 'node:test';
import assert from 'node:assert/strict';
import { diffPackages, diffReports } from './diff';
import { diffToMarkdown, reportToMarkdown } from './markdown';
import { makeReport } from '../../test/fixtures/reports';

test('diffPackages: added, removed and updated, each sorted', () => {
  const d = diffPackages(
    [
      { name: 'b', version: '1' },
      { name: 'a', version: '1' },
      { name: 'gone', version: '2' },
    ],
    [
      { name: 'a', version: '2' },
      { name: 'b', version: '1' },
      { name: 'z', version: '1' },
      { name: 'new', version: '3' },
    ],
  );
  assert.deepEqual(d, {
    added: [
      { name: 'new', version: '3' },
      { name: 'z', version: '1' },
    ],
    removed: [{ name: 'gone', version: '2' }],
    updated: [{ name: 'a', from: '1', to: '2' }],
  });
});

test('diffReports covers os, python and both package kinds', () => {
  const a = makeReport();
  const b = makeReport({
    version: '20261201.1',
    python: '3.11.4',
    pythonPackages: [
      { name: 'numpy', version: '1.26.4' },
      { name: 'pandas', version: '2.1.0' },
    ],
  });
  const d = diffReports(a, b);
  assert.equal(d.from, '20261128.1');
  assert.equal(d.to, '20261201.1');
  assert.equal(d.os, null);
  assert.deepEqual(d.python, { name: 'python', from: '3.11.2', to: '3.11.4' });
  assert.deepEqual(d.pythonPackages.added, [{ name: 'pandas', version: '2.1.0' }]);
  assert.deepEqual(d.pythonPackages.removed, [{ name: 'pytest', version: '7.2.1' }]);
  assert.deepEqual(d.pythonPackages.updated, [{ name: 'numpy', from: '1.24.2', to: '1.26.4' }]);
  assert.deepEqual(d.debPackages, { added: [], removed: [], updated: [] });
  const md = diffToMarkdown(d);
  assert.match(md, /### Added \(1\)\n\n\| Package \| Version \|\n\| --- \| --- \|\n\| pandas \| 2\.1\.0 \|/);
  assert.match(md, /\| numpy \| 1\.24\.2 \| 1\.26\.4 \|/);
});

test('the Markdown report lists what was measured and escapes table-breaking text', () => {
  const r = makeReport({ description: 'a | b <script>', pythonPackages: [{ name: 'evil|pkg', version: '1<2' }] });
  const md = reportToMarkdown(r);
  assert.match(md, /^# python-3\.11 20261128\.1/);
  assert.match(md, /- \*\*Python\*\*: 3\.11\.2/);
  assert.match(md, /## Python packages \(1\)/);
  assert.match(md, /\| evil\\\|pkg \| 1\\<2 \|/);
  assert.ok(!md.includes('<script>'), 'no raw markup');
});

test('the Markdown report of a PyPy environment says its PyPy and the Python it implements; a CPython one has no such line', () => {
  assert.match(
    reportToMarkdown(makeReport({ name: 'pypy-3.9', pypy: { python: '3.9.16', version: '7.3.11' } })),
    /- \*\*PyPy\*\*: 7\.3\.11 \(Python 3\.9\.16\)/,
  );
  assert.doesNotMatch(reportToMarkdown(makeReport()), /PyPy/);
});
