import { BadRequestException, Inject, Injectable, Logger, NotFoundException, PayloadTooLargeException, ServiceUnavailableException } from '@nestjs/common';
import * as fs from 'node:fs';
import type { Readable } from 'node:stream';
import { KILN_CONFIG, KilnConfig } from '../config/config';
import { GitSourceError } from '../sources/git-policy';
import { ArchiveError, SanitizedTar } from '../sources/tar-safety';
import { SourceIntake } from '../sources/source-intake';
import { FileStore } from '../storage/file-store';
import { BLOB_STORE, blobKeys, BlobStore } from '../storage/blob-store';
import { RunPlan } from '../workflow/model';
import { planContext, PlanningOptions } from './planning-options';
import { POSITION_GAP } from './run-scheduler';
import { RunScheduler } from './run-scheduler';
import { RunSources } from './run-sources';
import { CloneGate, GateFull } from './clone-gate';
import { sourceHttpException } from './source-status';
import { RunsRepository } from './runs.repository';
import { AdmissionService } from './admission';
import { runListItem, runView } from './run-views';
import {
  CommandSubmission,
  PlanChoices,
  WORKFLOW_MAX_BYTES,
  checkInputs,
  checkPlatform,
  commandWorkflow,
  dispatchContext,
  findWorkflow,
  parseInputsField,
  parsePlatform,
  planWorkflow,
  qualifyRef,
  readSourceFile,
  repositoryName,
  sha1File,
} from './submissions';
import type { RunContext } from '../execution/job';
import type { Job, Run, RunSource } from './runs.types';
import type { SubmitRunDto, SubmitUploadDto } from './runs.dto';
import { AuthService } from '../auth/auth.service';
import type { Principal } from '../auth/auth.types';
import { newId } from '../common/ids';

/** Extra facts of a webhook run: its repository and its concurrency group. */
export interface RunExtras {
  repositoryId?: string;
  concurrencyGroup?: string;
  cancelInProgress?: boolean;
}
export interface TarballSubmission extends PlanChoices {
  uploadPath: string;
  filename: string;
  workflow?: string;
  workflowFile?: string;
  ref?: string;
  repository?: string;
}
export interface RepoSubmission extends PlanChoices {
  repo: string;
  ref: string;
  workflow?: string;
  workflowFile?: string;
}

/**
 * The one way in: every channel (API, CLI, webhook) ends in submit(). A run is validated, planned and
 * recorded (run, jobs, steps) before the caller hears back; nothing is queued for a bad submission.
 */
@Injectable()
export class RunsService {
  private readonly log = new Logger('Runs');
  private readonly clones: CloneGate;

  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly repo: RunsRepository,
    private readonly scheduler: RunScheduler,
    private readonly files: FileStore,
    @Inject(BLOB_STORE) private readonly blobs: BlobStore,
    auth: AuthService,
    private readonly sources: RunSources,
    private readonly admission: AdmissionService,
    private readonly intake: SourceIntake,
    private readonly planning: PlanningOptions,
  ) {
    this.clones = new CloneGate(config.clones.concurrency, config.clones.queue);
    auth.useStorageMeter({ usage: (userId) => this.repo.storage(userId) });
  }

  async submitTarball(owner: Principal, s: TarballSubmission) {
    const tmp = this.files.upload('.tar');
    try {
      const tar = await this.checked(this.intake.sanitizeFile(s.uploadPath, tmp));
      const sha = await sha1File(tmp);
      const context: RunContext = {
        sha,
        ref: s.ref ? qualifyRef(s.ref) : 'refs/heads/main',
        repository: s.repository ?? 'local/upload',
        event: 'push',
        runNumber: 0,
      };
      return await this.submit(
        owner,
        tmp,
        { kind: 'tarball', filename: s.filename, bytes: this.intake.fileBytes(s.uploadPath), files: tar.files },
        context,
        s.workflow,
        s.workflowFile,
        s,
      );
    } finally {
      await fs.promises.rm(s.uploadPath, { force: true });
      await fs.promises.rm(tmp, { force: true });
    }
  }

  /** Clones inside the request, at most KILN_CLONE_CONCURRENCY at once (KILN_CLONE_QUEUE more wait; 503 beyond). */
  async submitRepo(owner: Principal, s: RepoSubmission) {
    try {
      return await this.clones.run(() => this.cloneAndSubmit(owner, s));
    } catch (e) {
      if (e instanceof GateFull) {
        const { concurrency, queue } = this.config.clones;
        throw new ServiceUnavailableException(
          `repo: the server is cloning ${e.running} repositories (KILN_CLONE_CONCURRENCY=${concurrency}) and ${e.waiting} more wait their turn (KILN_CLONE_QUEUE=${queue}); try again in a few seconds`,
        );
      }
      throw e;
    }
  }

  private async cloneAndSubmit(owner: Principal, s: RepoSubmission) {
    let cloned;
    try {
      cloned = await this.intake.clone(s.repo, s.ref);
    } catch (e) {
      if (e instanceof GitSourceError) throw sourceHttpException(e, 'repo: ');
      throw e;
    }
    try {
      const context: RunContext = {
        sha: cloned.sha,
        ref: /^[0-9a-f]{7,40}$/.test(s.ref) ? '' : qualifyRef(s.ref),
        repository: repositoryName(s.repo),
        event: 'push',
        runNumber: 0,
      };
      return await this.submitFromDir(owner, cloned.dir, { kind: 'repo', repo: s.repo, ref: s.ref, sha: cloned.sha }, context, s.workflow, s.workflowFile, s);
    } finally {
      await cloned.cleanup();
    }
  }

  /** A checked-out tree (a clone): packed by tar (links kept as links), then checked like any upload. */
  async submitFromDir(
    owner: Principal,
    dir: string,
    source: RunSource,
    context: RunContext,
    workflow: string | undefined,
    workflowFile: string | undefined,
    choices: PlanChoices = {},
    extras: RunExtras = {},
  ) {
    const tmp = this.files.upload('.tar');
    try {
      await this.checked(this.intake.packDir(dir, tmp));
      return await this.submit(owner, tmp, source, context, workflow, workflowFile, choices, extras);
    } finally {
      await fs.promises.rm(tmp, { force: true });
    }
  }

  async submitCommand(owner: Principal, s: CommandSubmission) {
    const workflow = commandWorkflow({ ...s, environment: s.environment ?? this.config.defaultEnvironment });
    const tmp = this.files.upload('.tar');
    try {
      const files = s.files && Object.keys(s.files).length ? s.files : { '.kiln-empty': '' };
      const packed = await this.checked(this.intake.packInline(files, tmp), 'files: ');
      const context: RunContext = { sha: await sha1File(tmp), ref: 'refs/heads/main', repository: 'local/command', event: 'workflow_dispatch', runNumber: 0 };
      return await this.submit(owner, tmp, { kind: 'command', files: s.files ? packed.files : 0 }, context, workflow, null);
    } finally {
      await fs.promises.rm(tmp, { force: true });
    }
  }

  /**
   * Plans and records a run whose sanitized source tar is at `tarPath` (moved into the store). The
   * context's runNumber is given by the records as the run is recorded (RunsRepository.create).
   */
  private async submit(
    owner: Principal,
    tarPath: string,
    source: RunSource,
    context: RunContext,
    workflowText: string | undefined,
    workflowFile: string | null | undefined,
    choices: PlanChoices = {},
    extras: RunExtras = {},
  ) {
    let text = workflowText;
    let file: string | null = workflowFile ?? null;
    if (!text) ({ text, file } = await findWorkflow(tarPath, workflowFile ?? undefined));
    const dispatch = dispatchContext(text, file, context, choices.inputs);
    context = dispatch.context;
    const plan = await this.plan(text, file, choices, tarPath, context);
    const runId = newId();
    const now = new Date().toISOString();
    const run: Run = {
      id: runId,
      ownerId: owner.user.id,
      repositoryId: extras.repositoryId ?? null,
      concurrencyGroup: extras.concurrencyGroup ?? null,
      status: 'queued',
      conclusion: null,
      source,
      workflowName: plan.workflowName,
      workflowFile: file,
      plan,
      context,
      cancelRequested: false,
      error: null,
      createdAt: now,
      startedAt: null,
      finishedAt: null,
    };
    const jobs: Job[] = plan.jobs.map((j, position) => ({
      id: newId(),
      runId,
      // Spaced, so the jobs a late-planned job gives take the places after it (RunScheduler).
      position: position * POSITION_GAP,
      key: j.key,
      workflowJobId: j.jobId,
      name: j.name,
      environment: j.environment.name ? `${j.environment.name}@${j.environment.version}` : '',
      status: 'pending',
      conclusion: null,
      error: null,
      spec: j,
      outputs: {},
      attempts: 0,
      worker: null,
      queuedAt: null,
      startedAt: null,
      finishedAt: null,
    }));
    const sourceBytes = (await fs.promises.stat(tarPath)).size;
    await this.admission.record(owner, run, jobs, sourceBytes);
    // The source lives until the run concludes (RunSources.release), counted in the owner's storage.
    try {
      await this.sources.keep(runId, tarPath);
    } catch (e) {
      // Recorded but not runnable: its jobs fail at once, so the run concludes (and stops counting) now.
      // The detail (paths of the store) stays in the server's log.
      this.log.error(`run ${runId}: its source could not be stored: ${(e as Error).message}`);
      await this.failUnstored(runId, jobs);
      throw new ServiceUnavailableException(
        `the source could not be stored (the server's log says why); run ${runId} is recorded as failed, nothing runs; try again shortly`,
      );
    }
    await this.scheduler.advance(runId);
    if (extras.concurrencyGroup && extras.cancelInProgress) {
      // A newer run of the group supersedes the older ones (concurrency: cancel-in-progress).
      for (const older of await this.repo.activeInGroup(extras.concurrencyGroup, runId)) {
        await this.repo.requestCancel(older);
        await this.scheduler.advance(older);
        this.log.log(`run ${older} cancelled: superseded by ${runId} in concurrency group ${extras.concurrencyGroup}`);
      }
    }
    this.log.log(`run ${runId}: ${jobs.length} job(s) from ${source.kind} for ${owner.user.name}`);
    return this.view(runId, owner);
  }

  private async failUnstored(runId: string, jobs: Job[]): Promise<void> {
    const error = "infrastructure: the run's source could not be stored";
    for (const j of jobs) {
      if (await this.repo.transitionJob(j.id, ['pending'], 'completed', { conclusion: 'failure', error }))
        await this.repo.closeOpenSteps(j.id, 'skipped', 'infrastructure');
    }
    await this.scheduler.advance(runId);
  }

  private async plan(text: string, file: string | null, choices: PlanChoices, tarPath: string, context: RunContext): Promise<RunPlan> {
    const opts = await this.planning.options({
      readFile: (path, maxBytes) => readSourceFile(tarPath, path, maxBytes),
      labelMap: choices.platform,
      strict: choices.strict ?? false,
      context: planContext(context),
    });
    return planWorkflow(text, file, opts, choices.job);
  }

  /** A source the intake packed or checked; its ArchiveError as the 4xx that names the problem. */
  private async checked(work: Promise<SanitizedTar>, prefix = 'source: '): Promise<SanitizedTar> {
    try {
      return await work;
    } catch (e) {
      if (e instanceof ArchiveError) throw sourceHttpException(e, prefix);
      throw e;
    }
  }

  async view(runId: string, p: Principal) {
    return runView(this.repo, await this.requireRun(runId, p));
  }

  async list(p: Principal, limit: number) {
    return (await this.repo.listRuns(p.user.id, limit)).map(runListItem);
  }

  async cancel(runId: string, p: Principal) {
    const run = await this.requireRun(runId, p);
    if (run.status !== 'completed') {
      await this.repo.requestCancel(runId);
      await this.scheduler.advance(runId);
    }
    return this.view(runId, p);
  }

  /** JSON submissions: a repository, or the quick form. */
  async submitJson(owner: Principal, body: SubmitRunDto) {
    await this.admission.admit(owner);
    const forms = [body.repo !== undefined, body.command !== undefined].filter(Boolean).length;
    if (forms !== 1)
      throw new BadRequestException(
        'send either {repo, ref} (a git repository) or {command} (the quick form); for a tarball, POST multipart/form-data with a `source` file',
      );
    if (body.repo !== undefined) {
      if (!body.ref) throw new BadRequestException('ref is required with repo: a branch, tag or commit sha');
      if (body.files || body.shell || body.environment)
        throw new BadRequestException('files, shell and environment belong to the quick form ({command}); with repo the workflow says where to run');
      return this.submitRepo(owner, {
        repo: body.repo,
        ref: body.ref,
        workflow: body.workflow,
        workflowFile: body.workflowFile,
        job: body.job,
        platform: checkPlatform(body.platform),
        strict: body.strict,
        inputs: checkInputs(body.inputs),
      });
    }
    if (body.workflow || body.workflowFile || body.ref || body.job || body.platform || body.strict !== undefined || body.inputs)
      throw new BadRequestException(
        'workflow, workflowFile, ref, job, platform, strict and inputs do not go with command: the quick form is one command in one environment',
      );
    if (body.files) {
      for (const [k, v] of Object.entries(body.files)) if (typeof v !== 'string') throw new BadRequestException(`files.${k}: content must be a string`);
    }
    return this.submitCommand(owner, {
      command: body.command!,
      environment: body.environment,
      files: body.files,
      shell: body.shell,
      timeoutMinutes: body.timeoutMinutes,
    });
  }

  /** Multipart submissions: a `source` tarball, optionally a `workflow` (file or text field). */
  async submitUpload(owner: Principal, fields: SubmitUploadDto, source: Express.Multer.File | undefined, workflowUpload: Express.Multer.File | undefined) {
    const cleanup = async () => {
      for (const f of [source, workflowUpload]) if (f?.path) await fs.promises.rm(f.path, { force: true });
    };
    try {
      await this.admission.admit(owner);
      if (!source) throw new BadRequestException('multipart submissions need a `source` file: a .tar or .tar.gz of the project');
      let workflow = fields.workflow;
      if (workflowUpload) {
        if (workflow) throw new BadRequestException('send the workflow once: as a file or as a text field, not both');
        if (workflowUpload.size > WORKFLOW_MAX_BYTES) throw new PayloadTooLargeException(`workflow: larger than ${WORKFLOW_MAX_BYTES} bytes`);
        workflow = await fs.promises.readFile(workflowUpload.path, 'utf8');
      }
      if (fields.command !== undefined) {
        if (workflow || fields.workflowFile || fields.job || fields.platform || fields.strict || fields.inputs !== undefined)
          throw new BadRequestException(
            'command does not go with workflow, workflowFile, job, platform, strict or inputs: it is one command in one environment',
          );
        workflow = commandWorkflow({
          command: fields.command,
          environment: fields.environment ?? this.config.defaultEnvironment,
          shell: fields.shell,
          timeoutMinutes: fields.timeoutMinutes,
        });
      } else if (fields.environment || fields.shell || fields.timeoutMinutes) {
        throw new BadRequestException('environment, shell and timeoutMinutes go with command; a workflow says where its jobs run');
      }
      return await this.submitTarball(owner, {
        uploadPath: source.path,
        filename: source.originalname,
        workflow,
        workflowFile: fields.workflowFile,
        ref: fields.ref,
        repository: fields.repository,
        job: fields.job,
        platform: parsePlatform(fields.platform),
        strict: fields.strict === 'true',
        inputs: parseInputsField(fields.inputs),
      });
    } finally {
      await cleanup();
    }
  }

  /** The run record itself, for server-side callers (no ownership check). */
  internalRun(runId: string): Promise<Run | null> {
    return this.repo.getRun(runId);
  }

  artifactBlob(runId: string, artifactId: string): Promise<{ stream: Readable; size: number } | null> {
    return this.blobs.open(blobKeys.artifact(runId, artifactId));
  }

  /** Another user's run answers exactly as a missing one. Admins see every run. */
  async requireRun(runId: string, p: Principal): Promise<Run> {
    const run = await this.repo.getRun(runId);
    if (!run || (run.ownerId !== p.user.id && !p.user.isAdmin)) throw new NotFoundException(`no run ${runId}`);
    return run;
  }
}
