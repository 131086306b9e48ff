import { EgressRule, parseRules } from '../common/egress-rules';
import { parseSize } from '../common/size';

/** What jobs may reach through their egress gateway; with no rules, jobs have no network at all (the default). */
export interface EgressConfig {
  /** KILN_EGRESS_ALLOW: host:port rules (names, *.wildcards, IPv4 addresses). */
  allow: EgressRule[];
  /** KILN_EGRESS_ALLOW_INTERNAL: rules whose names may resolve to private addresses (an internal mirror). Allowed too. */
  internal: EgressRule[];
  /** KILN_EGRESS_MAX_BYTES: bytes through one job's gateway before it is cut off (default 2 GiB). */
  maxBytes: number;
  /** KILN_EGRESS_NETWORKS: Docker networks the gateways join besides their outbound one (where an internal mirror lives). */
  networks: string[];
  /** KILN_RUNSC_EGRESS_RUNTIME: the engine's runtime for gVisor jobs that have egress (default runsc-egress). */
  runscRuntime: string;
  /** KILN_PIP_INDEX_URL: set as PIP_INDEX_URL and UV_INDEX_URL in every job. */
  pipIndexUrl: string | null;
}

interface EgressSchema {
  KILN_EGRESS_ALLOW?: string;
  KILN_EGRESS_ALLOW_INTERNAL?: string;
  KILN_EGRESS_MAX_BYTES?: string;
  KILN_EGRESS_NETWORKS?: string;
  KILN_RUNSC_EGRESS_RUNTIME?: string;
  KILN_PIP_INDEX_URL?: string;
}

/** The egress settings; a bad rule throws an Error naming the variable and what to write. */
export function egressConfig(schema: EgressSchema, fail: (message: string) => Error): EgressConfig {
  try {
    const internal = parseRules(schema.KILN_EGRESS_ALLOW_INTERNAL ?? '', 'KILN_EGRESS_ALLOW_INTERNAL');
    const wild = internal.find((r) => r.kind === 'wildcard');
    if (wild) throw new Error(`KILN_EGRESS_ALLOW_INTERNAL: *.${wild.host} is a wildcard; name each internal host exactly`);
    return {
      allow: parseRules(schema.KILN_EGRESS_ALLOW ?? '', 'KILN_EGRESS_ALLOW'),
      internal,
      maxBytes: parseSize(schema.KILN_EGRESS_MAX_BYTES ?? '2g') ?? 2 * 1024 ** 3,
      networks: schema.KILN_EGRESS_NETWORKS ? schema.KILN_EGRESS_NETWORKS.split(',') : [],
      runscRuntime: schema.KILN_RUNSC_EGRESS_RUNTIME ?? 'runsc-egress',
      pipIndexUrl: schema.KILN_PIP_INDEX_URL ?? null,
    };
  } catch (e) {
    throw fail(`invalid configuration:\n  ${(e as Error).message}`);
  }
}
