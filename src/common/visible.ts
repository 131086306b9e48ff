/**
 * Text a job or a user chose (log lines, job and step names), made safe to show on a terminal: every
 * C0 and C1 control character except tab and newline (so ESC, OSC, CR, BEL, DEL too) is written as
 * `\xNN`, so it is shown, never obeyed. The CLI and the API's text logs use this one function.
 */
export function visible(s: string): string {
  return s.replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
