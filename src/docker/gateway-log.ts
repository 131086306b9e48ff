/**
 * The egress gateway's logs, read (pure): squid's access log (squid-config.ts's `kiln` format, one line
 * per request, on the container's stdout) and dnsmasq's query log (on its stderr).
 */
import type { EgressReport, EgressRequest } from '../common/egress-rules';

const ACCESS = /^(\d+\.\d+) (\S+) (\S+) (\d+|-) (\d{3}) (\S+) (\d+) (\d+) \S+ "(.*)"$/;

/** One access-log line as a request; null for anything else. */
export function parseAccessLine(line: string): EgressRequest | null {
  const m = ACCESS.exec(line.trim());
  if (!m) return null;
  const [, time, method, rawHost, rawPort, status, squidStatus, sent, received, ua] = m;
  let host = rawHost.toLowerCase();
  let port = rawPort === '-' ? 0 : Number(rawPort);
  // A CONNECT names host:port; squid logs its port apart (and the URL's default when none is written).
  const hp = /^(.*):(\d+)$/.exec(host);
  if (hp && !host.startsWith('[')) {
    host = hp[1];
    port = Number(hp[2]);
  }
  if (!port) port = method === 'CONNECT' ? 443 : 80;
  return {
    time: Number(time),
    method,
    host,
    port,
    status: Number(status),
    refused: squidStatus.startsWith('TCP_DENIED') || (squidStatus.startsWith('NONE_NONE') && status === '403'),
    bytesIn: Number(sent),
    bytesOut: Number(received),
    userAgent: ua === '-' ? '' : ua,
  };
}

/** The names dnsmasq was asked for (`query[A] pypi.org from 127.0.0.1`), in order, each once. */
export function parseLookups(text: string): string[] {
  const names: string[] = [];
  for (const m of text.matchAll(/query\[(?:A|AAAA)\] (\S+) from/g)) {
    const name = m[1].toLowerCase();
    if (!names.includes(name) && !name.endsWith('.in-addr.arpa') && !name.endsWith('.ip6.arpa')) names.push(name);
  }
  return names;
}

/** The per-host report of a job's requests. */
export function summarize(requests: EgressRequest[], rest: Omit<EgressReport, 'hosts'>): EgressReport {
  const hosts = new Map<string, EgressReport['hosts'][number]>();
  for (const r of requests) {
    const key = `${r.refused ? 'r' : 'a'} ${r.host}:${r.port}`;
    const h = hosts.get(key) ?? { host: r.host, port: r.port, allowed: !r.refused, requests: 0, bytesIn: 0, bytesOut: 0 };
    h.requests++;
    h.bytesIn += r.bytesIn;
    h.bytesOut += r.bytesOut;
    hosts.set(key, h);
  }
  return { ...rest, hosts: [...hosts.values()] };
}
