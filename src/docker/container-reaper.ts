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
}

/**
 * What the reaper (runs/reaper.ts keeps the policy: which containers are lost, when) needs of the engine.
 * An abstract class so that it is its own injection token; a test passes any object of this shape.
 */
export abstract class ContainerReaper {
  /** This deployment's containers, running or not. */
  abstract list(): Promise<KilnContainer[]>;
  /** Removes a container and its volumes: false when it was gone already; any other failure is thrown. */
  abstract remove(id: string): Promise<boolean>;
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
    return found.map((c) => {
      const name = c.Names?.[0] ?? '';
      // A job's container carries its id as a label, or (a warm sandbox it took) in its name.
      return { id: c.Id, name, jobId: c.Labels?.[JOB_LABEL] ?? jobIdOfName(name), pool: c.Labels?.[POOL_LABEL] };
    });
  }

  async remove(id: string): Promise<boolean> {
    try {
      await this.engine.docker.getContainer(id).remove({ force: true, v: true });
      return true;
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode === 404) return false;
      throw e;
    }
  }
}
