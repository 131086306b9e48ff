import type { Agent, IncomingMessage, RequestOptions } from 'node:http';
import type { CliConfig } from './config';

/** Exit codes of every kiln command. */
export const EXIT = { ok: 0, failed: 1, usage: 2, unreachable: 3 } as const;

/** An error that ends the command with an exit code and a message (never a stack trace). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message);
  }
}

export interface ClientRequest {
  method?: string;
  headers?: Record<string, string>;
  /** A whole body, or one streamed (a multipart upload) */
  body?: string | Buffer | AsyncIterable<Buffer>;
  signal?: AbortSignal;
}

/** What the commands need of an answer: its status, its body as a stream or whole. */
export class ClientResponse {
  constructor(private readonly res: IncomingMessage) {}

  get status(): number {
    return this.res.statusCode ?? 0;
  }

  get statusText(): string {
    return this.res.statusMessage ?? '';
  }

  get ok(): boolean {
    return this.status >= 200 && this.status < 300;
  }

  /** The body as it arrives. */
  get body(): AsyncIterable<Buffer> {
    return this.res;
  }

  async arrayBuffer(): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const c of this.res) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }

  async text(): Promise<string> {
    return (await this.arrayBuffer()).toString('utf8');
  }

  async json(): Promise<unknown> {
    return JSON.parse(await this.text());
  }
}

/**
 * The Kiln API over node:http (not fetch: loading fetch's implementation costs a short command ~60 ms
 * here): server errors become the server's message; no server becomes exit 3.
 */
export class KilnClient {
  private agent: Agent | undefined;

  constructor(readonly config: CliConfig) {}

  headers(extra: Record<string, string> = {}): Record<string, string> {
    return { ...(this.config.token ? { authorization: `Bearer ${this.config.token}` } : {}), ...extra };
  }

  async raw(path: string, init: ClientRequest = {}): Promise<ClientResponse> {
    let res: ClientResponse;
    try {
      res = new ClientResponse(await this.send(new URL(`${this.config.url}${path}`), init));
    } catch (e) {
      if ((e as Error).name === 'AbortError') throw e;
      const err = e as NodeJS.ErrnoException;
      throw new CliError(
        `kiln: cannot reach Kiln at ${this.config.url}: ${err.code ?? err.message} (is it running? set KILN_URL, or start it with npm run up)`,
        EXIT.unreachable,
      );
    }
    if (res.ok) return res;
    let message = `${res.status} ${res.statusText}`;
    try {
      const body = (await res.json()) as { message?: unknown };
      if (body.message) message = Array.isArray(body.message) ? body.message.join('; ') : String(body.message);
    } catch {
      /* not JSON */
    }
    if (res.status === 401) message += this.config.token ? ` (token from ${this.config.tokenSource})` : ' (no token: set KILN_TOKEN or run kiln login)';
    throw new CliError(`kiln: ${message}`, res.status >= 500 ? EXIT.unreachable : EXIT.usage);
  }

  async json<T>(path: string, init: ClientRequest = {}): Promise<T> {
    return (await (await this.raw(path, init)).json()) as T;
  }

  private async send(url: URL, init: ClientRequest): Promise<IncomingMessage> {
    // https only when asked for: its module is not loaded otherwise.
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error(`${url.protocol} is not http: or https:`);
    const mod: Pick<typeof import('node:http'), 'request' | 'Agent'> = url.protocol === 'https:' ? await import('node:https') : await import('node:http');
    // One connection for the command's requests; idle, it does not keep the process alive.
    this.agent ??= new mod.Agent({ keepAlive: true });
    const headers = this.headers(init.headers);
    const body = init.body;
    if (typeof body === 'string' || Buffer.isBuffer(body)) headers['content-length'] ??= String(Buffer.byteLength(body));
    const options: RequestOptions = { method: init.method ?? 'GET', headers, agent: this.agent, signal: init.signal };
    return new Promise<IncomingMessage>((resolve, reject) => {
      const req = mod.request(url, options, resolve);
      req.on('error', reject);
      if (body === undefined) req.end();
      else if (typeof body === 'string' || Buffer.isBuffer(body)) req.end(body);
      else void pump(body, req).catch((e: Error) => req.destroy(e));
    });
  }
}

/** Writes a streamed body, waiting for the socket to drain as it goes. */
async function pump(body: AsyncIterable<Buffer>, req: import('node:http').ClientRequest): Promise<void> {
  for await (const chunk of body) {
    if (!req.write(chunk)) await new Promise<void>((r) => req.once('drain', r));
  }
  req.end();
}
