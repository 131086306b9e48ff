import type { CliConfig } from './config';

/** Exit codes of every kiln command. */
export const EXIT = { ok: 0, failed: 1, usage: 2, unreachable: 3 } as const;

/** An error that ends the command with an exit code and a message (never a stack trace). */
export class CliError extends Error {
  constructor(message: string, readonly code: number) {
    super(message);
  }
}

/** The Kiln API over fetch: server errors become the server's message; no server becomes exit 3. */
export class KilnClient {
  constructor(readonly config: CliConfig) {}

  headers(extra: Record<string, string> = {}): Record<string, string> {
    return { ...(this.config.token ? { authorization: `Bearer ${this.config.token}` } : {}), ...extra };
  }

  async raw(path: string, init: RequestInit = {}): Promise<Response> {
    let res: Response;
    try {
      res = await fetch(`${this.config.url}${path}`, { ...init, headers: this.headers(init.headers as Record<string, string> | undefined) });
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      throw new CliError(`kiln: cannot reach Kiln at ${this.config.url}: ${cause?.code ?? cause?.message ?? (e as Error).message} (is it running? set KILN_URL, or start it with npm run up)`, EXIT.unreachable);
    }
    if (res.ok) return res;
    let message = `${res.status} ${res.statusText}`;
    try {
      const body = (await res.json()) as { message?: unknown };
      if (body.message) message = Array.isArray(body.message) ? body.message.join('; ') : String(body.message);
    } catch { /* not JSON */ }
    if (res.status === 401) message += this.config.token ? ` (token from ${this.config.tokenSource})` : ' (no token: set KILN_TOKEN or run kiln login)';
    throw new CliError(`kiln: ${message}`, res.status >= 500 ? EXIT.unreachable : EXIT.usage);
  }

  async json<T>(path: string, init: RequestInit = {}): Promise<T> {
    return (await (await this.raw(path, init)).json()) as T;
  }
}
