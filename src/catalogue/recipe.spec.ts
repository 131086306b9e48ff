import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseManifest } from './manifest';
import { renderDockerfile } from './recipe';
import { projectRoot } from '../config/config';

const template = fs.readFileSync(path.join(projectRoot(), 'runner-images', 'Dockerfile.template'), 'utf8');
const manifest = (base: string) =>
  parseManifest(`name: demo\nversion: "20261207.1"\nstatus: beta\nlabels: [demo]\nbase: ${base}\napt: [make]\n`, '/e/demo/20261207.1.yaml').manifest;

test("apt's sources: a release's suites as they are; testing's without the Release files' expiry check (a mirror may hold an old testing)", () => {
  const release = renderDockerfile(template, manifest('trixie'), 'http://mirror/debian').dockerfile;
  assert.match(
    release,
    /'deb http:\/\/mirror\/debian trixie main' 'deb http:\/\/mirror\/debian trixie-updates main' 'deb http:\/\/mirror\/debian-security trixie-security main'/,
  );
  assert.doesNotMatch(release, /check-valid-until/);
  const testing = renderDockerfile(template, manifest('forky'), 'http://mirror/debian').dockerfile;
  for (const suite of ['forky', 'forky-updates']) assert.ok(testing.includes(`'deb [check-valid-until=no] http://mirror/debian ${suite} main'`), suite);
  assert.ok(testing.includes(`'deb [check-valid-until=no] http://mirror/debian-security forky-security main'`));
});
