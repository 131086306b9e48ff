import { args, client, need } from './args';
import { CliError, EXIT } from './client';
import { HELP } from './help';
import { err, table } from './output';

/** `kiln envs` and `kiln env`: the catalogue, as the server publishes it. */

interface EnvSummary {
  name: string;
  latest: string;
  status: string;
  removal: string | null;
  os: string;
  python: string | null;
  pypy?: { python: string; version: string } | null;
  labels: string[];
  default: boolean;
  package?: { python?: string; debian?: string };
}

export async function envs(): Promise<number> {
  const { environments } = await client().json<{ environments: EnvSummary[] }>('/api/v1/environments');
  table(
    ['NAME', 'VERSION', 'STATUS', 'OS', 'PYTHON', 'LABELS'],
    environments.map((e) => [
      e.name + (e.default ? ' (default)' : ''),
      e.latest,
      e.status + (e.removal ? ` until ${e.removal}` : ''),
      e.os,
      e.pypy ? `PyPy ${e.pypy.version} (${e.pypy.python})` : (e.python ?? ''),
      e.labels.join(','),
    ]),
  );
  return EXIT.ok;
}

export async function env(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const k = client();
  if (sub === 'show') {
    const { values: o, positionals } = args(rest, { packages: { type: 'boolean' } }, 1);
    const [name, version = 'latest'] = need(positionals[0], 'NAME').split('@');
    const r = await k.json<{
      name: string;
      version: string;
      status: string;
      os: { prettyName: string };
      python: string | null;
      labels: string[];
      image: { ref: string; sizeBytes: number };
      tools: { name: string; version: string }[];
      pythonPackages: { name: string; version: string }[];
      debPackages: { name: string; version: string }[];
    }>(`/api/v1/environments/${encodeURIComponent(name)}/${encodeURIComponent(version)}`);
    process.stdout.write(
      `${r.name}@${r.version} (${r.status})\n  OS: ${r.os.prettyName}\n  Python: ${r.python ?? 'none'}\n  labels: ${r.labels.join(', ')}\n  image: ${r.image.ref} (${Math.round(r.image.sizeBytes / 1024 / 1024)} MiB)\n`,
    );
    for (const t of r.tools) process.stdout.write(`  ${t.name}: ${t.version}\n`);
    process.stdout.write(
      `  ${r.pythonPackages.length} Python packages, ${r.debPackages.length} Debian packages${o.packages ? '' : ' (--packages lists them)'}\n`,
    );
    if (o.packages) {
      table(
        ['PYTHON PACKAGE', 'VERSION'],
        r.pythonPackages.map((p) => [p.name, p.version]),
      );
      table(
        ['DEBIAN PACKAGE', 'VERSION'],
        r.debPackages.map((p) => [p.name, p.version]),
      );
    }
    return EXIT.ok;
  }
  if (sub === 'diff') {
    const { positionals } = args(rest, {}, 3);
    const [name, a, b] = [need(positionals[0], 'NAME'), need(positionals[1], 'version A'), need(positionals[2], 'version B')];
    const res = await k.raw(`/api/v1/environments/${encodeURIComponent(name)}/diff?from=${encodeURIComponent(a)}&to=${encodeURIComponent(b)}&format=md`);
    process.stdout.write((await res.text()) + '\n');
    return EXIT.ok;
  }
  if (sub === 'which') {
    const { positionals } = args(rest, {}, 1);
    const pkg = need(positionals[0], 'PACKAGE');
    const { environments } = await k.json<{ environments: EnvSummary[] }>(`/api/v1/environments?package=${encodeURIComponent(pkg)}`);
    if (!environments.length) {
      err(`kiln: no environment has ${pkg}`);
      return EXIT.failed;
    }
    table(
      ['ENVIRONMENT', 'VERSION', 'PYTHON PACKAGE', 'DEBIAN PACKAGE'],
      environments.map((e) => [e.name, e.latest, e.package?.python ?? '', e.package?.debian ?? '']),
    );
    return EXIT.ok;
  }
  throw new CliError(`kiln: ${HELP.env}`, EXIT.usage);
}
