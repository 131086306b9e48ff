import type { WorkflowProblem } from './model';
import { lineOf, ROOT_PATH } from './safe-yaml';

/** Problems with lines, deduplicated (a matrix can repeat the same runs-on problem per combination). */
export class Problems {
  readonly list: WorkflowProblem[];
  /** Paths whose expressions failed the syntax check: not evaluated again, to report each mistake once. */
  readonly badExpressions = new Set<string>();

  constructor(
    private readonly lines: Record<string, number>,
    initial: WorkflowProblem[],
  ) {
    this.list = [...initial];
  }

  /** notRunnable: the job cannot run on this server (the planner may keep the job as not runnable instead). */
  add(path: string, message: string, notRunnable = false): void {
    const where = path || ROOT_PATH;
    if (this.list.some((x) => x.path === where && x.message === message)) return;
    this.list.push({ path: where, line: lineOf(this.lines, path), message, ...(notRunnable ? { notRunnable } : {}) });
  }

  /** Removes and returns the not-runnable problems added since the list had `since` entries. */
  takeNotRunnable(since: number): WorkflowProblem[] {
    const taken = this.list.slice(since).filter((x) => x.notRunnable);
    this.list.splice(since, this.list.length - since, ...this.list.slice(since).filter((x) => !x.notRunnable));
    return taken;
  }

  lineOf(path: string): number | null {
    return lineOf(this.lines, path);
  }

  /** In the order of the text (problems about the whole text first); stable otherwise. */
  sorted(): WorkflowProblem[] {
    return this.list.map(({ notRunnable: _, ...x }) => x).sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
  }
}
