// packFiles: a clean tar built from path -> content given inline (the quick form), with the same
// rules as an uploaded archive (tar-entries.ts).
import { EntryChecker, normalizeName, parentsOf, type HeaderArg } from './tar-entries';
import { ArchiveError, refuse, shownName, type SanitizedTar, type TarLimits } from './tar-safety';
import { packTo } from './tar-streams';

interface PlannedEntry {
  header: HeaderArg;
  body?: Buffer;
}

/** Validates the quick form and lists the entries to write, parents first. */
function planFiles(files: Record<string, string>, checker: EntryChecker, limits: TarLimits): PlannedEntry[] {
  const named = Object.keys(files).map((raw) => ({ raw, path: normalizeName(raw, limits, 'file') }));
  if (named.length === 0) throw new ArchiveError('empty', 'no files were given; the submission is empty');
  named.sort((a, b) => ((a.path ?? '') < (b.path ?? '') ? -1 : (a.path ?? '') > (b.path ?? '') ? 1 : 0));
  const mtime = new Date();
  const planned: PlannedEntry[] = [];
  for (const { raw, path } of named) {
    const content: unknown = files[raw];
    if (typeof content !== 'string') throw refuse('invalid', 'file', shownName(raw), 'content must be a string');
    for (const dir of path === null ? [] : parentsOf(path)) {
      if (checker.has(dir)) continue;
      const d = checker.check({ name: dir, type: 'directory', mode: 0o755, mtime });
      if (d.kind === 'keep') planned.push({ header: d.header });
    }
    const body = Buffer.from(content, 'utf8');
    const f = checker.check({ name: raw, type: 'file', size: body.length, mode: 0o644, mtime });
    if (f.kind === 'keep') planned.push({ header: f.header, body });
  }
  return planned;
}

/** Builds a clean tar file from path -> content (small files given inline). */
export async function packFiles(files: Record<string, string>, outFile: string, limits: TarLimits): Promise<SanitizedTar> {
  const checker = new EntryChecker(limits, 'file', false);
  const planned = planFiles(files, checker, limits);
  await packTo(outFile, (pack) => {
    for (const { header, body } of planned) {
      if (body === undefined) pack.entry(header);
      else pack.entry(header, body);
    }
  });
  return checker.summary(outFile);
}
