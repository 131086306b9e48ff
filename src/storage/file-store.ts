import { Inject, Injectable } from '@nestjs/common';
import * as path from 'node:path';
import { KILN_CONFIG, KilnConfig } from '../config/config';
import { scratchName } from './scratch';
import { privateDirSync } from '../common/private-files';

/** This node's scratch on disk (under KILN_DATA_DIR): uploads in progress and clones. Finished files: BlobStore. */
@Injectable()
export class FileStore {
  constructor(@Inject(KILN_CONFIG) private readonly config: KilnConfig) {}

  private dir(...parts: string[]): string {
    const d = path.join(this.config.dataDir, ...parts);
    privateDirSync(d);
    return d;
  }

  /** A scratch file for an upload in progress, named for its owner (see scratch.ts); removed after it is checked. */
  upload(suffix: string): string {
    return path.join(this.dir('uploads'), `${scratchName('upload')}${suffix}`);
  }

  uploadsDir(): string {
    return this.dir('uploads');
  }

  /** Scratch folders (git clones and their private homes); swept like uploads. */
  tmpDir(): string {
    return this.dir('tmp');
  }
}
