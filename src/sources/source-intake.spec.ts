// SourceIntake: the one place runs/ and webhooks/ take sources from. Real files and the real `tar`, in a temp dir.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadConfig } from '../config/config';
import { FileStore } from '../storage/file-store';
import { SourceIntake } from './source-intake';
import { ArchiveError } from './tar-safety';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-intake-spec-'));
const config = loadConfig({ KILN_LOG_LEVEL: 'error', KILN_DATA_DIR: path.join(root, 'data'), KILN_JOB_WORKSPACE: '64m', KILN_JOB_WORKSPACE_MAX: '64m' });
const intake = new SourceIntake(config, new FileStore(config));

function tree(files: Record<string, string>, links: Record<string, string> = {}): string {
  const dir = fs.mkdtempSync(path.join(root, 'tree-'));
  for (const [p, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, p)), { recursive: true });
    fs.writeFileSync(path.join(dir, p), text);
  }
  for (const [p, target] of Object.entries(links)) {
    fs.mkdirSync(path.dirname(path.join(dir, p)), { recursive: true });
    fs.symlinkSync(target, path.join(dir, p));
  }
  return dir;
}

test.after(() => fs.rmSync(root, { recursive: true, force: true }));

test('workflowFiles: .kiln.yml first, then .github/workflows in name order, with their text', () => {
  const dir = tree({
    '.github/workflows/b.yml': 'name: b',
    '.github/workflows/a.yaml': 'name: a',
    '.github/workflows/notes.txt': 'not a workflow',
    '.kiln.yml': 'name: kiln',
    'src/main.py': 'print(1)',
  });
  assert.deepEqual(intake.workflowFiles(dir), [
    { file: '.kiln.yml', text: 'name: kiln' },
    { file: '.github/workflows/a.yaml', text: 'name: a' },
    { file: '.github/workflows/b.yml', text: 'name: b' },
  ]);
});

test('workflowFiles: a workflow that is a symbolic link is not read, wherever it points (a pushed repository is a stranger’s tree)', () => {
  const secret = path.join(root, 'host-secret.txt');
  fs.writeFileSync(secret, 'name: host secret');
  const dir = tree(
    { '.github/workflows/ok.yml': 'name: ok', 'inside.yml': 'name: inside' },
    {
      '.kiln.yml': secret,
      '.kiln.yaml': 'inside.yml',
      '.github/workflows/out.yml': secret,
    },
  );
  assert.deepEqual(intake.workflowFiles(dir), [{ file: '.github/workflows/ok.yml', text: 'name: ok' }]);
});

test('workflowFiles: a .github or .github/workflows that is a link to a folder elsewhere is not read', () => {
  const hostDir = fs.mkdtempSync(path.join(root, 'host-workflows-'));
  fs.mkdirSync(path.join(hostDir, 'workflows'));
  fs.writeFileSync(path.join(hostDir, 'workflows', 'host.yml'), 'name: host secret');
  assert.deepEqual(intake.workflowFiles(tree({}, { '.github/workflows': path.join(hostDir, 'workflows') })), []);
  assert.deepEqual(intake.workflowFiles(tree({}, { '.github': hostDir })), []);
});

test('workflowFiles: a tree without workflows gives none', () => {
  assert.deepEqual(intake.workflowFiles(tree({ 'README.md': '# hi' })), []);
});

test('packDir: a checked-out tree becomes a sanitized tar with its files', async () => {
  const dir = tree({ 'a.txt': 'a', 'src/b.py': 'b = 1\n' });
  const out = path.join(root, 'packed.tar');
  const tar = await intake.packDir(dir, out);
  assert.equal(tar.files, 2);
  assert.ok(tar.paths.includes('src/b.py'), tar.paths.join(', '));
  assert.ok(fs.statSync(out).size > 0);
});

test('packInline: the quick form’s files are capped at 4 MiB in all, refused with a typed error', async () => {
  const big = 'x'.repeat(1024 * 1024 - 1);
  const files = Object.fromEntries([0, 1, 2, 3, 4].map((i) => [`f${i}.txt`, big]));
  await assert.rejects(intake.packInline(files, path.join(root, 'inline.tar')), (e) => e instanceof ArchiveError && e.code === 'too-large');
});

test('sourceLimits: never more unpacked than the largest workspace a job may have', () => {
  const limits = intake.sourceLimits();
  assert.equal(limits.maxTotalBytes, 64 * 1024 * 1024);
  assert.ok(limits.maxFileBytes <= limits.maxTotalBytes);
  assert.equal(limits.maxCompressedBytes, config.uploadMaxBytes);
});
