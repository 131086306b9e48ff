import { randomBytes } from 'node:crypto';
import {
  BadRequestException,
  ForbiddenException,
  HttpException,
  Inject,
  Injectable,
  Logger,
  NotFoundException,
  UnauthorizedException,
  UnsupportedMediaTypeException,
} from '@nestjs/common';
import { AuthService } from '../auth/auth.service';
import { newId } from '../common/ids';
import type { Principal } from '../auth/auth.types';
import { KILN_CONFIG, KilnConfig } from '../config/config';
import { JobQueue } from '../queue/job-queue';
import { AdmissionService } from '../runs/admission';
import { RunsService } from '../runs/runs.service';
import { GitSourceError } from '../sources/git-policy';
import { SourceIntake } from '../sources/source-intake';
import { checkHttpUrl, OutboundError } from '../sources/outbound';
import { interpolate } from '../workflow/expressions';
import { RegisteredRepository, RepositoriesRepository } from './repositories.repository';
import { fullNameProblem, labelMapProblem, MAX_FULL_NAME, signatureMatches } from './registration';
import { StatusReporter } from './status-reporter';
import { eventPayload } from './event-payload';
import { matchesList, pushTrigger } from '../workflow/triggers';

export interface WebhookAnswer {
  status: number;
  body: Record<string, unknown>;
}

interface PushPayload {
  ref?: string;
  after?: string;
  deleted?: boolean;
  repository?: { full_name?: string };
  commits?: { added?: string[]; modified?: string[]; removed?: string[] }[];
  head_commit?: { added?: string[]; modified?: string[]; removed?: string[] } | null;
}

const ZERO_SHA = /^0{40}$/;
/** One answer for an unknown repository and a bad signature, so an unsigned request learns nothing. */
const UNAUTHORIZED = 'the signature (X-Hub-Signature-256) is missing or does not match the webhook secret of a repository registered in Kiln under this name';

export interface RegisterRepositoryBody {
  fullName: string;
  cloneUrl: string;
  secret: string;
  owner?: string;
  branches?: string[];
  labelMap?: Record<string, string>;
  statusUrl?: string;
  statusToken?: string;
}

/**
 * Push webhooks (GitHub, and Gitea/Forgejo which send the same shape): checked and recorded at once,
 * built in the worker. A delivery id is processed once; the clone is of the registered URL at the
 * pushed sha, never of anything the payload names.
 */
@Injectable()
export class WebhooksService {
  private readonly log = new Logger('Webhooks');
  /** Checked against when the named repository is unknown: the same work as for a known one. */
  private readonly decoySecret: string;

  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly repos: RepositoriesRepository,
    private readonly auth: AuthService,
    private readonly queue: JobQueue,
    private readonly runs: RunsService,
    private readonly statuses: StatusReporter,
    private readonly admission: AdmissionService,
    private readonly intake: SourceIntake,
  ) {
    this.decoySecret = auth.seal(randomBytes(32).toString('base64url'));
  }

  /**
   * Registers a repository for its owner: the caller, or (admins only) the user named in `owner`.
   * This is the only path that writes a repository's statusUrl: a user can set it only on a
   * repository they own. The status URL is checked against the outbound policy here (scheme,
   * address) and again, with a fresh DNS answer, each time a status is sent.
   */
  async register(by: Principal, body: RegisterRepositoryBody) {
    const nameProblem = fullNameProblem(body.fullName) ?? labelMapProblem(body.labelMap);
    if (nameProblem) throw new BadRequestException(nameProblem);
    let owner = by.user;
    if (body.owner && body.owner !== by.user.id) {
      this.auth.assertAdmin(by);
      owner = await this.auth.requireUser(body.owner);
    }
    const cap = this.auth.quota(owner).repositories;
    const refuseCap = () =>
      new ForbiddenException(
        `quota: ${owner.id === by.user.id ? 'you have' : `user ${owner.id} has`} ${cap} registered repositories, the most allowed (KILN_QUOTA_REPOSITORIES, or the user's quota.repositories); remove one with DELETE /api/v1/repositories/{id} first`,
      );
    if ((await this.repos.countOwned(owner.id)) >= cap) throw refuseCap();
    if (await this.repos.byName(body.fullName)) throw new HttpException(`${body.fullName} is registered already`, 409);
    try {
      await this.intake.checkRepoUrl(body.cloneUrl);
      if (body.statusUrl !== undefined) await checkHttpUrl(body.statusUrl, this.config.outbound, 'statusUrl');
    } catch (e) {
      if (e instanceof GitSourceError) throw new BadRequestException(`cloneUrl: ${e.message}`);
      if (e instanceof OutboundError) throw new BadRequestException(e.message);
      throw e;
    }
    const repo: RegisteredRepository = {
      id: newId(),
      ownerId: owner.id,
      fullName: body.fullName,
      cloneUrl: body.cloneUrl,
      secret: this.auth.seal(body.secret),
      branches: body.branches?.length ? body.branches : null,
      labelMap: body.labelMap ?? {},
      statusUrl: body.statusUrl ?? null,
      statusToken: body.statusToken ? this.auth.seal(body.statusToken) : null,
      createdAt: new Date().toISOString(),
    };
    if (!(await this.repos.create(repo, cap))) throw refuseCap();
    return this.view(repo);
  }

  view(r: RegisteredRepository) {
    return {
      id: r.id,
      fullName: r.fullName,
      cloneUrl: r.cloneUrl,
      owner: r.ownerId,
      branches: r.branches,
      labelMap: r.labelMap,
      statusUrl: r.statusUrl,
      statuses: Boolean(r.statusUrl),
      createdAt: r.createdAt,
      webhook: `${this.config.publicUrl}/api/v1/webhooks/github`,
    };
  }

  async list(by: Principal) {
    return (await this.repos.list(by.user.isAdmin ? null : by.user.id)).map((r) => this.view(r));
  }

  async requireOwned(id: string, by: Principal): Promise<RegisteredRepository> {
    const r = await this.repos.byId(id);
    if (!r || (r.ownerId !== by.user.id && !by.user.isAdmin)) throw new NotFoundException(`no repository ${id}`);
    return r;
  }

  /** The HTTP side: answers at once; nothing slow happens here. */
  async receive(headers: Record<string, string | string[] | undefined>, rawBody: Buffer | undefined, contentType: string | undefined): Promise<WebhookAnswer> {
    const h = (name: string) => {
      const v = headers[name];
      return Array.isArray(v) ? v[0] : v;
    };
    const event = h('x-github-event') ?? h('x-gitea-event') ?? h('x-forgejo-event');
    const delivery = h('x-github-delivery') ?? h('x-gitea-delivery') ?? h('x-forgejo-delivery');
    if (!event || !delivery)
      throw new BadRequestException('not a webhook delivery: X-GitHub-Event and X-GitHub-Delivery (or the Gitea/Forgejo ones) are required');
    if (!/^[A-Za-z0-9_.:-]{1,100}$/.test(delivery)) throw new BadRequestException('the delivery id is not valid');
    if (!contentType?.startsWith('application/json')) throw new UnsupportedMediaTypeException('set the webhook content type to application/json');
    if (!rawBody?.length) throw new BadRequestException('the delivery has no body');
    let payload: PushPayload & { zen?: string };
    try {
      payload = JSON.parse(rawBody.toString('utf8'));
    } catch {
      throw new BadRequestException('the body is not JSON');
    }
    const fullName = payload?.repository?.full_name;
    if (typeof fullName !== 'string' || !fullName) throw new BadRequestException('the payload names no repository (repository.full_name)');
    // The signature first: the repository is only used for its secret until the HMAC over the raw
    // bytes matches. An unknown name is checked against a decoy secret and answers the same 401.
    const repo = fullName.length <= MAX_FULL_NAME ? await this.repos.byName(fullName) : null;
    const signature =
      h('x-hub-signature-256') ??
      (h('x-gitea-signature') ? `sha256=${h('x-gitea-signature')}` : h('x-forgejo-signature') ? `sha256=${h('x-forgejo-signature')}` : undefined);
    const matches = signatureMatches(this.auth.unseal(repo?.secret ?? this.decoySecret), rawBody, signature);
    if (!repo || !matches) throw new UnauthorizedException(UNAUTHORIZED);
    if (event === 'ping') return { status: 200, body: { ok: true, pong: true, repository: fullName } };
    if (event !== 'push') return { status: 202, body: { ignored: true, reason: `the '${event}' event does not start builds; only push does` } };
    const key = newId();
    const fresh = await this.repos.recordDelivery({
      key,
      id: delivery,
      repositoryId: repo.id,
      event,
      payload,
      state: 'queued',
      detail: null,
      runIds: [],
      receivedAt: new Date().toISOString(),
    });
    if (!fresh) {
      const seen = await this.repos.deliveryById(repo.id, delivery);
      return { status: 200, body: { duplicate: true, reason: `delivery ${delivery} was received before; nothing new is queued`, runs: seen?.runIds ?? [] } };
    }
    const ignore = this.ignoreReason(payload, repo);
    if (ignore) {
      await this.repos.finishDelivery(key, 'ignored', ignore, []);
      return { status: 202, body: { ignored: true, reason: ignore, delivery } };
    }
    await this.queue.enqueueWebhook({ deliveryId: key });
    return { status: 202, body: { queued: true, delivery, sha: payload.after, ref: payload.ref } };
  }

  private ignoreReason(p: PushPayload, repo: RegisteredRepository): string | null {
    if (p.deleted || (p.after && ZERO_SHA.test(p.after))) return 'a branch or tag deletion builds nothing';
    if (!p.after || !/^[0-9a-f]{40}$/.test(p.after)) return 'the payload has no pushed sha (after)';
    if (!p.ref?.startsWith('refs/')) return 'the payload has no ref';
    if (repo.branches && p.ref.startsWith('refs/heads/')) {
      const branch = p.ref.slice('refs/heads/'.length);
      if (!matchesList(branch, repo.branches)) return `branch ${branch} is not one the repository builds (${repo.branches.join(', ')})`;
    }
    return null;
  }

  /** The worker side: clone at the pushed sha, run every workflow whose `on: push` matches. deliveryId: the row key the queue carries. */
  async build(deliveryId: string): Promise<void> {
    const d = await this.repos.delivery(deliveryId);
    if (!d || d.state !== 'queued') return;
    const repo = await this.repos.byId(d.repositoryId);
    const owner = repo ? await this.auth.findUser(repo.ownerId) : null;
    if (!repo || !owner) {
      await this.repos.finishDelivery(deliveryId, 'failed', 'the repository or its owner is gone', []);
      return;
    }
    const p = d.payload as PushPayload;
    const principal: Principal = { user: owner, tokenId: 'webhook' };
    const changed = [...new Set((p.commits ?? []).flatMap((c) => [...(c.added ?? []), ...(c.modified ?? []), ...(c.removed ?? [])]))];
    let cloned;
    try {
      cloned = await this.intake.clone(repo.cloneUrl, p.after!);
    } catch (e) {
      await this.repos.finishDelivery(deliveryId, 'failed', `clone: ${(e as Error).message}`, []);
      return;
    }
    const runIds: string[] = [];
    const problems: string[] = [];
    const event = eventPayload(d.payload);
    try {
      for (const { file, text } of this.intake.workflowFiles(cloned.dir)) {
        const decision = pushTrigger(text, { ref: p.ref!, changedPaths: changed }, file.startsWith('.kiln.'));
        if (!decision.runs) continue;
        const context = { sha: cloned.sha, ref: p.ref!, repository: repo.fullName, event: 'push', runNumber: 0, eventPayload: event }; // numbered as it is recorded
        let group: string | undefined;
        if (decision.concurrency) {
          group = `${repo.id}:${await interpolate(decision.concurrency.group, { github: { ref: p.ref, sha: cloned.sha, repository: repo.fullName, workflow: file, event_name: 'push' } }).catch(() => decision.concurrency!.group)}`;
        }
        try {
          // The same admission as every submission (rate limit, active runs, storage): a refusal is
          // recorded in the delivery's detail like any refused workflow.
          await this.admission.admit(principal);
          const run = await this.runs.submitFromDir(
            principal,
            cloned.dir,
            { kind: 'repo', repo: repo.cloneUrl, ref: p.ref!, sha: cloned.sha },
            context,
            text,
            file,
            { platform: repo.labelMap },
            { repositoryId: repo.id, concurrencyGroup: group, cancelInProgress: decision.concurrency?.cancelInProgress },
          );
          runIds.push(run.id);
          const recorded = await this.runs.internalRun(run.id);
          if (recorded) this.statuses.report(recorded, 'pending', 'queued in Kiln');
        } catch (e) {
          const message = e instanceof HttpException ? JSON.stringify((e.getResponse() as { message?: unknown }).message ?? e.message) : (e as Error).message;
          problems.push(`${file}: ${message}`);
        }
      }
    } finally {
      await cloned.cleanup();
    }
    const detail = problems.length ? problems.join('\n') : runIds.length ? null : 'no workflow is triggered by this push';
    await this.repos.finishDelivery(deliveryId, problems.length && !runIds.length ? 'failed' : 'done', detail, runIds);
    this.log.log(
      `delivery ${d.id} (${repo.fullName} ${p.ref} ${cloned.sha.slice(0, 7)}): ${runIds.length} run(s)${problems.length ? `, ${problems.length} workflow(s) refused` : ''}`,
    );
  }
}
