import picomatch from 'picomatch';
import { parse } from 'yaml';

/** What a push is, for `on: push` filters. */
export interface PushFacts {
  ref: string;             // refs/heads/main or refs/tags/v1
  changedPaths: string[];  // added, modified, removed files of the pushed commits
}

export interface TriggerDecision {
  runs: boolean;
  reason: string;
  /** `concurrency` of the workflow, raw (the group may hold ${{ }}). */
  concurrency: { group: string; cancelInProgress: boolean } | null;
}

type Filters = Partial<Record<'branches' | 'branches-ignore' | 'tags' | 'tags-ignore' | 'paths' | 'paths-ignore', string[]>>;

/**
 * Whether a workflow runs for a push, as GitHub decides it: `on: push` (string, list or mapping) with
 * branches / branches-ignore / tags / tags-ignore / paths / paths-ignore, `!` negations in order.
 * A `.kiln.yml` without `on` runs on every push.
 */
export function pushTrigger(workflowText: string, facts: PushFacts, isKilnFile: boolean): TriggerDecision {
  let doc: Record<string, unknown>;
  try {
    doc = (parse(workflowText, { maxAliasCount: 100 }) ?? {}) as Record<string, unknown>;
  } catch (e) {
    // An invalid workflow still gets a run, which then fails with the parser's message (as GitHub shows it).
    return { runs: true, reason: `the workflow is not valid YAML (${(e as Error).message.split('\n')[0]})`, concurrency: null };
  }
  const concurrency = readConcurrency(doc.concurrency);
  const on = doc.on;
  if (on === undefined) return isKilnFile ? { runs: true, reason: '.kiln.yml runs on every push', concurrency } : { runs: false, reason: "no 'on'", concurrency };
  let filters: Filters | null = null;
  if (on === 'push') filters = {};
  else if (Array.isArray(on)) filters = on.includes('push') ? {} : null;
  else if (on && typeof on === 'object' && 'push' in on) filters = ((on as Record<string, unknown>).push ?? {}) as Filters;
  if (filters === null) return { runs: false, reason: 'the workflow is not triggered by push', concurrency };
  const isTag = facts.ref.startsWith('refs/tags/');
  const name = facts.ref.replace(/^refs\/(heads|tags)\//, '');
  const refFilter = isTag ? filters.tags : filters.branches;
  const refIgnore = isTag ? filters['tags-ignore'] : filters['branches-ignore'];
  // Only tag filters given and this is a branch (or the reverse): GitHub does not run it.
  const onlyOther = isTag ? (filters.branches || filters['branches-ignore']) && !filters.tags && !filters['tags-ignore'] : (filters.tags || filters['tags-ignore']) && !filters.branches && !filters['branches-ignore'];
  if (onlyOther) return { runs: false, reason: `only ${isTag ? 'branch' : 'tag'} pushes trigger it`, concurrency };
  if (refFilter && !matchesList(name, refFilter)) return { runs: false, reason: `${isTag ? 'tag' : 'branch'} ${name} is not in ${isTag ? 'tags' : 'branches'}`, concurrency };
  if (refIgnore && matchesList(name, refIgnore)) return { runs: false, reason: `${isTag ? 'tag' : 'branch'} ${name} is in ${isTag ? 'tags' : 'branches'}-ignore`, concurrency };
  if (!isTag && filters.paths && !facts.changedPaths.some((p) => matchesList(p, filters!.paths!))) return { runs: false, reason: 'no changed file matches paths', concurrency };
  if (!isTag && filters['paths-ignore'] && facts.changedPaths.length && facts.changedPaths.every((p) => matchesList(p, filters!['paths-ignore']!))) return { runs: false, reason: 'every changed file matches paths-ignore', concurrency };
  return { runs: true, reason: 'on: push matches', concurrency };
}

/** GitHub's filter lists: later patterns win; `!pattern` excludes what earlier ones included. */
export function matchesList(value: string, patterns: string[]): boolean {
  let matched = false;
  for (const raw of patterns) {
    const p = String(raw);
    if (p.startsWith('!')) {
      if (matched && picomatch.isMatch(value, p.slice(1), { dot: true })) matched = false;
    } else if (picomatch.isMatch(value, p, { dot: true })) {
      matched = true;
    }
  }
  return matched;
}

function readConcurrency(value: unknown): TriggerDecision['concurrency'] {
  if (typeof value === 'string' && value.trim()) return { group: value, cancelInProgress: false };
  if (value && typeof value === 'object' && typeof (value as Record<string, unknown>).group === 'string') {
    const v = value as Record<string, unknown>;
    return { group: v.group as string, cancelInProgress: v['cancel-in-progress'] === true };
  }
  return null;
}
