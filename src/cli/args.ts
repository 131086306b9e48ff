import { parseArgs, ParseArgsConfig } from 'node:util';
import { CliError, EXIT, KilnClient } from './client';
import { loadCliConfig } from './config';
import { err, paint } from './output';

/** What every command uses: its arguments read strictly, the client, a required value. */
export function args(argv: string[], options: ParseArgsConfig['options'], max: number): { values: Record<string, unknown>; positionals: string[] } {
  const parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true }) as { values: Record<string, unknown>; positionals: string[] };
  if (parsed.positionals.length > max) throw new CliError(`kiln: unexpected argument '${parsed.positionals[max]}'`, EXIT.usage);
  return parsed;
}

export function client(): KilnClient {
  return new KilnClient(loadCliConfig((m) => err(paint('2', `kiln: ${m}`, Boolean(process.stderr.isTTY)))));
}

export function need(value: string | undefined, what: string): string {
  if (!value) throw new CliError(`kiln: ${what} is required`, EXIT.usage);
  return value;
}
