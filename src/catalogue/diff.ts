import type { Package, SoftwareReport } from './report';

export interface PackageChange {
  name: string;
  from: string;
  to: string;
}

export interface PackageDiff {
  added: Package[];
  removed: Package[];
  updated: PackageChange[];
}

export interface ReportDiff {
  name: string;
  from: string;
  to: string;
  os: PackageChange | null;
  python: PackageChange | null;
  pythonPackages: PackageDiff;
  debPackages: PackageDiff;
}

export function diffPackages(a: Package[], b: Package[]): PackageDiff {
  const before = new Map(a.map((p) => [p.name, p.version]));
  const after = new Map(b.map((p) => [p.name, p.version]));
  const added: Package[] = [];
  const removed: Package[] = [];
  const updated: PackageChange[] = [];
  for (const [name, version] of after) {
    const old = before.get(name);
    if (old === undefined) added.push({ name, version });
    else if (old !== version) updated.push({ name, from: old, to: version });
  }
  for (const [name, version] of before) if (!after.has(name)) removed.push({ name, version });
  const byName = (x: { name: string }, y: { name: string }) => x.name.localeCompare(y.name);
  return { added: added.sort(byName), removed: removed.sort(byName), updated: updated.sort(byName) };
}

/** Added / Removed / Updated between two reports of one environment (pure). */
export function diffReports(from: SoftwareReport, to: SoftwareReport): ReportDiff {
  const change = (name: string, a: string | null, b: string | null) => (a === b ? null : { name, from: a ?? '', to: b ?? '' });
  return {
    name: to.name,
    from: from.version,
    to: to.version,
    os: change('os', from.os.prettyName, to.os.prettyName),
    python: change('python', from.python, to.python),
    pythonPackages: diffPackages(from.pythonPackages, to.pythonPackages),
    debPackages: diffPackages(from.debPackages, to.debPackages),
  };
}
