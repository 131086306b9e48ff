/** The shape of bench/results.json: every figure of a run, the table and the targets. */
import type { Breakdown, KilnLatency } from '../cases/latency';
import type { HostConfigCheck, Throughput } from '../cases/throughput';
import type { KilnLogRun } from '../cases/logs';
import type { LoadFigures } from '../cases/api-load';
import type { LossCheck, SubmissionFigures } from '../cases/queue';
import type { IdleRss } from '../cases/idle';
import type { EgressCase } from '../cases/egress';
import type { MachineFacts, Noise } from './machine';
import type { Sample } from './util';

export interface Plan {
  latencyReps: number;
  throughputJobs: number;
  logReps: number;
  uploadReps: number;
  artifactReps: number;
  apiRate: number;
  apiSeconds: number;
  queueRepo: number;
  queueCommand: number;
  idleSettleSeconds: number;
  /** case 9: repetitions of each arm (a job with its egress gateway, the same with no network) */
  egressReps: number;
}

export const FULL: Plan = {
  latencyReps: 7,
  throughputJobs: 100,
  logReps: 1,
  uploadReps: 2,
  artifactReps: 2,
  apiRate: 200,
  apiSeconds: 20,
  queueRepo: 100,
  queueCommand: 10_000,
  idleSettleSeconds: 8,
  egressReps: 10,
};
export const QUICK: Plan = {
  latencyReps: 3,
  throughputJobs: 20,
  logReps: 1,
  uploadReps: 1,
  artifactReps: 1,
  apiRate: 200,
  apiSeconds: 6,
  queueRepo: 30,
  queueCommand: 1000,
  idleSettleSeconds: 5,
  egressReps: 3,
};

export const CASES = ['latency', 'throughput', 'logs', 'upload', 'artifact', 'api', 'queue', 'idle', 'egress'] as const;
export type CaseName = (typeof CASES)[number];

export interface Results {
  meta: {
    startedAt: string;
    finishedAt: string;
    durationSeconds: number;
    quick: boolean;
    cases: CaseName[];
    plan: Plan;
    machine: MachineFacts;
    noise: Noise | null;
    image: { id: string; ref: string } | null;
    /** containers of the pool server seen while it was idle (a warm pool keeps some) */
    warmPool: { poolServerIdleContainers: number | null; noPoolServerIdleContainers: number | null };
    hostConfig: HostConfigCheck | null;
    leftovers: { kilnContainers: number; rawContainers: number };
  };
  /** raw: the docker runs that alternated with each server's repetitions (pool phase, no-pool phase) */
  latency?: { pool: KilnLatency; noPool: KilnLatency; raw: { pool: RawLatencySamples; noPool: RawLatencySamples } };
  throughput?: { pool: Throughput; noPool: Throughput; raw: Throughput };
  logs?: {
    followed: KilnLogRun[];
    unfollowed: KilnLogRun[];
    raw: { seconds: number; bytes: number }[];
    followedSeconds: Sample;
    unfollowedSeconds: Sample;
    rawSeconds: Sample;
    /** largest VmRSS sampled during the followed runs / during the first unfollowed run (the server's first job: fresh memory) */
    peakRssFollowedBytes: number;
    peakRssUnfollowedBytes: number;
    logCap: string;
  };
  upload?: { tarballBytes: number; files: number; kiln: Sample; kilnAnswered: Sample; kilnJobStartedAfter: Sample; kilnJobStartToStep: Sample; raw: Sample };
  /** `how`: the server's kiln_artifact_collections_total after the case (files read from the host, or by tar in the sandbox) */
  artifact?: { kiln: Sample; raw: Sample; sizeBytes: number; how: { host: number; exec: number } };
  api?: { idle: LoadFigures; busy: LoadFigures };
  queue?: { repo: SubmissionFigures; command: SubmissionFigures; check: LossCheck; workers: string };
  idle?: IdleRss;
  egress?: EgressCase;
  table: Row[];
  targets: Target[];
}

export interface Row {
  measure: string;
  pool: string;
  noPool: string;
  raw: string;
  ratio: string;
}

export interface Target {
  target: string;
  figure: string;
  met: boolean | null;
}

export interface RawLatencySamples {
  /** `docker run --rm` wall time, s */
  endToEnd: Sample;
  /** `docker run` to its first byte on stdout, ms */
  firstOut: Sample;
}

export type { Breakdown };
