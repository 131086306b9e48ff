import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { TEST_ADMIN_TOKEN } from '../helpers';

export interface RunView {
  id: string;
  status: string;
  conclusion: string | null;
  jobs: {
    id: string;
    key: string;
    environment: string;
    status: string;
    conclusion: string | null;
    error: string | null;
    steps: { index: number; name: string; outcome: string | null; conclusion: string | null; exitCode: number | null; reason: string | null }[];
  }[];
  artifacts: { name: string; url: string; sizeBytes: number }[];
}

export class Client {
  constructor(
    readonly url: string,
    readonly token: string = TEST_ADMIN_TOKEN,
  ) {}

  get auth(): Record<string, string> {
    return { authorization: `Bearer ${this.token}` };
  }

  /** fetch with this client's token. */
  fetch(path: string, init: RequestInit = {}): Promise<Response> {
    return fetch(`${this.url}${path}`, { ...init, headers: { ...this.auth, ...(init.headers as Record<string, string> | undefined) } });
  }

  async submitTarball(tarball: Buffer, fields: Record<string, string> = {}): Promise<Response> {
    const form = new FormData();
    form.append('source', new Blob([tarball]), 'project.tar.gz');
    for (const [k, v] of Object.entries(fields)) form.append(k, v);
    return this.fetch('/api/v1/runs', { method: 'POST', body: form });
  }

  async submitJson(body: unknown): Promise<Response> {
    return this.fetch('/api/v1/runs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  }

  async accepted(res: Response | Promise<Response>): Promise<RunView> {
    const r = await res;
    const body = await r.json();
    assert.equal(r.status, 201, JSON.stringify(body));
    return body as RunView;
  }

  async run(id: string): Promise<RunView> {
    const res = await this.fetch(`/api/v1/runs/${id}`, { signal: AbortSignal.timeout(10_000) });
    assert.equal(res.status, 200);
    return (await res.json()) as RunView;
  }

  async waitFor(id: string, timeoutMs = 240_000, until: (r: RunView) => boolean = (r) => r.status === 'completed'): Promise<RunView> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await this.run(id);
      if (until(r)) return r;
      if (Date.now() > deadline) throw new Error(`run ${id} did not reach the expected state in ${timeoutMs} ms: ${JSON.stringify(r)}`);
      await new Promise((res) => setTimeout(res, 300));
    }
  }

  async logs(id: string, jobId?: string): Promise<string> {
    const res = await this.fetch(`/api/v1/runs/${id}/logs${jobId ? `?job=${jobId}` : ''}`);
    assert.equal(res.status, 200);
    return res.text();
  }
}

/**
 * Containers of a job (must be none once the job is over, allowing 10 s for removal): named kiln-job-<id> (a warm sandbox is
 * renamed when a job takes it), or labelled with its id. Async: see inImage.
 */
export async function containersOf(jobId: string): Promise<string[]> {
  // A finished job's sandbox is removed while its outcome is recorded: allow its removal 10 s.
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ids = new Set<string>();
    for (const filter of [`name=kiln-job-${jobId}`, `label=kiln.job=${jobId}`]) {
      const { stdout } = await promisify(execFile)('docker', ['ps', '-a', '-q', '--filter', filter], { encoding: 'utf8' });
      for (const id of stdout.split('\n').filter(Boolean)) ids.add(id);
    }
    if (!ids.size || Date.now() > deadline) return [...ids];
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Follows an SSE log stream; collects line texts until the `end` event. */
export function followLines(client: Client, path: string) {
  const lines: string[] = [];
  const waiters: { text: string; resolve: () => void }[] = [];
  const all = (async () => {
    const res = await client.fetch(path);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
    const decoder = new TextDecoder();
    let buf = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true });
      let i: number;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const event = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (event.startsWith('event: end')) return lines;
        const data = event.split('\n').find((l) => l.startsWith('data: '));
        if (!data) continue;
        const rec = JSON.parse(data.slice(6)) as { l: string };
        lines.push(rec.l);
        for (const w of waiters.filter((x) => rec.l === x.text)) w.resolve();
      }
    }
    return lines;
  })();
  return {
    all,
    waitFor: (text: string, timeoutMs: number) =>
      new Promise<void>((resolve, reject) => {
        if (lines.includes(text)) return resolve();
        waiters.push({ text, resolve });
        setTimeout(() => reject(new Error(`'${text}' did not arrive in ${timeoutMs} ms; got ${lines.join(' | ')}`)), timeoutMs).unref();
      }),
  };
}
