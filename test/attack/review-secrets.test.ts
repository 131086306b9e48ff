/**
 * Attack suite, review finding 4: secrets in clear outside the log. A user stores secrets, then runs
 * jobs that plant them through every channel a job's words can take out of the sandbox: workflow
 * commands (annotation message, title and file, with GitHub's %-escapes; group titles), the step
 * summary, job outputs (raw, base64 at offsets 0, 1 and 2, hex), artifact names, env files, a value
 * registered at run time with ::add-mask::, a multi-line secret line by line, a job's error message,
 * and (through a webhook-started run) commit status descriptions. None of them may appear, in clear,
 * base64 or hex, in any API answer, any file under the server's data folder (the SQLite database and
 * its -wal included, logs, artifact blobs and their metadata), the server's own output, or the
 * statuses the forge received.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { makeTar } from '../fixtures/archives';
import { makeRepo, startGitServer, GitServer } from '../fixtures/git-server';
import { assertNoForms, leakForms } from '../fixtures/secret-forms';
import { tmpDir } from '../helpers';
import { assertServing, AttackServer, HostWatch, startAttackServer } from './harness';

const hex = (n: number) => randomBytes(n).toString('hex');
/** Plain letters, digits and dashes: every channel can carry it as is. */
const MAIN = `kiln-main-${hex(10)}`;
/** A colon, a comma and a brace: carried in annotation properties only %-escaped; makes format() fail. */
const PUNCT = `kiln:pu,nct{${hex(8)}`;
/** Two lines, each masked on its own (as GitHub does). */
const MULTI = `ml-first-${hex(8)}\nml-second-${hex(8)}`;
/** Registered by the job itself with ::add-mask:: (MAIN reversed: in no workflow text). */
const DERIVED = [...MAIN].reverse().join('');

/** What must not appear anywhere: each value (each line of MULTI), in clear, hex, URL-encoded or base64. */
const FORMS = leakForms({ MAIN, PUNCT, 'MULTI line 1': MULTI.split('\n')[0], 'MULTI line 2': MULTI.split('\n')[1], 'DERIVED (add-mask)': DERIVED });

function assertNoSecret(text: string | Buffer, where: string): void {
  assertNoForms(text, FORMS, where);
}

/** Every file under a folder, with its bytes (the data folder: SQLite and -wal, logs, blobs, metadata). */
function walk(dir: string): { file: string; bytes: Buffer }[] {
  const out: { file: string; bytes: Buffer }[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else if (e.isFile()) out.push({ file: p, bytes: fs.readFileSync(p) });
  }
  return out;
}

/** A forge's statuses API on 127.0.0.1: records every POST. */
async function statusReceiver(): Promise<{ url: string; received: { path: string; body: string }[]; close: () => Promise<void> }> {
  const received: { path: string; body: string }[] = [];
  const server = http.createServer((req, res) => {
    let data = '';
    req.on('data', (c) => {
      data += c;
    });
    req.on('end', () => {
      received.push({ path: req.url ?? '', body: data });
      res.writeHead(201, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    close: () =>
      new Promise((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

const PLANT = String.raw`
jobs:
  plant:
    runs-on: python-3.11
    env:
      MAIN: @{{ secrets.MAIN }}
      PUNCT: @{{ secrets.PUNCT }}
      MULTI: @{{ secrets.MULTI }}
    outputs:
      raw: @{{ steps.out.outputs.raw }}
      b64_0: @{{ steps.out.outputs.b64_0 }}
      b64_1: @{{ steps.out.outputs.b64_1 }}
      b64_2: @{{ steps.out.outputs.b64_2 }}
      hex: @{{ steps.out.outputs.hex }}
      derived: @{{ steps.out.outputs.derived }}
      plain: @{{ steps.out.outputs.plain }}
    steps:
      - id: out
        run: |
          DERIVED=$(python3 -c 'import os; print(os.environ["MAIN"][::-1])')
          echo "::add-mask::$DERIVED"
          b64() { printf %s "$1" | base64 -w0; }
          hx() { printf %s "$1" | od -An -tx1 | tr -d ' \n'; }
          esc() { local e="@{1//%/%25}"; e="@{e//:/%3A}"; printf %s "@{e//,/%2C}"; }
          echo "raw: $MAIN / $DERIVED"
          echo "$MULTI"
          echo "::error title=T $MAIN,file=src/$MAIN.py,line=3::message $MAIN"
          echo "::warning title=$(b64 "x$MAIN"),file=$(hx "$MAIN")::w $(b64 "xx$MAIN")"
          echo "::notice title=esc $(esc "$PUNCT"),file=$DERIVED.txt::line two: @{MULTI#*$'\n'}"
          echo "::error file=$(esc "$PUNCT")::m $(esc "$PUNCT")%0A$MAIN"
          echo "::group::group $MAIN"
          echo "::endgroup::"
          { echo "## summary $MAIN"; hx "$MAIN"; echo; echo "derived $DERIVED"; b64 "x$PUNCT"; echo; } >> "$GITHUB_STEP_SUMMARY"
          echo "raw=$MAIN" >> "$GITHUB_OUTPUT"
          for p in "" x xx; do echo "b64_@{#p}=$(b64 "$p$MAIN")" >> "$GITHUB_OUTPUT"; done
          echo "hex=$(hx "$MAIN")" >> "$GITHUB_OUTPUT"
          echo "derived=$DERIVED" >> "$GITHUB_OUTPUT"
          echo "plain=kept-output" >> "$GITHUB_OUTPUT"
          echo "LEAKED=$MAIN" >> "$GITHUB_ENV"
          echo "$MAIN" >> "$GITHUB_ENV"
          echo hello > hello.txt
      - run: echo "from the env file $LEAKED"
      - uses: actions/upload-artifact@v4
        continue-on-error: true
        with:
          name: art-@{{ secrets.MAIN }}
          path: hello.txt
      - uses: actions/upload-artifact@v4
        continue-on-error: true
        with:
          name: @{{ steps.out.outputs.b64_1 }}
          path: hello.txt
      - uses: actions/upload-artifact@v4
        with:
          name: kept-artifact
          path: hello.txt
  broken:
    runs-on: python-3.11
    env:
      BAD: @{{ format(secrets.PUNCT, 1) }}
    steps:
      - run: echo never
`.replace(/@\{/g, '${');

describe('review finding 4: secrets outside the log', () => {
  let server: AttackServer;
  let watch: HostWatch;
  let git: GitServer;
  const gitRoot = tmpDir('kiln-git-');
  let receiver: Awaited<ReturnType<typeof statusReceiver>>;
  const answers: { where: string; text: string }[] = [];

  before(async () => {
    git = await startGitServer(gitRoot);
    receiver = await statusReceiver();
    // The forge and its statuses API are on loopback: the operator allows http and private addresses.
    server = await startAttackServer({ KILN_GIT_SCHEMES: 'https,http', KILN_GIT_ALLOW_PRIVATE: 'true', KILN_PUBLIC_URL: 'http://kiln.example' });
    watch = await HostWatch.create(server);
    for (const [name, value] of [
      ['MAIN', MAIN],
      ['PUNCT', PUNCT],
      ['MULTI', MULTI],
    ]) {
      const put = await server.kiln.fetch(`/api/v1/secrets/${name}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ value }),
      });
      assert.equal(put.status, 204, await put.text());
    }
  });
  after(async () => {
    await server?.stop();
    await git?.close();
    await receiver?.close();
    watch?.cleanup();
  });

  /** GETs an API path, keeps its answer for the final sweep, returns it. */
  async function answer(p: string): Promise<string> {
    const res = await server.kiln.fetch(p);
    const text = await res.text();
    assert.equal(res.status, 200, `${p}: ${text}`);
    answers.push({ where: `GET ${p}`, text });
    return text;
  }

  test('finding 4: annotations, summary, outputs (raw, base64 at 0/1/2, hex), artifact names, env files, add-mask, multi-line and a job error hold no secret in any API answer', async () => {
    const run = await server.kiln.accepted(server.kiln.submitTarball(await makeTar([['.kiln.yml', PLANT]])));
    const done = await server.kiln.waitFor(run.id, 240_000);
    const view = JSON.parse(await answer(`/api/v1/runs/${run.id}`)) as {
      jobs: {
        id: string;
        key: string;
        conclusion: string;
        error: string | null;
        outputs: Record<string, string>;
        summary: string | null;
        summaryHtml: string | null;
      }[];
      annotations: { level: string; title: string | null; file: string | null; message: string }[];
      artifacts: { name: string; url: string }[];
    };
    const plant = view.jobs.find((j) => j.key === 'plant')!;
    const broken = view.jobs.find((j) => j.key === 'broken')!;
    assert.equal(plant.conclusion, 'success', JSON.stringify(done.jobs));
    const text = await answer(`/api/v1/runs/${run.id}/logs`);
    await answer(`/api/v1/runs/${run.id}/logs?format=json`);
    const live = await answer(`/api/v1/runs/${run.id}/logs?follow=1`); // server-sent events, from the start
    assert.match(live, /event: end/);
    await answer(`/api/v1/runs/${run.id}/artifacts`);
    await answer('/api/v1/runs');
    await answer('/api/v1/me');
    await answer('/api/v1/secrets');
    for (const j of view.jobs) await answer(`/api/v1/runs/${run.id}/logs?job=${j.id}`);

    // Every channel checked, every leak listed (not only the first).
    const leaks: string[] = [];
    const check = (what: string, f: () => void) => {
      try {
        f();
      } catch (e) {
        leaks.push(`${what}: ${(e as Error).message.split('\n')[0]}`);
      }
    };
    // Masked, not lost: what a person reads still says what happened.
    check('log line', () => assert.match(text, /raw: \*\*\* \/ \*\*\*/));
    check('env file', () => assert.match(text, /from the env file \*\*\*/));
    check('annotation count', () => assert.equal(view.annotations.length, 4, JSON.stringify(view.annotations)));
    const first = view.annotations.find((a) => a.title?.startsWith('T '));
    check('annotation message/title/file', () => assert.deepEqual([first?.title, first?.file, first?.message], ['T ***', 'src/***.py', 'message ***']));
    for (const a of view.annotations) check(`annotation ${a.level} ${a.title}`, () => assertNoSecret(JSON.stringify(a), 'annotation'));
    check('job outputs', () => assert.deepEqual(plant.outputs, { plain: 'kept-output' }, 'outputs holding a secret in any form are left out'));
    check('artifact names', () =>
      assert.deepEqual(
        view.artifacts.map((a) => a.name),
        ['kept-artifact'],
        'names holding a secret are refused',
      ),
    );
    check('artifact refusals', () => assert.equal((text.match(/the artifact name holds a secret/g) ?? []).length, 2));
    check('summary', () => assert.match(plant.summary ?? '', /summary \*\*\*/));
    check('summary forms', () => assertNoSecret(`${plant.summary} ${plant.summaryHtml}`, 'summary'));
    check('job error', () => assert.equal(broken.conclusion, 'failure'));
    check('job error message', () => assert.match(broken.error ?? '', /format string is invalid: \*\*\*/));
    for (const a of answers) check(a.where, () => assertNoSecret(a.text, a.where));
    assert.deepEqual(leaks, []);
  });

  test('finding 4: a webhook run failing with the secret sends commit statuses that hold none', async () => {
    const workflow =
      [
        'name: ci',
        'on: push',
        'jobs:',
        '  fail:',
        '    runs-on: python-3.11',
        '    steps:',
        '      - run: |',
        '          echo "::error title=$MAIN::failing with $MAIN"',
        '          echo "$MAIN" >> "$GITHUB_STEP_SUMMARY"',
        '          exit 1',
        '        env:',
        '          MAIN: ${{ secrets.MAIN }}',
      ].join('\n') + '\n';
    const { shas } = await makeRepo(gitRoot, 'demo', [{ '.github/workflows/ci.yml': workflow }]);
    const hookSecret = `hook-${hex(12)}`;
    const reg = await server.kiln.fetch('/api/v1/repositories', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ fullName: 'octo/demo', cloneUrl: git.repoUrl('demo'), secret: hookSecret, statusUrl: receiver.url, statusToken: 'forge-token' }),
    });
    assert.equal(reg.status, 201, await reg.clone().text());
    const repoId = ((await reg.json()) as { id: string }).id;
    const { sign } = (await import('@octokit/webhooks-methods')) as { sign: (s: string, p: string) => Promise<string> };
    const body = JSON.stringify({
      ref: 'refs/heads/main',
      after: shas[0],
      before: '0'.repeat(40),
      deleted: false,
      created: true,
      repository: { full_name: 'octo/demo', name: 'demo', clone_url: git.repoUrl('demo') },
      commits: [{ id: shas[0], added: ['.github/workflows/ci.yml'], modified: [], removed: [] }],
      head_commit: { id: shas[0] },
    });
    const res = await fetch(`${server.url}/api/v1/webhooks/github`, {
      method: 'POST',
      body,
      headers: {
        'content-type': 'application/json',
        'x-github-event': 'push',
        'x-github-delivery': crypto.randomUUID(),
        'x-hub-signature-256': await sign(hookSecret, body),
      },
    });
    assert.equal(res.status, 202, await res.text());
    let runIds: string[] = [];
    for (let i = 0; i < 300 && !runIds.length; i++) {
      const ds = JSON.parse(await answer(`/api/v1/repositories/${repoId}/deliveries`)) as { state: string; detail: string | null; runIds: string[] }[];
      if (ds[0] && ds[0].state !== 'queued') {
        runIds = ds[0].runIds;
        assert.equal(runIds.length, 1, JSON.stringify(ds));
      }
      if (!runIds.length) await new Promise((r) => setTimeout(r, 200));
    }
    const done = await server.kiln.waitFor(runIds[0], 240_000);
    assert.equal(done.conclusion, 'failure');
    await answer(`/api/v1/runs/${runIds[0]}`);
    await answer(`/api/v1/runs/${runIds[0]}/logs`);
    for (let i = 0; i < 100 && !receiver.received.some((r) => r.body.includes('"failure"')); i++) await new Promise((r) => setTimeout(r, 200));
    const states = receiver.received.map((r) => (JSON.parse(r.body) as { state: string }).state);
    assert.deepEqual([...states].sort(), ['failure', 'pending'], JSON.stringify(receiver.received));
    for (const r of receiver.received) assertNoSecret(`${r.path} ${r.body}`, `commit status ${r.path}`);
    answers.push({ where: 'GET /api/v1/repositories', text: await answer('/api/v1/repositories') });
  });

  test('finding 4: no file under the data folder (SQLite and -wal, logs, blobs, metadata) nor the server output holds a secret', async () => {
    const files = walk(server.data);
    assert.ok(
      files.some((f) => /\.sqlite(-wal)?$/.test(f.file)),
      `the database is under the data folder: ${files.map((f) => f.file).join(', ')}`,
    );
    assert.ok(
      files.some((f) => f.file.includes(`${path.sep}logs${path.sep}`)),
      'the logs are under the data folder',
    );
    for (const f of files) assertNoSecret(f.bytes, f.file);
    // Artifact blobs are named by id: the file names hold no secret either.
    assertNoSecret(files.map((f) => f.file).join('\n'), 'file names');
    assertNoSecret(server.output(), "the server's output");
    for (const a of answers) assertNoSecret(a.text, a.where);
    await assertServing(server.kiln, 'after planting secrets');
    await watch.assertUnchanged('after planting secrets');
  });
});
