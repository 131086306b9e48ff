import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface CliConfig {
  url: string;
  token: string | null;
  /** Where the token came from, for messages. */
  tokenSource: string;
}

export function configFile(): string {
  const base = process.env.XDG_CONFIG_HOME || path.join(os.homedir(), '.config');
  return path.join(base, 'kiln', 'config.json');
}

/**
 * KILN_URL / KILN_TOKEN, else what `kiln login` stored, else (for a server on this machine)
 * ./data/admin-token when it is readable.
 */
export function loadCliConfig(say: (msg: string) => void): CliConfig {
  let stored: { url?: string; token?: string } = {};
  try {
    stored = JSON.parse(fs.readFileSync(configFile(), 'utf8')) as typeof stored;
  } catch {
    /* no login yet */
  }
  const url = (process.env.KILN_URL || stored.url || 'http://127.0.0.1:3000').replace(/\/+$/, '');
  if (process.env.KILN_TOKEN) return { url, token: process.env.KILN_TOKEN, tokenSource: 'KILN_TOKEN' };
  if (stored.token && (!stored.url || stored.url.replace(/\/+$/, '') === url)) return { url, token: stored.token, tokenSource: configFile() };
  const local = /^https?:\/\/(127\.0\.0\.1|localhost|\[::1\])(:\d+)?$/.test(url);
  const file = path.resolve('data', 'admin-token');
  if (local && fs.existsSync(file)) {
    try {
      const token = fs.readFileSync(file, 'utf8').trim();
      say(`using the admin token in ${file} (local server, no KILN_TOKEN or kiln login)`);
      return { url, token, tokenSource: file };
    } catch {
      /* not readable */
    }
  }
  return { url, token: null, tokenSource: 'none' };
}

export function saveCliConfig(url: string, token: string): string {
  const file = configFile();
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  fs.writeFileSync(file, JSON.stringify({ url, token }, null, 2) + '\n', { mode: 0o600 });
  fs.chmodSync(file, 0o600);
  return file;
}
