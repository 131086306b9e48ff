import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { scratchName } from '../storage/scratch';
import { PoolTarget, WarmPool } from './warm-pool';
import { KILN_CONFIG, KilnConfig } from '../config/config';
import type Docker from 'dockerode';
import type { Readable } from 'node:stream';
import type { EgressReport, EgressRequest } from '../common/egress-rules';
import type { ArtifactPaths } from '../execution/artifact-paths';
import type { Collected, ExecSpec, ExecutionBackend, JobHandle, JobSandboxSpec, OutputSink, StepState } from '../execution/backend';
import { EgressGateways } from './egress-gateway';
import { gatewayRecipe } from './gateway-image';
import { DockerEngine } from './docker-engine';
import { Metrics } from '../common/metrics';
import type { TarLimits } from '../sources/tar-safety';
import { ArtifactCollector } from './artifact-collector';
import { runHelper } from './helper-exec';
import { jobContainerName, POOL_LABEL } from './job-sandbox';
import { SandboxLifecycle } from './sandbox-lifecycle';
import { SandboxState } from './sandbox-state';
import { StepExec } from './step-exec';
import { StepReadBack } from './step-readback';

/**
 * The Docker implementation of ExecutionBackend: one hardened container per job, one exec per step.
 * It holds the warm pool glue and hands each job to its collaborators: SandboxLifecycle (create, start,
 * destroy), StepExec (a step), StepReadBack (counters and step files after it), ArtifactCollector.
 */
@Injectable()
export class DockerBackend implements ExecutionBackend, OnApplicationShutdown {
  private readonly log = new Logger('DockerBackend');
  private readonly state = new SandboxState();
  private readonly sandboxes: SandboxLifecycle;
  private readonly steps: StepExec;
  private readonly artifacts: ArtifactCollector;

  readonly pool: WarmPool;
  private readonly gateways: EgressGateways;

  constructor(
    private readonly engine: DockerEngine,
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly metrics: Metrics,
  ) {
    const readBack = new StepReadBack(this.state, metrics, this.log);
    this.sandboxes = new SandboxLifecycle(engine.docker, config.queuePrefix, this.state, readBack, metrics);
    this.steps = new StepExec(this.state, readBack, () => this.isAvailable(), this.log);
    this.artifacts = new ArtifactCollector(this.state, metrics, this.log);
    const gatewayImage = gatewayRecipe(config.runnerImagesDir, config.debianMirror).ref;
    this.gateways = new EgressGateways(engine.docker, config.queuePrefix, gatewayImage, config.egress.networks, this.log);
    this.pool = new WarmPool(
      config.warmPool,
      {
        create: (t) => this.sandboxes.create(t, `kiln-pool-${randomBytes(6).toString('hex')}`, { [POOL_LABEL]: scratchName('pool') }),
        destroy: (id) => this.destroyJob({ id, jobId: '' }),
      },
      this.log,
    );
    metrics.gauge('kiln_warm_pool_idle_sandboxes', 'Warm sandboxes started and ready for a job, by runtime', ['runtime'], async () =>
      this.pool.idleByRuntime(),
    );
  }

  private get docker(): Docker {
    return this.engine.docker;
  }

  async isAvailable(): Promise<boolean> {
    try {
      await this.engine.ping(3000);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * A job's sandbox: one from the warm pool when there is one made for exactly this image, runtime and
   * limits (renamed for the job, used once), else created and started now.
   */
  async startJob(spec: JobSandboxSpec): Promise<JobHandle> {
    const target: PoolTarget = { image: spec.image, runtime: spec.runtime, limits: spec.limits };
    if (spec.egress?.grant.rules.length) return this.startWithEgress(spec, target, spec.egress);
    for (let pooled = await this.pool.takeOrWait(target, REFILL_AFTER_MS); pooled; pooled = this.pool.take(target, REFILL_AFTER_MS)) {
      const handle = await this.adopt(pooled, spec);
      if (!handle) this.pool.started(pooled);
      this.metrics.warmPoolTakes.inc({ result: handle ? 'hit' : 'stale' });
      if (handle) return handle;
    }
    this.metrics.warmPoolTakes.inc({ result: 'miss' });
    return this.sandboxes.createForJob(spec, target);
  }

  /**
   * A job that may reach some hosts: its network and gateway first, then its sandbox on that network
   * (never a warm one: those have no network, and gVisor cannot be given one later).
   */
  private async startWithEgress(spec: JobSandboxSpec, target: PoolTarget, egress: NonNullable<JobSandboxSpec['egress']>): Promise<JobHandle> {
    this.metrics.warmPoolTakes.inc({ result: 'egress' });
    const runtime = spec.runtime === 'runsc' ? this.config.egress.runscRuntime : 'runc';
    let handle: JobHandle | null = null;
    try {
      // The sandbox is made on the job's network while its gateway boots (about half of the gateway's cost).
      const { proxyUrl } = await this.gateways.start(spec.runId, spec.jobId, egress.grant, egress.maxBytes, async (network) => {
        handle = await this.sandboxes.createForJob(spec, target, { network, runtime });
      });
      return { ...handle!, env: proxyEnv(proxyUrl) };
    } catch (e) {
      if (handle) await this.sandboxes.destroy(handle).catch(() => undefined);
      await this.gateways.remove(spec.jobId).catch(() => undefined);
      throw e;
    }
  }

  async egressActivity(job: JobHandle): Promise<EgressRequest[]> {
    return this.gateways.activity(job.jobId);
  }

  async egressReport(job: JobHandle): Promise<EgressReport | null> {
    return this.gateways.report(job.jobId);
  }

  /**
   * A pooled sandbox becomes the job's: renamed kiln-job-<id> (so the job's container is found by name,
   * as one created for it is) if it is still running. Null (and removed) when it is not usable.
   */
  private async adopt(id: string, spec: JobSandboxSpec): Promise<JobHandle | null> {
    const c = this.docker.getContainer(id);
    const name = jobContainerName(spec.jobId);
    try {
      if (!(await c.inspect()).State.Running) throw new Error('not running');
      await c.rename({ name }).catch(async (e: { statusCode?: number }) => {
        if (e.statusCode !== 409) throw e;
        await this.docker
          .getContainer(name)
          .remove({ force: true })
          .catch(() => undefined);
        await c.rename({ name });
      });
      return { id, jobId: spec.jobId, runtime: spec.runtime };
    } catch (e) {
      this.log.warn(`warm pool: sandbox ${id.slice(0, 12)} could not be used (${(e as Error).message}); removing it`);
      await this.destroyJob({ id, jobId: spec.jobId }).catch(() => undefined);
      return null;
    }
  }

  /** Keeps sandboxes of these targets warm (KILN_WARM_POOL each); see WarmPoolFeeder. */
  warm(targets: PoolTarget[]): void {
    this.pool.setTargets(targets);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.pool.drain();
  }

  async putWorkspace(job: JobHandle, tar: Readable, dir = '/workspace'): Promise<void> {
    const c = this.docker.getContainer(job.id);
    const res = await runHelper(c, ['sh', '-c', 'mkdir -p -- "$1" && exec tar -x -f - -C "$1" --no-same-owner --delay-directory-restore', 'put', dir], {
      stdin: tar,
      timeoutMs: 15 * 60_000,
    });
    if (res.exitCode !== 0) throw new Error(`unpacking the workspace failed (tar exit ${res.exitCode}): ${res.stderr.slice(-500)}`);
  }

  async execStep(job: JobHandle, step: ExecSpec, sink: OutputSink, signal: AbortSignal): Promise<StepState> {
    try {
      return await this.steps.run(this.docker.getContainer(job.id), job, step, sink, signal);
    } finally {
      // A warm sandbox's job is past its first step: the pool refills now (see REFILL_AFTER_MS).
      this.pool.started(job.id);
    }
  }

  /** An artifact's files, from the host or by tar in the sandbox: see ArtifactCollector.collect. */
  async collect(job: JobHandle, paths: ArtifactPaths, workdir: string, outFile: string, limits: TarLimits): Promise<Collected> {
    return this.artifacts.collect(this.docker.getContainer(job.id), job, paths, workdir, outFile, limits);
  }

  async destroyJob(job: JobHandle): Promise<void> {
    this.pool.started(job.id);
    await this.sandboxes.destroy(job);
    // The gateway after the sandbox: the job's network can go only once neither is on it.
    if (this.gateways.has(job.jobId)) await this.gateways.remove(job.jobId);
  }
}

/** What a step with egress gets: the proxy, in the spellings tools read (curl and pip the lower-case ones, others upper). */
function proxyEnv(proxyUrl: string): Record<string, string> {
  const noProxy = 'localhost,127.0.0.1,::1';
  return { HTTP_PROXY: proxyUrl, HTTPS_PROXY: proxyUrl, http_proxy: proxyUrl, https_proxy: proxyUrl, NO_PROXY: noProxy, no_proxy: noProxy };
}

/** A warm sandbox's refill waits for its job's first step to end (or this long): see WarmPool.take. */
const REFILL_AFTER_MS = 2000;
