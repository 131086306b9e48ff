import { BadRequestException, Inject, Injectable, NotFoundException } from '@nestjs/common';
import { KILN_CONFIG, KilnConfig } from '../config/config';
import { CatalogueRepository, PublishedVersion } from './catalogue.repository';
import { diffReports, ReportDiff } from './diff';
import { findPackage, type PyPyVersion, SoftwareReport } from './report';
import type { EnvironmentResolver } from '../workflow/model';
import type { EnvironmentPythons } from '../workflow/python-versions';

export interface EnvironmentSummary {
  name: string;
  latest: string;
  versions: string[];
  status: string;
  removal: string | null;
  description: string | null;
  labels: string[];
  default: boolean;
  os: string;
  python: string | null;
  /** A PyPy environment's PyPy: the Python it implements and its own version. */
  pypy: PyPyVersion | null;
  image: string;
  imageSizeBytes: number;
  package?: { name: string; python?: string; debian?: string };
}

/** Orders YYYYMMDD.N versions. */
export function compareVersions(a: string, b: string): number {
  const [ad, an] = a.split('.').map(Number);
  const [bd, bn] = b.split('.').map(Number);
  return ad - bd || an - bn;
}

/** Read side of the catalogue: what was measured and published, never what a manifest merely claims. */
@Injectable()
export class CatalogueService {
  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly repo: CatalogueRepository,
  ) {}

  private async grouped(): Promise<Map<string, PublishedVersion[]>> {
    const groups = new Map<string, PublishedVersion[]>();
    for (const v of await this.repo.all()) {
      const list = groups.get(v.name) ?? [];
      list.push(v);
      groups.set(v.name, list);
    }
    for (const list of groups.values()) list.sort((a, b) => compareVersions(a.version, b.version));
    return groups;
  }

  private summary(versions: PublishedVersion[]): EnvironmentSummary {
    const r = versions[versions.length - 1].report;
    return {
      name: r.name,
      latest: r.version,
      versions: versions.map((v) => v.version),
      status: r.status,
      removal: r.removal,
      description: r.description,
      labels: r.labels,
      default: r.name === this.config.defaultEnvironment,
      os: r.os.prettyName,
      python: r.python,
      pypy: r.pypy ?? null,
      image: r.image.ref,
      imageSizeBytes: r.image.sizeBytes,
    };
  }

  /** Every environment at its latest version; with `pkg`, only those that carry it, and at what version. */
  async list(pkg?: string): Promise<{ default: string; environments: EnvironmentSummary[] }> {
    const out: EnvironmentSummary[] = [];
    for (const versions of (await this.grouped()).values()) {
      const s = this.summary(versions);
      if (pkg) {
        const found = findPackage(versions[versions.length - 1].report, pkg);
        if (!found.python && !found.debian) continue;
        s.package = { name: pkg, ...found };
      }
      out.push(s);
    }
    return { default: this.config.defaultEnvironment, environments: out };
  }

  /** Resolves a name or label to its versions; unknown gives 404 listing the known names. */
  private async resolve(nameOrLabel: string): Promise<PublishedVersion[]> {
    const groups = await this.grouped();
    const direct = groups.get(nameOrLabel);
    if (direct) return direct;
    for (const versions of groups.values()) {
      if (versions[versions.length - 1].report.labels.includes(nameOrLabel)) return versions;
    }
    const known = [...groups.keys()];
    throw new NotFoundException(
      known.length
        ? `no environment or label named '${nameOrLabel}'; known environments: ${known.join(', ')}`
        : `no environment named '${nameOrLabel}': no environment is published yet (run \`npm run images\`)`,
    );
  }

  async environment(
    nameOrLabel: string,
  ): Promise<EnvironmentSummary & { history: { version: string; status: string; python: string | null; publishedImage: string }[] }> {
    const versions = await this.resolve(nameOrLabel);
    return {
      ...this.summary(versions),
      history: versions.map((v) => ({ version: v.version, status: v.report.status, python: v.report.python, publishedImage: v.report.image.ref })),
    };
  }

  /** One version's full report; `latest` names the newest. */
  async report(nameOrLabel: string, version: string): Promise<SoftwareReport> {
    const versions = await this.resolve(nameOrLabel);
    const hit = version === 'latest' ? versions[versions.length - 1] : versions.find((v) => v.version === version);
    if (!hit) {
      throw new NotFoundException(`${versions[0].name} has no version '${version}'; published versions: ${versions.map((v) => v.version).join(', ')}`);
    }
    return hit.report;
  }

  /**
   * What the planner needs of the catalogue, from one read of it: a synchronous resolver over what is
   * published now (`name`, a label, or a pinned `name@YYYYMMDD.N`, answered with the exact image id
   * that was measured), and each environment's Pythons (latest version) for setup-python's routing and messages.
   */
  async planning(
    today = new Date().toISOString().slice(0, 10),
  ): Promise<{ resolveEnvironment: EnvironmentResolver; pythons: Record<string, EnvironmentPythons> }> {
    const groups = await this.grouped();
    const known = () => [...groups.keys()].join(', ') || 'none published yet';
    const pythons: Record<string, EnvironmentPythons> = {};
    for (const [name, versions] of groups) {
      const r = versions[versions.length - 1].report;
      pythons[name] = { python: r.python, pypy: r.pypy ?? null, beta: r.status === 'beta' };
    }
    const resolveEnvironment: EnvironmentResolver = (label: string) => {
      const [nameOrLabel, pinned] = label.split('@');
      let versions = groups.get(nameOrLabel);
      if (!versions) versions = [...groups.values()].find((v) => v[v.length - 1].report.labels.includes(nameOrLabel));
      if (!versions) return { error: `no environment or label named '${nameOrLabel}'; known environments: ${known()}` };
      const hit = pinned ? versions.find((v) => v.version === pinned) : versions[versions.length - 1];
      if (!hit) return { error: `${versions[0].name} has no version '${pinned}'; published versions: ${versions.map((v) => v.version).join(', ')}` };
      const r = hit.report;
      if (r.status === 'deprecated' && r.removal && r.removal <= today) {
        return { error: `${r.name}@${r.version} was removed on ${r.removal}; choose another version or environment` };
      }
      return { name: r.name, version: r.version, image: r.image.id, python: r.python, pypy: r.pypy ?? null };
    };
    return { resolveEnvironment, pythons };
  }

  async diff(nameOrLabel: string, from: string, to: string): Promise<ReportDiff> {
    if (!from || !to) throw new BadRequestException('diff needs both ?from=VERSION and ?to=VERSION');
    const a = await this.report(nameOrLabel, from);
    const b = await this.report(nameOrLabel, to);
    return diffReports(a, b);
  }
}
