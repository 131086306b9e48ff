/**
 * GitHub's workflow commands in step output (`::name key=value,...::message`), as the runner reads
 * them: groups, annotations, masks, stop-commands, debug, and the old commands as GitHub still takes
 * them: set-output and save-state work with a deprecation warning; set-env and add-path only when
 * ACTIONS_ALLOW_UNSECURE_COMMANDS is true in the step's env, otherwise they fail the step.
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

/** What the old commands did in one step: applied by the runner as GitHub applies them (the env files' values win). */
export interface CommandEffects {
  outputs: Record<string, string>;
  /** save-state: kept for a post step, which Kiln's steps do not have. */
  state: Record<string, string>;
  env: Record<string, string>;
  /** add-path directories in the order given (the last one first in PATH). */
  path: string[];
  /** A command could not be processed: GitHub fails the step even when its script exits 0. */
  failed: boolean;
}

const COMMAND = /^::([A-Za-z-]+)(?: ([^:]*))?::(.*)$/s;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

/** The GitHub runner's texts (Constants.Runner.UnsupportedCommandMessage and ...MessageDisabled). */
export const deprecatedMessage = (command: string) =>
  `The \`${command}\` command is deprecated and will be disabled soon. Please upgrade to using Environment Files. For more information see: https://github.blog/changelog/2022-10-11-github-actions-deprecating-save-state-and-set-output-commands/`;
export const disabledMessage = (command: string) =>
  `The \`${command}\` command is disabled. Please upgrade to using Environment Files or opt into unsecure command execution by setting the \`ACTIONS_ALLOW_UNSECURE_COMMANDS\` environment variable to \`true\`. For more information see: https://github.blog/changelog/2020-10-01-github-actions-deprecating-set-env-and-add-path-commands/`;

/** ACTIONS_ALLOW_UNSECURE_COMMANDS as the GitHub runner reads it (.NET bool.TryParse: `true` in any case, spaces around). */
export function allowsUnsecureCommands(env: Record<string, string>): boolean {
  return env.ACTIONS_ALLOW_UNSECURE_COMMANDS?.trim().toLowerCase() === 'true';
}

export class WorkflowCommands {
  private stopToken: string | null = null;
  readonly effects: CommandEffects = { outputs: {}, state: {}, env: {}, path: [], failed: false };

  constructor(
    private readonly sink: CommandSink,
    private readonly debug: boolean,
    /** ACTIONS_ALLOW_UNSECURE_COMMANDS is true in the step's env: set-env and add-path work. */
    private readonly allowUnsecure = false,
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
      case 'set-output':
      case 'save-state': {
        const warning = this.issue('warning', deprecatedMessage(name));
        if (!props.name) return this.failed(text, `Required field 'name' is missing in ##[${name}] command.`, [warning]);
        (name === 'set-output' ? this.effects.outputs : this.effects.state)[props.name] = message;
        return { kind: 'text', text: warning };
      }
      case 'set-env':
      case 'add-path':
        return this.unsecure(name, text, props.name, message);
      default:
        return { kind: 'text', text };
    }
  }

  /** set-env and add-path, as the GitHub runner processes them. */
  private unsecure(name: 'set-env' | 'add-path', text: string, envName: string | undefined, message: string): LineResult {
    if (!this.allowUnsecure) return this.failed(text, disabledMessage(name));
    if (name === 'add-path') {
      if (!message) return this.failed(text, "Value cannot be null. (Parameter 'path')");
      this.effects.path = [...this.effects.path.filter((p) => p !== message), message];
      return { kind: 'drop' };
    }
    if (!envName) return this.failed(text, "Required field 'name' is missing in ##[set-env] command.");
    // GitHub's block list; Kiln also keeps to the names GITHUB_ENV takes (the sandbox's env needs them).
    if (envName.toUpperCase() === 'NODE_OPTIONS')
      return { kind: 'text', text: this.issue('error', "Can't update NODE_OPTIONS environment variable using ::set-env:: command.") };
    if (!ENV_NAME.test(envName)) return { kind: 'text', text: this.issue('warning', `set-env: '${envName}' is not a valid name`) };
    this.effects.env[envName] = message;
    return { kind: 'drop' };
  }

  /** A command GitHub could not process: two errors, and the step fails. */
  private failed(line: string, reason: string, before: string[] = []): LineResult {
    this.effects.failed = true;
    const lines = [...before, this.issue('error', `Unable to process command '${line}' successfully.`), this.issue('error', reason)];
    return { kind: 'text', text: lines.join('\n') };
  }

  /** An annotation of the runner's own, and its line in the log. */
  private issue(level: AnnotationLevel, message: string): string {
    this.sink.annotate({ level, message, title: null, file: null, line: null, endLine: null, col: null, endColumn: null });
    return `${level[0].toUpperCase()}${level.slice(1)}: ${message}`;
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
