'use strict';
// Kiln's pages: plain DOM, no framework, no external assets. Text from the API (package names,
// log lines, anything a job wrote) is only ever put into the page as text, never as markup; the one
// exception is the step summary, which the server renders from Markdown and sanitises.

const main = document.getElementById('main');
const API = '/api/v1';

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'onclick' || k === 'onsubmit' || k === 'onchange' || k === 'oninput') node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}
const badge = (s) => el('span', { class: `badge ${s}` }, s);
const token = () => localStorage.getItem('kiln-token');
const authHeaders = () => (token() ? { authorization: `Bearer ${token()}` } : {});

async function api(path, opts = {}) {
  const res = await fetch(API + path, { ...opts, headers: { ...authHeaders(), ...(opts.headers || {}) } });
  if (!res.ok) {
    let message = `${res.status} ${res.statusText}`;
    try { const b = await res.json(); if (b.message) message = Array.isArray(b.message) ? b.message.join('; ') : b.message; } catch (_) { /* not JSON */ }
    const e = new Error(message); e.status = res.status; throw e;
  }
  return res;
}
const json = async (path, opts) => (await api(path, opts)).json();

function table(headers, rows, attrs) {
  return el('div', { class: 'table-wrap' }, el('table', attrs || {}, el('thead', {}, el('tr', {}, headers.map((h) => el('th', {}, h)))), el('tbody', {}, rows)));
}

function show(...nodes) {
  // A section with nothing to show is null: left out, not printed as the text "null".
  main.replaceChildren(...nodes.filter((n) => n != null));
}

function fail(e) {
  show(el('p', { class: 'error-box', 'data-testid': 'error' }, e.message));
}

// ---- catalogue ----------------------------------------------------------------------------------

async function catalogue() {
  const { environments, default: def } = await json('/environments');
  show(
    el('h1', {}, 'Environments'),
    el('p', { class: 'muted' }, 'What each environment has was measured inside its image.'),
    table(['Environment', 'Status', 'OS', 'Python', 'Version', 'Labels'], environments.map((e) => el('tr', { 'data-testid': `env-${e.name}` },
      el('td', {}, el('a', { href: `#/env/${encodeURIComponent(e.name)}` }, e.name), e.name === def ? el('span', { class: 'muted' }, ' (default)') : null),
      el('td', {}, badge(e.status), e.removal ? el('span', { class: 'muted' }, ` until ${e.removal}`) : null),
      el('td', {}, e.os), el('td', {}, e.python || ''), el('td', {}, e.latest), el('td', {}, e.labels.join(', ')),
    )), { 'data-testid': 'environments' }),
  );
}

async function environment(name, version) {
  const env = await json(`/environments/${encodeURIComponent(name)}`);
  const v = version || env.latest;
  const r = await json(`/environments/${encodeURIComponent(name)}/${encodeURIComponent(v)}`);
  const picker = el('select', { 'data-testid': 'version-picker', onchange: (ev) => { location.hash = `#/env/${encodeURIComponent(name)}/${encodeURIComponent(ev.target.value)}`; } },
    env.versions.map((x) => el('option', { value: x, selected: x === v }, x)));
  const from = el('select', { 'data-testid': 'diff-from' }, env.versions.map((x, i) => el('option', { value: x, selected: i === 0 }, x)));
  const to = el('select', { 'data-testid': 'diff-to' }, env.versions.map((x, i) => el('option', { value: x, selected: i === env.versions.length - 1 }, x)));
  const rows = (list, kind) => list.map((p) => el('tr', { 'data-package': p.name.toLowerCase(), 'data-kind': kind }, el('td', {}, p.name), el('td', {}, p.version)));
  const pyRows = rows(r.pythonPackages, 'python');
  const debRows = rows(r.debPackages, 'debian');
  const count = el('span', { class: 'muted', 'data-testid': 'filter-count' });
  const filter = el('input', { type: 'search', placeholder: 'Filter packages', 'data-testid': 'package-filter', 'aria-label': 'Filter packages', oninput: () => applyFilter() });
  function applyFilter() {
    const q = filter.value.trim().toLowerCase();
    let shown = 0;
    for (const row of [...pyRows, ...debRows]) {
      const hit = !q || row.dataset.package.includes(q);
      row.hidden = !hit;
      if (hit) shown++;
    }
    count.textContent = q ? `${shown} match${shown === 1 ? '' : 'es'}` : '';
  }
  show(
    el('h1', {}, `${r.name} `, badge(r.status)),
    el('p', {}, r.description || ''),
    el('p', {}, 'Version ', picker, ' · ', r.os.prettyName, ' · Python ', r.python || 'none', ' · ', el('code', {}, r.image.ref), r.removal ? ` · removed on ${r.removal}` : ''),
    el('form', { class: 'inline', onsubmit: (ev) => { ev.preventDefault(); location.hash = `#/diff/${encodeURIComponent(name)}/${encodeURIComponent(from.value)}/${encodeURIComponent(to.value)}`; } },
      'Compare ', from, ' with ', to, el('button', { type: 'submit', 'data-testid': 'diff-button' }, 'Show changes')),
    el('p', { class: 'muted' }, `Image ${Math.round(r.image.sizeBytes / 1024 / 1024)} MiB, built ${new Date(r.image.builtAt).toLocaleString()}, measured ${new Date(r.probedAt).toLocaleString()}; labels: ${r.labels.join(', ')}`),
    el('h2', {}, 'Tools'),
    table(['Tool', 'Version'], r.tools.map((t) => el('tr', {}, el('td', {}, t.name), el('td', {}, t.version)))),
    el('h2', {}, 'Environment variables'),
    table(['Name', 'Value'], Object.entries(r.env || {}).map(([k, v]) => el('tr', {}, el('td', {}, k), el('td', {}, v)))),
    el('h2', {}, 'Packages'), el('p', {}, filter, ' ', count),
    el('h3', {}, `Python (${r.pythonPackages.length})`), table(['Package', 'Version'], pyRows, { 'data-testid': 'python-packages' }),
    el('h3', {}, `Debian (${r.debPackages.length})`), table(['Package', 'Version'], debRows, { 'data-testid': 'debian-packages' }),
  );
}

async function diff(name, a, b) {
  const d = await json(`/environments/${encodeURIComponent(name)}/diff?from=${encodeURIComponent(a)}&to=${encodeURIComponent(b)}`);
  const section = (title, pd) => [
    el('h2', {}, title),
    el('h3', {}, `Added (${pd.added.length})`), table(['Package', 'Version'], pd.added.map((p) => el('tr', { 'data-change': 'added' }, el('td', {}, p.name), el('td', {}, p.version)))),
    el('h3', {}, `Removed (${pd.removed.length})`), table(['Package', 'Version'], pd.removed.map((p) => el('tr', { 'data-change': 'removed' }, el('td', {}, p.name), el('td', {}, p.version)))),
    el('h3', {}, `Updated (${pd.updated.length})`), table(['Package', 'From', 'To'], pd.updated.map((p) => el('tr', { 'data-change': 'updated' }, el('td', {}, p.name), el('td', {}, p.from), el('td', {}, p.to)))),
  ];
  show(
    el('h1', {}, `${d.name}: ${d.from} → ${d.to}`),
    el('p', {}, 'OS: ', d.os ? `${d.os.from} → ${d.os.to}` : 'unchanged', ' · Python: ', d.python ? `${d.python.from} → ${d.python.to}` : 'unchanged'),
    el('div', { 'data-testid': 'diff' }, section('Python packages', d.pythonPackages), section('Debian packages', d.debPackages)),
  );
}

async function packages(q) {
  const input = el('input', { type: 'search', value: q || '', placeholder: 'numpy', 'aria-label': 'Package name', 'data-testid': 'package-search' });
  const form = el('form', { class: 'inline', onsubmit: (ev) => { ev.preventDefault(); location.hash = `#/packages?q=${encodeURIComponent(input.value.trim())}`; } },
    'Which environments have ', input, el('button', { type: 'submit' }, 'Search'));
  if (!q) return show(el('h1', {}, 'Find a package'), form);
  const { environments } = await json(`/environments?package=${encodeURIComponent(q)}`);
  show(el('h1', {}, 'Find a package'), form,
    environments.length
      ? table(['Environment', 'Version', 'Python package', 'Debian package'], environments.map((e) => el('tr', {},
          el('td', {}, el('a', { href: `#/env/${encodeURIComponent(e.name)}` }, e.name)), el('td', {}, e.latest), el('td', {}, e.package.python || ''), el('td', {}, e.package.debian || ''))), { 'data-testid': 'package-results' })
      : el('p', { 'data-testid': 'package-results' }, `No environment has ${q}.`));
}

// ---- runs ------------------------------------------------------------------------------------------

function signIn(message) {
  const input = el('input', { type: 'password', placeholder: 'kiln_…', 'aria-label': 'API token', 'data-testid': 'token' });
  show(el('h1', {}, 'Sign in'), message ? el('p', { class: 'error-box' }, message) : null,
    el('p', {}, 'Runs are private. Paste an API token (for a local server: the contents of data/admin-token).'),
    el('form', { class: 'inline', onsubmit: async (ev) => {
      ev.preventDefault();
      localStorage.setItem('kiln-token', input.value.trim());
      try { await json('/me'); route(); } catch (e) { localStorage.removeItem('kiln-token'); signIn(e.message); }
    } }, input, el('button', { type: 'submit', 'data-testid': 'sign-in' }, 'Sign in')));
}

function seconds(a, b) {
  if (!a) return '';
  const s = ((b ? Date.parse(b) : Date.now()) - Date.parse(a)) / 1000;
  return s < 90 ? `${s.toFixed(1)} s` : `${Math.round(s / 60)} min`;
}

async function runs() {
  if (!token()) return signIn();
  const list = await json('/runs?limit=100');
  show(el('h1', {}, 'Runs'), el('p', {}, el('a', { href: '#', onclick: (ev) => { ev.preventDefault(); localStorage.removeItem('kiln-token'); route(); } }, 'Sign out')),
    newRunForm(),
    table(['Run', 'Status', 'Workflow', 'Trigger', 'Created', 'Duration'], list.map((r) => el('tr', {},
      el('td', {}, el('a', { href: `#/run/${r.id}` }, r.id)), el('td', {}, badge(r.conclusion || r.status)), el('td', {}, r.workflow),
      el('td', {}, r.source.kind === 'repo' ? `${r.source.repo} ${r.source.sha ? r.source.sha.slice(0, 7) : ''}` : r.source.kind),
      el('td', {}, new Date(r.createdAt).toLocaleString()), el('td', {}, seconds(r.createdAt, r.finishedAt)))), { 'data-testid': 'runs' }));
}

/** "Run workflow", as GitHub's workflow_dispatch button: a repository, a ref, a workflow file, inputs as NAME=VALUE lines. */
function newRunForm() {
  const field = (label, input) => el('label', { class: 'field' }, label, ' ', input);
  const repo = el('input', { type: 'url', required: true, placeholder: 'https://github.com/owner/name.git', size: 50, 'data-testid': 'new-run-repo' });
  const ref = el('input', { type: 'text', required: true, value: 'main', size: 20, 'data-testid': 'new-run-ref' });
  const file = el('input', { type: 'text', placeholder: '.github/workflows/ci.yml (optional)', size: 40, 'data-testid': 'new-run-file' });
  const inputs = el('textarea', { rows: 4, cols: 50, placeholder: 'name=value (one a line)', 'data-testid': 'new-run-inputs' });
  const error = el('p', { class: 'error-box', 'data-testid': 'new-run-error', hidden: true });
  const submit = async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    const lines = inputs.value.split('\n').map((l) => l.trim()).filter(Boolean);
    const bad = lines.find((l) => l.indexOf('=') < 1);
    if (bad) { error.textContent = `inputs: '${bad}' is not NAME=VALUE`; error.hidden = false; return; }
    const body = { repo: repo.value.trim(), ref: ref.value.trim() };
    if (file.value.trim()) body.workflowFile = file.value.trim();
    if (lines.length) body.inputs = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    try {
      const r = await json('/runs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      location.hash = `#/run/${encodeURIComponent(r.id)}`;
    } catch (e) {
      if (e.status === 401) return signIn('Your token was refused; sign in again.');
      error.textContent = e.message;
      error.hidden = false;
    }
  };
  return el('details', { class: 'new-run', 'data-testid': 'new-run' }, el('summary', {}, 'Run workflow'),
    el('form', { onsubmit: submit }, field('Repository', repo), ' ', field('Ref', ref), ' ', field('Workflow file', file),
      el('p', {}, field('Inputs', inputs)), error, el('button', { type: 'submit', 'data-testid': 'new-run-submit' }, 'Run workflow')));
}

let logAbort = null;

async function run(id, jobId, step) {
  if (!token()) return signIn();
  if (logAbort) logAbort.abort();
  const r = await json(`/runs/${encodeURIComponent(id)}`);
  const groups = new Map();
  for (const j of r.jobs) {
    if (!groups.has(j.jobId)) groups.set(j.jobId, []);
    groups.get(j.jobId).push(j);
  }
  const chosen = r.jobs.find((j) => j.id === jobId) || r.jobs[0];
  const logBox = el('div', { class: 'log', 'data-testid': 'log' });
  const cancel = r.status !== 'completed'
    ? el('button', { 'data-testid': 'cancel', onclick: async () => { await api(`/runs/${encodeURIComponent(id)}/cancel`, { method: 'POST' }); route(); } }, 'Cancel run')
    : null;
  show(
    el('h1', {}, `Run ${r.id} `, badge(r.conclusion || r.status)),
    el('p', {}, r.workflow.name, r.workflow.file ? ` (${r.workflow.file})` : '', ' · ', r.context.event, ' · ', seconds(r.startedAt || r.createdAt, r.finishedAt), ' ', cancel),
    r.context.inputs && Object.keys(r.context.inputs).length
      ? el('section', {}, el('h2', {}, 'Inputs'), table(['Input', 'Value'], Object.entries(r.context.inputs).map(([k, v]) => el('tr', {}, el('td', {}, k), el('td', {}, String(v)))), { 'data-testid': 'inputs' }))
      : null,
    ...[...groups.entries()].map(([gid, jobs]) => el('section', { class: 'job' },
      el('h2', {}, gid, jobs.length > 1 ? el('span', { class: 'muted' }, ` (${jobs.length} matrix jobs)`) : null),
      ...jobs.map((j) => el('div', { 'data-testid': `job-${j.key}` },
        el('p', {}, el('a', { href: `#/run/${r.id}/${j.id}` }, j.key), ' ', badge(j.conclusion || j.status), ' ', el('span', { class: 'muted' }, j.environment ? `${j.environment} · ${seconds(j.startedAt, j.finishedAt)}` : j.plannedLate ? 'planned when its needs are done' : ''), j.error ? el('span', { class: j.conclusion === 'skipped' ? 'muted' : 'error-box', 'data-testid': 'job-reason' }, ` ${j.error}`) : null),
        el('ol', { class: 'steps', start: 0 }, j.steps.map((s) => el('li', { class: j.id === chosen?.id && String(s.index) === String(step) ? 'selected' : '', onclick: () => { location.hash = `#/run/${r.id}/${j.id}/${s.index}`; } },
          s.name, ' ', badge(s.conclusion || s.status), s.exitCode !== null ? el('span', { class: 'muted' }, ` exit ${s.exitCode}`) : null, s.reason ? el('span', { class: 'muted' }, ` ${s.reason}`) : null,
          el('span', { class: 'muted' }, ` ${seconds(s.startedAt, s.finishedAt)}`)))),
        j.summaryHtml ? summaryBlock(j.summaryHtml) : null,
        KilnEgress.networkSection(j.egress, { el, table, badge }),
      )),
    )),
    r.annotations.length ? el('section', {}, el('h2', {}, 'Annotations'), el('ul', { 'data-testid': 'annotations' }, r.annotations.map((a) => el('li', { class: `annotation ${a.level}` },
      `${a.level}: ${a.title ? `${a.title}: ` : ''}${a.message}`, a.file ? el('span', { class: 'muted' }, ` ${a.file}${a.line ? `:${a.line}` : ''}`) : null, el('span', { class: 'muted' }, ` (${a.job})`))))) : null,
    r.artifacts.length ? el('section', {}, el('h2', {}, 'Artifacts'), el('ul', {}, r.artifacts.map((a) => el('li', {},
      el('a', { href: '#', 'data-testid': `artifact-${a.name}`, onclick: (ev) => { ev.preventDefault(); download(a); } }, a.name), el('span', { class: 'muted' }, ` ${a.files} files, ${a.sizeBytes} bytes`))))) : null,
    chosen ? el('section', {}, el('h2', {}, `Log: ${chosen.key}${step !== undefined ? ` step ${step}` : ''}`), logBox) : null,
  );
  if (chosen) followLog(r.id, chosen.id, step, logBox);
}

function summaryBlock(html) {
  const box = el('div', { class: 'summary', 'data-testid': 'summary' });
  box.innerHTML = html; // rendered and sanitised by the server (sanitize-html allow-list)
  return box;
}

async function download(a) {
  const res = await api(a.url.replace(API, ''));
  const url = URL.createObjectURL(await res.blob());
  const link = el('a', { href: url, download: `${a.name}.tar` });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** Streams a job's log (SSE over fetch, so the token stays in a header) into the box, live. */
async function followLog(runId, jobId, step, box) {
  logAbort = new AbortController();
  const q = `/runs/${encodeURIComponent(runId)}/logs?follow=1&job=${encodeURIComponent(jobId)}${step !== undefined ? `&step=${encodeURIComponent(step)}` : ''}`;
  let target = box;
  try {
    const res = await api(q, { signal: logAbort.signal });
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const ev = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (ev.startsWith('event: end')) return;
        const data = ev.split('\n').find((l) => l.startsWith('data: '));
        if (!data) continue;
        const rec = JSON.parse(data.slice(6));
        if (rec.s === 'g') {
          const d = el('details', { open: true }, el('summary', {}, rec.l));
          target.append(d);
          target = d;
        } else if (rec.s === 'G') {
          target = target === box ? box : target.parentElement.closest('details') || box;
        } else {
          target.append(logLine(rec));
        }
      }
    }
  } catch (e) {
    if (e.name !== 'AbortError') box.append(el('div', { class: 'e' }, `log: ${e.message}`));
  }
}

/** One log line: SGR colour codes become classes; every other character is text (control characters made visible). */
function logLine(rec) {
  const line = el('div', { class: rec.s === 'k' ? 'k' : rec.s === 'e' ? 'e' : 'o', 'data-line': '' });
  let classes = [];
  const re = /\x1b\[([0-9;]*)m/g;
  let last = 0;
  let m;
  const text = (s) => {
    if (!s) return;
    const visible = s.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, (c) => (c === '\x1b' ? '␛' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
    line.append(classes.length ? el('span', { class: classes.join(' ') }, visible) : document.createTextNode(visible));
  };
  while ((m = re.exec(rec.l))) {
    text(rec.l.slice(last, m.index));
    for (const code of (m[1] || '0').split(';').map(Number)) {
      if (code === 0) classes = [];
      else if (code === 1) classes.push('ansi-bold');
      else if (code >= 30 && code <= 37) classes = classes.filter((c) => !/^ansi-3/.test(c)).concat(`ansi-${code}`);
      else if (code >= 90 && code <= 97) classes = classes.filter((c) => !/^ansi-3/.test(c)).concat(`ansi-${code - 60}`);
    }
    last = re.lastIndex;
  }
  text(rec.l.slice(last));
  return line;
}

// ---- routing ---------------------------------------------------------------------------------------

async function route() {
  const hash = location.hash.replace(/^#/, '') || '/';
  const [pathPart, query] = hash.split('?');
  const parts = pathPart.split('/').filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(query || '');
  try {
    if (parts[0] === 'env' && parts[1]) await environment(parts[1], parts[2]);
    else if (parts[0] === 'diff' && parts[3]) await diff(parts[1], parts[2], parts[3]);
    else if (parts[0] === 'packages') await packages(params.get('q'));
    else if (parts[0] === 'runs') await runs();
    else if (parts[0] === 'run' && parts[1]) await run(parts[1], parts[2], parts[3]);
    else await catalogue();
  } catch (e) {
    if (e.status === 401) signIn('Your token was refused; sign in again.');
    else fail(e);
  }
}

window.addEventListener('hashchange', route);
route();
