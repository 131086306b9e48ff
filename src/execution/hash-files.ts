import { createHash } from 'node:crypto';
import type { ExecutionBackend, JobHandle } from './backend';
import { WORKSPACE } from './github-context';

/**
 * hashFiles() needs the workspace, and the expression engine cannot wait for I/O: every call with
 * literal patterns in the step's strings is computed in the sandbox first. GitHub's algorithm: the
 * SHA-256 of the concatenated SHA-256 digests of the matching files (sorted by path); '' if none.
 * The map's keys are the patterns as JSON.
 */
export async function precomputeHashes(
  backend: ExecutionBackend,
  handle: JobHandle,
  strings: (string | null | undefined)[],
  signal: AbortSignal,
): Promise<Map<string, string>> {
  const calls = new Map<string, string[]>();
  for (const str of strings) {
    if (!str) continue;
    for (const m of str.matchAll(/hashFiles\(\s*((?:'(?:[^']|'')*'\s*,?\s*)+)\)/gi)) {
      const args = [...m[1].matchAll(/'((?:[^']|'')*)'/g)].map((a) => a[1].replace(/''/g, "'"));
      calls.set(JSON.stringify(args), args);
    }
  }
  const out = new Map<string, string>();
  for (const [key, patterns] of calls) {
    let stdout = '';
    const script = [
      'shopt -s globstar nullglob dotglob; cd /workspace || exit 0',
      'inc=(); exc=()',
      'for p in "$@"; do if [[ $p == !* ]]; then exc+=("${p:1}"); else inc+=("$p"); fi; done',
      "IFS=$'\\n'",
      'for p in "${inc[@]}"; do for f in $p; do [ -f "$f" ] || continue; skip=; for x in "${exc[@]}"; do [[ $f == $x ]] && skip=1; done; [ -z "$skip" ] && printf "%s\\0" "$f"; done; done | sort -zu | xargs -0 -r sha256sum',
    ].join('\n');
    const state = await backend.execStep(
      handle,
      { argv: ['bash', '-c', script, 'hashFiles', ...patterns], env: {}, workdir: WORKSPACE, timeoutMs: 120_000 },
      (stream, chunk) => {
        if (stream === 'stdout') stdout += chunk.toString();
      },
      signal,
    );
    if (state.exitCode !== 0) continue;
    const digests = stdout
      .split('\n')
      .map((l) => /^([0-9a-f]{64}) /.exec(l)?.[1])
      .filter((h): h is string => Boolean(h));
    if (!digests.length) {
      out.set(key, '');
      continue;
    }
    const total = createHash('sha256');
    for (const d of digests) total.update(Buffer.from(d, 'hex'));
    out.set(key, total.digest('hex'));
  }
  return out;
}
