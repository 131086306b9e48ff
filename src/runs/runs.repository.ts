import type { EgressReport } from '../common/egress-rules';
import { Inject, Injectable } from '@nestjs/common';
import { DATABASE, Database } from '../db/database';
import type { Conclusion, StepReason } from '../execution/job';
import type { Artifact, Job, JobStatus, Run, Step } from './runs.types';
import { ArtifactRow, JobRow, RunRow, StepRow, toArtifact, toJob, toRun, toStep } from './runs.rows';
import type { Annotation } from '../execution/workflow-commands';

const now = () => new Date().toISOString();

/**
 * The scope a run is numbered in, as GitHub's run_number: its registered repository (webhook runs),
 * else its owner (uploads, the quick form, repository URLs). The migration that seeds the counters uses the same rule.
 */
export function runNumberScope(run: Pick<Run, 'repositoryId' | 'ownerId'>): string {
  return run.repositoryId ? `repository:${run.repositoryId}` : `owner:${run.ownerId ?? ''}`;
}

/** The owner already has as many runs waiting or running as their quota allows. */
export class ActiveRunsLimit extends Error {
  constructor(
    readonly active: number,
    readonly max: number,
  ) {
    super(`at most ${max} runs queued or running at once; you have ${active}`);
  }
}

/** Recording this run's source would take the owner's storage (artifacts + sources) past their quota. */
export class StorageLimit extends Error {
  constructor(
    readonly used: number,
    readonly adding: number,
    readonly max: number,
  ) {
    super(`your storage (artifacts, and the sources of runs not yet concluded) uses ${used} bytes of ${max}; this run's source needs ${adding} more`);
  }
}

/** What create() checks in the same transaction as it records the run. */
export interface CreateLimits {
  /** The owner's runs not yet completed may not reach this many. */
  maxActive?: number;
  /** Bytes of the run's sanitized source (recorded; counted in the owner's storage until released). */
  sourceBytes?: number;
  /** The owner's storage (artifacts + sources) with this source added may not pass this. */
  maxStorageBytes?: number;
}

/** A user's stored bytes: artifacts kept and sources of runs not yet concluded. */
export interface StorageUse {
  artifacts: number;
  sources: number;
}

/** Runs, jobs, steps and artifacts. Status changes are conditional updates: only one caller wins a transition. */
@Injectable()
export class RunsRepository {
  constructor(@Inject(DATABASE) private readonly db: Database) {}

  /**
   * Records a run with all its jobs and steps at once: nothing is half-recorded. With maxActive, the
   * owner's runs not yet completed are counted in the same transaction (the owner's row locked on
   * PostgreSQL; SQLite transactions are serial), so concurrent submissions cannot overshoot; likewise
   * the owner's storage with this run's source added.
   */
  async create(run: Run, jobs: Job[], limits: CreateLimits = {}): Promise<void> {
    const { maxActive, maxStorageBytes } = limits;
    const sourceBytes = limits.sourceBytes ?? 0;
    await this.db.transaction(async (tx) => {
      if ((maxActive !== undefined || maxStorageBytes !== undefined) && run.ownerId && tx.kind === 'postgres') {
        await tx.all('SELECT id FROM users WHERE id = ? FOR UPDATE', [run.ownerId]);
      }
      if (maxActive !== undefined && run.ownerId) {
        const rows = await tx.all<{ n: number }>("SELECT COUNT(*) AS n FROM runs WHERE owner_id = ? AND status <> 'completed'", [run.ownerId]);
        const active = Number(rows[0]?.n ?? 0);
        if (active >= maxActive) throw new ActiveRunsLimit(active, maxActive);
      }
      if (maxStorageBytes !== undefined && run.ownerId) {
        const use = await storageOf(tx, run.ownerId);
        const used = use.artifacts + use.sources;
        if (used + sourceBytes > maxStorageBytes) throw new StorageLimit(used, sourceBytes, maxStorageBytes);
      }
      // The next number of the run's scope, taken in this transaction: the upsert holds the counter's
      // row until commit, so concurrent submissions (of any process) get distinct numbers, and a
      // refused or failed one takes none.
      const [next] = await tx.all<{ last_number: number }>(
        'INSERT INTO run_numbers (scope, last_number) VALUES (?, 1) ON CONFLICT (scope) DO UPDATE SET last_number = run_numbers.last_number + 1 RETURNING last_number',
        [runNumberScope(run)],
      );
      run.context.runNumber = Number(next.last_number);
      await tx.run(
        `INSERT INTO runs (id, owner_id, repository_id, concurrency_group, status, conclusion, source_kind, source, workflow_name, workflow_file, plan, context, cancel_requested, error, created_at, source_bytes, run_number)
         VALUES (?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, 0, NULL, ?, ?, ?)`,
        [
          run.id,
          run.ownerId,
          run.repositoryId ?? null,
          run.concurrencyGroup ?? null,
          run.status,
          run.source.kind,
          JSON.stringify(run.source),
          run.workflowName,
          run.workflowFile,
          JSON.stringify(run.plan),
          JSON.stringify(run.context),
          run.createdAt,
          sourceBytes,
          run.context.runNumber,
        ],
      );
      for (const j of jobs) await insertJob(tx, run.id, j);
    });
  }

  async getRun(id: string): Promise<Run | null> {
    const rows = await this.db.all<RunRow>('SELECT * FROM runs WHERE id = ?', [id]);
    return rows.length ? toRun(rows[0]) : null;
  }

  async listRuns(ownerId: string, limit: number): Promise<Run[]> {
    return (await this.db.all<RunRow>('SELECT * FROM runs WHERE owner_id = ? ORDER BY created_at DESC LIMIT ?', [ownerId, limit])).map(toRun);
  }

  /** Runs of an owner that are not completed. */
  async activeRunIds(ownerId: string): Promise<string[]> {
    return (await this.db.all<{ id: string }>("SELECT id FROM runs WHERE owner_id = ? AND status <> 'completed' ORDER BY created_at", [ownerId])).map(
      (r) => r.id,
    );
  }

  async countActiveRuns(ownerId: string): Promise<number> {
    const rows = await this.db.all<{ n: number }>("SELECT COUNT(*) AS n FROM runs WHERE owner_id = ? AND status <> 'completed'", [ownerId]);
    return Number(rows[0]?.n ?? 0);
  }

  /** Jobs of an owner handed to the queue or running, across all runs. */
  async countActiveJobs(ownerId: string): Promise<number> {
    const rows = await this.db.all<{ n: number }>(
      "SELECT COUNT(*) AS n FROM jobs j JOIN runs r ON r.id = j.run_id WHERE r.owner_id = ? AND j.status IN ('queued', 'in_progress')",
      [ownerId],
    );
    return Number(rows[0]?.n ?? 0);
  }

  /** The owner's stored bytes: artifacts kept, and sources of runs whose source is still in the store. */
  storage(ownerId: string): Promise<StorageUse> {
    return storageOf(this.db, ownerId);
  }

  /** The run's source is gone from the store: it no longer counts (0; NULL meant "recorded before sizes were"). */
  async sourceReleased(runId: string): Promise<void> {
    await this.db.run('UPDATE runs SET source_bytes = 0 WHERE id = ?', [runId]);
  }

  /** Completed runs whose source may still be in the store (concluded before this was tracked, or a release cut short). */
  async concludedWithSource(limit: number): Promise<string[]> {
    const rows = await this.db.all<{ id: string }>(
      "SELECT id FROM runs WHERE status = 'completed' AND (source_bytes IS NULL OR source_bytes <> 0) ORDER BY created_at LIMIT ?",
      [limit],
    );
    return rows.map((r) => r.id);
  }

  async jobs(runId: string): Promise<Job[]> {
    return (await this.db.all<JobRow>('SELECT * FROM jobs WHERE run_id = ? ORDER BY position', [runId])).map(toJob);
  }

  async job(id: string): Promise<Job | null> {
    const rows = await this.db.all<JobRow>('SELECT * FROM jobs WHERE id = ?', [id]);
    return rows.length ? toJob(rows[0]) : null;
  }

  async steps(runId: string): Promise<Step[]> {
    return (await this.db.all<StepRow>('SELECT s.* FROM steps s JOIN jobs j ON j.id = s.job_id WHERE j.run_id = ? ORDER BY j.position, s.idx', [runId])).map(
      toStep,
    );
  }

  /** Moves a job between statuses; false when it was not in one of `from` (someone else moved it). */
  async transitionJob(
    id: string,
    from: JobStatus[],
    to: JobStatus,
    fields: { conclusion?: Conclusion; error?: string | null; outputs?: Record<string, string>; worker?: string } = {},
  ): Promise<boolean> {
    const stamp = to === 'queued' ? 'queued_at' : to === 'in_progress' ? 'started_at' : to === 'completed' ? 'finished_at' : null;
    const sets = ['status = ?'];
    const params: unknown[] = [to];
    if (stamp) {
      sets.push(`${stamp} = ?`);
      params.push(now());
    }
    if (to === 'in_progress') sets.push('attempts = attempts + 1');
    if (fields.conclusion !== undefined) {
      sets.push('conclusion = ?');
      params.push(fields.conclusion);
    }
    if (fields.error !== undefined) {
      sets.push('error = ?');
      params.push(fields.error);
    }
    if (fields.outputs !== undefined) {
      sets.push('outputs = ?');
      params.push(JSON.stringify(fields.outputs));
    }
    if (fields.worker !== undefined) {
      sets.push('worker = ?');
      params.push(fields.worker);
    }
    params.push(id, ...from);
    const changed = await this.db.run(`UPDATE jobs SET ${sets.join(', ')} WHERE id = ? AND status IN (${from.map(() => '?').join(', ')})`, params);
    return changed > 0;
  }

  /** A job fail-fast completed as cancelled whose own step had failed first: its conclusion becomes failure. */
  async failFastWasFailure(id: string, error: string | null, outputs: Record<string, string>): Promise<boolean> {
    const changed = await this.db.run(
      `UPDATE jobs SET conclusion = 'failure', error = ?, outputs = ? WHERE id = ? AND status = 'completed' AND conclusion = 'cancelled' AND error LIKE ?`,
      [error, JSON.stringify(outputs), id, `${FAIL_FAST_CANCEL}%`],
    );
    return changed > 0;
  }

  /**
   * Replaces a pending job (a late-planned job's placeholder) by the jobs it gives, with their steps, in
   * one transaction; false (nothing changed) when the job is no longer pending.
   */
  async replaceJob(id: string, jobs: Job[]): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      if ((await tx.run("DELETE FROM jobs WHERE id = ? AND status = 'pending'", [id])) === 0) return false;
      await tx.run('DELETE FROM steps WHERE job_id = ?', [id]);
      for (const j of jobs) await insertJob(tx, j.runId, j);
      return true;
    });
  }

  async updateStep(
    jobId: string,
    index: number,
    fields: Partial<Pick<Step, 'name' | 'status' | 'outcome' | 'conclusion' | 'exitCode' | 'reason'>> & { started?: boolean; finished?: boolean },
  ): Promise<void> {
    const sets: string[] = [];
    const params: unknown[] = [];
    const cols: Record<string, string> = {
      name: 'name',
      status: 'status',
      outcome: 'outcome',
      conclusion: 'conclusion',
      exitCode: 'exit_code',
      reason: 'reason',
    };
    for (const [k, col] of Object.entries(cols)) {
      const v = (fields as Record<string, unknown>)[k];
      if (v !== undefined) {
        sets.push(`${col} = ?`);
        params.push(v);
      }
    }
    if (fields.started) {
      sets.push('started_at = ?');
      params.push(now());
    }
    if (fields.finished) {
      sets.push('finished_at = ?');
      params.push(now());
    }
    if (!sets.length) return;
    await this.db.run(`UPDATE steps SET ${sets.join(', ')} WHERE job_id = ? AND idx = ?`, [...params, jobId, index]);
  }

  /** Marks every not-yet-finished step of a job with one conclusion (skipped or cancelled). */
  async closeOpenSteps(jobId: string, conclusion: Conclusion, reason: StepReason | null): Promise<void> {
    await this.db.run(
      `UPDATE steps SET status = 'completed', outcome = ?, conclusion = ?, reason = COALESCE(reason, ?), finished_at = COALESCE(finished_at, ?) WHERE job_id = ? AND status <> 'completed'`,
      [conclusion, conclusion, reason, now(), jobId],
    );
  }

  async startRun(id: string): Promise<void> {
    await this.db.run(`UPDATE runs SET status = 'in_progress', started_at = ? WHERE id = ? AND status = 'queued'`, [now(), id]);
  }

  /** Completes a run once; false when it was already complete. */
  async completeRun(id: string, conclusion: Conclusion, error: string | null = null): Promise<boolean> {
    return (
      (await this.db.run(
        `UPDATE runs SET status = 'completed', conclusion = ?, error = COALESCE(?, error), finished_at = ? WHERE id = ? AND status <> 'completed'`,
        [conclusion, error, now(), id],
      )) > 0
    );
  }

  /** Other runs of a concurrency group that have not completed (oldest first). */
  async activeInGroup(group: string, except: string): Promise<string[]> {
    return (
      await this.db.all<{ id: string }>("SELECT id FROM runs WHERE concurrency_group = ? AND id <> ? AND status <> 'completed' ORDER BY created_at", [
        group,
        except,
      ])
    ).map((r) => r.id);
  }

  async requestCancel(id: string): Promise<void> {
    await this.db.run('UPDATE runs SET cancel_requested = 1 WHERE id = ?', [id]);
  }

  async isCancelRequested(id: string): Promise<boolean> {
    const rows = await this.db.all<{ c: number }>('SELECT cancel_requested AS c FROM runs WHERE id = ?', [id]);
    return Boolean(rows[0]?.c);
  }

  async insertAnnotation(runId: string, jobId: string, step: number, seq: number, a: Annotation): Promise<void> {
    await this.db.run(
      'INSERT INTO annotations (run_id, job_id, step, seq, level, message, title, file, line, end_line, col, end_column) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      [runId, jobId, step, seq, a.level, a.message, a.title, a.file, a.line, a.endLine, a.col, a.endColumn],
    );
  }

  async annotations(runId: string): Promise<(Annotation & { jobId: string; step: number })[]> {
    const rows = await this.db.all<{
      job_id: string;
      step: number;
      level: string;
      message: string;
      title: string | null;
      file: string | null;
      line: number | null;
      end_line: number | null;
      col: number | null;
      end_column: number | null;
    }>('SELECT a.* FROM annotations a JOIN jobs j ON j.id = a.job_id WHERE a.run_id = ? ORDER BY j.position, a.seq', [runId]);
    return rows.map((r) => ({
      jobId: r.job_id,
      step: Number(r.step),
      level: r.level as Annotation['level'],
      message: r.message,
      title: r.title,
      file: r.file,
      line: r.line,
      endLine: r.end_line,
      col: r.col,
      endColumn: r.end_column,
    }));
  }

  async setJobSummary(jobId: string, markdown: string): Promise<void> {
    await this.db.run('UPDATE jobs SET summary = ? WHERE id = ?', [markdown, jobId]);
  }

  async jobSummaries(runId: string): Promise<Record<string, string>> {
    const rows = await this.db.all<{ id: string; summary: string | null }>('SELECT id, summary FROM jobs WHERE run_id = ?', [runId]);
    return Object.fromEntries(rows.filter((r) => r.summary).map((r) => [r.id, r.summary as string]));
  }

  async setJobEgress(jobId: string, report: EgressReport): Promise<void> {
    await this.db.run('UPDATE jobs SET egress = ? WHERE id = ?', [JSON.stringify(report), jobId]);
  }

  /** The egress reports of a run's jobs that had a gateway, by job id. */
  async jobEgress(runId: string): Promise<Record<string, EgressReport>> {
    const rows = await this.db.all<{ id: string; egress: string | null }>('SELECT id, egress FROM jobs WHERE run_id = ? AND egress IS NOT NULL', [runId]);
    return Object.fromEntries(rows.map((r) => [r.id, JSON.parse(r.egress as string) as EgressReport]));
  }

  async insertArtifact(a: Artifact): Promise<void> {
    await this.db.run('INSERT INTO artifacts (id, run_id, job_id, name, size_bytes, files, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)', [
      a.id,
      a.runId,
      a.jobId,
      a.name,
      a.sizeBytes,
      a.files,
      a.createdAt,
      a.expiresAt,
    ]);
  }

  async artifacts(runId: string): Promise<Artifact[]> {
    return (await this.db.all<ArtifactRow>('SELECT * FROM artifacts WHERE run_id = ? ORDER BY created_at, name', [runId])).map(toArtifact);
  }

  async expiredArtifacts(at: string): Promise<Artifact[]> {
    return (await this.db.all<ArtifactRow>('SELECT * FROM artifacts WHERE expires_at <= ?', [at])).map(toArtifact);
  }

  async deleteArtifact(id: string): Promise<void> {
    await this.db.run('DELETE FROM artifacts WHERE id = ?', [id]);
  }
}

/** Artifacts of the owner's runs, and sources still held (source_bytes > 0; NULL rows predate the column and are not counted). */
/** How fail-fast's cancellation begins its recorded reason (RunScheduler). */
export const FAIL_FAST_CANCEL = 'cancelled by fail-fast';

async function insertJob(tx: Database, runId: string, j: Job): Promise<void> {
  await tx.run(
    `INSERT INTO jobs (id, run_id, position, job_key, job_id, name, environment, status, spec, attempts)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)`,
    [j.id, runId, j.position, j.key, j.workflowJobId, j.name, j.environment, j.status, JSON.stringify(j.spec)],
  );
  for (const s of j.spec.steps) {
    await tx.run(`INSERT INTO steps (job_id, idx, name, status) VALUES (?, ?, ?, 'pending')`, [j.id, s.index, s.name]);
  }
}

async function storageOf(db: Database, ownerId: string): Promise<StorageUse> {
  const [a, s] = await Promise.all([
    db.all<{ n: number | string | null }>('SELECT SUM(a.size_bytes) AS n FROM artifacts a JOIN runs r ON r.id = a.run_id WHERE r.owner_id = ?', [ownerId]),
    db.all<{ n: number | string | null }>('SELECT SUM(source_bytes) AS n FROM runs WHERE owner_id = ? AND source_bytes > 0', [ownerId]),
  ]);
  return { artifacts: Number(a[0]?.n ?? 0), sources: Number(s[0]?.n ?? 0) };
}
