import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeTar } from '../fixtures/archives';
import { Client } from '../e2e/runs-helpers';
import { assertServing, AttackServer, HostWatch, RUNTIME, startAttackServer } from './harness';

/**
 * The attack review's findings on scheduling, the sandbox's own files and the data folder: one user
 * holding every slot (finding 5), a job writing where Kiln keeps its step scripts (finding 8), and the
 * smaller ones of finding 12 (artifact names `.`/`..`, links of the step summary, modes of the data
 * folder). One server, with the default scheduling settings (2 worker slots, the per-user limit left
 * unset); only the sandbox's disk sizes are small, so that filling them is quick.
 */

interface JobView {
  id: string;
  key: string;
  status: string;
  conclusion: string | null;
  error: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  summaryHtml?: string | null;
  steps: { index: number; name: string; outcome: string | null; conclusion: string | null; reason: string | null }[];
}
interface View {
  id: string;
  status: string;
  conclusion: string | null;
  jobs: JobView[];
  artifacts: { name: string }[];
}

const time = (s: string | null) => (s ? Date.parse(s) : Infinity);

describe(`attack review: fair share, the sandbox's own files, the data folder (${RUNTIME})`, () => {
  let server: AttackServer;
  let watch: HostWatch;

  before(async () => {
    server = await startAttackServer({ KILN_JOB_WORKSPACE: '64m', KILN_JOB_TMP: '32m' });
    watch = await HostWatch.create(server);
  });
  after(async () => server?.stop());

  const view = async (kiln: Client, id: string) => (await kiln.run(id)) as unknown as View;
  const waitDone = async (kiln: Client, id: string, ms = 180_000) => (await kiln.waitFor(id, ms)) as unknown as View;

  async function makeUser(name: string): Promise<Client> {
    const u = await server.kiln.fetch('/api/v1/users', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name }) });
    assert.equal(u.status, 201, await u.clone().text());
    const { id } = (await u.json()) as { id: string };
    const t = await server.kiln.fetch(`/api/v1/users/${id}/tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'attack' }),
    });
    assert.equal(t.status, 201);
    return new Client(server.url, ((await t.json()) as { token: string }).token);
  }

  test("finding 5: with the default settings, user B's job starts while user A still has jobs running and waiting", { timeout: 180_000 }, async () => {
    const alice = await makeUser('review-alice');
    const bob = await makeUser('review-bob');
    // Alice asks for three slow jobs at once. Before: the per-user limit (2) was every slot of the
    // worker (2), so Bob's job waited for one of hers to end.
    const mine = [];
    for (let i = 0; i < 3; i++) mine.push(await alice.accepted(alice.submitJson({ command: `sleep 30; echo alice-${i}` })));
    await alice.waitFor(mine[0].id, 120_000, (r) => r.jobs[0].status === 'in_progress');
    const theirs = await bob.accepted(bob.submitJson({ command: 'echo bob-ran' }));
    const bobDone = await waitDone(bob, theirs.id, 120_000);
    const aliceNow = await Promise.all(mine.map((r) => view(alice, r.id)));
    for (const r of mine) await alice.fetch(`/api/v1/runs/${r.id}/cancel`, { method: 'POST' });
    assert.equal(bobDone.conclusion, 'success', JSON.stringify(bobDone.jobs));
    const bobStart = time(bobDone.jobs[0].startedAt);
    const aliceJobs = aliceNow.map((r) => r.jobs[0]);
    const describe = aliceJobs.map((j) => `${j.status} started ${j.startedAt} finished ${j.finishedAt}`).join('; ');
    console.log(`# bob started ${bobDone.jobs[0].startedAt}; alice: ${describe}`);
    assert.ok(
      aliceJobs.every((j) => time(j.finishedAt) > bobStart),
      `Bob's job started before any of Alice's ended (it waited behind her jobs): ${describe}`,
    );
    assert.ok(
      aliceJobs.some((j) => time(j.startedAt) < bobStart),
      `one of Alice's jobs was running when Bob's started: ${describe}`,
    );
    assert.ok(
      aliceJobs.some((j) => time(j.startedAt) > bobStart),
      `Alice still had a job waiting when Bob's started: ${describe}`,
    );
    for (const r of mine) await waitDone(alice, r.id, 120_000);
  });

  let filled: View | undefined;
  let filledLog = '';
  test(
    "finding 8: a job that fills every place it can write still runs its if: always() cleanup; Kiln's step scripts are not the job's to write",
    { timeout: 300_000 },
    async () => {
      const workflow = String.raw`
jobs:
  fill:
    runs-on: python-3.11
    steps:
      - name: fill every place the job can write
        run: |
          set +e
          probe() { python3 -c 'import errno, sys
          p = sys.argv[1]
          try:
              open(p, "w").write("x")
              print("PROBE", p, "written")
          except OSError as e:
              print("PROBE", p, errno.errorcode[e.errno])' "$1"; }
          files=$(dirname "$GITHUB_ENV")
          echo "FILES $files"
          probe /tmp/kiln/pwned
          probe /tmp/kiln/step-1.sh
          probe "$files/pwned"
          for d in /workspace /tmp /home/runner /tmp/kiln "$files"; do head -c 1G /dev/zero > "$d/fill" 2>/dev/null; done
          head -c 256M /dev/zero > /dev/shm/fill 2>/dev/null
          for f in "$GITHUB_STATE" "$GITHUB_OUTPUT" "$GITHUB_PATH" "$GITHUB_ENV"; do head -c 1G /dev/zero >> "$f" 2>/dev/null; done
          df -k /workspace /tmp /home/runner /tmp/kiln "$files" /dev/shm 2>&1 | sed 's/^/DF /'
          exit 0
      - name: cleanup
        if: always()
        run: |
          echo cleanup-ran
          echo "CLEANED=yes" >> "$GITHUB_ENV"
          rm -f /workspace/fill /tmp/fill /home/runner/fill /dev/shm/fill
      - name: after cleanup
        if: always()
        run: echo "after-cleanup $CLEANED"
`;
      const run = await server.kiln.accepted(server.kiln.submitTarball(await makeTar([['.kiln.yml', workflow]])));
      filled = await waitDone(server.kiln, run.id);
      filledLog = await server.kiln.logs(run.id);
      const job = filled.jobs[0];
      const lines = filledLog
        .split('\n')
        .filter((l) => /PROBE|FILES|DF|cleanup|■/.test(l))
        .join('\n');
      console.log(
        lines
          .split('\n')
          .map((l) => `#   ${l}`)
          .join('\n'),
      );
      const probes = [...filledLog.matchAll(/PROBE (\S+) (\S+)/g)].map((m) => [m[1], m[2]]);
      assert.equal(probes.length, 3, `every probe reported:\n${lines}`);
      for (const [where, how] of probes)
        assert.match(how, /^(EACCES|EROFS)$/, `writing ${where}: ${how} (the job could write where Kiln keeps its step scripts and files)`);
      assert.match(filledLog, /cleanup-ran/, `the cleanup step did not run after the job filled every place:\n${lines}`);
      assert.deepEqual(
        job.steps.map((s) => s.conclusion),
        ['success', 'success', 'success'],
        `${JSON.stringify(job.steps)}\n${lines}`,
      );
      assert.match(filledLog, /after-cleanup yes/, 'the cleanup step could still write $GITHUB_ENV');
      assert.equal(job.conclusion, 'success');
    },
  );

  let named: View | undefined;
  test('finding 12: artifact names . and .. are refused, saying which names are allowed', { timeout: 300_000 }, async () => {
    const workflow = String.raw`
jobs:
  names:
    runs-on: python-3.11
    steps:
      - run: echo hello > a.txt
      - uses: actions/upload-artifact@v4
        continue-on-error: true
        with: { name: "..", path: a.txt }
      - uses: actions/upload-artifact@v4
        continue-on-error: true
        with: { name: ".", path: a.txt }
      - uses: actions/upload-artifact@v4
        with: { name: "fine", path: a.txt }
      - run: |
          echo '[plain](https://example.com/plain) and <a href="https://example.com/raw" rel="opener" target="_self">raw</a> and <https://example.com/auto>' >> "$GITHUB_STEP_SUMMARY"
`;
    const run = await server.kiln.accepted(server.kiln.submitTarball(await makeTar([['.kiln.yml', workflow]])));
    named = await waitDone(server.kiln, run.id);
    const log = await server.kiln.logs(run.id);
    const steps = named.jobs[0].steps;
    assert.deepEqual(
      named.artifacts.map((a) => a.name),
      ['fine'],
      `only 'fine' was kept: ${JSON.stringify(named.artifacts)}`,
    );
    for (const [i, name] of [
      [1, '..'],
      [2, '.'],
    ] as const) {
      assert.equal(steps[i].outcome, 'failure', `upload of '${name}': ${JSON.stringify(steps[i])}`);
      assert.equal(steps[i].reason, 'artifact-error');
      assert.ok(
        log.includes(`artifact name '${name}' is not valid: 1 to 128 characters, none of " : < > | * ? \\ / or newlines, and not . or ..`),
        `the refusal of '${name}' says what is allowed:\n${log}`,
      );
    }
    assert.equal(named.conclusion, 'success', JSON.stringify(named.jobs));
  });

  test('finding 12: every link of a step summary carries rel="noopener noreferrer nofollow"', async () => {
    assert.ok(named, 'the run of the previous case completed');
    const html = named.jobs[0].summaryHtml ?? '';
    const links = [...html.matchAll(/<a\s[^>]*>/g)].map((m) => m[0]);
    assert.equal(links.length, 3, `three links in the summary: ${html}`);
    for (const a of links) {
      assert.match(a, /\brel="noopener noreferrer nofollow"/, `a link without rel: ${a}`);
      assert.doesNotMatch(a, /rel="opener"|_self/, a);
    }
  });

  test('finding 12: the data folder holds only folders 700 and files 600 (database, logs, sources, artifacts, scratch, admin token)', async () => {
    assert.ok(filled && named, 'the earlier runs completed: the folder holds logs, sources and an artifact');
    const loose: string[] = [];
    const seen = new Set<string>();
    const walk = (dir: string) => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        const st = fs.lstatSync(p);
        const rel = path.relative(server.data, p);
        seen.add(rel.split(path.sep)[0]);
        if (st.isSymbolicLink()) continue;
        if ((st.mode & 0o077) !== 0) loose.push(`${rel} ${(st.mode & 0o777).toString(8)}`);
        if (st.isDirectory()) walk(p);
      }
    };
    walk(server.data);
    console.log(`# data folder: ${[...seen].sort().join(', ')}`);
    for (const must of ['kiln.sqlite', 'logs', 'artifacts']) assert.ok(seen.has(must), `${must} is in the data folder (${[...seen].join(', ')})`);
    assert.deepEqual(loose, [], "readable or writable by others than Kiln's own user");
  });

  test('the host is unchanged and the service still serves', { timeout: 180_000 }, async () => {
    await watch.assertUnchanged('after the review cases');
    await assertServing(server.kiln, 'after the review cases');
  });
});
