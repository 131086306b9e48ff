import type { Package, SoftwareReport } from './report';
import type { PackageDiff, ReportDiff } from './diff';

/** Escapes text for a Markdown table cell. */
function cell(s: string): string {
  return s
    .replace(/\\/g, '\\\\')
    .replace(/\|/g, '\\|')
    .replace(/[\r\n]+/g, ' ')
    .replace(/([`*_<>[\]])/g, '\\$1');
}

function table(headers: string[], rows: string[][]): string {
  if (!rows.length) return '_none_\n';
  const head = `| ${headers.join(' | ')} |\n| ${headers.map(() => '---').join(' | ')} |\n`;
  return head + rows.map((r) => `| ${r.map(cell).join(' | ')} |`).join('\n') + '\n';
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(0)} MiB`;
}

/** The report as Markdown, in the manner of a runner-images README. */
export function reportToMarkdown(r: SoftwareReport): string {
  const status = r.status === 'deprecated' ? `deprecated (removal ${r.removal})` : r.status;
  const lines = [
    `# ${cell(r.name)} ${cell(r.version)}`,
    '',
    r.description ? `${cell(r.description)}\n` : '',
    `- **Status**: ${status}`,
    `- **Labels**: ${r.labels.map((l) => '`' + l + '`').join(', ')}`,
    `- **OS**: ${cell(r.os.prettyName)} (Debian ${cell(r.os.debianVersion)})`,
    `- **Python**: ${r.python ?? 'none'}`,
    ...(r.pypy ? [`- **PyPy**: ${cell(r.pypy.version)} (Python ${cell(r.pypy.python)})`] : []),
    `- **Image**: \`${r.image.ref}\` (${r.image.id.slice(0, 19)}, ${mib(r.image.sizeBytes)})`,
    `- **Built**: ${r.image.builtAt}; **measured**: ${r.probedAt}`,
    '',
    'Everything below was measured inside the image by the probe, not copied from the manifest.',
    '',
    '## Tools',
    '',
    table(
      ['Tool', 'Version'],
      r.tools.map((t) => [t.name, t.version]),
    ),
    '## Environment variables',
    '',
    table(
      ['Name', 'Value'],
      Object.entries(r.env).map(([k, v]) => [k, v]),
    ),
    `## Python packages (${r.pythonPackages.length})`,
    '',
    table(
      ['Package', 'Version'],
      r.pythonPackages.map((p: Package) => [p.name, p.version]),
    ),
    `## Debian packages (${r.debPackages.length})`,
    '',
    table(
      ['Package', 'Version'],
      r.debPackages.map((p: Package) => [p.name, p.version]),
    ),
  ];
  return lines.join('\n');
}

function diffSection(title: string, d: PackageDiff): string {
  return [
    `## ${title}`,
    '',
    `### Added (${d.added.length})`,
    '',
    table(
      ['Package', 'Version'],
      d.added.map((p) => [p.name, p.version]),
    ),
    `### Removed (${d.removed.length})`,
    '',
    table(
      ['Package', 'Version'],
      d.removed.map((p) => [p.name, p.version]),
    ),
    `### Updated (${d.updated.length})`,
    '',
    table(
      ['Package', 'From', 'To'],
      d.updated.map((p) => [p.name, p.from, p.to]),
    ),
  ].join('\n');
}

export function diffToMarkdown(d: ReportDiff): string {
  return [
    `# ${cell(d.name)}: ${cell(d.from)} → ${cell(d.to)}`,
    '',
    d.os ? `- **OS**: ${cell(d.os.from)} → ${cell(d.os.to)}` : '- **OS**: unchanged',
    d.python ? `- **Python**: ${cell(d.python.from)} → ${cell(d.python.to)}` : '- **Python**: unchanged',
    '',
    diffSection('Python packages', d.pythonPackages),
    diffSection('Debian packages', d.debPackages),
  ].join('\n');
}
