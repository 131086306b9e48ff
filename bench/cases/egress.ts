/**
 * Case 9: what an egress gateway costs a job. One `kiln serve` with KILN_WARM_POOL=0 and
 * KILN_EGRESS_ALLOW, the trivial job (`python3 -c pass`) submitted alternately with `egress: none`
 * (no network: a sandbox like any other) and without it (a network of its own, the gateway container
 * started and ready, then the sandbox on that network). The jobs never use the network: nothing leaves
 * the machine. Figures are the run's own server timestamps.
 */
import { ENVIRONMENT, KilnServer, ms, RunView } from '../lib/kiln';
import { must, run } from '../lib/proc';
import type { Plan, Results, Row } from '../lib/results';
import { fmtMs, fmtRatio, percentile, sample, Sample, say } from '../lib/util';
import { settle } from './latency';

/** What the server allows: the jobs never contact it. */
export const EGRESS_ALLOW = 'pypi.org:443';

/** A figure over the repetitions, with its 90th percentile. */
export type Spread = Sample & { p90: number };

function spread(values: number[]): Spread {
  return { ...sample(values), p90: percentile(values, 90) };
}

/** One arm's figures (ms, from the run's records). */
export interface EgressArm {
  /** run recorded to its step started */
  submitToStep: Spread;
  /** job taken by the worker to its step started: the sandbox (and, with egress, network + gateway first) */
  jobStartToStep: Spread;
  /** step finished to run finished: sandbox removed (and, with egress, the gateway and its network) */
  stepToRunEnd: Spread;
  /** run recorded to run finished */
  submitToCompleted: Spread;
}

export interface EgressCase {
  allow: string;
  reps: number;
  withGateway: EgressArm;
  noNetwork: EgressArm;
  /** with gateway / no network, of the medians */
  ratio: { submitToStep: number; jobStartToStep: number; submitToCompleted: number };
  /** what each measured run showed of its network: the arms are what they claim to be */
  checks: {
    /** runs with a gateway whose job has a non-null `egress` report / whose setup line says "egress gateway" */
    gatewayReports: number;
    gatewaySetupLines: number;
    /** runs with `egress: none` whose report is null / whose setup line says "network none" */
    noNetworkReportsNull: number;
    noNetworkSetupLines: number;
    /** the setup line's network words of the last gateway run */
    gatewaySetupLine: string;
    /** job networks of the server still there after the case (removed by the bench) */
    leftNetworks: number;
  };
}

function workflow(noNetwork: boolean): string {
  return `jobs:\n  trivial:\n    runs-on: ${ENVIRONMENT}\n${noNetwork ? '    egress: none\n' : ''}    steps:\n      - run: python3 -c pass\n`;
}

interface OneRun {
  submitToStep: number;
  jobStartToStep: number;
  stepToRunEnd: number;
  submitToCompleted: number;
  hasReport: boolean;
  setupLine: string;
}

async function once(k: KilnServer, tiny: string, noNetwork: boolean): Promise<OneRun> {
  const res = await k.submitTarball(tiny, { workflow: workflow(noNetwork) });
  if (res.status !== 201) throw new Error(`egress submission answered ${res.status}: ${JSON.stringify(res.body).slice(0, 500)}`);
  const v: RunView = await k.waitCompleted(res.body.id, 300_000, 100);
  const job = v.jobs[0];
  if (v.conclusion !== 'success')
    throw new Error(`egress run ${v.id} (${noNetwork ? 'no network' : 'gateway'}): ${v.conclusion} ${JSON.stringify(job).slice(0, 600)}`);
  const step = job.steps[0];
  const log = String((await k.request('GET', `/api/v1/runs/${v.id}/logs`)).body);
  return {
    submitToStep: ms(step.startedAt) - ms(v.createdAt),
    jobStartToStep: ms(step.startedAt) - ms(job.startedAt),
    stepToRunEnd: ms(v.finishedAt) - ms(step.finishedAt),
    submitToCompleted: ms(v.finishedAt) - ms(v.createdAt),
    hasReport: job.egress !== null && job.egress !== undefined,
    // The setup line ends with its network words (job-runner.ts egressLine).
    setupLine: /, (network(?:: [^\n]*| none))\s*$/m.exec(log)?.[1]?.trim() ?? '',
  };
}

function arm(runs: OneRun[]): EgressArm {
  return {
    submitToStep: spread(runs.map((x) => x.submitToStep)),
    jobStartToStep: spread(runs.map((x) => x.jobStartToStep)),
    stepToRunEnd: spread(runs.map((x) => x.stepToRunEnd)),
    submitToCompleted: spread(runs.map((x) => x.submitToCompleted)),
  };
}

/** Job networks (egress) of one deployment. */
async function networks(prefix: string): Promise<string[]> {
  return (await must('docker', ['network', 'ls', '-q', '--filter', `label=kiln.deployment=${prefix}`])).split('\n').filter(Boolean);
}

/** `reps` pairs, the order within a pair alternating (none first, then gateway first), after one unmeasured pair. */
export async function egressCase(k: KilnServer, tiny: string, reps: number): Promise<EgressCase> {
  await once(k, tiny, true);
  await once(k, tiny, false);
  await settle(k);
  const gateway: OneRun[] = [];
  const none: OneRun[] = [];
  for (let i = 0; i < reps; i++) {
    for (const noNetwork of i % 2 === 0 ? [true, false] : [false, true]) {
      const r = await once(k, tiny, noNetwork);
      (noNetwork ? none : gateway).push(r);
      await settle(k);
    }
    const g = gateway[gateway.length - 1];
    const n = none[none.length - 1];
    say(
      `  egress ${i + 1}/${reps}: submit to step ${Math.round(g.submitToStep)} ms with the gateway, ${Math.round(n.submitToStep)} ms with no network; to completed ${Math.round(g.submitToCompleted)} / ${Math.round(n.submitToCompleted)} ms`,
    );
  }
  const left = await networks(k.prefix);
  for (const id of left) await run('docker', ['network', 'rm', id]);
  const withGateway = arm(gateway);
  const noNetwork = arm(none);
  const checks = {
    gatewayReports: gateway.filter((x) => x.hasReport).length,
    gatewaySetupLines: gateway.filter((x) => x.setupLine.startsWith('network: egress gateway')).length,
    noNetworkReportsNull: none.filter((x) => !x.hasReport).length,
    noNetworkSetupLines: none.filter((x) => x.setupLine === 'network none').length,
    gatewaySetupLine: gateway[gateway.length - 1]?.setupLine ?? '',
    leftNetworks: left.length,
  };
  // Figures of arms that are not what they claim would be worse than none.
  if (Math.min(checks.gatewayReports, checks.gatewaySetupLines, checks.noNetworkReportsNull, checks.noNetworkSetupLines) < reps)
    throw new Error(`egress: the runs were not what the arms claim (${JSON.stringify(checks)})`);
  return {
    allow: EGRESS_ALLOW,
    reps,
    withGateway,
    noNetwork,
    ratio: {
      submitToStep: withGateway.submitToStep.median / noNetwork.submitToStep.median,
      jobStartToStep: withGateway.jobStartToStep.median / noNetwork.jobStartToStep.median,
      submitToCompleted: withGateway.submitToCompleted.median / noNetwork.submitToCompleted.median,
    },
    checks,
  };
}

// ---- the report's parts (bench/lib/report.ts places them)

const DASH = '—';
const mp = (s: Spread) => `${fmtMs(s.median)} / ${fmtMs(s.p90)}`;

/** The table's rows: the gateway job in the no-pool column (its server has no pool), the no-network job as the baseline. */
export function egressRows(e: EgressCase): Row[] {
  return [
    {
      measure: '9. job with an egress gateway, run recorded to step started, median / p90 (baseline column: the same job with `egress: none`)',
      pool: DASH,
      noPool: mp(e.withGateway.submitToStep),
      raw: mp(e.noNetwork.submitToStep),
      ratio: `${fmtRatio(e.ratio.submitToStep)} (time, vs no network)`,
    },
    {
      measure: '9. the same, run recorded to run completed, median / p90',
      pool: DASH,
      noPool: mp(e.withGateway.submitToCompleted),
      raw: mp(e.noNetwork.submitToCompleted),
      ratio: `${fmtRatio(e.ratio.submitToCompleted)} (time, vs no network)`,
    },
  ];
}

/** The page's section on the gateway's cost: figures of this run, and why. */
export function egressSection(r: Results): string[] {
  const e = r.egress;
  if (!e) return [];
  const g = e.withGateway;
  const n = e.noNetwork;
  const extra = g.submitToStep.median - n.submitToStep.median;
  const after = g.stepToRunEnd.median - n.stepToRunEnd.median;
  const teardown =
    after < 50
      ? ' (removing the gateway and its network does not lengthen the run)'
      : ` (${fmtMs(after)} more: the gateway and its network are removed with the sandbox)`;
  const pool = r.latency
    ? ` In case 1 of this run the pool server's trivial job went from taken to its step in ${fmtMs(r.latency.pool.breakdown.jobStartToStep)} (a warm sandbox), the no-pool server's in ${fmtMs(r.latency.noPool.breakdown.jobStartToStep)}.`
    : '';
  return [
    '## What an egress gateway costs a job',
    '',
    `A job that may reach hosts (\`KILN_EGRESS_ALLOW\`) started its step ${fmtMs(g.submitToStep.median)} after its run was recorded (p90 ${fmtMs(g.submitToStep.p90)}), against ${fmtMs(n.submitToStep.median)} (p90 ${fmtMs(n.submitToStep.p90)}) for the same job with \`egress: none\` on the same server: ${fmtMs(extra)} more, ${fmtRatio(e.ratio.submitToStep)}. From the worker taking the job to its step: ${fmtMs(g.jobStartToStep.median)} against ${fmtMs(n.jobStartToStep.median)}; that is where the gateway's start goes (its network created, the squid and dnsmasq container started, squid's readiness awaited, then the sandbox created on that network). Step finished to run finished: ${fmtMs(g.stepToRunEnd.median)} against ${fmtMs(n.stepToRunEnd.median)}${teardown}; run recorded to completed ${fmtMs(g.submitToCompleted.median)} against ${fmtMs(n.submitToCompleted.median)} (${fmtRatio(e.ratio.submitToCompleted)}).`,
    '',
    `Both arms ran on a server without a warm pool, so the difference is the gateway alone. On a server with the pool a job with egress also loses the warm start: it always starts cold, because a warm sandbox has no network and cannot be given one later (nor can a gVisor sandbox), so the pool never serves a job with egress.${pool}`,
    '',
  ];
}

export function egressMethod(plan: Plan): string {
  return `- **9. Egress**: a \`kiln serve\` with \`KILN_WARM_POOL=0\` and \`KILN_EGRESS_ALLOW=${EGRESS_ALLOW}\` (the jobs never contact it: nothing leaves the machine). The trivial job (\`python3 -c pass\`, a one-file source tarball with the workflow as a multipart field) with \`egress: none\`, and the same without it (so it gets its gateway), ${plan.egressReps} of each, alternating (the order within each pair alternating too), after one unmeasured pair. Timed from the run's recorded creation to its step's recorded start and to the run's recorded end. Every measured gateway run must have a non-null \`egress\` report and a setup line saying "network: egress gateway", every other run a null report and "network none"; job networks left after the case are counted and removed.`;
}
