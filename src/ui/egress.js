'use strict';
// The run page's "Network" section for one job: what its egress gateway let it reach. Host names, rules
// and looked-up names come from untrusted jobs: they go into the page only as text, through app.js's
// el() (text nodes), never as markup. A plain file with no DOM of its own, so a unit spec can render it
// (src/ui/egress.spec.ts); in the page it is the global KilnEgress, loaded before app.js.

(function (root) {
  /** Bytes for people, worded as common/size.ts's formatBytes (the spec checks the two agree). */
  function formatBytes(n) {
    const units = ['KiB', 'MiB', 'GiB', 'TiB'];
    if (n < 1024) return `${n} bytes`;
    let v = n / 1024;
    let i = 0;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    return `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[i]}`;
  }

  /** An IPv6 literal in brackets, so its colons are not read as the port's. */
  const hostPort = (host, port) => `${host.includes(':') ? `[${host}]` : host}:${port}`;

  /**
   * The section, or null when the server sent no report (an older server: "No network" would be a
   * claim nobody measured). h: app.js's { el, table, badge }. egress: the job's report, null for none.
   */
  function networkSection(egress, h) {
    if (egress === undefined) return null;
    const { el, table, badge } = h;
    const head = el('h3', {}, 'Network');
    if (egress === null) return el('div', { class: 'network', 'data-testid': 'network' }, head, el('p', { class: 'muted' }, 'No network'));
    return el('div', { class: 'network', 'data-testid': 'network' },
      head,
      el('p', {}, 'May reach: ', egress.rules.length ? egress.rules.flatMap((r, i) => [i ? ', ' : null, el('code', {}, r)]) : 'nothing'),
      egress.hosts.length
        ? table(['Host', 'Verdict', 'Requests', 'In', 'Out'], egress.hosts.map((x) => el('tr', { 'data-verdict': x.allowed ? 'allowed' : 'refused' },
            el('td', {}, el('code', {}, hostPort(x.host, x.port))), el('td', {}, badge(x.allowed ? 'allowed' : 'refused')),
            el('td', {}, String(x.requests)), el('td', {}, formatBytes(x.bytesIn)), el('td', {}, formatBytes(x.bytesOut)))), { 'data-testid': 'network-hosts' })
        : el('p', { class: 'muted' }, 'No requests'),
      egress.lookups.length ? el('p', { class: 'muted' }, `Names looked up: ${egress.lookups.join(', ')}`) : null,
      el('p', { 'data-testid': 'network-total' }, `Total ${formatBytes(egress.totalBytes)} of ${formatBytes(egress.maxBytes)} cap`),
      egress.capReached ? el('p', { class: 'error-box', 'data-testid': 'network-cap' }, 'Byte cap reached: the gateway was cut off') : null,
    );
  }

  const api = { networkSection, formatBytes, hostPort };
  if (typeof module === 'object' && module.exports) module.exports = api;
  else root.KilnEgress = api;
})(globalThis);
