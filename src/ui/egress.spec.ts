import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { projectRoot } from '../config/config';
import { formatBytes } from '../common/size';

/**
 * The run page's Network section (src/ui/egress.js), rendered with app.js's own el/table/badge over a
 * small stand-in for the DOM: elements, attributes, text nodes, and innerHTML kept apart so that the
 * serialised page shows markup only where the code put markup.
 */
const UI = path.join(process.env.KILN_ROOT ?? projectRoot(), 'src', 'ui');

class FakeNode {}
class FakeText extends FakeNode {
  constructor(readonly text: string) {
    super();
  }
}
class FakeElement extends FakeNode {
  readonly attrs = new Map<string, string>();
  readonly children: FakeNode[] = [];
  /** Set only by code that writes markup; serialised raw, as a browser would parse it. */
  innerHTML: string | undefined;
  constructor(readonly tag: string) {
    super();
  }
  setAttribute(k: string, v: string) {
    this.attrs.set(k, String(v));
  }
  addEventListener() {}
  append(...nodes: FakeNode[]) {
    this.children.push(...nodes);
  }
}
const fakeDocument = { createElement: (t: string) => new FakeElement(t), createTextNode: (s: string) => new FakeText(s) };

const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
function html(n: FakeNode | null): string {
  if (n === null) return '';
  if (n instanceof FakeText) return escape(n.text);
  const e = n as FakeElement;
  const attrs = [...e.attrs].map(([k, v]) => ` ${k}="${escape(v)}"`).join('');
  return `<${e.tag}${attrs}>${e.innerHTML ?? e.children.map(html).join('')}</${e.tag}>`;
}
function text(n: FakeNode | null): string {
  if (n === null) return '';
  return n instanceof FakeText ? n.text : (n as FakeElement).children.map(text).join('');
}
function find(n: FakeNode, pred: (e: FakeElement) => boolean): FakeElement[] {
  if (!(n instanceof FakeElement)) return [];
  return [...(pred(n) ? [n] : []), ...n.children.flatMap((c) => find(c, pred))];
}
const byTestId = (n: FakeNode, id: string) => find(n, (e) => e.attrs.get('data-testid') === id);

/** app.js's el, badge and table, cut out of the page's script and run over the stand-in DOM. */
function pageHelpers() {
  const app = fs.readFileSync(path.join(UI, 'app.js'), 'utf8');
  const el = /^function el\([\s\S]*?^}$/m.exec(app)?.[0];
  const badge = /^const badge = .*$/m.exec(app)?.[0];
  const table = /^function table\([\s\S]*?^}$/m.exec(app)?.[0];
  assert.ok(el && badge && table, 'app.js still has el(), badge and table()');
  return new Function('document', 'Node', `${el}\n${badge}\n${table}\nreturn { el, badge, table };`)(fakeDocument, FakeNode) as object;
}

interface Egress {
  networkSection(egress: unknown, h: object): FakeNode | null;
  formatBytes(n: number): string;
  hostPort(host: string, port: number): string;
}
const ui = require(path.join(UI, 'egress.js')) as Egress;
const h = pageHelpers();
const render = (egress: unknown) => ui.networkSection(egress, h);

const MiB = 1024 * 1024;
const pip = {
  rules: ['pypi.org:443', '*.pythonhosted.org:443'],
  hosts: [
    { host: 'pypi.org', port: 443, allowed: true, requests: 3, bytesIn: 48 * 1024, bytesOut: 2048 },
    { host: 'evil.example', port: 80, allowed: false, requests: 2, bytesIn: 0, bytesOut: 0 },
  ],
  lookups: ['pypi.org'],
  totalBytes: 50 * 1024,
  maxBytes: 100 * MiB,
  capReached: false,
};

test('no gateway: "No network"; no report from the server: no section at all', () => {
  const none = render(null)!;
  assert.equal(text(none), 'NetworkNo network');
  assert.equal(byTestId(none, 'network-hosts').length, 0);
  assert.equal(render(undefined), null);
});

test('allowed and refused hosts: the rules, one row per host with its verdict, requests and sizes, the total', () => {
  const s = render(pip)!;
  assert.match(text(s), /^NetworkMay reach: pypi\.org:443, \*\.pythonhosted\.org:443/);
  const rows = find(s, (e) => e.tag === 'tr' && e.attrs.has('data-verdict'));
  assert.deepEqual(
    rows.map((r) => [r.attrs.get('data-verdict'), r.children.map(text)]),
    [
      ['allowed', ['pypi.org:443', 'allowed', '3', '48 KiB', '2 KiB']],
      ['refused', ['evil.example:80', 'refused', '2', '0 bytes', '0 bytes']],
    ],
  );
  assert.deepEqual(
    find(s, (e) => e.tag === 'span' && /\bbadge\b/.test(e.attrs.get('class') ?? '')).map((b) => b.attrs.get('class')),
    ['badge allowed', 'badge refused'],
  );
  assert.equal(text(byTestId(s, 'network-total')[0]), 'Total 50 KiB of 100 MiB cap');
  assert.match(text(s), /Names looked up: pypi\.org/);
  assert.equal(byTestId(s, 'network-cap').length, 0, 'no cap line below the cap');
});

test('cap reached: said under the total; no requests: said instead of an empty table; IPv6 in brackets', () => {
  const capped = render({ ...pip, hosts: [{ ...pip.hosts[0], host: '2001:db8::1' }], totalBytes: 100 * MiB, capReached: true })!;
  assert.equal(text(byTestId(capped, 'network-cap')[0]), 'Byte cap reached: the gateway was cut off');
  assert.equal(text(byTestId(capped, 'network-total')[0]), 'Total 100 MiB of 100 MiB cap');
  assert.match(text(capped), /\[2001:db8::1\]:443allowed/);
  const idle = render({ ...pip, rules: [], hosts: [], lookups: [] })!;
  assert.equal(text(idle), 'NetworkMay reach: nothingNo requestsTotal 50 KiB of 100 MiB cap');
});

test('host names, rules and looked-up names a job chose are text on the page, never markup', () => {
  const bad = '<img src=x onerror=alert(1)>"&';
  const s = render({ ...pip, rules: [bad], hosts: [{ ...pip.hosts[1], host: bad }], lookups: [bad] })!;
  const page = html(s);
  assert.doesNotMatch(page, /<img/);
  assert.equal(page.split('&lt;img src=x onerror=alert(1)&gt;&quot;&amp;').length - 1, 3, 'shown as text in the rules, the table and the lookups');
  assert.equal(text(s).split(bad).length - 1, 3, 'shown exactly as the job wrote it');
});

test('the page loads egress.js before app.js, and the run page renders the section per job', () => {
  const index = fs.readFileSync(path.join(UI, 'index.html'), 'utf8');
  assert.ok(index.indexOf('<script src="/egress.js">') >= 0 && index.indexOf('<script src="/egress.js">') < index.indexOf('<script src="/app.js">'));
  assert.match(fs.readFileSync(path.join(UI, 'app.js'), 'utf8'), /KilnEgress\.networkSection\(j\.egress, \{ el, table, badge \}\)/);
});

test("the page words sizes as the server and the CLI do (common/size's formatBytes)", () => {
  for (const n of [0, 1, 1023, 1024, 1536, 48 * 1024, MiB - 1, 1.5 * MiB, 100 * MiB, 3.25 * 1024 ** 3, 2 * 1024 ** 4, 5000 * 1024 ** 4])
    assert.equal(ui.formatBytes(n), formatBytes(n), String(n));
});
