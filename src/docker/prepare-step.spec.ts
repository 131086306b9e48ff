import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PREPARE_STEP_SCRIPT } from './step-exec';

const mode = (p: string) => fs.statSync(p).mode & 0o777;

/** The keeper's preparation before a step, run here with sh in a temporary folder standing for /tmp/kiln. */
test('before a step: earlier scripts and files removed, the script written 0644, the step files made empty and 0666', () => {
  const kiln = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-prepare-'));
  const files = path.join(kiln, 'files');
  fs.mkdirSync(files);
  try {
    fs.writeFileSync(path.join(kiln, 'step-0.sh'), 'old script');
    fs.writeFileSync(path.join(files, 'env-0'), 'A=1\n');
    fs.writeFileSync(path.join(files, 'state-0'), Buffer.alloc(4096));
    const step = ['env', 'output', 'path', 'summary', 'state'].map((f) => path.join(files, `${f}-1`));
    fs.writeFileSync(step[1], 'left over from an attempt');
    const r = spawnSync('sh', ['-c', PREPARE_STEP_SCRIPT, 'prepare', path.join(kiln, 'step-1.sh'), ...step], { input: 'echo hello\n' });
    assert.equal(r.status, 0, r.stderr.toString());
    assert.deepEqual(fs.readdirSync(kiln).sort(), ['files', 'step-1.sh'], 'the earlier script is gone, the folder of step files kept');
    assert.equal(fs.readFileSync(path.join(kiln, 'step-1.sh'), 'utf8'), 'echo hello\n');
    assert.equal(mode(path.join(kiln, 'step-1.sh')), 0o644);
    assert.deepEqual(fs.readdirSync(files).sort(), step.map((f) => path.basename(f)).sort(), "only this step's files");
    for (const f of step) {
      assert.equal(fs.statSync(f).size, 0, f);
      assert.equal(mode(f), 0o666, f);
    }
    const none = spawnSync('sh', ['-c', PREPARE_STEP_SCRIPT, 'prepare', '', step[0]], { input: '' });
    assert.equal(none.status, 0, none.stderr.toString());
    assert.deepEqual(fs.readdirSync(files), ['env-1']);
  } finally {
    fs.rmSync(kiln, { recursive: true, force: true });
  }
});

test('a script that cannot be written fails the preparation (the step is not run)', () => {
  const r = spawnSync('sh', ['-c', PREPARE_STEP_SCRIPT, 'prepare', '/nonexistent-kiln-dir/step-0.sh'], { input: 'x' });
  assert.notEqual(r.status, 0);
});
