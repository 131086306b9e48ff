/**
 * strategy.matrix expansion with GitHub's documented semantics:
 *   1. the cartesian product of every key but include/exclude, first key varying slowest;
 *   2. `exclude` removes every combination matching all key:value pairs of an entry (partial match);
 *   3. `include` entries, in order, are merged into every combination where they overwrite no ORIGINAL
 *      matrix value (values added by an earlier include may be overwritten); an entry that fits no
 *      combination becomes a new combination of its own (and later entries are not merged into it);
 *   4. an empty result is an error.
 * Values are plain JSON here: expressions in the matrix are evaluated by the planner beforehand.
 */
import { formatScalar } from './expressions';

export type MatrixCombination = Record<string, unknown>;

/** A matrix that cannot be expanded; `key` names the offending matrix key when there is one. */
export class MatrixError extends Error {
  constructor(
    message: string,
    readonly key: string | null = null,
    readonly tooMany = false,
  ) {
    super(message);
  }
}

/** Beyond this many raw combinations we stop even if exclude would remove most of them: it bounds the work. */
const MAX_PRODUCT = 100_000;

/**
 * Expands a matrix into its combinations, in the order GitHub lists the jobs.
 * `maxCombinations` bounds the result: exceeding it throws a MatrixError (tooMany) before expanding further.
 */
export function expandMatrix(matrix: Record<string, unknown>, maxCombinations = Number.POSITIVE_INFINITY): MatrixCombination[] {
  const include = entries(matrix, 'include');
  const exclude = entries(matrix, 'exclude');
  const vectors = vectorsOf(matrix);
  checkExcludeKeys(exclude, vectors);
  const base = vectors.length === 0 ? [] : product(vectors, exclude, maxCombinations);
  const result = applyIncludes(base, include, new Set(vectors.map(([key]) => key)));
  if (result.length > maxCombinations) {
    throw new MatrixError(`the matrix produces ${result.length} jobs, more than the ${maxCombinations} allowed`, null, true);
  }
  if (result.length === 0) {
    throw new MatrixError('the matrix produced no jobs: every combination is excluded, or the matrix is empty');
  }
  return result;
}

/** `include` / `exclude`: a list of mappings (absent = empty). */
function entries(matrix: Record<string, unknown>, key: 'include' | 'exclude'): MatrixCombination[] {
  const value = matrix[key];
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new MatrixError(`'${key}' must be a list of mappings`, key);
  return value.map((entry, i) => {
    if (!isPlainObject(entry)) throw new MatrixError(`'${key}[${i}]' must be a mapping of matrix keys to values`, key);
    if (key === 'exclude' && Object.keys(entry).length === 0) {
      throw new MatrixError(`'exclude[${i}]' is empty: name the key:value pairs to exclude`, key);
    }
    return entry;
  });
}

/** The matrix dimensions in the order written; each must be a non-empty list. */
function vectorsOf(matrix: Record<string, unknown>): [string, unknown[]][] {
  const vectors: [string, unknown[]][] = [];
  for (const [key, value] of Object.entries(matrix)) {
    if (key === 'include' || key === 'exclude') continue;
    if (!Array.isArray(value)) {
      throw new MatrixError(`matrix key '${key}' must be a list of values, e.g. ${key}: [${formatScalar(value) || 'a'}]`, key);
    }
    if (value.length === 0) throw new MatrixError(`matrix key '${key}' has no values: give at least one`, key);
    vectors.push([key, value]);
  }
  return vectors;
}

/** GitHub refuses an exclude naming a key that is not in the matrix: it would silently exclude nothing. */
function checkExcludeKeys(exclude: MatrixCombination[], vectors: [string, unknown[]][]): void {
  const keys = new Set(vectors.map(([key]) => key));
  for (const entry of exclude) {
    for (const key of Object.keys(entry)) {
      if (!keys.has(key)) {
        throw new MatrixError(`exclude key '${key}' does not match any key of the matrix (${[...keys].join(', ') || 'none'})`, 'exclude');
      }
    }
  }
}

/** The cartesian product (first key slowest) minus the excluded combinations, generated lazily so a huge matrix fails fast. */
function product(vectors: [string, unknown[]][], exclude: MatrixCombination[], max: number): MatrixCombination[] {
  const total = vectors.reduce((n, [, values]) => n * values.length, 1);
  if (total > MAX_PRODUCT) {
    throw new MatrixError(`the matrix has ${total} combinations before exclude, more than ${MAX_PRODUCT}`, null, true);
  }
  const result: MatrixCombination[] = [];
  const index = vectors.map(() => 0);
  for (let n = 0; n < total; n++) {
    const combo: MatrixCombination = {};
    // Cloned: combinations are extended in place by include and must not share object values.
    vectors.forEach(([key, values], i) => (combo[key] = structuredClone(values[index[i]])));
    if (!exclude.some((entry) => matches(combo, entry))) result.push(combo);
    if (result.length > max) {
      throw new MatrixError(`the matrix produces more than the ${max} jobs allowed`, null, true);
    }
    advance(index, vectors);
  }
  return result;
}

/** Odometer step: the last key varies fastest. */
function advance(index: number[], vectors: [string, unknown[]][]): void {
  for (let i = index.length - 1; i >= 0; i--) {
    index[i]++;
    if (index[i] < vectors[i][1].length) return;
    index[i] = 0;
  }
}

function matches(combo: MatrixCombination, entry: MatrixCombination): boolean {
  return Object.entries(entry).every(([key, value]) => Object.hasOwn(combo, key) && deepEqual(combo[key], value));
}

function applyIncludes(base: MatrixCombination[], include: MatrixCombination[], original: Set<string>): MatrixCombination[] {
  const added: MatrixCombination[] = [];
  for (const entry of include) {
    let merged = false;
    for (const combo of base) {
      // An include may not change an original matrix value, but may overwrite what an earlier include added.
      const fits = Object.entries(entry).every(([key, value]) => !original.has(key) || deepEqual(combo[key], value));
      if (fits) {
        Object.assign(combo, structuredClone(entry));
        merged = true;
      }
    }
    if (!merged) added.push(structuredClone(entry));
  }
  return [...base, ...added];
}

/** Deep equality of plain JSON values (matrix values may be objects). */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((v, i) => deepEqual(v, b[i]));
  }
  if (isPlainObject(a) && isPlainObject(b)) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]));
  }
  return false;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `v1, v2, ...`: the matrix values in key order, as GitHub shows them after the job id (objects as JSON). */
export function matrixLabel(combo: MatrixCombination): string {
  return Object.values(combo)
    .map((v) => formatScalar(v))
    .join(', ');
}

/** The job key of one matrix combination: `jobId (v1, v2)`. */
export function matrixJobKey(jobId: string, combo: MatrixCombination): string {
  return `${jobId} (${matrixLabel(combo)})`;
}
