import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { text } from 'node:stream/consumers';
import { blobKeys, LocalBlobStore } from './blob-store';
import { loadConfig } from '../config/config';

function store() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-blob-'));
  return { dir, blobs: new LocalBlobStore(loadConfig({ KILN_DATA_DIR: dir })) };
}

test('local blob store: put moves a complete file in, open streams it with its size, remove forgets it', async () => {
  const { dir, blobs } = store();
  const local = path.join(dir, 'scratch.tar');
  fs.writeFileSync(local, 'hello blob');
  await blobs.put(blobKeys.artifact('run1', 'art1'), local);
  assert.equal(fs.existsSync(local), false, 'the scratch file is moved, not copied');
  assert.equal(fs.readFileSync(path.join(dir, 'artifacts/run1/art1.tar'), 'utf8'), 'hello blob');
  const got = await blobs.open(blobKeys.artifact('run1', 'art1'));
  assert.equal(got!.size, 10);
  assert.equal(await text(got!.stream), 'hello blob');
  await blobs.remove(blobKeys.artifact('run1', 'art1'));
  await blobs.remove(blobKeys.artifact('run1', 'art1'));
  assert.equal(await blobs.open(blobKeys.artifact('run1', 'art1')), null);
});

test('local blob store: a key that could leave the store is refused', async () => {
  const { blobs } = store();
  for (const key of ['../etc/passwd.tar', 'sources/../../x.tar', '/abs.tar', 'sources/x']) {
    await assert.rejects(blobs.open(key), /not a blob key/);
  }
});
