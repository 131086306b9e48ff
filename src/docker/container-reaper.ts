import { Inject, Injectable } from '@nestjs/common';
import { KILN_CONFIG, KilnConfig } from '../config/config';
import { DockerEngine } from './docker-engine';
import { DEPLOYMENT_LABEL, JOB_LABEL, jobIdOfName, MANAGED_LABEL, POOL_LABEL } from './job-sandbox';

/** One of this deployment's containers, as the reaper judges it. */
export interface KilnContainer {
  id: string;
  /** Its name as the engine lists it ('' when it has none). */
  name: string;
  /** The job it belongs to, if it is a job's. */
  jobId?: string;
  /** An idle warm sandbox's owner process (`pool~<host>~<pid>~<hex>`). */
  pool?: string;
  /** A job's network (its egress gateway's), not a container. */
  network?: boolean;
}

/**
 * What the reaper (runs/reaper.ts keeps the policy: which containers are lost, when) needs of the engine.
 * An abstract class so that it is its own injection token; a test passes any object of this shape.
 */
export abstract class ContainerReaper {
  /** This deployment's containers, running or not. */
  abstract list(): Promise<KilnContainer[]>;
  /** Removes a container and its volumes (or a network): false when it was gone already; any other failure is thrown. */
  abstract remove(id: string, network?: boolean): Promise<boolean>;
}

/** The Docker side of the reaper: finds this deployment's containers by Kiln's labels, and removes them. */
@Injectable()
export class DockerContainerReaper implements ContainerReaper {
  constructor(
    private readonly engine: DockerEngine,
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
  ) {}

  async list(): Promise<KilnContainer[]> {
    // Only this deployment's containers: another Kiln on the same engine has jobs this one does not know.
    const found = await this.engine.listContainers([`${MANAGED_LABEL}=true`, `${DEPLOYMENT_LABEL}=${this.config.queuePrefix}`]);
    const containers: KilnContainer[] = found.map((c) => {
      const name = c.Names?.[0] ?? '';
      // A job's container carries its id as a label, or (a warm sandbox it took) in its name.
      return { id: c.Id, name, jobId: c.Labels?.[JOB_LABEL] ?? jobIdOfName(name), pool: c.Labels?.[POOL_LABEL] };
    });
    // Jobs' networks (an egress gateway's), listed after the containers: a sweep removes the gateway first.
    const networks = await this.engine.docker.listNetworks({
      filters: { label: [`${MANAGED_LABEL}=true`, `${DEPLOYMENT_LABEL}=${this.config.queuePrefix}`] },
    });
    return [...containers, ...networks.map((n) => ({ id: n.Id, name: n.Name, jobId: n.Labels?.[JOB_LABEL], network: true }))];
  }

  async remove(id: string, network = false): Promise<boolean> {
    try {
      if (network) await this.engine.docker.getNetwork(id).remove();
      else await this.engine.docker.getContainer(id).remove({ force: true, v: true });
      return true;
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode === 404) return false;
      throw e;
    }
  }
}
