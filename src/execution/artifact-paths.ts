import * as path from 'node:path';

/**
 * Which files an upload-artifact step stores, and under which names, as actions/upload-artifact@v4
 * decides (its search.ts over @actions/glob): the artifact's root is the least common ancestor of the
 * patterns' search paths (a pattern's part before its first wildcard), or a lone file's folder when the
 * only pattern names that one file; files and folders whose name starts with '.' are left out below a
 * search path unless `include-hidden-files`; a `!` pattern leaves out what it matches and everything
 * under it. Pure: the backend lists the matches in the sandbox, this decides.
 */
export interface ArtifactPaths {
  /** the patterns to upload, as written (relative to the workspace, or absolute) */
  include: string[];
  /** the `!` patterns, without their `!` */
  exclude: string[];
  includeHidden: boolean;
}

/** What the backend found in the sandbox: per include pattern the files (not folders) it gave, and the exclusions' matches. */
export interface ArtifactListing {
  matched: string[][];
  excluded: string[];
}

export interface ArtifactSelection {
  /** the artifact's root (absolute in the sandbox): its files are stored relative to it */
  root: string;
  /** the files to store, relative to root, in the order found, each once */
  files: string[];
  /** files left out for being hidden */
  hidden: number;
}

/** The `path:` input's lines: patterns to upload, and `!` patterns to leave out. */
export function artifactPaths(lines: string[], includeHidden: boolean): ArtifactPaths {
  const patterns = lines.map((l) => l.trim()).filter(Boolean);
  return {
    include: patterns.filter((p) => !p.startsWith('!')),
    exclude: patterns
      .filter((p) => p.startsWith('!'))
      .map((p) => p.slice(1).trim())
      .filter(Boolean),
    includeHidden,
  };
}

const posix = path.posix;

/** A pattern's search path: its segments before the first holding a wildcard, absolute. */
export function searchPath(pattern: string, workdir: string): string {
  const segments = pattern.split('/');
  const literal = segments.findIndex((s) => /[*?[]/.test(s));
  const prefix = literal < 0 ? pattern : segments.slice(0, literal).join('/');
  return posix.resolve(workdir, prefix || (pattern.startsWith('/') ? '/' : '.'));
}

/** The search paths of the patterns, without those under another one (as @actions/glob's getSearchPaths). */
export function searchPaths(include: string[], workdir: string): string[] {
  const all = include.map((p) => searchPath(p, workdir));
  const candidates = new Set(all);
  const result: string[] = [];
  for (const p of all) {
    if (result.includes(p)) continue;
    let ancestor = false;
    for (let d = posix.dirname(p), prev = p; d !== prev; prev = d, d = posix.dirname(d)) ancestor ||= candidates.has(d);
    if (!ancestor) result.push(p);
  }
  return result;
}

/** The deepest folder all the (absolute) paths are in or are. */
export function commonAncestor(paths: string[]): string {
  const split = paths.map((p) => p.split('/').filter(Boolean));
  const common: string[] = [];
  for (let i = 0; split.every((s) => i < s.length && s[i] === split[0][i]); i++) common.push(split[0][i]);
  return `/${common.join('/')}`;
}

function under(file: string, dir: string): boolean {
  return file === dir || file.startsWith(dir === '/' ? '/' : `${dir}/`);
}

/** A file is hidden when its search path's own name, or a name below it, starts with '.' (@actions/glob checks each item it walks). */
function hidden(file: string, roots: string[]): boolean {
  const root = roots.find((r) => under(file, r));
  if (!root) return false;
  const names = [posix.basename(root), ...posix.relative(root, file).split('/')];
  return names.some((n) => n.startsWith('.'));
}

/** The files to store and their root; no files when nothing is left to upload. */
export function selectArtifactFiles(spec: ArtifactPaths, listing: ArtifactListing, workdir: string): ArtifactSelection {
  const roots = searchPaths(spec.include, workdir);
  const excluded = listing.excluded.map((e) => posix.resolve(workdir, e));
  const chosen = new Set<string>();
  const hiddenFiles = new Set<string>();
  for (const group of listing.matched)
    for (const m of group) {
      const file = posix.resolve(workdir, m);
      if (chosen.has(file) || excluded.some((e) => under(file, e))) continue;
      if (!spec.includeHidden && hidden(file, roots)) hiddenFiles.add(file);
      else chosen.add(file);
    }
  const files = [...chosen];
  let root: string;
  if (roots.length > 1) root = commonAncestor(roots);
  // One pattern naming one file: the file is stored alone, without its folders.
  else if (files.length === 1 && files[0] === roots[0]) root = posix.dirname(files[0]);
  else root = roots[0] ?? workdir;
  const outside = files.find((f) => !under(f, root) || f === root);
  if (outside) throw new Error(`the artifact's root ${root} is not a parent folder of the file ${outside}`);
  return { root, files: files.map((f) => posix.relative(root, f)), hidden: hiddenFiles.size };
}
