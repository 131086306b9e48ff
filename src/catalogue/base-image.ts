import { Inject, Injectable, Logger } from '@nestjs/common';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { KILN_CONFIG, KilnConfig } from '../config/config';
import { DockerEngine } from '../docker/docker-engine';
import { BASE_REPO } from './recipe';

/**
 * Makes sure kiln-base:<suite> exists: from a registry's debian:<suite>-slim when one answers,
 * else from runner-images/debootstrap.sh (debootstrap --variant=minbase) imported into the engine.
 */
@Injectable()
export class BaseImageProvider {
  private readonly log = new Logger('BaseImage');
  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly engine: DockerEngine,
  ) {}

  async ensure(suite: string): Promise<string> {
    const ref = `${BASE_REPO}:${suite}`;
    if (await this.engine.inspectImage(ref)) return ref;
    if (await this.engine.tryPull(`debian:${suite}-slim`, 30_000)) {
      await this.engine.tagImage(`debian:${suite}-slim`, BASE_REPO, suite);
      this.log.log(`${ref} from debian:${suite}-slim`);
      return ref;
    }
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-debootstrap-'));
    const root = path.join(work, 'root');
    try {
      this.log.log(`no registry answers; debootstrap --variant=minbase ${suite} from ${this.config.debianMirror} (a minute or two)`);
      await run('bash', [path.join(this.config.runnerImagesDir, 'debootstrap.sh'), suite, root, this.config.debianMirror]);
      const tarProc = spawn('tar', ['--numeric-owner', '-C', root, '-c', '.'], { stdio: ['ignore', 'pipe', 'pipe'] });
      const tarDone = new Promise<void>((resolve, reject) => {
        let err = '';
        tarProc.stderr.on('data', (d: Buffer) => {
          err += d.toString();
        });
        tarProc.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`tar of the ${suite} root failed: ${err.trim()}`))));
      });
      await Promise.all([this.engine.importImage(tarProc.stdout, BASE_REPO, suite, ['CMD ["bash"]', 'ENV LANG=C.UTF-8']), tarDone]);
      this.log.log(`${ref} imported from debootstrap`);
      return ref;
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  }
}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      process.stderr.write(d);
    });
    p.on('error', reject);
    p.on('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`${path.basename(args[0] ?? cmd)} exited ${code}: ${err.trim().split('\n').slice(-3).join(' / ')}`)),
    );
  });
}
