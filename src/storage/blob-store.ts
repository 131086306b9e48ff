import { Inject, Injectable } from '@nestjs/common';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { KILN_CONFIG, KilnConfig } from '../config/config';
import { PRIVATE_FILE_MODE, privateDir } from '../common/private-files';

/**
 * Where finished, immutable files live: the checked workspace of each run and every artifact. Every
 * node of a deployment must see the same store (the API writes sources, workers read them and write
 * artifacts, the API serves artifacts). The local implementation is a folder under KILN_DATA_DIR; an
 * object store (S3 and the like) implements the same four calls. Files are always complete before they
 * are put: partial files stay in the writing node's scratch (FileStore.upload), never in the store.
 * Logs are not here: they are appended to while a job runs (LogStore, on the shared data path).
 */
export interface BlobStore {
  /** Moves a complete local file into the store under `key` (replacing any). */
  put(key: string, localFile: string): Promise<void>;
  /** The blob and its size, or null when there is none (expired, never written). */
  open(key: string): Promise<{ stream: Readable; size: number } | null>;
  /** Removes the blob; no error when it is already gone. */
  remove(key: string): Promise<void>;
}

export const BLOB_STORE = Symbol('BLOB_STORE');

export const blobKeys = {
  source: (runId: string) => `sources/${runId}.tar`,
  artifact: (runId: string, artifactId: string) => `artifacts/${runId}/${artifactId}.tar`,
};

const KEY = /^[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*\.tar$/;

/** The store as files under KILN_DATA_DIR (a path every node mounts when there are several). */
@Injectable()
export class LocalBlobStore implements BlobStore {
  constructor(@Inject(KILN_CONFIG) private readonly config: KilnConfig) {}

  private file(key: string): string {
    if (!KEY.test(key)) throw new Error(`not a blob key: ${key}`);
    return path.join(this.config.dataDir, key);
  }

  async put(key: string, localFile: string): Promise<void> {
    const target = this.file(key);
    await privateDir(path.dirname(target));
    try {
      await fs.promises.rename(localFile, target);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
      // Scratch and store on different file systems: copy to a name beside the target, then rename (atomic).
      const tmp = `${target}.${process.pid}.partial`;
      await fs.promises.copyFile(localFile, tmp);
      await fs.promises.rename(tmp, target);
      await fs.promises.rm(localFile, { force: true });
    }
    await fs.promises.chmod(target, PRIVATE_FILE_MODE);
  }

  async open(key: string): Promise<{ stream: Readable; size: number } | null> {
    const file = this.file(key);
    let fh: fs.promises.FileHandle;
    try {
      fh = await fs.promises.open(file, 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
    const { size } = await fh.stat();
    return { stream: fh.createReadStream(), size };
  }

  async remove(key: string): Promise<void> {
    await fs.promises.rm(this.file(key), { force: true });
  }
}
