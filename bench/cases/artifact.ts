/**
 * Case 5: collecting a 200 MiB artifact (20 files of 10 MiB of random bytes). Kiln: the
 * actions/upload-artifact step's recorded duration (tar inside the sandbox, streamed out, checked,
 * stored). Raw: `docker cp CONTAINER:/workspace/out -` of a container that wrote the same files, to a
 * file on disk.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import { RawDocker } from '../lib/docker';
import { ENVIRONMENT, KilnServer, ms } from '../lib/kiln';
import { run } from '../lib/proc';
import { MiB, say } from '../lib/util';

export const ARTIFACT_BYTES = 200 * MiB;
const MAKE = 'mkdir -p out && for i in $(seq 1 20); do head -c 10485760 /dev/urandom > out/f$i.bin; done';

const WORKFLOW = `jobs:
  artifact:
    runs-on: ${ENVIRONMENT}
    steps:
      - name: make
        run: '${MAKE}'
      - name: upload
        uses: actions/upload-artifact@v4
        with: { name: big, path: out/ }
`;

/** A one-file source tarball (the artifact job needs a multipart submission for its workflow). */
export async function makeTinyTarball(dir: string): Promise<string> {
  const file = path.join(dir, 'tiny.tar');
  const pack = tar.pack();
  const written = pipeline(pack, fs.createWriteStream(file));
  pack.entry({ name: 'README', mode: 0o644 }, 'artifact bench\n');
  pack.finalize();
  await written;
  return file;
}

export interface KilnArtifact {
  /** the upload-artifact step, s */
  seconds: number;
  sizeBytes: number;
}

/**
 * Both sides write 200 MiB to disk in the timed part, and the machine's write-back of what came before
 * (the previous case, the other side's last repetition) would slow whichever side came next: each timed
 * part starts with nothing left to write back.
 */
export async function settleDisk(): Promise<void> {
  const r = await run('sync', [], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`sync exited ${r.code}: ${r.stderr}`);
}

export async function artifactKiln(k: KilnServer, tiny: string): Promise<KilnArtifact> {
  await settleDisk(); // the job's files are written to its tmpfs, not to disk, before the timed step
  const res = await k.submitTarball(tiny, { workflow: WORKFLOW });
  if (res.status !== 201) throw new Error(`artifact submission answered ${res.status}: ${JSON.stringify(res.body).slice(0, 500)}`);
  const v = await k.waitCompleted(res.body.id, 600_000, 500);
  if (v.conclusion !== 'success') throw new Error(`artifact run ${v.id}: ${v.conclusion} ${JSON.stringify(v.jobs[0]).slice(0, 600)}`);
  const step = v.jobs[0].steps[1];
  const seconds = (ms(step.finishedAt) - ms(step.startedAt)) / 1000;
  const a = v.artifacts.find((x) => x.name === 'big');
  if (!a || a.sizeBytes < ARTIFACT_BYTES) throw new Error(`artifact run ${v.id}: artifact ${JSON.stringify(a)} smaller than 200 MiB`);
  say(`  kiln: upload-artifact of ${(a.sizeBytes / MiB).toFixed(0)} MiB in ${seconds.toFixed(2)} s`);
  return { seconds, sizeBytes: a.sizeBytes };
}

export async function artifactRaw(docker: RawDocker, workDir: string): Promise<{ seconds: number; bytes: number }> {
  const name = `kiln-bench-artifact-${process.pid}-${Date.now()}`;
  const out = path.join(workDir, `${name}.tar`);
  const made = await run('docker', docker.runArgs(['sh', '-c', MAKE], { rm: false, name, copyable: true }), { timeoutMs: 300_000 });
  try {
    if (made.code !== 0) throw new Error(`raw artifact container exited ${made.code}: ${made.stderr}`);
    await settleDisk(); // the files it wrote to its layer are on disk before the copy is timed (see settleDisk)
    const cp = await run('docker', ['cp', `${name}:/workspace/out`, '-'], { stdout: 'file', outFile: out, timeoutMs: 600_000 });
    if (cp.code !== 0) throw new Error(`docker cp out exited ${cp.code}: ${cp.stderr}`);
    const bytes = fs.statSync(out).size;
    if (bytes < ARTIFACT_BYTES) throw new Error(`docker cp gave ${bytes} bytes`);
    say(`  raw docker: docker cp of ${(bytes / MiB).toFixed(0)} MiB in ${(cp.ms / 1000).toFixed(2)} s`);
    return { seconds: cp.ms / 1000, bytes };
  } finally {
    await run('docker', ['rm', '-f', '-v', name]);
    fs.rmSync(out, { force: true });
  }
}
