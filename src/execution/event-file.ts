import { Readable } from 'node:stream';
import { pack as tarPack } from 'tar-stream';

/** Where GitHub's runner keeps the event payload (GITHUB_EVENT_PATH), here too: under the job user's home. */
export const EVENT_DIR = '/home/runner/work/_temp/_github_workflow';
export const EVENT_PATH = `${EVENT_DIR}/event.json`;

/** A one-file tar holding the payload as event.json, for ExecutionBackend.putWorkspace(handle, tar, EVENT_DIR). */
export function eventTar(payload: Record<string, unknown>): Readable {
  const pack = tarPack();
  pack.entry({ name: 'event.json', mode: 0o644 }, Buffer.from(JSON.stringify(payload, null, 2)));
  pack.finalize();
  return pack as unknown as Readable;
}
