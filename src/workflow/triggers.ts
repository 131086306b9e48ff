/**
 * The `on:` of a workflow read for a push: whether it runs, and its `concurrency`. Pure: the webhook
 * side gathers the facts of a delivery and asks. The text is loaded by the same guarded loader as
 * the workflow parser (it comes from a pushed repository).
 */
import picomatch from 'picomatch';
import { loadYaml } from './safe-yaml';

/** What a push is, for `on: push` filters. */
export interface PushFacts {
  ref: string; // refs/heads/main or refs/tags/v1
  changedPaths: string[]; // added, modified, removed files of the pushed commits
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
  const loaded = loadYaml(workflowText);
  // No document at all (empty, or only comments) reads as a workflow without `on`.
  const problems = !loaded.ok && loaded.empty ? [] : loaded.problems;
  // An invalid workflow still gets a run, which then fails with the parser's message (as GitHub shows it).
  if (problems.length > 0) return { runs: true, reason: `the workflow is not valid YAML (${problems[0].message})`, concurrency: null };
  const doc = ((loaded.ok ? loaded.value : null) ?? {}) as Record<string, unknown>;
  const concurrency = readConcurrency(doc.concurrency);
  const on = doc.on;
  if (on === undefined)
    return isKilnFile ? { runs: true, reason: '.kiln.yml runs on every push', concurrency } : { runs: false, reason: "no 'on'", concurrency };
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
  const onlyOther = isTag
    ? (filters.branches || filters['branches-ignore']) && !filters.tags && !filters['tags-ignore']
    : (filters.tags || filters['tags-ignore']) && !filters.branches && !filters['branches-ignore'];
  if (onlyOther) return { runs: false, reason: `only ${isTag ? 'branch' : 'tag'} pushes trigger it`, concurrency };
  if (refFilter && !matchesList(name, refFilter))
    return { runs: false, reason: `${isTag ? 'tag' : 'branch'} ${name} is not in ${isTag ? 'tags' : 'branches'}`, concurrency };
  if (refIgnore && matchesList(name, refIgnore))
    return { runs: false, reason: `${isTag ? 'tag' : 'branch'} ${name} is in ${isTag ? 'tags' : 'branches'}-ignore`, concurrency };
  if (!isTag && filters.paths && !facts.changedPaths.some((p) => matchesList(p, filters!.paths!)))
    return { runs: false, reason: 'no changed file matches paths', concurrency };
  if (!isTag && filters['paths-ignore'] && facts.changedPaths.length && facts.changedPaths.every((p) => matchesList(p, filters!['paths-ignore']!)))
    return { runs: false, reason: 'every changed file matches paths-ignore', concurrency };
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
