import { parseRule, ruleMatches, type EgressRequest, type EgressRule } from '../common/egress-rules';
import type { Annotation } from './workflow-commands';

const VENDOR =
  'To install without the network, commit the wheels the job needs and use pip install --no-index --find-links ./wheels -r requirements.txt (pip download -d wheels -r requirements.txt makes them on a machine with network).';

/** Which tool made a request, from its User-Agent ("a request" when it does not say). */
function tool(userAgent: string): string {
  const m = /^(pip|uv|curl|git|Wget|npm|poetry|pdm|conda|Python-urllib|python-requests)\b/i.exec(userAgent);
  return m ? m[1] : 'a request';
}

/**
 * The warnings for a step's refused egress requests: one per host:port, saying what the server
 * allows and why this one was refused (not on the list, or on it but resolving to an address jobs may
 * not reach).
 */
export function refusedNotes(requests: EgressRequest[], rules: string[]): Annotation[] {
  const parsed = rules.map((t) => parseRule(t)).filter((r): r is EgressRule => !('error' in r));
  const seen = new Set<string>();
  const notes: Annotation[] = [];
  for (const r of requests) {
    const where = `${r.host}:${r.port}`;
    if (!r.refused || seen.has(where)) continue;
    seen.add(where);
    const listed = parsed.some((rule) => ruleMatches(rule, r.host, r.port));
    const why = listed
      ? `it is on this server's egress list, but its address is one jobs may not reach (loopback, private, link-local or reserved)`
      : `not on this server's egress list (it allows ${rules.join(', ')})`;
    notes.push({
      level: 'warning',
      title: 'Egress refused',
      message: `${tool(r.userAgent)} tried ${where}: ${why}. ${VENDOR}`,
      file: null,
      line: null,
      endLine: null,
      col: null,
      endColumn: null,
    });
  }
  return notes;
}

/** The note for a failing step that could not resolve a name while the job has egress through the gateway. */
export function egressNetworkNote(rules: string[]): string {
  return `this step could not resolve a name or open a connection itself: a Kiln job has no DNS and no route out; it reaches ${rules.join(', ')} only through the proxy in HTTPS_PROXY and HTTP_PROXY (pip, uv, curl and git use it by themselves). ${VENDOR}`;
}
