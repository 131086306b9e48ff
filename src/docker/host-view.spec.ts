import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SandboxHostView } from './host-view';

const ID = 'a'.repeat(64);
const OTHER = 'b'.repeat(64);
const PID = 4242;

/** A fake /proc and /sys/fs/cgroup: the keeper's cgroup file, its root, and its counters. */
function fakeHost(v2 = false) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-hostview-'));
  const proc = path.join(dir, 'proc');
  const cgroup = path.join(dir, 'cgroup');
  const root = path.join(proc, String(PID), 'root');
  fs.mkdirSync(path.join(root, 'tmp', 'kiln'), { recursive: true });
  const setCgroupOwner = (id: string) =>
    fs.writeFileSync(
      path.join(proc, String(PID), 'cgroup'),
      v2 ? `0::/system.slice/docker-${id}.scope\n` : `12:pids:/docker/${id}\n4:memory:/docker/${id}\n1:name=systemd:/docker/${id}\n`,
    );
  setCgroupOwner(ID);
  const pidsDir = v2 ? path.join(cgroup, 'system.slice', `docker-${ID}.scope`) : path.join(cgroup, 'pids', 'docker', ID);
  const memDir = v2 ? pidsDir : path.join(cgroup, 'memory', 'docker', ID);
  fs.mkdirSync(pidsDir, { recursive: true });
  fs.mkdirSync(memDir, { recursive: true });
  // The tasks in the cgroup, each with its /proc/<tid>/status (only the Uid line matters).
  const setTasks = (tasks: [number, number][]) => {
    fs.writeFileSync(path.join(pidsDir, v2 ? 'cgroup.threads' : 'tasks'), tasks.map(([tid]) => `${tid}\n`).join(''));
    for (const [tid, uid] of tasks) {
      fs.mkdirSync(path.join(proc, String(tid)), { recursive: true });
      fs.writeFileSync(path.join(proc, String(tid), 'status'), `Name:\tx\nUid:\t${uid}\t${uid}\t${uid}\t${uid}\nGid:\t${uid}\n`);
    }
  };
  setTasks([
    [PID, 65534],
    [PID + 1, 65534],
  ]); // the keeper: init and its sleep
  const setCounters = (max: number, oom: number) => {
    fs.writeFileSync(path.join(pidsDir, 'pids.events'), `max ${max}\n`);
    if (v2) fs.writeFileSync(path.join(memDir, 'memory.events'), `low 0\nhigh 0\nmax 3\noom 1\noom_kill ${oom}\n`);
    else fs.writeFileSync(path.join(memDir, 'memory.oom_control'), `oom_kill_disable 0\nunder_oom 0\noom_kill ${oom}\n`);
  };
  setCounters(0, 0);
  return { dir, proc, cgroup, root, setCounters, setTasks, setCgroupOwner, kiln: path.join(root, 'tmp', 'kiln') };
}

for (const v2 of [false, true]) {
  test(`cgroup ${v2 ? 'v2' : 'v1'}: the counters are read from the host, and follow the sandbox`, async () => {
    const h = fakeHost(v2);
    const view = await SandboxHostView.open(ID, PID, h.cgroup, h.proc);
    assert.ok(view, 'the sandbox is seen from the host');
    assert.deepEqual(await view.counters(), { pidsMax: 0, oomKill: 0 });
    h.setCounters(7, 2);
    assert.deepEqual(await view.counters(), { pidsMax: 7, oomKill: 2 });
    assert.deepEqual(await view.afterStep(1001, [], 0), { counters: { pidsMax: 7, oomKill: 2 }, files: {}, jobTasks: 0 }, 'the keeper alone, as another user');
    h.setTasks([
      [PID, 65534],
      [PID + 1, 65534],
      [5000, 1001],
      [5001, 1001],
      [5002, 0],
    ]);
    fs.writeFileSync(
      path.join(h.cgroup, v2 ? `system.slice/docker-${ID}.scope/cgroup.threads` : `pids/docker/${ID}/tasks`),
      `${PID}\n${PID + 1}\n5000\n5001\n5002\n5003\n`,
    );
    assert.equal((await view.afterStep(1001, [], 0))?.jobTasks, 2, 'a step left processes running (5003 exited while counted)');
  });
}

test('not seen from the host: another container at that pid, no pid, no cgroup files, a malformed id', async () => {
  const h = fakeHost();
  assert.equal(await SandboxHostView.open(OTHER, PID, h.cgroup, h.proc), null);
  assert.equal(await SandboxHostView.open(ID, 0, h.cgroup, h.proc), null);
  assert.equal(await SandboxHostView.open(ID, PID + 1, h.cgroup, h.proc), null);
  assert.equal(await SandboxHostView.open('../../etc', PID, h.cgroup, h.proc), null);
  fs.rmSync(path.join(h.cgroup, 'pids'), { recursive: true });
  assert.equal(await SandboxHostView.open(ID, PID, h.cgroup, h.proc), null, "no pids.events: not this host's cgroupfs");
});

test('files: regular files only, at most maxBytes; a symlink (to a host path) or a FIFO is not read', async () => {
  const h = fakeHost();
  const view = await SandboxHostView.open(ID, PID, h.cgroup, h.proc);
  assert.ok(view);
  fs.writeFileSync(path.join(h.kiln, 'env-1'), 'A=1\nB=2\n');
  fs.writeFileSync(path.join(h.kiln, 'output-1'), 'x'.repeat(100));
  const secret = path.join(h.dir, 'host-secret');
  fs.writeFileSync(secret, 'host only');
  fs.symlinkSync(secret, path.join(h.kiln, 'path-1'));
  execFileSync('mkfifo', [path.join(h.kiln, 'summary-1')]);
  const files = ['/tmp/kiln/env-1', '/tmp/kiln/output-1', '/tmp/kiln/path-1', '/tmp/kiln/summary-1', '/tmp/kiln/absent'];
  const read = await view.afterStep(1001, files, 10);
  assert.deepEqual(read?.files, { '/tmp/kiln/env-1': 'A=1\nB=2\n', '/tmp/kiln/output-1': 'x'.repeat(10) });
  assert.deepEqual(
    (await view.afterStep(1001, ['/tmp/kiln/env-1'], 1024 * 1024))?.files,
    { '/tmp/kiln/env-1': 'A=1\nB=2\n' },
    'a file shorter than maxBytes: all of it',
  );
});

test("a pid that no longer belongs to the sandbox gives null, never another process's files", async () => {
  const h = fakeHost();
  const view = await SandboxHostView.open(ID, PID, h.cgroup, h.proc);
  assert.ok(view);
  fs.writeFileSync(path.join(h.kiln, 'env-1'), 'A=1\n');
  h.setCgroupOwner(OTHER);
  assert.equal(await view.afterStep(1001, ['/tmp/kiln/env-1'], 1024), null);
  assert.equal(await view.counters(), null);
  fs.rmSync(path.join(h.proc, String(PID)), { recursive: true });
  assert.equal(await view.afterStep(1001, ['/tmp/kiln/env-1'], 1024), null, 'the keeper gone');
});

test("quiet: only while the keeper is the sandbox's and no task of the job user is left; pathOf goes through its root", async () => {
  const h = fakeHost();
  const view = await SandboxHostView.open(ID, PID, h.cgroup, h.proc);
  assert.ok(view);
  assert.equal(view.pathOf('/workspace'), path.join(h.root, 'workspace'));
  assert.equal(await view.quiet(1001), true, 'the keeper alone');
  h.setTasks([
    [PID, 65534],
    [PID + 1, 65534],
    [5000, 1001],
  ]);
  assert.equal(await view.quiet(1001), false, 'a process of the job is left');
  h.setTasks([
    [PID, 65534],
    [PID + 1, 65534],
  ]);
  assert.equal(await view.quiet(1001), true);
  h.setCgroupOwner(OTHER);
  assert.equal(await view.quiet(1001), false, "the pid is another container's now");
});
