import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { madeBy, openPrivateAppend, privateDir, privateDirSync, privateFileSync } from './private-files';

const mode = (p: string) => fs.statSync(p).mode & 0o777;

test('folders made are 0700 and files 0600 whatever the umask; folders above that existed are left alone', async () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-private-'));
  fs.chmodSync(base, 0o755);
  const old = process.umask(0);
  try {
    privateDirSync(path.join(base, 'a/b/c'));
    for (const d of ['a', 'a/b', 'a/b/c']) assert.equal(mode(path.join(base, d)), 0o700, d);
    assert.equal(mode(base), 0o755, 'the folder that existed is not changed');
    fs.mkdirSync(path.join(base, 'old'), { mode: 0o755 });
    privateDirSync(path.join(base, 'old'));
    assert.equal(mode(path.join(base, 'old')), 0o700, "an existing leaf (an older release's logs/) is tightened");
    await privateDir(path.join(base, 'x/y'));
    for (const d of ['x', 'x/y']) assert.equal(mode(path.join(base, d)), 0o700, d);
    const fd = openPrivateAppend(path.join(base, 'a/log'));
    fs.closeSync(fd);
    assert.equal(mode(path.join(base, 'a/log')), 0o600);
    fs.writeFileSync(path.join(base, 'loose'), 'x', { mode: 0o666 });
    privateFileSync(path.join(base, 'loose'));
    assert.equal(mode(path.join(base, 'loose')), 0o600);
    privateFileSync(path.join(base, 'absent'));
  } finally {
    process.umask(old);
    fs.rmSync(base, { recursive: true, force: true });
  }
});

test('madeBy: the leaf, and the folders mkdir made up to the first', () => {
  assert.deepEqual(madeBy('/d/a/b', undefined), ['/d/a/b']);
  assert.deepEqual(madeBy('/d/a/b', '/d/a'), ['/d/a/b', '/d/a']);
  assert.deepEqual(madeBy('/d/a/b', '/d/a/b'), ['/d/a/b']);
});
