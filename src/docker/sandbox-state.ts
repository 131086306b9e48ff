import type { Counters, SandboxHostView } from './host-view';

/** What DockerBackend keeps of each live sandbox, by container id: shared by its lifecycle, step exec, read-back and collection. */
export class SandboxState {
  readonly counters = new Map<string, Counters>();
  /** A job's own sandbox whose counters' starting values are still being read (see SandboxLifecycle.create). */
  readonly startCounters = new Map<string, Promise<void>>();
  /** runc sandboxes seen from the host (their counters and files read without an exec); see SandboxHostView. */
  readonly views = new Map<string, SandboxHostView>();

  /** The sandbox is being removed: nothing of it is kept. */
  forget(id: string): void {
    this.counters.delete(id);
    this.views.delete(id);
    this.startCounters.delete(id);
  }
}
