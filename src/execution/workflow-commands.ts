/**
 * GitHub's workflow commands in step output (`::name key=value,...::message`), as the runner reads
 * them: groups, annotations, masks, stop-commands, debug; the disabled legacy commands are refused
 * with a warning, as GitHub does.
 */
import type { LineResult } from '../storage/log-lines';

export type AnnotationLevel = 'error' | 'warning' | 'notice';

export interface Annotation {
  level: AnnotationLevel;
  message: string;
  title: string | null;
  file: string | null;
  line: number | null;
  endLine: number | null;
  col: number | null;
  endColumn: number | null;
}

export interface CommandSink {
  annotate(a: Annotation): void;
  addMask(value: string): void;
}

const COMMAND = /^::([A-Za-z-]+)(?: ([^:]*))?::(.*)$/s;
const LEGACY = new Set(['set-output', 'set-env', 'add-path', 'save-state']);
const LEGACY_FILE: Record<string, string> = { 'set-output': 'GITHUB_OUTPUT', 'set-env': 'GITHUB_ENV', 'add-path': 'GITHUB_PATH', 'save-state': 'GITHUB_STATE' };

export class WorkflowCommands {
  private stopToken: string | null = null;

  constructor(
    private readonly sink: CommandSink,
    private readonly debug: boolean,
  ) {}

  line(text: string): LineResult {
    if (this.stopToken !== null) {
      // Paused: only `::<token>::` (any characters) resumes; everything else is plain output.
      if (text.trim() === `::${this.stopToken}::`) {
        this.stopToken = null;
        return { kind: 'drop' };
      }
      return { kind: 'text', text };
    }
    const m = COMMAND.exec(text.replace(/^\s+/, ''));
    if (!m) return { kind: 'text', text };
    const [, rawName, rawProps, rawMessage] = m;
    const name = rawName.toLowerCase();
    const message = unescapeData(rawMessage);
    const props = parseProps(rawProps ?? '');
    switch (name) {
      case 'group':
        return { kind: 'group', title: message };
      case 'endgroup':
        return { kind: 'endgroup' };
      case 'add-mask':
        if (message) this.sink.addMask(message);
        return { kind: 'drop' };
      case 'stop-commands':
        this.stopToken = message || null;
        return { kind: 'drop' };
      case 'debug':
        return this.debug ? { kind: 'notice', text: `[debug] ${message}` } : { kind: 'drop' };
      case 'error':
      case 'warning':
      case 'notice': {
        const a: Annotation = {
          level: name,
          message,
          title: props.title ?? null,
          file: props.file ?? null,
          line: num(props.line),
          endLine: num(props.endline ?? props.endLine),
          col: num(props.col),
          endColumn: num(props.endcolumn ?? props.endColumn),
        };
        this.sink.annotate(a);
        const where = a.file ? ` (${a.file}${a.line ? `:${a.line}` : ''}${a.col ? `:${a.col}` : ''})` : '';
        return { kind: 'text', text: `${name[0].toUpperCase()}${name.slice(1)}${a.title ? `: ${a.title}` : ''}: ${message}${where}` };
      }
      default:
        if (LEGACY.has(name)) {
          return { kind: 'notice', text: `warning: the \`${name}\` command is disabled (as on GitHub): write to $${LEGACY_FILE[name]} instead` };
        }
        return { kind: 'text', text };
    }
  }
}

function num(v: string | undefined): number | null {
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : null;
}

/** `file=a.py,line=3` with GitHub's escapes (%2C, %3A, %0A, %0D, %25). */
function parseProps(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of s.split(',')) {
    const i = pair.indexOf('=');
    if (i > 0) out[pair.slice(0, i).trim()] = unescapeProperty(pair.slice(i + 1));
  }
  return out;
}

function unescapeData(s: string): string {
  return s.replace(/%0D/gi, '\r').replace(/%0A/gi, '\n').replace(/%25/g, '%');
}

function unescapeProperty(s: string): string {
  return unescapeData(s).replace(/%3A/gi, ':').replace(/%2C/gi, ',');
}
