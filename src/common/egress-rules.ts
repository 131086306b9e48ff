/**
 * Egress rules: the host:port pairs a job may reach through Kiln's egress gateway. Pure: parsed from
 * the operator's KILN_EGRESS_ALLOW / KILN_EGRESS_ALLOW_INTERNAL and from a workflow's `egress:` key,
 * matched, and compared (a workflow may ask for less than the server allows, never for more).
 *
 * Also the shape of what a job's gateway reports (every room that shows it, the CLI too, uses these types).
 *
 * A rule is `host:port`, where host is a DNS name (`pypi.org`), a wildcard over its subdomains
 * (`*.pythonhosted.org`: any name ending in `.pythonhosted.org`, not the bare domain), or an IPv4
 * address. The port is required: a rule says exactly where a job may connect.
 */
import * as net from 'node:net';

export interface EgressRule {
  /** Lower case; for a wildcard, the domain after `*.`. */
  host: string;
  port: number;
  kind: 'name' | 'wildcard' | 'ipv4';
}

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/** The rule as it is written (`*.pythonhosted.org:443`). */
export function formatRule(r: EgressRule): string {
  return `${r.kind === 'wildcard' ? '*.' : ''}${r.host}:${r.port}`;
}

/** One rule, or the reason it is not one (a message that says what to write instead). */
export function parseRule(text: string): EgressRule | { error: string } {
  const t = text.trim().toLowerCase();
  const m = /^(.+):([0-9]{1,5})$/.exec(t);
  if (!m) return { error: `"${text}" has no port: write host:port, e.g. pypi.org:443` };
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return { error: `"${text}": port ${m[2]} is not between 1 and 65535` };
  let host = m[1];
  if (host.startsWith('[') || host.includes(':')) return { error: `"${text}": IPv6 addresses are not supported in egress rules; name the host` };
  if (net.isIPv4(host)) return { host, port, kind: 'ipv4' };
  let kind: EgressRule['kind'] = 'name';
  if (host.startsWith('*.')) {
    kind = 'wildcard';
    host = host.slice(2);
  }
  if (host.endsWith('.')) host = host.slice(0, -1);
  const labels = host.split('.');
  if (host.length > 253 || !labels.every((l) => LABEL.test(l))) {
    return { error: `"${text}" is not a host name, a wildcard such as *.example.org, or an IPv4 address` };
  }
  if (/^[0-9.]+$/.test(host)) return { error: `"${text}" is not an IPv4 address written in full (a.b.c.d)` };
  if (kind === 'wildcard' && labels.length < 2) return { error: `"${text}": a wildcard must name a domain of at least two labels (*.example.org)` };
  return { host, port, kind };
}

/** Rules from a comma- or space-separated list; throws with every bad entry named. */
export function parseRules(text: string, what: string): EgressRule[] {
  const rules: EgressRule[] = [];
  const errors: string[] = [];
  for (const part of text.split(/[\s,]+/).filter(Boolean)) {
    const r = parseRule(part);
    if ('error' in r) errors.push(r.error);
    else if (!rules.some((x) => sameRule(x, r))) rules.push(r);
  }
  if (errors.length) throw new Error(`${what}: ${errors.join('; ')}`);
  return rules;
}

function sameRule(a: EgressRule, b: EgressRule): boolean {
  return a.host === b.host && a.port === b.port && a.kind === b.kind;
}

/** True when the rule lets a job reach host:port (host as the request names it: a name or an IPv4 literal). */
export function ruleMatches(r: EgressRule, host: string, port: number): boolean {
  if (r.port !== port) return false;
  const h = host.toLowerCase().replace(/\.$/, '');
  if (r.kind === 'wildcard') return h.endsWith(`.${r.host}`);
  return h === r.host;
}

/** True when every host:port the inner rule lets through, the outer one does too. */
export function ruleCovers(outer: EgressRule, inner: EgressRule): boolean {
  if (outer.port !== inner.port) return false;
  if (inner.kind === 'wildcard') return outer.kind === 'wildcard' && (inner.host === outer.host || inner.host.endsWith(`.${outer.host}`));
  return ruleMatches(outer, inner.host, inner.port);
}

/**
 * A job's `egress:` as a plan keeps it (`none`, or its rules as written, checked when parsed) in the form
 * grantFor takes. A rule that no longer parses is left out: the job gets less, never more.
 */
export function requestedRules(egress: 'none' | string[] | undefined): 'none' | EgressRule[] | undefined {
  if (egress === undefined || egress === 'none') return egress;
  return egress.map(parseRule).filter((r): r is EgressRule => !('error' in r));
}

/** What a job may reach: the server's rules, narrowed by what its workflow asked for. */
export interface EgressGrant {
  /** The rules the job's gateway lets through (empty: no network at all). */
  rules: EgressRule[];
  /** Of them, those the operator named as internal: their names may resolve to private addresses. */
  internal: EgressRule[];
}

/**
 * The job's grant: none when the server allows nothing or the job asked for `none`; the server's
 * rules when the job asked for nothing; else exactly the job's rules, each of which must be covered by
 * a server rule (else `problems` names it and what the server allows).
 */
export function grantFor(
  server: { allow: EgressRule[]; internal: EgressRule[] },
  requested: 'none' | EgressRule[] | undefined,
): { grant: EgressGrant; problems: string[] } {
  const all = [...server.allow, ...server.internal.filter((i) => !server.allow.some((a) => sameRule(a, i)))];
  if (requested === 'none' || !all.length) {
    const problems =
      requested && requested !== 'none' && requested.length
        ? [`this server allows no egress (jobs have no network); remove egress: or write egress: none`]
        : [];
    return { grant: { rules: [], internal: [] }, problems };
  }
  if (requested === undefined) return { grant: { rules: all, internal: server.internal }, problems: [] };
  const problems: string[] = [];
  for (const r of requested) {
    if (!all.some((a) => ruleCovers(a, r))) {
      problems.push(`${formatRule(r)} is not on this server's egress list (it allows ${all.map(formatRule).join(', ')})`);
    }
  }
  const internal = requested.filter((r) => server.internal.some((i) => ruleCovers(i, r)));
  return { grant: { rules: requested, internal }, problems };
}

/** One request a job made through its egress gateway, as the gateway logged it. */
export interface EgressRequest {
  /** Unix time, seconds. */
  time: number;
  method: string;
  host: string;
  port: number;
  /** HTTP status the gateway answered (0 when the connection failed before one). */
  status: number;
  refused: boolean;
  /** Bytes sent to the job, and received from it. */
  bytesIn: number;
  bytesOut: number;
  userAgent: string;
}

/** What a job's network use came to: every host it asked for, allowed or refused. */
export interface EgressReport {
  /** The rules the job's gateway let through. */
  rules: string[];
  hosts: { host: string; port: number; allowed: boolean; requests: number; bytesIn: number; bytesOut: number }[];
  /** Names the gateway looked up for the job (allowed names only: a refused name is never resolved). */
  lookups: string[];
  /** Bytes through the gateway (both ways), as its network counters saw them. */
  totalBytes: number;
  maxBytes: number;
  /** The byte cap was reached: the gateway was cut off from the outside. */
  capReached: boolean;
}
