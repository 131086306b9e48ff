/**
 * Case 4: a 200 MiB, 20 000-file workspace. Kiln: the multipart submission (tarball streamed from
 * disk) to the first step's recorded start. Raw: `docker create` + `docker cp -` of the same tarball
 * + `docker start`. The step checks that all 20 000 files arrived, in both.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import { RawDocker } from '../lib/docker';
import { ENVIRONMENT, KilnServer, ms } from '../lib/kiln';
import { must, run } from '../lib/proc';
import { MiB, say } from '../lib/util';

export const UPLOAD_FILES = 20_000;
export const UPLOAD_BYTES = 200 * MiB;
const CHECK = `test "$(find . -type f | wc -l)" -eq ${UPLOAD_FILES}`;

/** An uncompressed tarball of 20 000 files of random bytes (200 MiB in all) in 100 folders; no folder entries. */
export async function makeUploadTarball(dir: string): Promise<{ file: string; bytes: number }> {
  const file = path.join(dir, 'upload-200MiB-20000-files.tar');
  const pack = tar.pack();
  const written = pipeline(pack, fs.createWriteStream(file));
  const base = Math.floor(UPLOAD_BYTES / UPLOAD_FILES);
  let extra = UPLOAD_BYTES - base * UPLOAD_FILES; // spread over the first files: exactly 200 MiB in all
  for (let i = 0; i < UPLOAD_FILES; i++) {
    const size = base + (extra-- > 0 ? 1 : 0);
    const name = `d${String(Math.floor(i / 200)).padStart(2, '0')}/f${String(i % 200).padStart(3, '0')}.bin`;
    await new Promise<void>((resolve, reject) => {
      pack.entry({ name, size, mode: 0o644, mtime: new Date(0) }, randomBytes(size), (err) => (err ? reject(err) : resolve()));
    });
  }
  pack.finalize();
  await written;
  return { file, bytes: fs.statSync(file).size };
}

const WORKFLOW = `jobs:\n  upload:\n    runs-on: ${ENVIRONMENT}\n    steps:\n      - name: check\n        run: '${CHECK}'\n`;

export interface KilnUpload {
  /** POST start to the first step's recorded start, s */
  seconds: number;
  /** POST start to the 201 (upload, sanitize, record), s */
  answeredSeconds: number;
  /** POST start to the job taken by the worker (it may be taken before the 201 reaches the client), s */
  jobStartedAfter: number;
  /** job taken to its first step started (container, workspace unpacked through docker exec), s */
  jobStartToStep: number;
}

export async function uploadKiln(k: KilnServer, tarball: string): Promise<KilnUpload> {
  const t0 = Date.now();
  const p0 = performance.now();
  const res = await k.submitTarball(tarball, { workflow: WORKFLOW });
  const answered = (performance.now() - p0) / 1000;
  if (res.status !== 201) throw new Error(`upload answered ${res.status}: ${JSON.stringify(res.body).slice(0, 500)}`);
  const v = await k.waitCompleted(res.body.id, 600_000, 500);
  if (v.conclusion !== 'success') throw new Error(`upload run ${v.id}: ${v.conclusion} ${JSON.stringify(v.jobs[0]).slice(0, 600)}`);
  const job = v.jobs[0];
  const seconds = (ms(job.steps[0].startedAt) - t0) / 1000;
  const jobStartToStep = (ms(job.steps[0].startedAt) - ms(job.startedAt)) / 1000;
  const jobStartedAfter = (ms(job.startedAt) - t0) / 1000;
  say(
    `  kiln: 201 after ${answered.toFixed(2)} s, job taken after ${jobStartedAfter.toFixed(2)} s, its step started ${jobStartToStep.toFixed(2)} s later: ${seconds.toFixed(2)} s`,
  );
  return { seconds, answeredSeconds: answered, jobStartedAfter, jobStartToStep };
}

export async function uploadRaw(docker: RawDocker, tarball: string): Promise<{ seconds: number }> {
  const t0 = performance.now();
  const id = (await must('docker', docker.createArgs(['sh', '-c', CHECK], { copyable: true }))).split('\n').pop()!;
  try {
    await must('docker', ['cp', '-', `${id}:/workspace`], { stdinFile: tarball, timeoutMs: 600_000 });
    await must('docker', ['start', id]);
    const seconds = (performance.now() - t0) / 1000;
    const code = await must('docker', ['wait', id]);
    if (code !== '0') throw new Error(`raw upload container exited ${code}: ${await must('docker', ['logs', id]).catch(() => '')}`);
    say(`  raw docker: create + cp + start in ${seconds.toFixed(2)} s`);
    return { seconds };
  } finally {
    await run('docker', ['rm', '-f', '-v', id]);
  }
}
