/**
 * The egress gateway's configuration (pure): squid's squid.conf and dnsmasq's arguments for one job's
 * grant. The order of squid's access rules is the policy:
 *
 * 1. the cache manager (squid's own admin interface) is refused, and so is any client but the job's network;
 * 2. a request whose host is on no rule is refused before anything is resolved (a refused name is never
 *    looked up, so a job cannot leak data through DNS queries of names it makes up); an IP literal is
 *    on a rule only when the operator listed that address;
 * 3. rules the operator named as internal (an internal mirror, a test's upstream) are allowed as they are;
 * 4. every other request whose destination is a special-purpose address (loopback, private, link-local,
 *    metadata, reserved...: the same ranges the server's own outbound policy refuses) is refused;
 * 5. the rules (host and port together) are allowed; everything else is refused.
 *
 * Names are resolved by a dnsmasq in the gateway that refuses private answers from upstream
 * (--stop-dns-rebind; the internal names excepted), and squid checks and connects with the same
 * cached answer (negative_dns_ttl is also the shortest time squid keeps a positive one): an answer that
 * changes between the check and the connection cannot turn an allowed public name into a private address.
 */
import { EgressGrant, EgressRule } from '../common/egress-rules';

/** The port squid listens on inside the gateway. */
export const GATEWAY_PORT = 3128;

/** IPv4 special-purpose ranges (IANA's registry as ipaddr.js classifies it: squid-config.spec checks the two agree). */
export const SPECIAL_V4 = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.0.0.0/24',
  '192.0.2.0/24',
  '192.31.196.0/24',
  '192.52.193.0/24',
  '192.88.99.0/24',
  '192.168.0.0/16',
  '192.175.48.0/24',
  '198.18.0.0/15',
  '198.51.100.0/24',
  '203.0.113.0/24',
  '224.0.0.0/4',
  '240.0.0.0/4',
];

/**
 * IPv6 ranges that are not public hosts: everything outside 2000::/3 but the IPv4-mapped block (squid
 * keeps IPv4 addresses in that form, so they are judged by SPECIAL_V4), and the special blocks inside
 * 2000::/3. (The gateway has no IPv6 address anyway; this is the second wall.)
 */
export const SPECIAL_V6 = [
  ...outsideMapped(),
  '0100::/8',
  '0200::/7',
  '0400::/6',
  '0800::/5',
  '1000::/4',
  '2001::/23',
  '2001:db8::/32',
  '2002::/16',
  '3fff::/20',
  '4000::/2',
  '8000::/1',
];

/** ::/8 without ::ffff:0:0/96: for each bit of the mapped prefix, the block that differs from it there first. */
function outsideMapped(): string[] {
  const mapped = (bit: number) => bit >= 80 && bit < 96; // ::ffff:0:0 has bits 80..95 set
  const out: string[] = [];
  for (let k = 8; k < 96; k++) {
    const words = new Array<number>(8).fill(0);
    for (let b = 0; b <= k; b++) {
      const set = b < k ? mapped(b) : !mapped(b);
      if (set) words[b >> 4] |= 1 << (15 - (b & 15));
    }
    out.push(`${words.map((w) => w.toString(16)).join(':')}/${k + 1}`);
  }
  return out;
}

function quoteRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function hostAcl(name: string, r: EgressRule): string {
  // -n: never resolve (a dstdomain acl would otherwise look up the name of an IP literal)
  if (r.kind === 'wildcard') return `acl ${name} dstdom_regex -n -i ^.+\\.${quoteRegex(r.host)}$`;
  return `acl ${name} dstdomain -n ${r.host}`;
}

export interface SquidOptions {
  /** Largest reply squid passes to the job (plain HTTP; tunnels are capped by the gateway's byte counter). */
  maxReplyBytes: number;
  /** The job network's subnet: the only clients squid serves (not a container of an outside network). */
  clients?: string;
}

/** squid.conf for one job's grant. */
export function squidConf(grant: EgressGrant, o: SquidOptions): string {
  const isInternal = (r: EgressRule) => grant.internal.some((i) => i.host === r.host && i.port === r.port && i.kind === r.kind);
  const lines = [
    `http_port ${GATEWAY_PORT}`,
    'pid_filename none',
    'cache deny all',
    'cache_mem 0 MB',
    'logformat kiln %ts.%03tu %rm %>rd %>rP %>Hs %Ss %<st %>st %<a "%{User-Agent}>h"',
    'access_log stdio:/dev/stdout kiln',
    'buffered_logs off',
    'cache_log stdio:/dev/stderr',
    'logfile_rotate 0',
    'shutdown_lifetime 0 seconds',
    'dns_nameservers 127.0.0.1',
    'negative_dns_ttl 1 minute',
    'forwarded_for delete',
    'via off',
    'httpd_suppress_version_string on',
    'visible_hostname kiln-gateway',
    'client_db off',
    'max_filedescriptors 1024',
    `reply_body_max_size ${o.maxReplyBytes} bytes`,
    `acl kiln_special dst ${SPECIAL_V4.join(' ')}`,
    `acl kiln_special dst ${SPECIAL_V6.join(' ')}`,
  ];
  grant.rules.forEach((r, i) => {
    lines.push(hostAcl(`kiln_host_${i}`, r), hostAcl('kiln_any_host', r), `acl kiln_port_${i} port ${r.port}`);
  });
  if (o.clients) lines.push(`acl kiln_job src ${o.clients}`);
  lines.push('http_access deny manager');
  if (o.clients) lines.push('http_access deny !kiln_job');
  if (grant.rules.length) {
    lines.push('http_access deny !kiln_any_host');
    grant.rules.forEach((r, i) => {
      if (isInternal(r)) lines.push(`http_access allow kiln_host_${i} kiln_port_${i}`);
    });
    lines.push('http_access deny kiln_special');
    grant.rules.forEach((r, i) => {
      if (!isInternal(r)) lines.push(`http_access allow kiln_host_${i} kiln_port_${i}`);
    });
  }
  lines.push('http_access deny all', 'icp_access deny all', 'htcp_access deny all', 'snmp_access deny all');
  return lines.join('\n') + '\n';
}

/** dnsmasq's arguments: answers squid on 127.0.0.1 from the engine's resolver, refusing private answers but for the internal names. */
export function dnsmasqArgs(grant: EgressGrant, upstream = '127.0.0.11'): string[] {
  const args = [
    '--keep-in-foreground',
    '--log-facility=-',
    '--log-queries',
    '--no-resolv',
    '--no-hosts',
    `--server=${upstream}`,
    '--listen-address=127.0.0.1',
    '--bind-interfaces',
    '--stop-dns-rebind',
    '--pid-file=',
    '--user=',
  ];
  for (const r of grant.internal) if (r.kind === 'name') args.push(`--rebind-domain-ok=/${r.host}/`);
  return args;
}
