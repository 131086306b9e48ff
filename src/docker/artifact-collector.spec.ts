import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listingGroups, LIST_SCRIPT } from './artifact-collector';

const root = mkdtempSync(join(tmpdir(), 'kiln-list-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** LIST_SCRIPT run here by bash, as the sandbox runs it: its groups, sorted, and its stderr. */
function list(include: string[], exclude: string[] = []): { groups: string[][]; stderr: string } {
  const r = spawnSync('bash', ['-c', LIST_SCRIPT, 'list', root, String(include.length), ...include, ...exclude]);
  assert.equal(r.status, 0, r.stderr.toString());
  const groups = listingGroups(r.stdout.toString('utf8').split('\0'), include.length + exclude.length);
  return { groups: groups.map((g) => [...g].sort()), stderr: r.stderr.toString() };
}

test("the listing gives each pattern's files: a folder's files (hidden ones too), links as themselves, never followed; a missing path is said", () => {
  mkdirSync(join(root, 'dist/sub'), { recursive: true });
  mkdirSync(join(root, 'dist/empty'));
  writeFileSync(join(root, 'dist/a.txt'), 'a');
  writeFileSync(join(root, 'dist/.env'), 'e');
  writeFileSync(join(root, 'dist/sub/b.map'), 'b');
  writeFileSync(join(root, '-dash'), 'd');
  symlinkSync('/etc', join(root, 'dist/etc-link'));
  const { groups, stderr } = list(['dist/', 'dist/**/*.map', 'missing.txt', '-dash'], ['dist/sub', 'nothing*']);
  assert.deepEqual(groups, [['dist/.env', 'dist/a.txt', 'dist/etc-link', 'dist/sub/b.map'], ['dist/sub/b.map'], [], ['./-dash'], ['dist/sub'], []]);
  assert.equal(stderr, 'missing.txt: Cannot stat: No such file or directory\n');
});
