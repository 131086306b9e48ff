import { Inject, Injectable, Logger } from '@nestjs/common';
import { AuthService } from '../auth/auth.service';
import { KILN_CONFIG, KilnConfig } from '../config/config';
import { maskSecrets } from '../common/secret-mask';
import type { Run } from '../runs/runs.types';
import { RepositoriesRepository } from './repositories.repository';

export type CommitState = 'pending' | 'success' | 'failure' | 'error';

const DELAYS_MS = [500, 1000, 2000, 4000];

/**
 * Commit statuses back to the forge, in the shape of GitHub's statuses API
 * (POST {base}/repos/{owner}/{repo}/statuses/{sha}). Optional per repository; retried with backoff on
 * 5xx and network errors; never awaited by the run it reports on.
 */
@Injectable()
export class StatusReporter {
  private readonly log = new Logger('Statuses');

  constructor(@Inject(KILN_CONFIG) private readonly config: KilnConfig, private readonly repos: RepositoriesRepository, private readonly auth: AuthService) {}

  /** Fire and forget. */
  report(run: Run, state: CommitState, description: string): void {
    void this.send(run, state, description).catch((e: Error) => this.log.warn(`status for run ${run.id}: ${e.message}`));
  }

  async send(run: Run, state: CommitState, description: string): Promise<boolean> {
    if (!run.repositoryId) return false;
    const repo = await this.repos.byId(run.repositoryId);
    if (!repo?.statusUrl || !run.context.sha) return false;
    const url = `${repo.statusUrl.replace(/\/+$/, '')}/repos/${repo.fullName}/statuses/${run.context.sha}`;
    const body = JSON.stringify({
      // Masked with the run owner's secrets before it leaves (and before the cut, which could split one).
      state, description: maskSecrets(description, await this.auth.secretsOf(run.ownerId)).slice(0, 140), context: `kiln/${run.workflowName}`,
      target_url: `${this.config.publicUrl}/api/v1/runs/${run.id}`,
    });
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/vnd.github+json', 'user-agent': 'kiln' };
    if (repo.statusToken) headers.authorization = `Bearer ${this.auth.unseal(repo.statusToken)}`;
    for (let attempt = 0; ; attempt++) {
      let status = 0;
      try {
        const res = await fetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(10_000) });
        status = res.status;
        if (res.ok) return true;
        if (status < 500) {
          this.log.warn(`status ${state} for ${run.id}: the forge answered ${status}; not retried`);
          return false;
        }
      } catch (e) {
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
