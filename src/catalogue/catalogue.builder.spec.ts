import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadConfig } from '../config/config';
import { CatalogueBuilder, EnvironmentBuildError } from './catalogue.builder';
import type { CatalogueRepository, PublishedVersion } from './catalogue.repository';
import type { BaseImageProvider } from './base-image';
import type { DockerEngine } from '../docker/docker-engine';
import type { SoftwareReport } from './report';
import { PROBE_OUTPUT } from '../../test/fixtures/reports';

/** A scripted engine: remembers images by tag with their labels; counts builds and probes. */
class FakeEngine {
  images = new Map<string, { Id: string; Size: number; Created: string; Config: { Labels: Record<string, string> } }>();
  builds = 0;
  probes = 0;
  probeOutput = PROBE_OUTPUT;
  async inspectImage(ref: string) {
    return this.images.get(ref) ?? null;
  }
  async buildImage(_ctx: unknown, opts: { tag: string; labels: Record<string, string> }) {
    this.builds++;
    const id = `sha256:${String(this.builds).padStart(64, '0')}`;
    this.images.set(opts.tag, { Id: id, Size: 123, Created: new Date().toISOString(), Config: { Labels: opts.labels } });
    return id;
  }
  async runOnce() {
    this.probes++;
    return { exitCode: 0, stdout: this.probeOutput, stderr: '', timedOut: false, oomKilled: false };
  }
}

class MemoryRepo {
  rows = new Map<string, SoftwareReport>();
  async upsert(r: SoftwareReport) {
    this.rows.set(`${r.name}@${r.version}`, structuredClone(r));
  }
  async get(name: string, version: string): Promise<PublishedVersion | null> {
    const r = this.rows.get(`${name}@${version}`);
    return r ? { name, version, buildKey: r.image.buildKey, probeKey: r.probeKey, imageId: r.image.id, report: r } : null;
  }
}

let dir: string;
let engine: FakeEngine;
let repo: MemoryRepo;
let bases: string[];
let builder: CatalogueBuilder;

function writeManifest(extra = '', status = 'ga') {
  fs.mkdirSync(path.join(dir, 'demo'), { recursive: true });
  fs.writeFileSync(
    path.join(dir, 'demo', '20261128.1.yaml'),
    `name: demo\nversion: "20261128.1"\nstatus: ${status}\nlabels: [demo]\nbase: bookworm\npython: "3.11"\napt: [python3, make]\n${extra}`,
  );
}

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-builder-'));
  engine = new FakeEngine();
  repo = new MemoryRepo();
  bases = [];
  const base = {
    ensure: async (suite: string) => {
      bases.push(suite);
      return `kiln-base:${suite}`;
    },
  };
  const config = { ...loadConfig({}), environmentsDir: dir };
  builder = new CatalogueBuilder(config, engine as unknown as DockerEngine, base as unknown as BaseImageProvider, repo as unknown as CatalogueRepository);
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

test('first build: base ensured, image built with labels, probed, published from the measurement', async () => {
  writeManifest();
  const [o] = await builder.buildAll();
  assert.equal(o.action, 'built');
  assert.deepEqual(bases, ['bookworm']);
  assert.equal(engine.builds, 1);
  assert.equal(engine.probes, 1);
  const labels = engine.images.get('kiln/demo:20261128.1')!.Config.Labels;
  assert.equal(labels['kiln.environment'], 'demo');
  assert.match(labels['kiln.manifest-hash'], /^[0-9a-f]{64}$/);
  const r = (await repo.get('demo', '20261128.1'))!.report;
  assert.equal(r.python, '3.11.2');
  assert.deepEqual(
    r.pythonPackages.map((p) => p.name),
    ['numpy', 'PyYAML'],
  );
});

test('an unchanged manifest is neither rebuilt nor re-probed', async () => {
  writeManifest();
  await builder.buildAll();
  const [o] = await builder.buildAll();
  assert.equal(o.action, 'cached');
  assert.equal(engine.builds, 1);
  assert.equal(engine.probes, 1);
});

test('a status change is published without a rebuild', async () => {
  writeManifest();
  await builder.buildAll();
  writeManifest('removal: "2027-06-01"\n', 'deprecated');
  const [o] = await builder.buildAll();
  assert.equal(o.action, 'cached');
  assert.equal(engine.builds, 1);
  const r = (await repo.get('demo', '20261128.1'))!.report;
  assert.equal(r.status, 'deprecated');
  assert.equal(r.removal, '2027-06-01');
});

test('a changed package list rebuilds and re-probes', async () => {
  writeManifest();
  await builder.buildAll();
  fs.writeFileSync(
    path.join(dir, 'demo', '20261128.1.yaml'),
    `name: demo\nversion: "20261128.1"\nstatus: ga\nlabels: [demo]\nbase: bookworm\napt: [python3, make, mawk]\n`,
  );
  const [o] = await builder.buildAll();
  assert.equal(o.action, 'built');
  assert.equal(engine.builds, 2);
  assert.equal(engine.probes, 2);
});

test('an image that lacks a declared package fails, naming it, and is not published', async () => {
  writeManifest();
  engine.probeOutput = PROBE_OUTPUT.replace('deb\tmake\t4.3-4.1\n', '');
  await assert.rejects(builder.buildAll(), (e: unknown) => {
    assert.ok(e instanceof EnvironmentBuildError);
    assert.match(
      e.message,
      /demo\/20261128\.1\.yaml: the image kiln\/demo:20261128\.1 does not hold what the manifest declares: Debian package make is declared but not installed/,
    );
    return true;
  });
  assert.equal(await repo.get('demo', '20261128.1'), null);
});

test('a failing probe is a build error with its stderr', async () => {
  writeManifest();
  engine.runOnce = async () => ({ exitCode: 127, stdout: '', stderr: 'sh: dpkg-query: not found', timedOut: false, oomKilled: false });
  await assert.rejects(builder.buildAll(), /the probe failed in kiln\/demo:20261128\.1 \(exit 127\): sh: dpkg-query: not found/);
});

test('naming an environment that has no manifest is an error', async () => {
  writeManifest();
  await assert.rejects(builder.buildAll(['nope']), /no manifest named nope/);
});
