import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chromium, Browser } from 'playwright-core';
import { makeTar } from '../fixtures/archives';
import { assertNoForms, leakForms } from '../fixtures/secret-forms';
import { runKiln, startServer, TEST_ADMIN_TOKEN, tmpDir } from '../helpers';
import { Client } from './runs-helpers';

/**
 * The run page in Chromium shows a job's annotations, summary, job error, artifacts and log: a secret
 * planted in each (in clear, base64 at each alignment, hex) must not be in the page's text or markup.
 * (The attack suite checks every API answer and stored file; this is the page's half.)
 */
describe('the run page shows no secret (Chromium, real server, real engine)', () => {
  const data = tmpDir();
  const SECRET = `page-secret-${randomBytes(10).toString('hex')}`;
  const PUNCT = `page:se,cret{${randomBytes(6).toString('hex')}`;
  const forms = leakForms({ SECRET, PUNCT });
  let server: Awaited<ReturnType<typeof startServer>>;
  let browser: Browser;
  let api: Client;

  before(async () => {
    const images = await runKiln(['images', 'python-3.11'], { KILN_DATA_DIR: data, KILN_LOG_LEVEL: 'warn' });
    assert.equal(images.code, 0, images.stderr);
    server = await startServer({ KILN_DATA_DIR: data, KILN_QUEUE_PREFIX: `secrets-page-${process.pid}`, KILN_LOG_LEVEL: 'warn' });
    api = new Client(server.url);
    for (const [name, value] of [
      ['SECRET', SECRET],
      ['PUNCT', PUNCT],
    ]) {
      const put = await api.fetch(`/api/v1/secrets/${name}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ value }),
      });
      assert.equal(put.status, 204);
    }
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
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('annotations (message, title, file), summary, job error, artifact names and the log render masked', async () => {
    const script = [
      'b64() { printf %s "$1" | base64 -w0; }',
      'hx() { printf %s "$1" | od -An -tx1 | tr -d \' \\n\'; }',
      'echo "log $S $(b64 "x$S")"',
      'echo "::error title=title $S,file=src/$S.py,line=2::message $(b64 "xx$S")"',
      'echo "::warning title=$(hx "$S")::w"',
      '{ echo "### summary $S"; hx "$S"; echo; b64 "$S"; echo; } >> "$GITHUB_STEP_SUMMARY"',
      'echo hi > a.txt',
    ];
    const workflow =
      [
        'jobs:',
        '  show:',
        '    runs-on: python-3.11',
        '    env:',
        '      S: ${{ secrets.SECRET }}',
        '    steps:',
        '      - run: |',
        ...script.map((l) => `          ${l}`),
        '      - uses: actions/upload-artifact@v4',
        '        continue-on-error: true',
        '        with:',
        '          name: art-${{ secrets.SECRET }}',
        '          path: a.txt',
        '  broken:',
        '    runs-on: python-3.11',
        '    env:',
        '      BAD: ${{ format(secrets.PUNCT, 1) }}',
        '    steps:',
        '      - run: echo never',
      ].join('\n') + '\n';
    const run = await api.accepted(api.submitTarball(await makeTar([['.kiln.yml', workflow]])));
    const done = await api.waitFor(run.id);
    const show = done.jobs.find((j) => j.key === 'show')!;
    assert.equal(show.conclusion, 'success', JSON.stringify(done.jobs));
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    try {
      await page.goto(`${server.url}/#/runs`);
      await page.fill('[data-testid=token]', TEST_ADMIN_TOKEN);
      await page.click('[data-testid=sign-in]');
      await page.waitForSelector('[data-testid=runs]');
      await page.goto(`${server.url}/#/run/${run.id}/${show.id}`);
      await page.waitForSelector('[data-testid=annotations]');
      await page.waitForSelector('[data-testid=summary]');
      await page.locator('[data-testid=log]', { hasText: 'log ***' }).waitFor({ timeout: 30_000 });
      await page.getByText('format string is invalid').first().waitFor({ timeout: 30_000 });
      const text = await page.innerText('body');
      const html = await page.content();
      // Shown masked, not hidden.
      assert.match(text, /error: title \*\*\*: message \S*\*\*\*/);
      assert.match(text, /src\/\*\*\*\.py:2/);
      assert.match(text, /summary \*\*\*/);
      assert.match(text, /format string is invalid: \*\*\*/);
      assert.match(text, /the artifact name holds a secret/);
      assertNoForms(text, forms, 'the page text');
      assertNoForms(html, forms, 'the page markup');
    } finally {
      await page.close();
    }
  });
});
