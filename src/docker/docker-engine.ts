import { Injectable, Logger } from '@nestjs/common';
import Docker from 'dockerode';
import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import { demuxDockerStream, hardenedHostConfig, SandboxLimits } from './hardening';

/** The engine could not be reached or refused an infrastructure call: worth retrying later. */
export class EngineUnavailableError extends Error {}
/** A build failed for reasons in its recipe (a package that does not exist, a failing RUN). */
export class ImageBuildError extends Error {}

export interface RunOnceResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  oomKilled: boolean;
}

/** The one module that talks to the Docker engine (dockerode). DOCKER_HOST is honoured. */
@Injectable()
export class DockerEngine {
  private readonly log = new Logger('DockerEngine');
  readonly docker: Docker;
  /**
   * For ping only: a new connection each time. Node keeps connections alive, and a dockerd shutting
   * down closes its listener but goes on answering on open connections (while it kills every
   * container); a ping over one of those would call a departing engine present.
   */
  private readonly probe: Docker;

  constructor() {
    this.docker = new Docker();
    // The same engine address and options (DOCKER_HOST & co., as docker-modem reads them); only the agent differs.
    const tls = (this.docker.modem as { protocol?: string }).protocol === 'https';
    this.probe = new Docker({ agent: tls ? new https.Agent({ keepAlive: false }) : new http.Agent({ keepAlive: false }) } as Docker.DockerOptions);
  }

  /** Resolves with the engine's API version, or throws EngineUnavailableError within timeoutMs. */
  async ping(timeoutMs = 2000): Promise<{ apiVersion: string; version: string }> {
    try {
      const v = await withTimeout(this.probe.version(), timeoutMs, 'the Docker engine did not answer');
      return { apiVersion: v.ApiVersion, version: v.Version };
    } catch (e) {
      throw new EngineUnavailableError(`Docker engine unreachable: ${(e as Error).message}`);
    }
  }

  /** The container runtimes registered in the engine (daemon.json `runtimes`), e.g. ['runc', 'runsc']. */
  async runtimes(): Promise<string[]> {
    const info = (await this.docker.info()) as { Runtimes?: Record<string, unknown> };
    return Object.keys(info.Runtimes ?? {}).sort();
  }

  async inspectImage(ref: string): Promise<Docker.ImageInspectInfo | null> {
    try {
      return await this.docker.getImage(ref).inspect();
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode === 404) return null;
      throw e;
    }
  }

  async tagImage(source: string, repo: string, tag: string): Promise<void> {
    await this.docker.getImage(source).tag({ repo, tag });
  }

  /** Tries a registry pull; false when no registry answers within timeoutMs (the usual case here). */
  async tryPull(ref: string, timeoutMs: number): Promise<boolean> {
    try {
      const stream = await withTimeout(this.docker.pull(ref) as unknown as Promise<Readable>, timeoutMs, 'pull timed out');
      await withTimeout(this.followProgress(stream), timeoutMs, 'pull timed out');
      return true;
    } catch (e) {
      this.log.debug(`pull ${ref} failed: ${(e as Error).message}`);
      return false;
    }
  }

  /** Imports a root filesystem tar stream as repo:tag (docker import). */
  async importImage(rootfsTar: Readable, repo: string, tag: string, changes: string[]): Promise<void> {
    // dockerode's typings give the callback form; without a callback it returns a promise.
    const stream = await (this.docker.importImage(rootfsTar, { repo, tag, changes } as never) as unknown as Promise<Readable>);
    await this.followProgress(stream);
  }

  /**
   * Builds an image from a tar build context. onLine receives the build's output lines.
   * Resolves with the image id; a failing recipe throws ImageBuildError with the last output lines.
   */
  async buildImage(context: Readable, opts: { tag: string; labels: Record<string, string> }, onLine: (line: string) => void): Promise<string> {
    const tail: string[] = [];
    let imageId = '';
    const stream = await (this.docker.buildImage(context, {
      t: opts.tag,
      labels: opts.labels,
      rm: true,
      forcerm: true,
    } as never) as unknown as Promise<Readable>);
    try {
      await this.followProgress(stream, (ev) => {
        if (typeof ev.stream === 'string') {
          for (const line of ev.stream.replace(ANSI, '').split('\n')) {
            if (!line.trim()) continue;
            onLine(line);
            tail.push(line);
            if (tail.length > 25) tail.shift();
          }
        }
        if (ev.aux && typeof ev.aux.ID === 'string') imageId = ev.aux.ID;
      });
    } catch (e) {
      throw new ImageBuildError(`${(e as Error).message}\n--- last build output ---\n${tail.join('\n')}`);
    }
    if (!imageId) {
      const info = await this.inspectImage(opts.tag);
      if (!info) throw new ImageBuildError(`the engine reported no image for ${opts.tag}`);
      imageId = info.Id;
    }
    return imageId;
  }

  /**
   * Runs one command to completion in a hardened, network-less container and removes it.
   * Used by the catalogue's probe; jobs use their own path.
   */
  async runOnce(opts: {
    image: string;
    cmd: string[];
    user: string;
    limits: SandboxLimits;
    timeoutMs: number;
    labels: Record<string, string>;
  }): Promise<RunOnceResult> {
    const container = await this.docker.createContainer({
      Image: opts.image,
      Cmd: opts.cmd,
      User: opts.user,
      Tty: false,
      AttachStdout: true,
      AttachStderr: true,
      NetworkDisabled: true,
      Labels: opts.labels,
      HostConfig: hardenedHostConfig(opts.limits),
    });
    let timedOut = false;
    try {
      await container.start();
      const waited = container.wait() as Promise<{ StatusCode: number }>;
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), opts.timeoutMs);
      });
      const first = await Promise.race([waited, deadline]);
      clearTimeout(timer);
      if (first === 'timeout') {
        timedOut = true;
        await container.kill().catch(() => undefined);
        await waited.catch(() => undefined);
      }
      const raw = (await container.logs({ stdout: true, stderr: true, follow: false })) as unknown as Buffer;
      const { stdout, stderr } = demuxDockerStream(Buffer.isBuffer(raw) ? raw : Buffer.from(raw));
      const info = await container.inspect();
      return {
        exitCode: info.State.ExitCode,
        oomKilled: info.State.OOMKilled,
        stdout: stdout.toString('utf8'),
        stderr: stderr.toString('utf8'),
        timedOut,
      };
    } finally {
      await container.remove({ force: true }).catch((e: Error) => this.log.warn(`could not remove probe container: ${e.message}`));
    }
  }

  /** Containers carrying every one of the labels (`key=value`). */
  async listContainers(labels: string[]): Promise<Docker.ContainerInfo[]> {
    return this.docker.listContainers({ all: true, filters: { label: labels } });
  }

  private followProgress(stream: Readable, onEvent?: (ev: ProgressEvent) => void): Promise<void> {
    return new Promise((resolve, reject) => {
      this.docker.modem.followProgress(
        stream,
        (err: Error | null, events: ProgressEvent[]) => {
          if (err) return reject(err);
          const failed = events.find((ev) => ev.error);
          if (failed) return reject(new Error(failed.error));
          resolve();
        },
        (ev: ProgressEvent) => onEvent?.(ev),
      );
    });
  }
}

/** Colour and cursor escapes, which the build's stderr carries. */
const ANSI = /\x1b\[[0-9;?]*[ -\/]*[@-~]/g;

interface ProgressEvent {
  stream?: string;
  error?: string;
  aux?: { ID?: string };
}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(message)), ms);
    }),
  ]);
}
