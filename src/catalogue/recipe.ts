import { createHash } from 'node:crypto';
import * as tar from 'tar-stream';
import type { Readable } from 'node:stream';
import { TESTING_SUITES, type Manifest } from './manifest';

/** Everything needed to build one environment image, derived from a manifest alone (pure). */
export interface Recipe {
  dockerfile: string;
  /** sha256 of the Dockerfile: an image labelled with the same key is not rebuilt. */
  buildKey: string;
  baseImage: string;
  repo: string;
  tag: string;
}

export const BASE_REPO = 'kiln-base';
export const ENV_REPO_PREFIX = 'kiln';

export function imageRef(name: string, version: string): { repo: string; tag: string; ref: string } {
  const repo = `${ENV_REPO_PREFIX}/${name}`;
  return { repo, tag: version, ref: `${repo}:${version}` };
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function renderDockerfile(template: string, m: Manifest, mirror: string): { dockerfile: string; baseImage: string } {
  const baseImage = `${BASE_REPO}:${m.base}`;
  // Testing's Release files are valid for a week; a mirror that serves testing as of a date (a snapshot, or
  // one synced now and then) is refused by apt once that week is over. The signatures are still checked.
  const opts = TESTING_SUITES.includes(m.base) ? '[check-valid-until=no] ' : '';
  const sources = [
    `deb ${opts}${mirror} ${m.base} main`,
    `deb ${opts}${mirror} ${m.base}-updates main`,
    `deb ${opts}${mirror}-security ${m.base}-security main`,
  ];
  const pip = m.pip?.length
    ? `RUN PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --no-cache-dir --no-input ${m.pip.map(shellQuote).join(' ')}`
    : '# no pip packages';
  const envEntries = Object.entries(m.env ?? {});
  const env = envEntries.length ? `ENV ${envEntries.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(' \\\n    ')}` : '# no extra environment';
  const values: Record<string, string> = {
    NAME: m.name,
    VERSION: m.version,
    BASE_IMAGE: baseImage,
    APT_SOURCES: sources.map(shellQuote).join(' '),
    APT_PACKAGES: m.apt.map(shellQuote).join(' '),
    PIP_STEP: pip,
    ENV: env,
  };
  const dockerfile = template.replace(/\{\{([A-Z_]+)\}\}/g, (whole, key: string) => {
    if (!(key in values)) throw new Error(`Dockerfile.template: unknown placeholder ${whole}`);
    return values[key];
  });
  return { dockerfile, baseImage };
}

export function makeRecipe(template: string, m: Manifest, mirror: string): Recipe {
  const { dockerfile, baseImage } = renderDockerfile(template, m, mirror);
  const { repo, tag } = imageRef(m.name, m.version);
  return { dockerfile, baseImage, repo, tag, buildKey: createHash('sha256').update(dockerfile).digest('hex') };
}

/** The build context: a tar holding only the Dockerfile. */
export function buildContext(dockerfile: string): Readable {
  const pack = tar.pack();
  pack.entry({ name: 'Dockerfile', mode: 0o644, mtime: new Date(0) }, dockerfile);
  pack.finalize();
  return pack as unknown as Readable;
}
