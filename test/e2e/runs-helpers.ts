import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';

export interface RunView {
  id: string;
  status: string;
  conclusion: string | null;
  jobs: { id: string; key: string; environment: string; status: string; conclusion: string | null; error: string | null; steps: { index: number; name: string; outcome: string | null; conclusion: string | null; exitCode: number | null; reason: string | null }[] }[];
  artifacts: { name: string; url: string; sizeBytes: number }[];
}

export class Client {
  constructor(readonly url: string) {}

  async submitTarball(tarball: Buffer, fields: Record<string, string> = {}): Promise<Response> {
    const form = new FormData();
    form.append('source', new Blob([tarball]), 'project.tar.gz');
    for (const [k, v] of Object.entries(fields)) form.append(k, v);
    return fetch(`${this.url}/api/v1/runs`, { method: 'POST', body: form });
  }

  async submitJson(body: unknown): Promise<Response> {
    return fetch(`${this.url}/api/v1/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  }

  async accepted(res: Response | Promise<Response>): Promise<RunView> {
    const r = await res;
    const body = await r.json();
    assert.equal(r.status, 201, JSON.stringify(body));
    return body as RunView;
  }

  async run(id: string): Promise<RunView> {
    const res = await fetch(`${this.url}/api/v1/runs/${id}`, { signal: AbortSignal.timeout(10_000) });
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
    const res = await fetch(`${this.url}/api/v1/runs/${id}/logs${jobId ? `?job=${jobId}` : ''}`);
    assert.equal(res.status, 200);
    return res.text();
  }
}

/** Containers still carrying a job's label (must be none once the job is over). */
export function containersOf(jobId: string): string[] {
  const out = execFileSync('docker', ['ps', '-a', '-q', '--filter', `label=kiln.job=${jobId}`], { encoding: 'utf8' });
  return out.split('\n').filter(Boolean);
}
