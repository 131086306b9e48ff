import type Docker from 'dockerode';
import type { JobHandle, JobSandboxSpec } from '../execution/backend';
import type { Metrics } from '../common/metrics';
import { EngineUnavailableError } from './docker-engine';
import { Counters, SandboxHostView } from './host-view';
import { DEPLOYMENT_LABEL, JOB_LABEL, jobContainerName, jobHostConfig, KEEPER_USER, MANAGED_LABEL, RUN_LABEL, RUNTIME_LABEL } from './job-sandbox';
import type { SandboxState } from './sandbox-state';
import type { StepReadBack } from './step-readback';
import type { PoolTarget } from './warm-pool';

/** The network a job with egress joins, and the engine runtime that can give it one. */
export interface SandboxNetwork {
  network: string;
  runtime: string;
}

/** A sandbox's making and removal: created from the hardened job HostConfig, started, its starting counters read; removed idempotently. */
export class SandboxLifecycle {
  constructor(
    private readonly docker: Docker,
    private readonly deployment: string,
    private readonly state: SandboxState,
    private readonly readBack: StepReadBack,
    private readonly metrics: Metrics,
  ) {}

  /** A sandbox made for the job now (no warm one fitted): named and labelled for it. */
  async createForJob(spec: JobSandboxSpec, target: PoolTarget, net?: SandboxNetwork): Promise<JobHandle> {
    const name = jobContainerName(spec.jobId);
    const labels = { [JOB_LABEL]: spec.jobId, [RUN_LABEL]: spec.runId };
    try {
      return { id: await this.create(target, name, labels, false, net), jobId: spec.jobId, runtime: spec.runtime };
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode !== 409) throw infra(e);
      // A container of this job from an attempt that died: remove it and start afresh.
      await this.docker
        .getContainer(name)
        .remove({ force: true })
        .catch(() => undefined);
      return {
        id: await this.create(target, name, labels, false, net).catch((err) => {
          throw infra(err);
        }),
        jobId: spec.jobId,
        runtime: spec.runtime,
      };
    }
  }

  /**
   * The pool's sandboxes are made here too: the same options as a job's own, labelled with their owner.
   * The cgroup counters' starting values are read once it runs: before it is pooled, or for a job's
   * own sandbox alongside the workspace's unpacking (execStep waits for them before any job code runs).
   */
  async create(t: PoolTarget, name: string, labels: Record<string, string>, waitForCounters = true, net?: SandboxNetwork): Promise<string> {
    const host = jobHostConfig(t.limits, t.runtime);
    // A job with egress: on its own network (whose only other member is its gateway), under the runtime
    // registered for that (gVisor's network-less registration cannot give it one).
    if (net) Object.assign(host, { NetworkMode: net.network, Runtime: net.runtime });
    const options: Docker.ContainerCreateOptions = {
      name,
      Image: t.image,
      Cmd: ['sleep', 'infinity'],
      User: KEEPER_USER,
      WorkingDir: '/workspace',
      Labels: { [MANAGED_LABEL]: 'true', [DEPLOYMENT_LABEL]: this.deployment, [RUNTIME_LABEL]: t.runtime, ...labels },
      NetworkDisabled: !net,
      StopTimeout: 1,
      HostConfig: host,
    };
    const t0 = process.hrtime.bigint();
    const container = await this.docker.createContainer(options);
    try {
      await container.start();
      this.metrics.containerStartSeconds.observe({ runtime: t.runtime }, Number(process.hrtime.bigint() - t0) / 1e9);
      const counters = this.startingCounters(container, { id: container.id, jobId: name, runtime: t.runtime }).then((c) => {
        this.state.counters.set(container.id, c ?? { pidsMax: 0, oomKill: 0 });
      });
      if (waitForCounters) await counters;
      else
        this.state.startCounters.set(
          container.id,
          counters.catch(() => undefined),
        );
    } catch (e) {
      await this.destroy({ id: container.id, jobId: name });
      throw infra(e);
    }
    return container.id;
  }

  /** A new sandbox's counters (their starting values); seen from the host when it can be, else read inside. */
  private async startingCounters(c: Docker.Container, job: JobHandle): Promise<Counters | null> {
    if (job.runtime !== 'runsc') {
      const view = await SandboxHostView.open(c.id, (await c.inspect()).State.Pid);
      const counters = await view?.counters();
      if (view && counters) {
        this.state.views.set(c.id, view);
        return counters;
      }
    }
    return (await this.readBack.postStep(c, job, [], 0)).counters;
  }

  /** Removes the sandbox (and its volumes) and forgets it. Idempotent. */
  async destroy(job: JobHandle): Promise<void> {
    this.state.forget(job.id);
    try {
      await this.docker.getContainer(job.id).remove({ force: true, v: true });
    } catch (e) {
      const status = (e as { statusCode?: number }).statusCode;
      if (status === 404 || status === 409) return; // gone already, or its removal is under way
      throw infra(e);
    }
  }
}

/** An engine error: EngineUnavailableError when the engine is away or failed (worth retrying later), else as it is. */
function infra(e: unknown): Error {
  const err = e as { code?: string; statusCode?: number; message?: string };
  if (err.code === 'ECONNREFUSED' || err.code === 'ENOENT' || err.code === 'EPIPE' || err.code === 'ECONNRESET' || (err.statusCode ?? 0) >= 500) {
    return new EngineUnavailableError(`Docker engine: ${err.message ?? String(e)}`);
  }
  return e instanceof Error ? e : new Error(String(e));
}
