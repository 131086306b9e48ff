import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as os from 'node:os';
import { ownerGone, scratchName, scratchOwner } from './scratch';

test('a scratch name carries its kind, host and process', () => {
  const name = scratchName('clone');
  assert.deepEqual(scratchOwner(name), { kind: 'clone', host: os.hostname(), pid: process.pid });
  assert.notEqual(scratchName('clone'), name, 'names are unique');
  assert.equal(scratchOwner('stale'), null);
  assert.equal(scratchOwner('../clone~h~1~ab'), null);
});

test('only an owner on this host whose process is gone counts as gone', () => {
  const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
  assert.equal(ownerGone({ kind: 'clone', host: os.hostname(), pid: dead }), true);
  assert.equal(ownerGone({ kind: 'clone', host: os.hostname(), pid: process.pid }), false, 'our own');
  assert.equal(ownerGone({ kind: 'clone', host: os.hostname(), pid: 1 }), false, 'alive (pid 1)');
  assert.equal(ownerGone({ kind: 'clone', host: 'another-node', pid: dead }), false, 'another host: not ours to judge');
  assert.equal(ownerGone(null), false);
});
