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

  add(path: string, message: string): void {
    const where = path || ROOT_PATH;
    if (this.list.some((x) => x.path === where && x.message === message)) return;
    this.list.push({ path: where, line: lineOf(this.lines, path), message });
  }

  /** In the order of the text (problems about the whole text first); stable otherwise. */
  sorted(): WorkflowProblem[] {
    return [...this.list].sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
  }
}
