import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * The one-direction rule (README, Layout): a room may import from the rooms below it, never
 * from one above. Rooms on the same level do not import each other either, except where listed.
 * This test reads every import in src/ (specs included) and fails on an arrow that runs upward.
 */
const LEVELS: string[][] = [
  ['main.ts'],
  ['app.ts'],
  ['core.module.ts'],
  ['webhooks'],
  ['runs'],
  ['catalogue', 'health', 'metrics', 'ui', 'http'],
  ['docker'],
  ['execution'],
  ['sources'],
  ['storage'],
  ['auth', 'queue', 'db'],
  ['workflow'],
  ['config'],
  ['common'],
];
/** Same-level imports that are part of the design: tokens and their store, the metrics page on health's module. */
const SIDEWAYS = new Set(['auth->db', 'health->metrics']);
/**
 * Upward arrows that exist today and are being taken out. The list may only shrink: an entry that no
 * longer occurs fails the test too, so whoever removes an arrow removes its line here.
 */
const KNOWN_UPWARD = new Set<string>([]);

const SRC = path.resolve(__dirname, '..', '..', 'src');
const level = new Map(LEVELS.flatMap((rooms, i) => rooms.map((r) => [r, i] as const)));

function* sources(dir: string): Generator<string> {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) yield* sources(p);
    else if (e.name.endsWith('.ts')) yield p;
  }
}

/** Every relative import of a source text: `from '…'`, `import('…')`, `require('…')`, `import '…'`. */
const IMPORT = /(?:\bfrom\s+|\bimport\s*\(\s*|\brequire\s*\(\s*|^import\s+)['"](\.{1,2}\/[^'"]*)['"]/gm;

/** The room a path under src/ belongs to: its first folder, or the file's name (with .ts) at the top. */
function roomOf(file: string): string {
  const first = path.relative(SRC, file).split(path.sep)[0];
  return !first.endsWith('.ts') && fs.existsSync(path.join(SRC, `${first}.ts`)) ? `${first}.ts` : first;
}

function arrows(): { file: string; from: string; to: string }[] {
  const out: { file: string; from: string; to: string }[] = [];
  for (const file of sources(SRC)) {
    const from = roomOf(file);
    if (from === 'cli' || from === 'bin') continue; // the CLI speaks only HTTP: checked below
    const text = fs.readFileSync(file, 'utf8');
    for (const m of text.matchAll(IMPORT)) {
      const target = path.resolve(path.dirname(file), m[1]);
      if (path.relative(SRC, target).startsWith('..')) continue; // outside src/ (a spec reading test fixtures)
      const to = roomOf(target);
      if (to !== from) out.push({ file: path.relative(path.dirname(SRC), file), from, to });
    }
  }
  return out;
}

test('every room of src/ has a level in the one-direction rule', () => {
  const rooms = new Set(fs.readdirSync(SRC).filter((n) => n !== 'cli' && n !== 'bin' && (n.endsWith('.ts') ? !n.endsWith('.spec.ts') : true)));
  const missing = [...rooms].filter((r) => !level.has(r));
  assert.deepEqual(missing, [], 'a new room needs its place in LEVELS (and in the Layout section of the README)');
});

test('no import runs upward or sideways between rooms', () => {
  const found = new Set<string>();
  const sideways = new Set<string>();
  const wrong: string[] = [];
  for (const a of arrows()) {
    const [lf, lt] = [level.get(a.from), level.get(a.to)];
    assert.ok(lf !== undefined && lt !== undefined, `${a.file}: unknown room ${a.from} or ${a.to}`);
    if (lt === lf && SIDEWAYS.has(`${a.from}->${a.to}`)) sideways.add(`${a.from}->${a.to}`);
    if (lt > lf || (lt === lf && SIDEWAYS.has(`${a.from}->${a.to}`))) continue;
    const key = `${a.file} -> ${a.to}`;
    if (KNOWN_UPWARD.has(key)) found.add(key);
    else wrong.push(`${a.file} imports from ${a.to}/ (${a.from}/ is ${lt === lf ? 'on the same level' : 'below it'})`);
  }
  assert.deepEqual(wrong, []);
  assert.deepEqual(
    [...KNOWN_UPWARD].filter((k) => !found.has(k)),
    [],
    'these arrows are gone: remove them from KNOWN_UPWARD',
  );
  assert.deepEqual(
    [...SIDEWAYS].filter((k) => !sideways.has(k)),
    [],
    'no import uses these: remove them from SIDEWAYS',
  );
});

test('the CLI imports nothing of the server (it speaks only HTTP)', () => {
  const wrong: string[] = [];
  for (const file of sources(path.join(SRC, 'cli'))) {
    for (const m of fs.readFileSync(file, 'utf8').matchAll(IMPORT)) {
      const to = roomOf(path.resolve(path.dirname(file), m[1]));
      if (to !== 'cli' && to !== 'common') wrong.push(`${path.relative(SRC, file)} imports ${m[1]}`);
    }
  }
  assert.deepEqual(wrong, []);
});

test('the arrow reader sees imports, type imports, dynamic imports and require', () => {
  // The reader is a regular expression over source text: prove it on the spellings used in src/.
  const sample =
    "import { a } from '../runs/x';\nimport type { B } from '../webhooks/y';\nconst c = await import('../http/z');\nconst d = require('../ui/w');\nimport '../metrics/side-effect';\n";
  const seen = [...sample.matchAll(IMPORT)].map((m) => m[1]);
  assert.deepEqual(seen, ['../runs/x', '../webhooks/y', '../http/z', '../ui/w', '../metrics/side-effect']);
});
