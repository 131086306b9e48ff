import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { parseDocument } from 'yaml';
import { plainToInstance } from 'class-transformer';
import {
  ArrayMaxSize,
  ArrayNotEmpty,
  ArrayUnique,
  IsArray,
  IsIn,
  IsObject,
  IsOptional,
  IsString,
  Matches,
  MaxLength,
  ValidateIf,
  validateSync,
  ValidationError,
} from 'class-validator';

export const STATUSES = ['beta', 'ga', 'deprecated'] as const;
export type EnvironmentStatus = (typeof STATUSES)[number];
/** Debian's releases, and testing (forky) for the newest CPython; unstable (sid) has no -updates or -security suites. */
export const SUITES = ['bullseye', 'bookworm', 'trixie', 'forky'] as const;
/** The suites that are not a release: their Release files expire within a week (see recipe.ts). */
export const TESTING_SUITES: readonly string[] = ['forky'];

/** A Debian package name, optionally pinned: `name` or `name=version`. */
const DEB_PACKAGE = /^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+~:-]+)?$/;
/** A pip requirement pinned exactly: `name==version`. */
const PIP_PACKAGE = /^[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!-]+$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** One environment version, as written in environments/<name>/<version>.yaml. */
export class Manifest {
  @Matches(/^[a-z0-9][a-z0-9.-]{0,62}$/, { message: 'name must be lower-case letters, digits, dots and dashes (e.g. python-3.11)' })
  name!: string;

  @Matches(/^\d{8}\.\d{1,3}$/, { message: 'version must look like YYYYMMDD.N (e.g. 20261128.1)' })
  version!: string;

  @IsIn(STATUSES, { message: `status must be one of ${STATUSES.join(', ')}` })
  status!: EnvironmentStatus;

  @ValidateIf((m: Manifest) => m.status === 'deprecated' || m.removal !== undefined)
  @Matches(/^\d{4}-\d{2}-\d{2}$/, { message: 'removal must be a date YYYY-MM-DD (required when status is deprecated)' })
  removal?: string;

  @IsOptional()
  @IsString()
  @MaxLength(500)
  description?: string;

  @IsArray()
  @ArrayNotEmpty({ message: 'labels must list at least one label (usually the name itself)' })
  @ArrayUnique()
  @Matches(/^[a-z0-9][a-z0-9.-]{0,62}$/, { each: true, message: 'each label must be lower-case letters, digits, dots and dashes' })
  labels!: string[];

  @IsIn(SUITES, { message: `base must be a Debian suite: ${SUITES.join(', ')}` })
  base!: string;

  @IsOptional()
  @Matches(/^\d+\.\d+$/, { message: 'python must be MAJOR.MINOR (e.g. 3.11); the probe checks it' })
  python?: string;

  /** The Python version the image's PyPy (`pypy3`) implements: the probe checks it, and setup-python's pypy3.X routes there. */
  @IsOptional()
  @Matches(/^\d+\.\d+$/, { message: 'pypy must be the MAJOR.MINOR of the Python that PyPy implements (e.g. 3.9); the probe checks it' })
  pypy?: string;

  @IsArray()
  @ArrayNotEmpty({ message: 'apt must list at least one Debian package' })
  @ArrayMaxSize(500)
  @ArrayUnique()
  @Matches(DEB_PACKAGE, { each: true, message: 'each apt entry must be a Debian package name, optionally name=version' })
  apt!: string[];

  @IsOptional()
  @IsArray()
  @ArrayMaxSize(200)
  @ArrayUnique()
  @Matches(PIP_PACKAGE, { each: true, message: 'each pip entry must be pinned exactly, as name==version' })
  pip?: string[];

  @IsOptional()
  @IsObject()
  env?: Record<string, string>;
}

export interface LoadedManifest {
  manifest: Manifest;
  file: string;
  /** sha256 of the file's bytes: the build cache key (together with the image recipe). */
  hash: string;
}

/** A manifest file that does not validate; the message names the file and every bad field. */
export class ManifestError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`${file}: ${problems.join('; ')}`);
  }
}

function flatten(errors: ValidationError[], prefix = ''): string[] {
  const out: string[] = [];
  for (const e of errors) {
    const field = prefix ? `${prefix}.${e.property}` : e.property;
    for (const msg of Object.values(e.constraints ?? {})) out.push(`${field}: ${msg}`);
    if (e.children?.length) out.push(...flatten(e.children, field));
  }
  return out;
}

/** Parses and validates one manifest's text. `file` is only used in messages and path checks. */
export function parseManifest(text: string, file: string): LoadedManifest {
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length)
    throw new ManifestError(
      file,
      doc.errors.map((e) => `YAML: ${e.message.split('\n')[0]}`),
    );
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 50 });
  } catch (e) {
    throw new ManifestError(file, [`YAML: ${(e as Error).message} (aliases are capped at 50 expansions)`]);
  }
  if (!data || typeof data !== 'object' || Array.isArray(data)) throw new ManifestError(file, ['the file must be a YAML mapping']);
  const allowed = new Set(['name', 'version', 'status', 'removal', 'description', 'labels', 'base', 'python', 'pypy', 'apt', 'pip', 'env']);
  const problems: string[] = [];
  for (const key of Object.keys(data)) if (!allowed.has(key)) problems.push(`${key}: unknown field (known: ${[...allowed].join(', ')})`);
  // YAML reads 20261128.1 as a number; a version is text.
  const raw = { ...(data as Record<string, unknown>) };
  for (const k of ['version', 'python', 'pypy', 'removal']) if (typeof raw[k] === 'number') raw[k] = String(raw[k]);
  const manifest = plainToInstance(Manifest, raw);
  problems.push(...flatten(validateSync(manifest)));
  if (manifest.env !== undefined && typeof manifest.env === 'object' && !Array.isArray(manifest.env)) {
    for (const [k, v] of Object.entries(manifest.env)) {
      if (!ENV_NAME.test(k)) problems.push(`env.${k}: variable names must match ${ENV_NAME}`);
      if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') problems.push(`env.${k}: value must be a string`);
      else if (/[\n\r\0]/.test(String(v))) problems.push(`env.${k}: value must be one line`);
      else manifest.env[k] = String(v);
    }
  }
  const parts = file.split(path.sep);
  const fileVersion = path.basename(file).replace(/\.ya?ml$/, '');
  const dirName = parts[parts.length - 2];
  if (!problems.length) {
    if (fileVersion !== manifest.version) problems.push(`version: is ${manifest.version} but the file is named ${path.basename(file)}`);
    if (dirName && dirName !== manifest.name) problems.push(`name: is ${manifest.name} but the folder is ${dirName}`);
    if (!manifest.labels.includes(manifest.name)) problems.push(`labels: must include the name ${manifest.name}`);
  }
  if (problems.length) throw new ManifestError(file, problems);
  return { manifest, file, hash: createHash('sha256').update(text).digest('hex') };
}

/**
 * Loads every environments/<name>/<version>.yaml. All files are checked; one error lists every bad file.
 * A label may name only one environment.
 */
export function loadManifests(dir: string): LoadedManifest[] {
  if (!fs.existsSync(dir)) throw new ManifestError(dir, ['the environments folder does not exist']);
  const out: LoadedManifest[] = [];
  const errors: string[] = [];
  for (const name of fs.readdirSync(dir).sort()) {
    const sub = path.join(dir, name);
    if (!fs.statSync(sub).isDirectory()) continue;
    for (const f of fs.readdirSync(sub).sort()) {
      if (!/\.ya?ml$/.test(f)) continue;
      const file = path.join(sub, f);
      try {
        out.push(parseManifest(fs.readFileSync(file, 'utf8'), file));
      } catch (e) {
        if (e instanceof ManifestError) errors.push(e.message);
        else throw e;
      }
    }
  }
  const labelOwner = new Map<string, string>();
  for (const { manifest, file } of out) {
    for (const label of manifest.labels) {
      const owner = labelOwner.get(label);
      if (owner && owner !== manifest.name) errors.push(`${file}: labels: ${label} is already a label of ${owner}`);
      labelOwner.set(label, manifest.name);
    }
  }
  if (errors.length) throw new ManifestError(dir, errors);
  return out;
}
