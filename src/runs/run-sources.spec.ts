import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Readable } from 'node:stream';
import type { KilnConfig } from '../config/config';
import type { BlobStore } from '../storage/blob-store';
import { RunSources, SourceRecords } from './run-sources';

/** An in-memory store and run records: which runs are completed and which still hold a source (bytes, or null = unknown). */
function fixture(runs: Record<string, { completed: boolean; sourceBytes: number | null }>) {
  const blobs = new Map<string, string>();
  for (const id of Object.keys(runs)) blobs.set(`sources/${id}.tar`, 'tar');
  const store: BlobStore = {
    put: async (key, file) => {
      blobs.set(key, file);
    },
    open: async () => null as { stream: Readable; size: number } | null,
    remove: async (key) => {
      blobs.delete(key);
    },
  };
  const records: SourceRecords = {
    sourceReleased: async (id) => {
      runs[id].sourceBytes = 0;
    },
    concludedWithSource: async (limit) =>
      Object.entries(runs)
        .filter(([, r]) => r.completed && r.sourceBytes !== 0)
        .map(([id]) => id)
        .slice(0, limit),
  };
  const sources = new RunSources({ sweepSeconds: 300 } as KilnConfig, records as never, store);
  return { sources, blobs, runs };
}

test('release removes the source and stops counting it; releasing twice is harmless', async () => {
  const { sources, blobs, runs } = fixture({ a: { completed: true, sourceBytes: 1000 } });
  await sources.release('a');
  assert.equal(blobs.has('sources/a.tar'), false);
  assert.equal(runs.a.sourceBytes, 0);
  await sources.release('a');
});

test("keep puts the checked tar under the run's key", async () => {
  const { sources, blobs } = fixture({});
  await sources.keep('r1', '/scratch/upload.tar');
  assert.equal(blobs.get('sources/r1.tar'), '/scratch/upload.tar');
});

test('the sweep removes the sources of concluded runs (sizes known or recorded before sizes were), never of running ones', async () => {
  const many: Record<string, { completed: boolean; sourceBytes: number | null }> = {};
  for (let i = 0; i < 450; i++) many[`old${i}`] = { completed: true, sourceBytes: null };
  const { sources, blobs, runs } = fixture({ ...many, done: { completed: true, sourceBytes: 5 }, running: { completed: false, sourceBytes: 7 } });
  assert.equal(await sources.sweep(), 451, 'every concluded run, over several batches');
  assert.deepEqual([...blobs.keys()], ['sources/running.tar']);
  assert.equal(runs.running.sourceBytes, 7);
  assert.equal(await sources.sweep(), 0, 'a second pass finds nothing');
});
