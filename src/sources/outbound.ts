/**
 * The outbound-address policy: one rule for every connection the server itself opens (git clones,
 * commit statuses, anything later). A URL is hostile input, so:
 *
 * - schemes: https only, unless the operator allows http too (KILN_OUTBOUND_SCHEMES, formerly
 *   KILN_GIT_SCHEMES); no credentials in the URL;
 * - addresses: every special-purpose range of IANA's IPv4 and IPv6 registries is refused (the
 *   table of ipaddr.js, plus what it lacks: see EXTRA_V6), unless the operator allows private hosts
 *   (KILN_OUTBOUND_ALLOW_PRIVATE, formerly KILN_GIT_ALLOW_PRIVATE). IPv6 forms that carry an IPv4
 *   address (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo) are looked inside; of them only the
 *   NAT64 well-known prefix (64:ff9b::/96, which DNS64 hands out on IPv6-only hosts) is accepted,
 *   and only when the IPv4 address it carries is public;
 * - resolved once and pinned: a host name is resolved here, every answer must pass, and the
 *   connection goes to those very addresses (pinnedLookup for node:http(s), curloptResolve for git),
 *   so a second DNS answer cannot differ;
 * - redirects are never followed (the callers' business: git's http.followRedirects=false, the
 *   HTTP client in outbound-http.ts returns a 3xx as it is).
 */
import { promises as dns, type LookupAddress } from 'node:dns';
import * as net from 'node:net';
import * as ipaddr from 'ipaddr.js';

export interface OutboundPolicy {
  /** URL schemes accepted; only 'https' and 'http' are supported (others are ignored). */
  allowedSchemes: string[];
  /** true: skip the address check (the operator's own network is reachable). */
  allowPrivateHosts: boolean;
}

export const DEFAULT_OUTBOUND_POLICY: OutboundPolicy = Object.freeze({
  allowedSchemes: Object.freeze(['https']) as string[],
  allowPrivateHosts: false,
});

/** A refused URL or address (permanent: 4xx, fix the input) or a failed lookup (transient). */
export class OutboundError extends Error {
  override readonly name = 'OutboundError';
  constructor(
    message: string,
    readonly permanent: boolean,
  ) {
    super(message);
  }
}

const SUPPORTED_SCHEMES = ['https', 'http'];
const MAX_URL_LENGTH = 2048;

export function effectiveSchemes(policy: Pick<OutboundPolicy, 'allowedSchemes'>): string[] {
  return policy.allowedSchemes.map((s) => s.toLowerCase()).filter((s) => SUPPORTED_SCHEMES.includes(s));
}

export function schemeHint(policy: Pick<OutboundPolicy, 'allowedSchemes'>): string {
  const schemes = effectiveSchemes(policy);
  return schemes.length ? `allowed schemes: ${schemes.map((s) => `${s}://`).join(', ')}` : 'no URL scheme is allowed';
}

// ---------------------------------------------------------------------------------------------
// Addresses

type V6Range = [ipaddr.IPv6, number];
const v6 = (cidr: string): V6Range => ipaddr.IPv6.parseCIDR(cidr);

/**
 * What ipaddr.js 2.x calls 'unicast' but is not a public host. Checked in order after its own
 * table. (Its IPv4 table already holds every entry of IANA's IPv4 special-purpose registry:
 * outbound.spec.ts checks that.)
 */
const EXTRA_V6: [string, V6Range][] = [
  // RFC 4291 2.5.5.1, deprecated: ::a.b.c.d (the rest of ::/8 is caught by the rule below)
  ['ipv4Compatible', v6('::/96')],
  // RFC 9780: the dummy IPv6 prefix
  ['dummyPrefix', v6('100:0:0:1::/64')],
];
/** Every public IPv6 unicast address is in 2000::/3 (RFC 4291, IANA's IPv6 address space). */
const GLOBAL_UNICAST = v6('2000::/3');
const NAT64_WELL_KNOWN = v6('64:ff9b::/96');

export interface AddressVerdict {
  /** true: a public unicast address the server may connect to. */
  allowed: boolean;
  /** ipaddr.js's range name, or one of ours ('ipv4Compatible', 'notGlobalUnicast', ...); 'unicast' for a public one. */
  range: string;
  /** The IPv4 address an IPv6 form carries (mapped, compatible, NAT64, 6to4, Teredo client). */
  embedded?: string;
  /** The embedded address's own range, when there is one. */
  embeddedRange?: string;
}

/** Classifies an IP address (v4 or v6, brackets and a zone id tolerated). Not an IP: refused as 'invalid'. */
export function classifyAddress(address: string): AddressVerdict {
  const bare = address.replace(/^\[|\]$/g, '').replace(/%.*$/, ''); // a zone id does not change the range
  const family = net.isIP(bare);
  if (family === 0) return { allowed: false, range: 'invalid' };
  if (family === 4) {
    const range = ipaddr.IPv4.parse(bare).range();
    return { allowed: range === 'unicast', range };
  }
  // ipaddr.js 2.5 reads '::a.b.c.d' as '::ffff:a.b.c.d': hand it the WHATWG canonical form
  // ('::7f00:1'), which is the address a connection actually goes to.
  const addr = ipaddr.IPv6.parse(new URL(`http://[${bare}]/`).hostname.slice(1, -1));
  let range: string = addr.range();
  if (range === 'unicast') {
    range = EXTRA_V6.find(([, cidr]) => addr.match(cidr))?.[0] ?? (addr.match(GLOBAL_UNICAST) ? 'unicast' : 'notGlobalUnicast');
  }
  const inner = embeddedIPv4(addr, range);
  const verdict: AddressVerdict = { allowed: range === 'unicast', range };
  if (inner) {
    verdict.embedded = inner.toString();
    verdict.embeddedRange = inner.range();
    // NAT64's well-known prefix reaches exactly the IPv4 address it carries: judge that one.
    if (range === 'rfc6052' && addr.match(NAT64_WELL_KNOWN)) verdict.allowed = verdict.embeddedRange === 'unicast';
  }
  return verdict;
}

/** true for a public unicast address (see classifyAddress). */
export function isPublicAddress(address: string): boolean {
  return classifyAddress(address).allowed;
}

/** The IPv4 address inside an IPv6 form that carries one (RFC 4291, 6052, 6145, 3056, 4380). */
function embeddedIPv4(addr: ipaddr.IPv6, range: string): ipaddr.IPv4 | undefined {
  const p = addr.parts;
  const v4 = (hi: number, lo: number) => new ipaddr.IPv4([hi >> 8, hi & 0xff, lo >> 8, lo & 0xff]);
  switch (range) {
    case 'ipv4Mapped':
    case 'rfc6145':
    case 'ipv4Compatible':
      return v4(p[6], p[7]);
    case 'rfc6052':
      // 64:ff9b::/96 holds it in the last 32 bits; 64:ff9b:1::/48 in bits 48-63 and 72-87 (RFC 6052 2.2).
      return addr.match(NAT64_WELL_KNOWN) ? v4(p[6], p[7]) : new ipaddr.IPv4([p[3] >> 8, p[3] & 0xff, p[4] & 0xff, p[5] >> 8]);
    case '6to4':
      return v4(p[1], p[2]);
    case 'teredo':
      return v4(~p[6] & 0xffff, ~p[7] & 0xffff); // the client's address, obfuscated
    default:
      return undefined;
  }
}

/** ' (127.0.0.1: loopback)' style detail for a refusal. */
export function describeAddress(address: string, verdict = classifyAddress(address)): string {
  const inner = verdict.embedded ? `, which carries ${verdict.embedded} (${verdict.embeddedRange})` : '';
  return `${address}: ${verdict.range}${inner}`;
}

// ---------------------------------------------------------------------------------------------
// Hosts

export type Resolver = (host: string) => Promise<string[]>;

/** Every address the host name resolves to (A and AAAA, as the system resolver answers). */
export const systemResolver: Resolver = async (host) => {
  const found = await dns.lookup(host, { all: true, verbatim: true });
  return found.map((a) => a.address);
};

/**
 * Checks a URL's host against the policy and resolves it once. Returns the addresses to pin the
 * connection to: [] when no pin is needed (an IP literal, or private hosts allowed: then nothing
 * is checked). Throws OutboundError naming the refused address and its range.
 */
export async function resolveOutbound(hostname: string, policy: OutboundPolicy, resolve: Resolver = systemResolver): Promise<string[]> {
  if (policy.allowPrivateHosts) return [];
  const host = hostname.replace(/^\[|\]$/g, '');
  const refuse = (detail: string) =>
    new OutboundError(`the host '${hostname}' is a private or local address (${detail}); only public hosts are accepted`, true);
  if (net.isIP(host)) {
    const verdict = classifyAddress(host);
    if (!verdict.allowed) throw refuse(describeAddress(host, verdict));
    return [];
  }
  const lower = host.toLowerCase().replace(/\.$/, '');
  if (lower === 'localhost' || lower.endsWith('.localhost')) throw refuse('localhost');
  let addresses: string[];
  try {
    addresses = await resolve(host);
    if (addresses.length === 0) throw new Error('no addresses');
  } catch (e) {
    throw new OutboundError(
      `could not resolve the host '${host}' (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); check the host name or try again later`,
      false,
    );
  }
  for (const a of addresses) {
    const verdict = classifyAddress(a);
    if (!verdict.allowed) throw refuse(describeAddress(a, verdict));
  }
  return addresses;
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * A `lookup` for net/http/https that answers with the addresses already checked, never asking DNS
 * again (so the connection goes where the check looked). TLS still verifies the URL's host name.
 */
export function pinnedLookup(addresses: string[]): net.LookupFunction {
  const entries: LookupAddress[] = addresses.map((address) => ({ address, family: net.isIPv6(address) ? 6 : 4 }));
  const lookup = (_host: string, options: { all?: boolean; family?: number | string } | number, callback: LookupCallback): void => {
    const opts = typeof options === 'number' ? { family: options } : options;
    const family = opts.family === 'IPv4' ? 4 : opts.family === 'IPv6' ? 6 : Number(opts.family ?? 0);
    const usable = family === 4 || family === 6 ? entries.filter((e) => e.family === family) : entries;
    if (usable.length === 0) {
      const err: NodeJS.ErrnoException = new Error('no checked address of the asked family');
      err.code = 'ENOTFOUND';
      process.nextTick(callback, err, opts.all ? [] : '', 0);
      return;
    }
    if (opts.all) process.nextTick(callback, null, usable);
    else process.nextTick(callback, null, usable[0].address, usable[0].family);
  };
  return lookup as unknown as net.LookupFunction;
}

// ---------------------------------------------------------------------------------------------
// HTTP URLs (commit statuses and other API calls; git URLs have their own checks in git-source.ts)

/**
 * Checks an http(s) base URL without touching the network: scheme allowed, no credentials, a
 * host, no query or fragment (they would swallow the path Kiln appends). `what` names the field
 * in messages. Returns the parsed URL.
 */
export function parseHttpUrl(raw: string, policy: OutboundPolicy, what: string): URL {
  if (typeof raw !== 'string' || raw.length === 0) throw new OutboundError(`${what} is empty; ${schemeHint(policy)}`, true);
  if (raw.length > MAX_URL_LENGTH) throw new OutboundError(`${what} is ${raw.length} characters long; the limit is ${MAX_URL_LENGTH}`, true);
  if (/[\s\x00-\x1f\x7f]/.test(raw)) throw new OutboundError(`${what} contains whitespace or control characters; remove them or percent-encode them`, true);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new OutboundError(`${what} is not a valid URL; ${schemeHint(policy)}`, true);
  }
  const scheme = url.protocol.replace(/:$/, '');
  if (!effectiveSchemes(policy).includes(scheme)) throw new OutboundError(`${what}: the URL scheme '${scheme}' is not accepted; ${schemeHint(policy)}`, true);
  if (url.username || url.password)
    throw new OutboundError(`${what}: credentials in the URL are not accepted; remove user:password@ (give a token instead)`, true);
  if (!url.hostname) throw new OutboundError(`${what} has no host`, true);
  if (url.search || url.hash || raw.includes('?') || raw.includes('#')) {
    throw new OutboundError(`${what} must be a base URL without '?' or '#' (Kiln appends the API path to it)`, true);
  }
  return url;
}

/** parseHttpUrl, then the address check (DNS for a host name). */
export async function checkHttpUrl(
  raw: string,
  policy: OutboundPolicy,
  what: string,
  resolve: Resolver = systemResolver,
): Promise<{ url: URL; pinned: string[] }> {
  const url = parseHttpUrl(raw, policy, what);
  try {
    return { url, pinned: await resolveOutbound(url.hostname, policy, resolve) };
  } catch (e) {
    if (e instanceof OutboundError) throw new OutboundError(`${what}: ${e.message}`, e.permanent);
    throw e;
  }
}
