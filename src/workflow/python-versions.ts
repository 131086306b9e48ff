// Which Python a job asks actions/setup-python for, and which environment's Python answers it.
// `python-version` is read as setup-python reads it (a semver range: 3.11, 3.11.2, 3.x, >=3.9 <3.12,
// with semver, the library setup-python itself uses); `requires-python` in pyproject.toml is a PEP 440
// specifier (>=3.9, ~=3.10, >=3.8,<3.13), read with @renovatebot/pep440. Both are well kept and match
// the tools whose syntax they read, so no hand-written version grammar lives here.
import { satisfies as pep440Satisfies, validRange as pep440Range } from '@renovatebot/pep440';
import * as semver from 'semver';

/** What a job asked for: the specs in order (the last is the default `python`, as on GitHub), and how to read them. */
export interface PythonRequest {
  specs: string[];
  kind: 'semver' | 'pep440';
  /** Where it was said, for messages: `python-version 3.9` or `python-version-file pyproject.toml (requires-python >=3.10)`. */
  source: string;
}

/** A Python release a version spec can be held against: Debian's `3.11.2`, also `3.13.5+` or `3.9` as reports may show. */
function release(have: string): string | null {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(have.trim());
  return m ? `${m[1]}.${m[2]}.${m[3] ?? '0'}` : null;
}

/** setup-python's spellings before semver reads them: a leading `v`, `-dev` for pre-releases of a minor. */
function semverRange(spec: string): string | null {
  const s = spec.trim().replace(/^v/, '');
  const dev = /^(\d+\.\d+)-dev$/.exec(s);
  const range = dev ? `~${dev[1]}.0-0` : s;
  return semver.validRange(range, { loose: true });
}

/** Whether the Python `have` (e.g. `3.11.2`) satisfies one spec. PyPy (see pypySatisfies), free-threaded (`3.13t`) and unknown spellings never do. */
export function pythonSatisfies(spec: string, have: string | null, kind: PythonRequest['kind'] = 'semver'): boolean {
  if (!have) return false;
  const version = release(have);
  if (!version) return false;
  if (kind === 'pep440') return Boolean(pep440Range(spec)) && pep440Satisfies(version, spec);
  const range = semverRange(spec);
  return range !== null && semver.satisfies(version, range, { includePrerelease: /-dev$/.test(spec.trim()) });
}

/** A PyPy: the Python version it implements (`3.9.16`) and its own (`7.3.11`). */
export interface PyPy {
  python: string;
  version: string;
}

/**
 * setup-python's PyPy spellings (its parsePyPyVersion): `pypy3.9` or `pypy-3.9`, the Python as MAJOR.MINOR,
 * then optionally a dash and a PyPy version or range (`pypy3.10-v7.3.x`, `pypy-3.9-7.3.11`) or `nightly`
 * (which no Debian release is). The Python range and the PyPy range (`''` for nightly); null when the spec is
 * not a PyPy one setup-python accepts.
 */
export function pypySpec(spec: string): { python: string; pypy: string | null } | null {
  const m = /^pypy-?(\d+\.\d+)(?:-v?([\w.*]+))?$/i.exec(spec.trim());
  if (!m) return null;
  if (m[2] === undefined) return { python: m[1], pypy: null };
  if (m[2].toLowerCase() === 'nightly') return { python: m[1], pypy: '' };
  const pypy = semver.validRange(m[2], { loose: true });
  return pypy === null ? null : { python: m[1], pypy };
}

export function isPyPySpec(spec: string): boolean {
  return /^pypy/i.test(spec.trim());
}

/** Whether a PyPy answers a PyPy spec: its Python in the spec's range, and its own version in the PyPy range when one is given. */
export function pypySatisfies(spec: string, have: PyPy | null | undefined): boolean {
  const want = pypySpec(spec);
  if (!want || !have) return false;
  const python = release(have.python);
  const own = release(have.version);
  if (!python || !own || !semver.satisfies(python, want.python)) return false;
  return want.pypy === null || (want.pypy !== '' && semver.satisfies(own, want.pypy));
}

/** Whether a spec can be read at all (a problem names the spec otherwise). */
export function validPythonSpec(spec: string, kind: PythonRequest['kind']): boolean {
  if (kind === 'semver' && isPyPySpec(spec)) return pypySpec(spec) !== null;
  return kind === 'pep440' ? Boolean(pep440Range(spec)) : semverRange(spec) !== null;
}

/** What setup-python can find in one published environment (its latest version). */
export interface EnvironmentPythons {
  /** CPython (`python3`), e.g. `3.11.2`; null when the image has none. */
  python: string | null;
  /** PyPy (`pypy3`), or null. A PyPy environment answers PyPy requests only: its CPython is there for tools (tox, nox). */
  pypy?: PyPy | null;
  /** A beta environment gets a job that asks for a range only when no other environment answers it. */
  beta?: boolean;
}

/** What an environment offers for one spec, as messages say it (`Python 3.9.2`, `PyPy 7.3.11, Python 3.9.16`); null when nothing. */
export function answer(spec: string, kind: PythonRequest['kind'], env: EnvironmentPythons): { python: string; said: string } | null {
  if (kind === 'semver' && isPyPySpec(spec)) {
    return env.pypy && pypySatisfies(spec, env.pypy) ? { python: env.pypy.python, said: describePythons(env) } : null;
  }
  if (env.pypy || !env.python || !pythonSatisfies(spec, env.python, kind)) return null;
  return { python: env.python, said: `Python ${env.python}` };
}

/** `Python 3.11.2`, `PyPy 7.3.11, Python 3.9.16`, or `no Python`. */
export function describePythons(env: EnvironmentPythons): string {
  if (env.pypy) return `PyPy ${env.pypy.version}, Python ${env.pypy.python}`;
  return env.python ? `Python ${env.python}` : 'no Python';
}

/**
 * The environment that answers `spec`: a GA one before a beta one, then the highest Python first
 * (setup-python takes the newest release a range allows); ties go to the name that sorts first. Null when none does.
 */
export function pickEnvironment(
  spec: string,
  kind: PythonRequest['kind'],
  pythons: Record<string, EnvironmentPythons>,
): { name: string; python: string; said: string } | null {
  const fits = Object.entries(pythons)
    .map(([name, env]) => ({ name, beta: Boolean(env.beta), ...answer(spec, kind, env) }))
    .filter((e): e is { name: string; beta: boolean; python: string; said: string } => e.python !== undefined)
    .sort((a, b) => Number(a.beta) - Number(b.beta) || semver.rcompare(release(a.python)!, release(b.python)!) || a.name.localeCompare(b.name));
  return fits.length ? { name: fits[0].name, python: fits[0].python, said: fits[0].said } : null;
}

/**
 * The versions a `python-version-file` names, read as setup-python reads each kind: `.python-version`
 * (one version per line, comments and blank lines skipped), `.tool-versions` (the `python` line),
 * `pyproject.toml` (`requires-python` of `[project]`, else Poetry's `python` dependency), anything else
 * as `.python-version`. Returns null when the file says nothing usable.
 */
export function versionsFromFile(file: string, text: string): (Omit<PythonRequest, 'source'> & { said: string }) | null {
  const base = file.split('/').pop() ?? file;
  if (base === 'pyproject.toml') {
    const spec = tomlString(text, 'project', 'requires-python') ?? tomlString(text, 'tool.poetry.dependencies', 'python');
    if (spec === null) return null;
    // Poetry's caret and tilde ranges are semver's; PEP 440 otherwise.
    const kind = /^[\^~](?!=)/.test(spec.trim()) ? 'semver' : 'pep440';
    return { specs: [spec.trim()], kind, said: `requires-python ${spec.trim()}` };
  }
  if (base === '.tool-versions') {
    const line = text.split('\n').find((l) => /^python\s/.test(l.trim()));
    const specs = line ? line.trim().split(/\s+/).slice(1) : [];
    return specs.length ? { specs, kind: 'semver', said: specs.join(' ') } : null;
  }
  const specs = text
    .split('\n')
    .map((l) => l.replace(/#.*/, '').trim())
    .filter(Boolean);
  return specs.length ? { specs, kind: 'semver', said: specs.join(' ') } : null;
}

/** The string value of `key` in TOML table `[table]` (a small reader: `key = "value"` or `'value'` lines only). */
function tomlString(text: string, table: string, key: string): string | null {
  let inTable = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const header = /^\[([^\]]+)\]$/.exec(line);
    if (header) {
      inTable = header[1].trim() === table;
      continue;
    }
    if (!inTable) continue;
    const m = /^([A-Za-z0-9_.-]+|"[^"]+")\s*=\s*(?:"([^"]*)"|'([^']*)')/.exec(line);
    if (m && m[1].replace(/"/g, '') === key) return m[2] ?? m[3] ?? null;
  }
  return null;
}
