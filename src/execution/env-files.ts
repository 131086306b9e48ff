/**
 * Parsers for the files a step writes to talk back to the runner, as on GitHub: GITHUB_ENV and
 * GITHUB_OUTPUT (`NAME=value` lines or `NAME<<DELIMITER` blocks) and GITHUB_PATH (one dir a line).
 */

const NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

export interface ParsedEnvFile {
  values: Record<string, string>;
  problems: string[];
}

export function parseEnvFile(text: string, what: string): ParsedEnvFile {
  const values: Record<string, string> = {};
  const problems: string[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].replace(/\r$/, '');
    if (!line) continue;
    const heredoc = /^([^=<]+)<<(.+)$/.exec(line);
    const eq = line.indexOf('=');
    if (heredoc && (eq < 0 || eq > line.indexOf('<<'))) {
      const [, name, delim] = heredoc;
      const body: string[] = [];
      let closed = false;
      for (i++; i < lines.length; i++) {
        const l = lines[i].replace(/\r$/, '');
        if (l === delim) {
          closed = true;
          break;
        }
        body.push(l);
      }
      if (!closed) {
        problems.push(`${what}: ${name}<<${delim} has no closing ${delim} line`);
        break;
      }
      set(name, body.join('\n'));
    } else if (eq > 0) {
      set(line.slice(0, eq), line.slice(eq + 1));
    } else {
      problems.push(`${what}: line ${i + 1} is neither NAME=value nor NAME<<DELIMITER`);
    }
  }
  return { values, problems };

  function set(name: string, value: string) {
    if (!NAME.test(name)) problems.push(`${what}: '${name}' is not a valid name`);
    else if (value.includes('\0')) problems.push(`${what}: the value of ${name} contains a NUL byte`);
    else values[name] = value;
  }
}

export function parsePathFile(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.replace(/\r$/, '').trim())
    .filter((l) => l && !l.includes(':') && !l.includes('\0'));
}
