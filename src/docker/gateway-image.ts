import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The suite the gateway image is built on. */
export const GATEWAY_SUITE = 'bookworm';
export const GATEWAY_REPO = 'kiln/egress-gateway';

/** The gateway image's Dockerfile and its ref (tagged by the Dockerfile's hash: a changed recipe is a new image). */
export function gatewayRecipe(runnerImagesDir: string, mirror: string): { dockerfile: string; ref: string; buildKey: string } {
  const template = fs.readFileSync(path.join(runnerImagesDir, 'gateway.Dockerfile'), 'utf8');
  const sources = [
    `deb ${mirror} ${GATEWAY_SUITE} main`,
    `deb ${mirror} ${GATEWAY_SUITE}-updates main`,
    `deb ${mirror}-security ${GATEWAY_SUITE}-security main`,
  ];
  const dockerfile = template
    .replace('{{BASE_IMAGE}}', `kiln-base:${GATEWAY_SUITE}`)
    .replace('{{APT_SOURCES}}', sources.map((s) => `'${s.replace(/'/g, `'\\''`)}'`).join(' '));
  const buildKey = createHash('sha256').update(dockerfile).digest('hex');
  return { dockerfile, buildKey, ref: `${GATEWAY_REPO}:${buildKey.slice(0, 12)}` };
}
