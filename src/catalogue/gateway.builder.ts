import { Inject, Injectable, Logger } from '@nestjs/common';
import { KILN_CONFIG, KilnConfig } from '../config/config';
import { DockerEngine } from '../docker/docker-engine';
import { GATEWAY_SUITE, gatewayRecipe } from '../docker/gateway-image';
import { PROBE_LIMITS } from '../docker/hardening';
import { BaseImageProvider } from './base-image';
import { buildContext } from './recipe';
import { EnvironmentBuildError, type BuildOutcome } from './catalogue.builder';

/**
 * The egress gateway's image (squid and dnsmasq from Debian), built like a runner image: from the
 * Debian base, tagged by its Dockerfile's hash (an unchanged recipe is not rebuilt), and measured
 * inside: the versions of squid and dnsmasq it holds are what `kiln images` prints.
 */
@Injectable()
export class GatewayImageBuilder {
  private readonly log = new Logger('Catalogue');
  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly engine: DockerEngine,
    private readonly base: BaseImageProvider,
  ) {}

  async build(): Promise<BuildOutcome> {
    const started = Date.now();
    const recipe = gatewayRecipe(this.config.runnerImagesDir, this.config.debianMirror);
    const [repo, tag] = recipe.ref.split(':');
    let image = await this.engine.inspectImage(recipe.ref);
    let action: BuildOutcome['action'] = 'cached';
    if (!image) {
      await this.base.ensure(GATEWAY_SUITE);
      this.log.log(`building ${recipe.ref}`);
      try {
        await this.engine.buildImage(
          buildContext(recipe.dockerfile),
          { tag: recipe.ref, labels: { 'kiln.role': 'egress-gateway', 'kiln.build-key': recipe.buildKey } },
          (line) => this.log.verbose(`egress-gateway: ${line}`),
        );
      } catch (e) {
        throw new EnvironmentBuildError(`runner-images/gateway.Dockerfile: building ${recipe.ref} failed: ${(e as Error).message}`);
      }
      image = await this.engine.inspectImage(recipe.ref);
      if (!image) throw new EnvironmentBuildError(`${recipe.ref} vanished right after its build`);
      action = 'built';
    }
    const res = await this.engine.runOnce({
      image: recipe.ref,
      cmd: ['sh', '-c', 'squid -v | head -n 1; dnsmasq -v | head -n 1'],
      user: '13:13',
      limits: PROBE_LIMITS,
      timeoutMs: 60_000,
      labels: { 'kiln.role': 'probe', 'kiln.image': recipe.ref },
    });
    const squid = /Version (\S+)/.exec(res.stdout)?.[1];
    const dnsmasq = /Dnsmasq version (\S+)/i.exec(res.stdout)?.[1];
    if (res.exitCode !== 0 || !squid || !dnsmasq) {
      throw new EnvironmentBuildError(
        `${recipe.ref} does not hold squid and dnsmasq as the gateway needs (exit ${res.exitCode}): ${res.stdout} ${res.stderr}`.slice(0, 800),
      );
    }
    const seconds = (Date.now() - started) / 1000;
    this.log.log(`${recipe.ref}: ${action}, squid ${squid}, dnsmasq ${dnsmasq} (${seconds.toFixed(1)} s)`);
    return { name: repo.replace(/^kiln\//, ''), version: `${tag} (squid ${squid}, dnsmasq ${dnsmasq})`, action, imageId: image.Id, seconds };
  }
}
