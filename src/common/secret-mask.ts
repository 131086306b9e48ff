/**
 * The one place where a job's secrets are hidden. Every word a job can make Kiln keep or show (log
 * lines, annotations, the step summary, job outputs, artifact names, error messages, commit status
 * descriptions) goes through `mask` below before it is parsed, stored or sent.
 *
 * A secret is hidden in the forms a job can easily print it in: as is; each line of a multi-line
 * value; base64 on its own and at each of the three alignments it can have inside a longer base64
 * text; URL-encoded (encodeURIComponent); hex (lower and upper case). Values shorter than MIN_MASK_LENGTH are not
 * masked (masking 'a' or '1' would wreck every log), nor are forms that would be shorter than it.
 */

/** Below this length a value is not masked. */
export const MIN_MASK_LENGTH = 3;

/** What a masked stretch becomes. */
export const MASKED = '***';

/**
 * The base64 text a value gives wherever it sits in a longer base64 text, at the three alignments
 * (its first byte at offset 0, 1 or 2 of a 3-byte group): the characters that depend on the value
 * alone, without those of the edge groups that mix in the neighbours' bits (as GitHub's runner does,
 * which keeps only the characters from the first whole group on; here the part of the first group
 * that is the value's alone is kept too).
 */
export function base64Forms(value: string): string[] {
  const bytes = Buffer.from(value);
  const out: string[] = [];
  for (const shift of [0, 1, 2]) {
    const total = shift + bytes.length;
    const text = Buffer.concat([Buffer.alloc(shift), bytes]).toString('base64');
    // Characters 0..shift (shift 1: the first 2, shift 2: the first 3) hold the padding's bits.
    const start = shift === 0 ? 0 : shift + 1;
    // The last group: 1 byte gives 'XY==' of which X alone is the value's; 2 bytes give 'XYZ=', XY.
    const cut = total % 3 === 1 ? 3 : total % 3 === 2 ? 2 : 0;
    const form = text.slice(start, text.length - cut);
    if (form.length >= MIN_MASK_LENGTH) out.push(form);
  }
  return out;
}

/** Every form of one secret to hide (see the file's comment). */
export function secretForms(secret: string): string[] {
  const out = new Set<string>();
  const values = [secret, ...secret.split(/\r?\n/)].filter((v) => v.length >= MIN_MASK_LENGTH);
  for (const v of values) {
    out.add(v);
    out.add(v.trim().length >= MIN_MASK_LENGTH ? v.trim() : v);
    out.add(Buffer.from(v).toString('base64'));
    for (const b of base64Forms(v)) out.add(b);
    const url = encodeURIComponent(v);
    if (url !== v) out.add(url);
    const hex = Buffer.from(v).toString('hex');
    out.add(hex);
    out.add(hex.toUpperCase());
  }
  return [...out];
}

/** The forms of a set of secrets, longest first, without duplicates. */
export function maskList(secrets: Iterable<string>): string[] {
  const out = new Set<string>();
  for (const s of secrets) for (const f of secretForms(s)) out.add(f);
  return [...out].filter((m) => m.length >= MIN_MASK_LENGTH).sort((a, b) => b.length - a.length);
}

/** Where the forms occur in text: [start, end) ranges, overlapping and adjacent ones merged. */
function occurrences(text: string, forms: readonly string[]): [number, number][] {
  const found: [number, number][] = [];
  for (const f of forms) {
    for (let i = text.indexOf(f); i >= 0; i = text.indexOf(f, i + 1)) found.push([i, i + f.length]);
  }
  if (found.length < 2) return found;
  found.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
  const merged: [number, number][] = [found[0]];
  for (const [s, e] of found.slice(1)) {
    const last = merged[merged.length - 1];
    if (s <= last[1]) last[1] = Math.max(last[1], e);
    else merged.push([s, e]);
  }
  return merged;
}

/**
 * THE masking function: every occurrence of any form replaced by ***. Occurrences that overlap
 * (two secrets sharing characters, a secret inside another) are hidden as one stretch, so no
 * fragment of either is left.
 */
export function mask(text: string, forms: readonly string[]): string {
  if (!forms.length || !text) return text;
  const ranges = occurrences(text, forms);
  if (!ranges.length) return text;
  let out = '';
  let pos = 0;
  for (const [s, e] of ranges) {
    out += text.slice(pos, s) + MASKED;
    pos = e;
  }
  return out + text.slice(pos);
}

/** Masks text with the forms of these secret values (for callers that hold the values, not a SecretMask). */
export function maskSecrets(text: string, secrets: Iterable<string> | Record<string, string>): string {
  const values = isIterable(secrets) ? secrets : Object.values(secrets);
  return mask(text, maskList(values));
}

function isIterable(v: unknown): v is Iterable<string> {
  return typeof (v as Iterable<string>)?.[Symbol.iterator] === 'function';
}

/** A job's secrets, growing with `::add-mask::`: the forms to hide and the questions asked of them. */
export class SecretMask {
  private forms: string[];

  constructor(secrets: Iterable<string> = []) {
    this.forms = maskList(secrets);
  }

  /** A value registered while the job runs (::add-mask::): hidden from here on. */
  add(value: string): void {
    if (!value || value === MASKED) return;
    this.forms = [...new Set([...this.forms, ...maskList([value])])].sort((a, b) => b.length - a.length);
  }

  get empty(): boolean {
    return this.forms.length === 0;
  }

  /** The longest form's length: a text cut anywhere needs this much lookahead to see a whole form. */
  get longest(): number {
    return this.forms[0]?.length ?? 0;
  }

  apply(text: string): string {
    return mask(text, this.forms);
  }

  /** True when the text holds any form of any secret. */
  holds(text: string): boolean {
    return this.forms.some((f) => text.includes(f));
  }

  /**
   * Where to cut `text` near `at` (a long line split in pieces) without splitting any form in two:
   * `at` itself, or the start of a form that straddles it; when the text opens with a form that
   * reaches past `at`, the end of that form. Needs `longest` characters after `at` to be sure.
   */
  safeCut(text: string, at: number): number {
    if (at <= 0 || at >= text.length) return at;
    let cut = at;
    const straddling = (c: number): [number, number] | null => {
      for (const [s, e] of occurrences(text.slice(Math.max(0, c - this.longest), c + this.longest), this.forms)) {
        const base = Math.max(0, c - this.longest);
        if (base + s < c && base + e > c) return [base + s, base + e];
      }
      return null;
    };
    for (let r = straddling(cut); r; r = straddling(cut)) {
      if (r[0] === 0) {
        // The text opens with a (merged) form longer than `at`: cut after it instead.
        let end = r[1];
        for (let s = straddling(end); s; s = straddling(end)) end = s[1];
        return end;
      }
      cut = r[0];
    }
    return cut;
  }
}
