import { Inject, Injectable, Logger } from '@nestjs/common';
import { AuthService } from '../auth/auth.service';
import { KILN_CONFIG, KilnConfig } from '../config/config';
import { maskSecrets } from '../common/secret-mask';
import type { Run } from '../runs/runs.types';
import { outboundRequest } from '../sources/outbound-http';
import { OutboundError, type Resolver, systemResolver } from '../sources/outbound';
import { RepositoriesRepository } from './repositories.repository';

export type CommitState = 'pending' | 'success' | 'failure' | 'error';

const DELAYS_MS = [500, 1000, 2000, 4000];

/**
 * Commit statuses back to the forge, in the shape of GitHub's statuses API
 * (POST {base}/repos/{owner}/{repo}/statuses/{sha}). Optional per repository; sent under the
 * outbound-address policy (sources/outbound.ts); retried with backoff on 5xx and network errors;
 * never awaited by the run it reports on.
 */
@Injectable()
export class StatusReporter {
  private readonly log = new Logger('Statuses');
  /** DNS for the address check (a test may replace it). */
  resolve: Resolver = systemResolver;

  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly repos: RepositoriesRepository,
    private readonly auth: AuthService,
  ) {}

  /** Per run, the statuses still being sent: a later one waits, so a retried 'pending' never lands after 'success'. */
  private readonly inFlight = new Map<string, Promise<unknown>>();

  /** Fire and forget; statuses of one run are sent in the order they were reported. */
  report(run: Run, state: CommitState, description: string): void {
    const previous = this.inFlight.get(run.id) ?? Promise.resolve();
    const next = previous.then(() => this.send(run, state, description)).catch((e: Error) => this.log.warn(`status for run ${run.id}: ${e.message}`));
    this.inFlight.set(run.id, next);
    void next.then(() => {
      if (this.inFlight.get(run.id) === next) this.inFlight.delete(run.id);
    });
  }

  /**
   * One status, retried with backoff on 5xx and network errors only. Each attempt goes through the
   * outbound policy again (DNS can change since registration): a refused URL or address is not
   * retried, and a redirect is reported, never followed.
   */
  async send(run: Run, state: CommitState, description: string): Promise<boolean> {
    if (!run.repositoryId) return false;
    const repo = await this.repos.byId(run.repositoryId);
    if (!repo?.statusUrl || !run.context.sha) return false;
    const url = statusesUrl(repo.statusUrl, repo.fullName, run.context.sha);
    const body = JSON.stringify({
      // Masked with the run owner's secrets before it leaves (and before the cut, which could split one).
      state,
      description: maskSecrets(description, await this.auth.secretsOf(run.ownerId)).slice(0, 140),
      context: `kiln/${run.workflowName}`,
      target_url: `${this.config.publicUrl}/api/v1/runs/${run.id}`,
    });
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/vnd.github+json', 'user-agent': 'kiln' };
    if (repo.statusToken) headers.authorization = `Bearer ${this.auth.unseal(repo.statusToken)}`;
    for (let attempt = 0; ; attempt++) {
      let status = 0;
      try {
        const res = await outboundRequest(url, { method: 'POST', headers, body, timeoutMs: 10_000 }, this.config.outbound, this.resolve);
        status = res.status;
        if (status >= 200 && status < 300) return true;
        if (status >= 300 && status < 400) {
          this.log.warn(
            `status ${state} for ${run.id}: the forge answered ${status} (to ${res.location ?? 'nowhere'}); redirects are not followed: set statusUrl to the final API base URL`,
          );
          return false;
        }
        if (status < 500) {
          this.log.warn(`status ${state} for ${run.id}: the forge answered ${status}; not retried`);
          return false;
        }
      } catch (e) {
        if (e instanceof OutboundError && e.permanent) {
          this.log.warn(`status ${state} for ${run.id}: refused: ${e.message}`);
          return false;
        }
        status = -1;
        this.log.debug(`status ${state} for ${run.id}: ${(e as Error).message}`);
      }
      if (attempt >= DELAYS_MS.length) {
        this.log.warn(`status ${state} for ${run.id}: gave up after ${attempt + 1} tries (last: ${status})`);
        return false;
      }
      await new Promise((r) => setTimeout(r, DELAYS_MS[attempt]));
    }
  }
}

/** {base}/repos/{owner}/{name}/statuses/{sha}, the base's own path kept (e.g. Gitea's /api/v1). */
export function statusesUrl(base: string, fullName: string, sha: string): string {
  const url = new URL(base);
  url.search = '';
  url.hash = '';
  const [owner, name] = fullName.split('/');
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/repos/${encodeURIComponent(owner)}/${encodeURIComponent(name ?? '')}/statuses/${encodeURIComponent(sha)}`;
  return url.href;
}
