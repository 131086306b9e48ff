/**
 * One HTTP request to a URL a user gave (a forge's API), under the outbound-address policy:
 * the address is checked now (DNS can change between registration and sending), the connection
 * is pinned to the checked addresses, TLS verifies the URL's host name, no redirect is followed
 * (a 3xx comes back as it is), no connection is reused, and the whole exchange has a deadline.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { checkHttpUrl, OutboundError, type OutboundPolicy, pinnedLookup, type Resolver, systemResolver } from './outbound';

export interface OutboundRequest {
  method: 'POST' | 'GET' | 'PUT' | 'PATCH';
  headers: Record<string, string>;
  body?: string;
  timeoutMs: number;
}

export interface OutboundResponse {
  status: number;
  /** The Location header of a 3xx (reported, never followed). */
  location?: string;
}

/** How much of an answer's body is read before the connection is dropped (the body is not used). */
const MAX_ANSWER_BYTES = 64 * 1024;

/**
 * Sends one request to url (the full URL: base already checked at registration, path appended).
 * Throws OutboundError: permanent for a refused URL or address, transient for network failures.
 */
export async function outboundRequest(
  url: string,
  req: OutboundRequest,
  policy: OutboundPolicy,
  resolve: Resolver = systemResolver,
): Promise<OutboundResponse> {
  const checked = await checkHttpUrl(url.replace(/[?#].*$/, ''), policy, 'the URL', resolve);
  const target = new URL(url);
  const client = target.protocol === 'https:' ? https : http;
  const options: https.RequestOptions = {
    method: req.method,
    protocol: target.protocol,
    hostname: target.hostname.replace(/^\[|\]$/g, ''),
    port: target.port || undefined,
    path: `${target.pathname}${target.search}`,
    headers: { ...req.headers, host: target.host, ...(req.body !== undefined ? { 'content-length': String(Buffer.byteLength(req.body)) } : {}) },
    agent: false,
    ...(checked.pinned.length ? { lookup: pinnedLookup(checked.pinned) } : {}),
  };
  return new Promise<OutboundResponse>((resolvePromise, reject) => {
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn();
    };
    const request = client.request(options, (res) => {
      let read = 0;
      res.on('data', (chunk: Buffer) => {
        read += chunk.length;
        if (read > MAX_ANSWER_BYTES) res.destroy();
      });
      res.on('error', () => undefined);
      const location = typeof res.headers.location === 'string' ? res.headers.location : undefined;
      finish(() => resolvePromise({ status: res.statusCode ?? 0, ...(location ? { location } : {}) }));
      res.resume();
    });
    const timer = setTimeout(() => {
      request.destroy();
      finish(() => reject(new OutboundError(`no answer from ${target.host} within ${req.timeoutMs / 1000} s`, false)));
    }, req.timeoutMs);
    request.on('error', (e: NodeJS.ErrnoException) =>
      finish(() => reject(new OutboundError(`could not reach ${target.host} (${e.code ?? e.message})`, false))),
    );
    request.end(req.body);
  });
}
