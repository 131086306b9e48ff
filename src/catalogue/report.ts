import type { Manifest, EnvironmentStatus } from './manifest';

export interface Package {
  name: string;
  version: string;
}

export interface PyPyVersion {
  python: string;
  version: string;
}

/** What the probe measured inside an image. */
export interface ProbeResult {
  os: { id: string; versionId: string; prettyName: string; codename: string; debianVersion: string };
  python: string | null;
  /** The image's PyPy (`pypy3`): the Python version it implements and its own; null (or absent in reports from before PyPy) when there is none. */
  pypy?: PyPyVersion | null;
  tools: Package[];
  debPackages: Package[];
  pythonPackages: Package[];
}

/** The published software report of one environment version. */
export interface SoftwareReport extends ProbeResult {
  name: string;
  version: string;
  status: EnvironmentStatus;
  removal: string | null;
  description: string | null;
  labels: string[];
  base: string;
  image: {
    ref: string;
    id: string;
    sizeBytes: number;
    builtAt: string;
    buildSeconds: number | null;
    buildKey: string;
    manifestHash: string;
  };
  env: Record<string, string>;
  probedAt: string;
  probeKey: string;
}

export class ProbeError extends Error {}

/** Parses probe.sh's tab-separated output. Throws ProbeError when it is incomplete. */
export function parseProbeOutput(out: string): ProbeResult {
  const osRelease: Record<string, string> = {};
  const tools: Package[] = [];
  const deb: Package[] = [];
  const py: Package[] = [];
  let pypy: PyPyVersion | null = null;
  let ended = false;
  for (const line of out.split('\n')) {
    if (line === 'end') {
      ended = true;
      continue;
    }
    const [section, name, ...rest] = line.split('\t');
    const value = rest.join('\t');
    if (!section || name === undefined) continue;
    if (section === 'os') osRelease[name] = value;
    else if (section === 'tool') tools.push({ name, version: value });
    else if (section === 'deb') deb.push({ name, version: value });
    else if (section === 'pydist') py.push({ name, version: value });
    else if (section === 'pypy' && rest.length === 2) pypy = { python: rest[0], version: rest[1] };
  }
  if (!ended) throw new ProbeError('the probe did not finish (no end marker in its output)');
  if (!deb.length) throw new ProbeError('the probe found no Debian packages (dpkg-query failed?)');
  const pyTool = tools.find((t) => t.name === 'python3');
  const m = pyTool && /^Python (\S+)/.exec(pyTool.version);
  const byName = (a: Package, b: Package) => a.name.localeCompare(b.name);
  return {
    os: {
      id: osRelease.ID ?? '',
      versionId: osRelease.VERSION_ID ?? '',
      prettyName: osRelease.PRETTY_NAME ?? '',
      codename: osRelease.VERSION_CODENAME ?? '',
      debianVersion: osRelease.DEBIAN_VERSION ?? '',
    },
    python: m ? m[1] : null,
    pypy,
    tools,
    debPackages: deb.sort(byName),
    pythonPackages: py.sort(byName),
  };
}

/**
 * Checks the measurement against the manifest's claims. Returns one message per broken claim,
 * each naming the package or field: an empty list means the image is what the manifest says.
 */
export function verifyAgainstManifest(m: Manifest, probe: ProbeResult): string[] {
  const problems: string[] = [];
  const debs = new Map(probe.debPackages.map((p) => [p.name, p.version]));
  for (const spec of m.apt) {
    const [name, version] = spec.split('=');
    const found = debs.get(name);
    if (found === undefined) problems.push(`Debian package ${name} is declared but not installed in the image`);
    else if (version && found !== version) problems.push(`Debian package ${name} is declared at ${version} but ${found} is installed`);
  }
  const pys = new Map(probe.pythonPackages.map((p) => [normalizePy(p.name), p.version]));
  for (const spec of m.pip ?? []) {
    const [name, version] = spec.split('==');
    const found = pys.get(normalizePy(name));
    if (found === undefined) problems.push(`Python package ${name} is declared but not installed in the image`);
    else if (found !== version) problems.push(`Python package ${name} is declared at ${version} but ${found} is installed`);
  }
  if (m.python) {
    if (!probe.python) problems.push(`python ${m.python} is declared but python3 is not in the image`);
    else if (!sameMinor(probe.python, m.python)) {
      problems.push(`python ${m.python} is declared but the image has Python ${probe.python}`);
    }
  }
  if (m.pypy) {
    if (!probe.pypy) problems.push(`pypy ${m.pypy} is declared but pypy3 is not in the image (or did not say its version)`);
    else if (!sameMinor(probe.pypy.python, m.pypy))
      problems.push(`pypy ${m.pypy} is declared but the image's PyPy ${probe.pypy.version} is Python ${probe.pypy.python}`);
  }
  return problems;
}

function sameMinor(have: string, declared: string): boolean {
  return have === declared || have.startsWith(`${declared}.`);
}

export function normalizePy(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, '-');
}

/** Finds a package in a report: Python distributions by normalized name, Debian packages exactly. */
export function findPackage(report: SoftwareReport, name: string): { python?: string; debian?: string } {
  const py = report.pythonPackages.find((p) => normalizePy(p.name) === normalizePy(name));
  const deb = report.debPackages.find((p) => p.name === name.toLowerCase());
  return { python: py?.version, debian: deb?.version };
}
