import { Injectable } from '@nestjs/common';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * Kiln's Prometheus metrics, one registry per process (an API node and each worker expose their
 * own). Numbers only: no run ids, user names or paths in labels.
 */
@Injectable()
export class Metrics {
  readonly registry = new Registry();

  readonly stepSeconds = new Histogram({
    name: 'kiln_step_duration_seconds',
    help: 'Duration of job steps run by this worker, by conclusion',
    labelNames: ['conclusion'] as const,
    buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600],
    registers: [this.registry],
  });

  readonly containerStartSeconds = new Histogram({
    name: 'kiln_container_start_seconds',
    help: 'Time to create and start a job sandbox, by runtime',
    labelNames: ['runtime'] as const,
    buckets: [0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10],
    registers: [this.registry],
  });

  readonly warmPoolTakes = new Counter({
    name: 'kiln_warm_pool_takes_total',
    help: 'Job sandboxes by origin: hit (a warm one), miss (created for the job), stale (a warm one that had died)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  readonly stepReadbacks = new Counter({
    name: 'kiln_step_readbacks_total',
    help: "How a step's cgroup counters and GITHUB_ENV/OUTPUT files were read: host (from beside the engine, no exec), exec (a helper in the sandbox: gVisor, an engine elsewhere, or processes left running)",
    labelNames: ['how'] as const,
    registers: [this.registry],
  });

  readonly artifactCollections = new Counter({
    name: 'kiln_artifact_collections_total',
    help: 'How upload-artifact read its files: host (names listed in the sandbox, files read from beside the engine), exec (tar in the sandbox: gVisor, an engine elsewhere, processes left running, a path through a symlink)',
    labelNames: ['how'] as const,
    registers: [this.registry],
  });

  readonly jobsFinished = new Counter({
    name: 'kiln_jobs_finished_total',
    help: 'Jobs this worker finished, by conclusion',
    labelNames: ['conclusion'] as const,
    registers: [this.registry],
  });

  readonly reapedContainers = new Counter({
    name: 'kiln_reaped_containers_total',
    help: 'Job containers removed by the reaper (their job was finished or unknown)',
    registers: [this.registry],
  });

  readonly scratchRemoved = new Counter({
    name: 'kiln_scratch_removed_total',
    help: 'Partial uploads and scratch clones removed by the sweeper',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'kiln_' });
  }

  /** A gauge whose values are read when /metrics is scraped. */
  gauge(name: string, help: string, labelNames: string[], read: () => Promise<Record<string, number>>): void {
    if (this.registry.getSingleMetric(name)) return;
    const label = labelNames[0];
    new Gauge({
      name,
      help,
      labelNames,
      registers: [this.registry],
      async collect() {
        const values = await read().catch(() => null);
        this.reset();
        if (!values) return;
        for (const [k, v] of Object.entries(values)) this.set({ [label]: k }, v);
      },
    });
  }

  async text(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
