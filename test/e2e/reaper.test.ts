import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { startServer, tmpDir } from '../helpers';

const run = promisify(execFile);

test('on start-up Kiln removes its own containers of unknown jobs, and partial uploads and clones of dead processes, and says so', async () => {
  const data = tmpDir();
  const prefix = `reap-${process.pid}`;
  const { stdout } = await run('docker', [
    'run',
    '-d',
    '--network',
    'none',
    '--label',
    'kiln.managed=true',
    '--label',
    `kiln.deployment=${prefix}`,
    '--label',
    'kiln.job=OrphanJob0000000',
    'kiln-base:bookworm',
    'sleep',
    '600',
  ]);
  const orphan = stdout.trim().slice(0, 12);
  const keep = (await run('docker', ['run', '-d', '--network', 'none', '--label', 'not-kiln=true', 'kiln-base:bookworm', 'sleep', '600'])).stdout
    .trim()
    .slice(0, 12);
  // A job container of another Kiln on the same engine: not this one's to judge.
  const neighbour = (
    await run('docker', [
      'run',
      '-d',
      '--network',
      'none',
      '--label',
      'kiln.managed=true',
      '--label',
      'kiln.deployment=someone-else',
      '--label',
      'kiln.job=TheirJob00000000',
      'kiln-base:bookworm',
      'sleep',
      '600',
    ])
  ).stdout
    .trim()
    .slice(0, 12);
  const uploads = path.join(data, 'uploads');
  fs.mkdirSync(uploads, { recursive: true });
  fs.writeFileSync(path.join(uploads, 'stale'), 'half an upload');
  fs.utimesSync(path.join(uploads, 'stale'), new Date(Date.now() - 2 * 3600_000), new Date(Date.now() - 2 * 3600_000));
  fs.writeFileSync(path.join(uploads, 'fresh'), 'being written');
  // Scratch entries are named for their owner (kind~host~pid~random): a dead owner's go at once, a live one's stay.
  const dead = spawn(process.execPath, ['-e', '0']);
  await new Promise((r) => dead.on('exit', r));
  const host = os.hostname();
  // Idle warm sandboxes: a dead worker's are removed, a live one's (this process stands in) are kept.
  const deadPool = (
    await run('docker', [
      'run',
      '-d',
      '--network',
      'none',
      '--label',
      'kiln.managed=true',
      '--label',
      `kiln.deployment=${prefix}`,
      '--label',
      `kiln.pool=pool~${host}~${dead.pid}~00aa11bb`,
      '--name',
      `kiln-pool-dead${process.pid}`,
      'kiln-base:bookworm',
      'sleep',
      '600',
    ])
  ).stdout
    .trim()
    .slice(0, 12);
  const livePool = (
    await run('docker', [
      'run',
      '-d',
      '--network',
      'none',
      '--label',
      'kiln.managed=true',
      '--label',
      `kiln.deployment=${prefix}`,
      '--label',
      `kiln.pool=pool~${host}~${process.pid}~22cc33dd`,
      '--name',
      `kiln-pool-live${process.pid}`,
      'kiln-base:bookworm',
      'sleep',
      '600',
    ])
  ).stdout
    .trim()
    .slice(0, 12);
  const deadUpload = `multipart~${host}~${dead.pid}~0123abcd`;
  fs.writeFileSync(path.join(uploads, deadUpload), 'the API died mid-upload');
  const tmp = path.join(data, 'tmp');
  const deadClone = `clone~${host}~${dead.pid}~4567abcd`;
  fs.mkdirSync(path.join(tmp, deadClone, '.git'), { recursive: true });
  fs.writeFileSync(path.join(tmp, deadClone, 'file.py'), 'print(1)');
  const liveClone = `clone~${host}~${process.pid}~89abcdef`;
  fs.mkdirSync(path.join(tmp, liveClone), { recursive: true });
  const server = await startServer({ KILN_DATA_DIR: data, KILN_QUEUE_PREFIX: prefix, KILN_LOG_LEVEL: 'log' });
  try {
    for (let i = 0; i < 50 && !(server.output().includes(`removed container ${orphan}`) && server.output().includes(`removed container ${deadPool}`)); i++)
      await new Promise((r) => setTimeout(r, 200));
    assert.match(server.output(), new RegExp(`removed container ${orphan} .*of unknown job OrphanJob0000000`));
    assert.match(server.output(), /removed partial upload stale \(untouched for 120 min\)/);
    assert.match(server.output(), new RegExp(`removed partial upload ${deadUpload} \\(its process ${dead.pid} is gone\\)`));
    assert.match(server.output(), new RegExp(`removed scratch folder ${deadClone} \\(its process ${dead.pid} is gone\\)`));
    assert.ok(!fs.existsSync(path.join(uploads, deadUpload)) && !fs.existsSync(path.join(tmp, deadClone)), "the dead owners' entries are gone");
    assert.ok(fs.existsSync(path.join(tmp, liveClone)), "a live process's clone is kept");
    const left = (await run('docker', ['ps', '-a', '-q', '--filter', 'label=kiln.job=OrphanJob0000000'])).stdout.trim();
    assert.equal(left, '', 'the orphan is gone');
    assert.ok(fs.existsSync(path.join(uploads, 'fresh')), 'a fresh upload is kept');
    const other = (await run('docker', ['ps', '-q', '--filter', `id=${keep}`])).stdout.trim();
    assert.equal(other, keep, "containers that are not Kiln's are never touched");
    assert.equal((await run('docker', ['ps', '-q', '--filter', `id=${neighbour}`])).stdout.trim(), neighbour, "another deployment's job container is kept");
    assert.match(server.output(), new RegExp(`removed container ${deadPool} .*of a warm pool whose process is gone \\(pool~[^~]+~${dead.pid}~`));
    assert.equal((await run('docker', ['ps', '-aq', '--filter', `id=${deadPool}`])).stdout.trim(), '', "a dead worker's idle warm sandbox is gone");
    assert.equal((await run('docker', ['ps', '-q', '--filter', `id=${livePool}`])).stdout.trim(), livePool, "a live worker's idle warm sandbox is kept");
  } finally {
    await server.stop();
    await run('docker', ['rm', '-f', keep, neighbour, livePool, deadPool]).catch(() => undefined);
  }
});
