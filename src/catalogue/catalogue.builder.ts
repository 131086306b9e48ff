import { Inject, Injectable, Logger } from '@nestjs/common';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { KILN_CONFIG, KilnConfig } from '../config/config';
import { DockerEngine } from '../docker/docker-engine';
import { PROBE_LIMITS } from '../docker/hardening';
import { BaseImageProvider } from './base-image';
import { CatalogueRepository } from './catalogue.repository';
import { LoadedManifest, loadManifests } from './manifest';
import { buildContext, imageRef, makeRecipe } from './recipe';
import { parseProbeOutput, ProbeError, SoftwareReport, verifyAgainstManifest } from './report';

export type BuildAction = 'built' | 'probed' | 'cached';

export interface BuildOutcome {
  name: string;
  version: string;
  action: BuildAction;
  imageId: string;
  seconds: number;
}

/** A manifest whose image could not be built or does not hold what it declares. */
export class EnvironmentBuildError extends Error {}

/**
 * Manifests -> images -> probe -> published reports. An image whose recipe is unchanged (same
 * build key label) is not rebuilt; a report whose image and probe are unchanged is not re-measured.
 */
@Injectable()
export class CatalogueBuilder {
  private readonly log = new Logger('Catalogue');
  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly engine: DockerEngine,
    private readonly base: BaseImageProvider,
    private readonly repo: CatalogueRepository,
  ) {}

  /** Builds every manifest (or those whose name is in `only`), one after another. */
  async buildAll(only?: string[]): Promise<BuildOutcome[]> {
    const manifests = loadManifests(this.config.environmentsDir).filter((l) => !only?.length || only.includes(l.manifest.name));
    if (only?.length && !manifests.length) throw new EnvironmentBuildError(`no manifest named ${only.join(', ')} in ${this.config.environmentsDir}`);
    const outcomes: BuildOutcome[] = [];
    for (const loaded of manifests) outcomes.push(await this.buildOne(loaded));
    return outcomes;
  }

  async buildOne(loaded: LoadedManifest): Promise<BuildOutcome> {
    const started = Date.now();
    const m = loaded.manifest;
    const template = fs.readFileSync(path.join(this.config.runnerImagesDir, 'Dockerfile.template'), 'utf8');
    const recipe = makeRecipe(template, m, this.config.debianMirror);
    const { ref } = imageRef(m.name, m.version);
    let action: BuildAction = 'cached';
    let buildSeconds: number | null = null;

    let image = await this.engine.inspectImage(ref);
    if (!image || image.Config?.Labels?.['kiln.build-key'] !== recipe.buildKey) {
      await this.base.ensure(m.base);
      this.log.log(`building ${ref}`);
      const t0 = Date.now();
      try {
        await this.engine.buildImage(
          buildContext(recipe.dockerfile),
          {
            tag: ref,
            labels: {
              'kiln.environment': m.name,
              'kiln.version': m.version,
              'kiln.build-key': recipe.buildKey,
              'kiln.manifest-hash': loaded.hash,
            },
          },
          (line) => this.log.verbose(`${m.name}: ${line}`),
        );
      } catch (e) {
        throw new EnvironmentBuildError(`${loaded.file}: building ${ref} failed: ${(e as Error).message}`);
      }
      buildSeconds = (Date.now() - t0) / 1000;
      image = await this.engine.inspectImage(ref);
      if (!image) throw new EnvironmentBuildError(`${ref} vanished right after its build`);
      action = 'built';
    }

    const probeScript = fs.readFileSync(path.join(this.config.runnerImagesDir, 'probe.sh'), 'utf8');
    const probeKey = createHash('sha256').update(probeScript).update(image.Id).digest('hex');
    const published = await this.repo.get(m.name, m.version);
    let report: SoftwareReport;
    if (published && published.probeKey === probeKey) {
      report = published.report;
    } else {
      if (action === 'cached') action = 'probed';
      const measured = await this.probe(ref, probeScript, loaded.file);
      const problems = verifyAgainstManifest(m, measured);
      if (problems.length) {
        throw new EnvironmentBuildError(`${loaded.file}: the image ${ref} does not hold what the manifest declares: ${problems.join('; ')}`);
      }
      report = {
        ...measured,
        name: m.name,
        version: m.version,
        status: m.status,
        removal: m.removal ?? null,
        description: m.description ?? null,
        labels: m.labels,
        base: m.base,
        env: m.env ?? {},
        image: {
          ref,
          id: image.Id,
          sizeBytes: image.Size,
          builtAt: new Date(image.Created).toISOString(),
          buildSeconds: buildSeconds ?? published?.report.image.buildSeconds ?? null,
          buildKey: recipe.buildKey,
          manifestHash: loaded.hash,
        },
        probedAt: new Date().toISOString(),
        probeKey,
      };
    }
    // Catalogue metadata (status, labels, description) can change without a rebuild.
    report = {
      ...report,
      status: m.status,
      removal: m.removal ?? null,
      description: m.description ?? null,
      labels: m.labels,
      image: { ...report.image, manifestHash: loaded.hash },
    };
    await this.repo.upsert(report);
    const seconds = (Date.now() - started) / 1000;
    this.log.log(`${ref}: ${action} (${seconds.toFixed(1)} s)`);
    return { name: m.name, version: m.version, action, imageId: image.Id, seconds };
  }

  private async probe(ref: string, script: string, file: string) {
    const res = await this.engine.runOnce({
      image: ref,
      cmd: ['sh', '-c', script],
      user: '1001:1001',
      limits: PROBE_LIMITS,
      timeoutMs: 120_000,
      labels: { 'kiln.role': 'probe', 'kiln.image': ref },
    });
    if (res.timedOut || res.exitCode !== 0) {
      throw new EnvironmentBuildError(
        `${file}: the probe failed in ${ref} (exit ${res.exitCode}${res.timedOut ? ', timed out' : ''}): ${res.stderr.slice(-500)}`,
      );
    }
    try {
      return parseProbeOutput(res.stdout);
    } catch (e) {
      if (e instanceof ProbeError) throw new EnvironmentBuildError(`${file}: ${e.message}; stderr: ${res.stderr.slice(-500)}`);
      throw e;
    }
  }
}
