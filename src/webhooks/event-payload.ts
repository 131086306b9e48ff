/** Most bytes of a push payload kept as a run's `github.event` (and GITHUB_EVENT_PATH); it is stored with every run of the push. */
export const EVENT_PAYLOAD_MAX_BYTES = 256 * 1024;

/**
 * The forge's push payload as `github.event`: as received when it is at most maxBytes of JSON; over
 * it (a push of many commits), its top-level scalars with `repository` and `head_commit`, or only the
 * scalars if even those are over it.
 */
export function eventPayload(payload: unknown, maxBytes = EVENT_PAYLOAD_MAX_BYTES): Record<string, unknown> {
  if (!payload || typeof payload !== 'object' || Array.isArray(payload)) return {};
  const p = payload as Record<string, unknown>;
  if (fits(p, maxBytes)) return p;
  const scalars = Object.fromEntries(Object.entries(p).filter(([, v]) => v === null || typeof v !== 'object'));
  const kept = { ...scalars, repository: p.repository, head_commit: p.head_commit };
  return fits(kept, maxBytes) ? kept : fits(scalars, maxBytes) ? scalars : {};
}

function fits(v: unknown, maxBytes: number): boolean {
  return Buffer.byteLength(JSON.stringify(v)) <= maxBytes;
}
