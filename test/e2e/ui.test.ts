import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { chromium, Browser, Page } from 'playwright-core';
import { makeTar, readTar } from '../fixtures/archives';
import { GitServer, makeRepo, startGitServer } from '../fixtures/git-server';
import { runKiln, startServer, TEST_ADMIN_TOKEN, tmpDir } from '../helpers';
import { Client } from './runs-helpers';

/** The web pages, driven in Debian's Chromium (headless) against a real server. */
describe('web pages (Chromium, real server, real engine)', () => {
  const data = tmpDir();
  const envs = tmpDir('kiln-envs-');
  const shots = process.env.KILN_SCREENSHOTS ?? tmpDir('kiln-shots-');
  let server: Awaited<ReturnType<typeof startServer>>;
  let browser: Browser;
  let page: Page;
  let api: Client;
  let git: GitServer;
  const gitRoot = tmpDir('kiln-git-');
  /** What Chromium reports as blocked by the pages' Content-Security-Policy: the pages must not need anything it refuses. */
  const cspViolations: string[] = [];

  before(async () => {
    // The shipped environments, plus two versions of a tiny one for the diff view.
    fs.cpSync(path.join(__dirname, '..', '..', '..', 'environments'), envs, { recursive: true });
    for (const [version, apt] of [
      ['20261128.1', '[make]'],
      ['20261128.2', '[make, jq]'],
    ]) {
      fs.mkdirSync(path.join(envs, 'e2e-tiny'), { recursive: true });
      fs.writeFileSync(
        path.join(envs, 'e2e-tiny', `${version}.yaml`),
        `name: e2e-tiny\nversion: "${version}"\nstatus: beta\nlabels: [e2e-tiny]\nbase: bookworm\napt: ${apt}\n`,
      );
    }
    const images = await runKiln(['images'], { KILN_DATA_DIR: data, KILN_ENVIRONMENTS_DIR: envs, KILN_LOG_LEVEL: 'warn' });
    assert.equal(images.code, 0, images.stderr);
    server = await startServer({
      KILN_DATA_DIR: data,
      KILN_ENVIRONMENTS_DIR: envs,
      KILN_QUEUE_PREFIX: `ui-${process.pid}`,
      KILN_LOG_LEVEL: 'warn',
      // The Run workflow form clones from a local git server.
      KILN_GIT_SCHEMES: 'https,http',
      KILN_GIT_ALLOW_PRIVATE: 'true',
    });
    git = await startGitServer(gitRoot);
    api = new Client(server.url);
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    page = await browser.newPage({ viewport: { width: 1100, height: 900 }, acceptDownloads: true });
    page.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
    });
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
    await git?.close();
  });

  test('the catalogue lists the environments with their status, OS and Python', async () => {
    await page.goto(`${server.url}/#/`);
    await page.waitForSelector('[data-testid=environments] tbody tr');
    const rows = await page.$$eval('[data-testid=environments] tbody tr', (trs) => trs.map((tr) => tr.textContent ?? ''));
    for (const name of ['python-3.9', 'python-3.11', 'python-3.13', 'e2e-tiny'])
      assert.ok(
        rows.some((r) => r.startsWith(name)),
        `${name} listed`,
      );
    assert.match(
      rows.find((r) => r.startsWith('python-3.11'))!,
      /\(default\)ga.*Debian GNU\/Linux 12.*3\.11\.\d+/,
    );
    assert.match(
      rows.find((r) => r.startsWith('e2e-tiny'))!,
      /beta/,
    );
    await page.screenshot({ path: path.join(shots, 'catalogue.png'), fullPage: true });
  });

  test('the filter on an environment page finds numpy; the package page says where it is', async () => {
    await page.goto(`${server.url}/#/env/python-3.11`);
    await page.waitForSelector('[data-testid=package-filter]');
    await page.fill('[data-testid=package-filter]', 'numpy');
    const visible = await page.$$eval('tr[data-package]', (trs) =>
      trs.filter((tr) => !(tr as unknown as { hidden: boolean }).hidden).map((tr) => tr.getAttribute('data-package')),
    );
    assert.ok(visible.includes('numpy'), visible.join(','));
    assert.ok(
      visible.every((p) => p!.includes('numpy')),
      'only matches are shown',
    );
    await page.goto(`${server.url}/#/packages?q=numpy`);
    await page.waitForSelector('[data-testid=package-results] tbody tr');
    const hits = await page.$$eval('[data-testid=package-results] tbody tr', (trs) => trs.map((tr) => tr.textContent ?? ''));
    // one row per environment whose latest version holds numpy (what its manifest installs)
    const withNumpy = fs.readdirSync(envs).filter((name) => {
      const versions = fs
        .readdirSync(path.join(envs, name))
        .filter((f) => f.endsWith('.yaml'))
        .sort();
      return fs.readFileSync(path.join(envs, name, versions[versions.length - 1]), 'utf8').includes('python3-numpy');
    });
    assert.ok(withNumpy.length >= 3, withNumpy.join(','));
    assert.equal(hits.length, withNumpy.length, hits.join(' | '));
  });

  test('the diff view shows the package a new version added', async () => {
    await page.goto(`${server.url}/#/env/e2e-tiny`);
    await page.waitForSelector('[data-testid=diff-button]');
    await page.selectOption('[data-testid=diff-from]', '20261128.1');
    await page.selectOption('[data-testid=diff-to]', '20261128.2');
    await page.click('[data-testid=diff-button]');
    await page.waitForSelector('[data-testid=diff] tr[data-change=added]');
    const added = await page.$$eval('tr[data-change=added] td:first-child', (tds) => tds.map((td) => td.textContent));
    assert.ok(added.includes('jq'), added.join(','));
  });

  test("a running job's log appears live; markup and link escapes in it stay text; the artifact downloads", async () => {
    await page.goto(`${server.url}/#/runs`);
    await page.fill('[data-testid=token]', TEST_ADMIN_TOKEN);
    await page.click('[data-testid=sign-in]');
    await page.waitForSelector('[data-testid=runs]');
    const script = [
      `printf '<script>document.title="pwned"</script><img src=x onerror=alert(1)>\\n'`,
      `printf '\\033]8;;https://evil.example/\\033\\\\click me\\033]8;;\\033\\\\\\n'`,
      `printf '\\033[31mred text\\033[0m\\n'`,
      `echo '::group::Setup'`,
      `echo inside-group`,
      `echo '::endgroup::'`,
      `echo '::error file=app.py,line=2::an annotated problem'`,
      `echo '### Summary heading' >> "$GITHUB_STEP_SUMMARY"`,
      `echo '<script>alert(2)</script> <a href="javascript:alert(3)">x</a>' >> "$GITHUB_STEP_SUMMARY"`,
      `mkdir -p out && printf 'artifact bytes\\n' > out/a.txt`,
      `for i in 1 2 3 4 5 6; do echo live-$i; sleep 1; done`,
    ].join('\n');
    const workflow = `jobs:\n  show:\n    runs-on: python-3.11\n    steps:\n      - run: |\n${script
      .split('\n')
      .map((l) => `          ${l}`)
      .join('\n')}\n      - uses: actions/upload-artifact@v4\n        with: { name: out, path: out/ }\n`;
    const run = await api.accepted(api.submitTarball(await makeTar([['.kiln.yml', workflow]])));
    await page.goto(`${server.url}/#/run/${run.id}`);
    await page.locator('[data-testid=log]', { hasText: 'live-1' }).waitFor({ timeout: 60_000 });
    assert.equal((await api.run(run.id)).status, 'in_progress', 'the log line showed while the job was still running');
    const log = page.locator('[data-testid=log]');
    await page.locator('[data-testid=log]', { hasText: 'live-6' }).waitFor({ timeout: 60_000 });
    assert.match(await log.innerText(), /<script>document\.title="pwned"<\/script><img src=x onerror=alert\(1\)>/);
    assert.equal(await page.locator('[data-testid=log] script, [data-testid=log] img, [data-testid=log] a').count(), 0, 'no markup from the log');
    assert.notEqual(await page.title(), 'pwned');
    assert.match(await log.innerText(), /␛\]8;;https:\/\/evil\.example\/␛\\click me/);
    assert.equal(await page.locator('[data-testid=log] .ansi-31', { hasText: 'red text' }).count(), 1, 'ANSI colour rendered');
    assert.equal(await page.locator('[data-testid=log] details summary', { hasText: 'Setup' }).count(), 1, 'the group is collapsible');
    await api.waitFor(run.id);
    await page.goto(`${server.url}/#/runs`);
    await page.goto(`${server.url}/#/run/${run.id}`);
    await page.waitForSelector('[data-testid=summary]');
    assert.equal(await page.locator('[data-testid=summary] h3', { hasText: 'Summary heading' }).count(), 1, 'Markdown rendered');
    assert.equal(await page.locator('[data-testid=summary] script').count(), 0, 'the summary is sanitised');
    assert.equal(await page.locator('[data-testid=summary] a[href^="javascript"]').count(), 0);
    assert.match(await page.locator('[data-testid=annotations]').innerText(), /error: an annotated problem app\.py:2/);
    await page.screenshot({ path: path.join(shots, 'run.png'), fullPage: true });
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid=artifact-out]')]);
    const files = await readTar(fs.readFileSync(await download.path()));
    assert.equal(files.get('a.txt')?.toString(), 'artifact bytes\n');
  });

  test('a cancel button stops a running run', async () => {
    const run = await api.accepted(api.submitJson({ command: 'echo waiting; sleep 300' }));
    await page.goto(`${server.url}/#/run/${run.id}`);
    await page.locator('[data-testid=log]', { hasText: 'waiting' }).waitFor({ timeout: 60_000 });
    await page.click('[data-testid=cancel]');
    assert.equal((await api.waitFor(run.id, 30_000)).conclusion, 'cancelled');
  });

  test('the Run workflow form submits a repository with inputs and opens the new run', async () => {
    const workflow = [
      'on:',
      '  workflow_dispatch:',
      '    inputs:',
      '      who: { required: true }',
      '      loud: { type: boolean, default: false }',
      'jobs:',
      '  hello:',
      '    runs-on: python-3.11',
      '    steps:',
      '      - run: echo "hello ${{ inputs.who }} loud=${{ inputs.loud }} event=${{ github.event_name }}"',
    ].join('\n');
    await makeRepo(gitRoot, 'dispatch', [{ '.github/workflows/hello.yml': workflow, 'README.md': 'hi\n' }]);
    await page.goto(`${server.url}/#/runs`);
    if (await page.locator('[data-testid=token]').count()) {
      await page.fill('[data-testid=token]', TEST_ADMIN_TOKEN);
      await page.click('[data-testid=sign-in]');
    }
    await page.waitForSelector('[data-testid=runs]');
    await page.click('[data-testid=new-run] summary');
    await page.fill('[data-testid=new-run-repo]', git.repoUrl('dispatch'));
    await page.fill('[data-testid=new-run-ref]', 'v1');
    await page.fill('[data-testid=new-run-file]', '.github/workflows/hello.yml');
    await page.fill('[data-testid=new-run-inputs]', 'loud=maybe');
    await page.click('[data-testid=new-run-submit]');
    const error = page.locator('[data-testid=new-run-error]');
    await error.waitFor({ state: 'visible' });
    assert.match(await error.innerText(), /inputs\.who: the input 'who' is required[\s\S]*inputs\.loud: the input 'loud' is a boolean/);
    await page.fill('[data-testid=new-run-inputs]', 'who=kiln page\nloud=true\n');
    await page.click('[data-testid=new-run-submit]');
    await page.waitForURL(/#\/run\/[A-Za-z0-9_-]+$/);
    const id = decodeURIComponent(page.url().split('#/run/')[1]);
    await page.waitForSelector('[data-testid=inputs]');
    assert.match(await page.locator('[data-testid=inputs]').innerText(), /who\s+kiln page\s+loud\s+true/);
    assert.equal((await api.waitFor(id)).conclusion, 'success');
    assert.match(await api.logs(id), /\| hello kiln page loud=true event=workflow_dispatch/);
  });

  test('the pages ran under their Content-Security-Policy without a blocked script, style or request', async () => {
    const csp = (await fetch(`${server.url}/`)).headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'self'/, 'the pages are served with a CSP');
    assert.deepEqual(cspViolations, []);
  });
});
