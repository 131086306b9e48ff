import type { Logger } from '@nestjs/common';
import type Docker from 'dockerode';
import * as fs from 'node:fs';
import { formatRule, type EgressGrant, type EgressReport, type EgressRequest } from '../common/egress-rules';
import { parseAccessLine, parseLookups, summarize } from './gateway-log';
import { demuxDockerStream, hardenedHostConfig, SandboxLimits } from './hardening';
import { DEPLOYMENT_LABEL, JOB_LABEL, MANAGED_LABEL, RUN_LABEL } from './job-sandbox';
import { dnsmasqArgs, GATEWAY_PORT, squidConf } from './squid-config';

/** On a job's gateway container and its network: what they are (the reaper removes them with the job). */
export const ROLE_LABEL = 'kiln.role';
/** The bridge every gateway reaches the outside through: containers on it cannot talk to each other (ICC off). */
export const OUTBOUND_NETWORK = 'kiln-egress-out';
/** The Debian `proxy` user squid and dnsmasq run as. */
const PROXY_UID = 13;
const GATEWAY_LIMITS: SandboxLimits = {
  memoryBytes: 256 * 1024 * 1024,
  nanoCpus: 1_000_000_000,
  pids: 64,
  tmpfsBytes: 16 * 1024 * 1024,
  fileSizeBytes: 16 * 1024 * 1024,
  openFiles: 4096,
};
const READY_TIMEOUT_MS = 20_000;
/** How often the gateway's byte counters are read (a /proc file: cheap); the cap holds to within what passes in this time. */
const COUNTER_EVERY_MS = 100;

export function jobNetworkName(jobId: string): string {
  return `kiln-net-${jobId}`;
}
export function gatewayName(jobId: string): string {
  return `kiln-gw-${jobId}`;
}

/** One job's gateway while it runs. */
interface Gateway {
  jobId: string;
  containerId: string;
  grant: EgressGrant;
  maxBytes: number;
  proxyUrl: string;
  /** Access-log requests already handed out by activity(). */
  handedOut: number;
  totalBytes: number;
  capReached: boolean;
  timer: NodeJS.Timeout | null;
}

/**
 * The egress gateways: for a job that may reach some hosts, a network of its own (internal: no route
 * out, and no address of the host's on it) whose only other member is a gateway container (squid and
 * dnsmasq, configured by squid-config.ts for the job's grant) that also sits on the outbound bridge.
 * The job gets the proxy variables and nothing else: no DNS of its own, no route anywhere.
 * The gateway's network counters are watched; past the byte cap it is cut off from the outside.
 */
export class EgressGateways {
  private readonly gateways = new Map<string, Gateway>();
  private outbound: Promise<void> | null = null;

  constructor(
    private readonly docker: Docker,
    private readonly deployment: string,
    private readonly image: string,
    private readonly extraNetworks: string[],
    private readonly log: Logger,
  ) {}

  private labels(jobId: string, runId: string, role: string): Record<string, string> {
    return { [MANAGED_LABEL]: 'true', [DEPLOYMENT_LABEL]: this.deployment, [JOB_LABEL]: jobId, [RUN_LABEL]: runId, [ROLE_LABEL]: role };
  }

  /**
   * Starts the job's network and gateway; resolves once squid accepts connections, with the gateway's
   * proxy URL. `alongside` (the job's sandbox) is started on the network as soon as the network exists,
   * while the gateway boots; its failure is this call's, and either way it has settled when this returns.
   */
  async start(
    runId: string,
    jobId: string,
    grant: EgressGrant,
    maxBytes: number,
    alongside: (network: string) => Promise<void> = async () => undefined,
  ): Promise<{ network: string; proxyUrl: string }> {
    await this.remove(jobId); // what an earlier attempt of this job left
    await this.ensureOutbound();
    const network = jobNetworkName(jobId);
    const net = await this.docker.createNetwork({
      Name: network,
      Driver: 'bridge',
      Internal: true,
      CheckDuplicate: true,
      // No address of the host's on the job's bridge: a job cannot reach the host's services through it.
      Options: { 'com.docker.network.bridge.inhibit_ipv4': 'true' },
      Labels: this.labels(jobId, runId, 'job-network'),
    });
    const side = alongside(network);
    try {
      const proxyUrl = await this.launch(runId, jobId, grant, maxBytes, network, net);
      await side;
      return { network, proxyUrl };
    } catch (e) {
      await side.catch(() => undefined);
      throw e;
    }
  }

  private async launch(runId: string, jobId: string, grant: EgressGrant, maxBytes: number, network: string, net: Docker.Network): Promise<string> {
    const subnet = ((await net.inspect()) as { IPAM?: { Config?: { Subnet?: string }[] } }).IPAM?.Config?.[0]?.Subnet;
    if (!subnet) throw new Error(`the job network ${network} has no subnet`);
    const host = hardenedHostConfig(
      GATEWAY_LIMITS,
      [
        { path: '/tmp', bytes: GATEWAY_LIMITS.tmpfsBytes, uid: PROXY_UID },
        { path: '/var/spool/squid', bytes: 1024 * 1024, uid: PROXY_UID },
        { path: '/var/log/squid', bytes: 1024 * 1024, uid: PROXY_UID },
        { path: '/run', bytes: 1024 * 1024, uid: PROXY_UID },
      ],
      'runc',
    );
    const container = await this.docker.createContainer({
      name: gatewayName(jobId),
      Image: this.image,
      User: `${PROXY_UID}:${PROXY_UID}`,
      Env: [`KILN_SQUID_CONF=${squidConf(grant, { maxReplyBytes: maxBytes, clients: subnet })}`],
      // dnsmasq answers squid on 127.0.0.1:53 (squid's resolver takes no port): the one port below 1024 it may bind.
      Cmd: [
        'sh',
        '-c',
        `printf '%s' "$KILN_SQUID_CONF" > /tmp/squid.conf && { dnsmasq ${dnsmasqArgs(grant).map(shq).join(' ')} & exec squid -N -f /tmp/squid.conf; }`,
      ],
      Labels: this.labels(jobId, runId, 'gateway'),
      StopTimeout: 1,
      HostConfig: { ...host, NetworkMode: OUTBOUND_NETWORK, Sysctls: { 'net.ipv4.ip_unprivileged_port_start': '53' } },
    });
    const g: Gateway = { jobId, containerId: container.id, grant, maxBytes, proxyUrl: '', handedOut: 0, totalBytes: 0, capReached: false, timer: null };
    this.gateways.set(jobId, g);
    await this.docker.getNetwork(network).connect({ Container: container.id });
    for (const extra of this.extraNetworks) await this.docker.getNetwork(extra).connect({ Container: container.id });
    await container.start();
    const info = await container.inspect();
    const ip = info.NetworkSettings.Networks[network]?.IPAddress;
    if (!ip) throw new Error(`the egress gateway has no address on ${network}`);
    g.proxyUrl = `http://${ip}:${GATEWAY_PORT}`;
    await this.ready(container);
    this.watch(g, info.State.Pid);
    return g.proxyUrl;
  }

  private async ensureOutbound(): Promise<void> {
    this.outbound ??= (async () => {
      try {
        await this.docker.getNetwork(OUTBOUND_NETWORK).inspect();
      } catch {
        await this.docker
          .createNetwork({
            Name: OUTBOUND_NETWORK,
            Driver: 'bridge',
            CheckDuplicate: true,
            Options: { 'com.docker.network.bridge.enable_icc': 'false' },
            Labels: { [MANAGED_LABEL]: 'true', [ROLE_LABEL]: 'egress-outbound' },
          })
          .catch((e: { statusCode?: number }) => {
            if (e.statusCode !== 409) throw e;
          });
      }
    })().catch((e) => {
      this.outbound = null;
      throw e;
    });
    return this.outbound;
  }

  /** Waits for squid's "Accepting HTTP Socket connections" (or its exit). */
  private async ready(container: Docker.Container): Promise<void> {
    const until = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      const { stderr } = await this.logs(container);
      if (stderr.includes('Accepting HTTP Socket connections')) return;
      const state = (await container.inspect()).State;
      if (!state.Running) throw new Error(`the egress gateway exited (${state.ExitCode}): ${stderr.trim().split('\n').slice(-3).join(' / ')}`);
      if (Date.now() > until) throw new Error('the egress gateway did not start in 20 s');
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private async logs(container: Docker.Container): Promise<{ stdout: string; stderr: string }> {
    const raw = (await container.logs({ stdout: true, stderr: true, follow: false })) as unknown as Buffer;
    const { stdout, stderr } = demuxDockerStream(raw);
    return { stdout: stdout.toString('utf8'), stderr: stderr.toString('utf8') };
  }

  /**
   * Watches the gateway's network counters (its namespace's /proc/net/dev, read from the host; through
   * the engine's stats when the engine is elsewhere). Bytes received on every interface are what came in
   * from the outside plus what the job sent: past maxBytes the gateway leaves its outside networks.
   */
  private watch(g: Gateway, pid: number): void {
    const file = `/proc/${pid}/net/dev`;
    const read = async (): Promise<number> => {
      try {
        return receivedBytes(fs.readFileSync(file, 'utf8'));
      } catch {
        const stats = (await this.docker.getContainer(g.containerId).stats({ stream: false })) as { networks?: Record<string, { rx_bytes: number }> };
        return Object.values(stats.networks ?? {}).reduce((a, n) => a + n.rx_bytes, 0);
      }
    };
    let busy = false;
    g.timer = setInterval(() => {
      if (busy || g.capReached) return;
      busy = true;
      read()
        .then(async (bytes) => {
          g.totalBytes = bytes;
          if (bytes > g.maxBytes) {
            g.capReached = true;
            this.log.warn(`egress: job ${g.jobId} passed its byte cap (${g.maxBytes} bytes); its gateway is cut off and stopped`);
            // squid is stopped at once (SIGTERM: with shutdown_lifetime 0 it closes every connection, tunnels
            // too, and logs them); the outside networks are left as well, so nothing more passes meanwhile.
            const c = this.docker.getContainer(g.containerId);
            await c.kill({ signal: 'SIGTERM' }).catch(() => undefined);
            for (const n of [OUTBOUND_NETWORK, ...this.extraNetworks]) {
              await this.docker
                .getNetwork(n)
                .disconnect({ Container: g.containerId, Force: true })
                .catch(() => undefined);
            }
          }
        })
        .catch(() => undefined)
        .finally(() => (busy = false));
    }, COUNTER_EVERY_MS);
    g.timer.unref();
  }

  private async requests(g: Gateway): Promise<{ requests: EgressRequest[]; stderr: string }> {
    const { stdout, stderr } = await this.logs(this.docker.getContainer(g.containerId));
    const requests = stdout
      .split('\n')
      .map(parseAccessLine)
      .filter((r): r is EgressRequest => r !== null);
    return { requests, stderr };
  }

  /** True while this process keeps a gateway for the job. */
  has(jobId: string): boolean {
    return this.gateways.has(jobId);
  }

  /** The requests finished since the last call. */
  async activity(jobId: string): Promise<EgressRequest[]> {
    const g = this.gateways.get(jobId);
    if (!g) return [];
    const { requests } = await this.requests(g);
    const fresh = requests.slice(g.handedOut);
    g.handedOut = requests.length;
    return fresh;
  }

  async report(jobId: string): Promise<EgressReport | null> {
    const g = this.gateways.get(jobId);
    if (!g) return null;
    const { requests, stderr } = await this.requests(g);
    return summarize(requests, {
      rules: g.grant.rules.map(formatRule),
      lookups: parseLookups(stderr),
      totalBytes: g.totalBytes,
      maxBytes: g.maxBytes,
      capReached: g.capReached,
    });
  }

  /** Removes the job's gateway and network (idempotent; what is gone already is fine). */
  async remove(jobId: string): Promise<void> {
    const g = this.gateways.get(jobId);
    if (g?.timer) clearInterval(g.timer);
    this.gateways.delete(jobId);
    await this.docker
      .getContainer(gatewayName(jobId))
      .remove({ force: true, v: true })
      .catch((e: { statusCode?: number }) => {
        if (e.statusCode !== 404) throw e;
      });
    await removeNetwork(this.docker, jobNetworkName(jobId));
  }
}

/** Removes a network; gone already is fine. A network still in use (its container's removal under way) is retried briefly. */
export async function removeNetwork(docker: Docker, name: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await docker.getNetwork(name).remove();
      return;
    } catch (e) {
      const status = (e as { statusCode?: number }).statusCode;
      if (status === 404) return;
      if (attempt >= 20) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** Bytes received on every interface but loopback, from a /proc/net/dev. */
export function receivedBytes(netDev: string): number {
  let total = 0;
  for (const line of netDev.split('\n').slice(2)) {
    const m = /^\s*([^:]+):\s*(\d+)/.exec(line);
    if (m && m[1].trim() !== 'lo') total += Number(m[2]);
  }
  return total;
}

function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
