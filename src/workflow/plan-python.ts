/**
 * actions/setup-python at submission. The Python a job gets is its environment's, so the planner holds
 * the version a job asks for (`python-version`, or `python-version-file`) against it:
 * - a job whose `runs-on` is a label (ubuntu-latest, ... through the label map) goes to the
 *   environment whose Python answers the request, as a matrix over python-version runs on GitHub;
 * - a job that names its environment keeps it, and a version that environment lacks is a problem
 *   naming the environments that have it.
 */
import { evaluateTemplate, formatScalar, hasExpression, type ExprContext } from './expressions';
import type { PlannedJob, PlanOptions } from './model';
import type { ParsedJob } from './parse';
import type { ParsedStep } from './parse-steps';
import type { Problems } from './plan-problems';
import {
  answer,
  describePythons,
  pickEnvironment,
  validPythonSpec,
  versionsFromFile,
  type EnvironmentPythons,
  type PyPy,
  type PythonRequest,
} from './python-versions';

export type PlacedEnvironment = PlannedJob['environment'] & { python?: string | null; pypy?: PyPy | null };

/** A file setup-python would read is at most this big (a pyproject.toml is a few KiB). */
export const PYTHON_VERSION_FILE_MAX_BYTES = 64 * 1024;

interface Asked extends PythonRequest {
  path: string;
}

export class SetupPythonPlanner {
  private readonly files = new Map<string, Promise<string | null>>();

  constructor(
    private readonly opts: PlanOptions,
    private readonly p: Problems,
    private readonly resolve: (name: string) => PlacedEnvironment | { error: string },
  ) {}

  /**
   * Where the job runs once setup-python is taken into account, and the line its log shows when the
   * request moved it; null when a problem was reported. `label` is the runs-on label the label map
   * turned into `environment`, or null when runs-on named the environment itself.
   */
  async place(
    job: ParsedJob,
    environment: PlacedEnvironment,
    label: string | null,
    ctx: ExprContext,
    key: string,
  ): Promise<{ environment: PlacedEnvironment; placement: string | null } | null> {
    let placed = environment;
    let placement: string | null = null;
    let ok = true;
    for (const step of job.steps) {
      if (step.uses !== 'setup-python') continue;
      const asked = await this.request(step, ctx, key);
      if (asked === undefined) continue;
      if (asked === null) {
        ok = false;
        continue;
      }
      const here = { python: placed.python ?? null, pypy: placed.pypy ?? null };
      if (asked.specs.some((s) => answer(s, asked.kind, here))) continue;
      // Only the first request may move a job, and only off a label: later ones are held against where it landed.
      if (label !== null && placement === null && placed === environment) {
        const moved = this.move(asked, environment, label);
        if (moved) {
          [placed, placement] = moved;
          continue;
        }
      }
      this.p.add(asked.path, this.missing(asked, placed, key), true);
      ok = false;
    }
    return ok ? { environment: placed, placement } : null;
  }

  /** The environment whose Python answers the request (the default, last, version first), with the line that says why. */
  private move(asked: Asked, from: PlacedEnvironment, label: string): [PlacedEnvironment, string] | null {
    for (const spec of [...asked.specs].reverse()) {
      const pick = pickEnvironment(spec, asked.kind, this.opts.pythons ?? {});
      if (!pick) continue;
      const target = this.resolve(pick.name);
      if ('error' in target) continue;
      return [target, `actions/setup-python asks for ${asked.source}: the job runs on ${target.name} (${pick.said}); ${label} alone would be ${from.name}`];
    }
    return null;
  }

  private missing(asked: Asked, environment: PlacedEnvironment, key: string): string {
    const all = Object.entries(this.opts.pythons ?? {});
    const elsewhere = all.filter(([, env]) => asked.specs.some((s) => answer(s, asked.kind, env))).map(([n, env]) => `${n} (${said(env)})`);
    const known = all.filter(([, env]) => env.python || env.pypy).map(([n, env]) => `${n} (${said(env)})`);
    const here = describePythons({ python: environment.python ?? null, pypy: environment.pypy ?? null });
    return `${asked.source} is not available in ${environment.name} (${here})${forKey(key)}; ${elsewhere.length ? `environments with it: ${elsewhere.join(', ')}` : `no published environment has it (there are: ${known.join(', ') || 'none'})`}`;
  }

  /** The request of one setup-python step: undefined when it asks for nothing, null when a problem was reported. */
  private async request(step: ParsedStep, ctx: ExprContext, key: string): Promise<Asked | null | undefined> {
    const version = step.with['python-version'];
    const file = step.with['python-version-file'];
    if (version !== undefined && version.trim() !== '') {
      const path = `${step.path}.with.python-version`;
      const wanted = await this.evaluate(version, path, ctx, key, 'python-version');
      if (wanted === null) return null;
      const specs = wanted.split(/[\s,]+/).filter(Boolean);
      if (!specs.length) return undefined;
      return { specs, kind: 'semver', source: `python-version ${wanted}`, path };
    }
    if (file === undefined || file.trim() === '') return undefined;
    const path = `${step.path}.with.python-version-file`;
    const name = await this.evaluate(file, path, ctx, key, 'python-version-file');
    if (name === null) return null;
    const rel = name.trim().replace(/^(\.\/)+/, '');
    if (rel === '' || rel.startsWith('/') || rel.split('/').includes('..')) {
      this.p.add(path, `python-version-file ${name} must be a path inside the workspace`);
      return null;
    }
    if (!this.opts.readFile) {
      // A job planned when its needs are done (its matrix or runs-on reads needs): the source is not at hand.
      this.p.add(path, `python-version-file is not read for a job whose matrix or runs-on reads needs: give python-version instead${forKey(key)}`);
      return null;
    }
    const text = await this.read(rel);
    if (text === null) {
      this.p.add(path, `python-version-file: ${rel} is not in the submitted source (setup-python reads it from the workspace)${forKey(key)}`);
      return null;
    }
    const read = versionsFromFile(rel, text);
    if (!read || read.specs.some((s) => !validPythonSpec(s, read.kind))) {
      this.p.add(path, `python-version-file: ${rel} names no Python version setup-python can read${read ? ` (${read.said})` : ''}`);
      return null;
    }
    return { specs: read.specs, kind: read.kind, source: `python-version-file ${rel} (${read.said})`, path };
  }

  private async evaluate(raw: string, path: string, ctx: ExprContext, key: string, what: string): Promise<string | null> {
    if (!hasExpression(raw)) return raw;
    try {
      return formatScalar(await evaluateTemplate(raw, ctx));
    } catch (e) {
      this.p.add(path, `${what} could not be evaluated for ${key}: ${(e as Error).message}`);
      return null;
    }
  }

  private read(rel: string): Promise<string | null> {
    let text = this.files.get(rel);
    if (!text) {
      text = this.opts.readFile ? this.opts.readFile(rel, PYTHON_VERSION_FILE_MAX_BYTES).catch(() => null) : Promise.resolve(null);
      this.files.set(rel, text);
    }
    return text;
  }
}

/** An environment's Python as lists of them say it: `3.11.2`, or `PyPy 7.3.11, Python 3.9.16`. */
function said(env: EnvironmentPythons): string {
  return env.pypy ? describePythons(env) : (env.python ?? 'none');
}

function forKey(key: string): string {
  return key.includes('(') ? ` for ${key}` : '';
}
