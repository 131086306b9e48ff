const SIZE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/**
 * "512m" / "2g" / "1.5G" / "256MiB" / 1048576 -> bytes (binary units, as Docker reads them); null when
 * invalid. Zero is invalid unless `zero` is set (a limit of nothing is a mistake in a workflow, a way to
 * turn a quota off in configuration).
 */
export function parseSize(value: unknown, { zero = false }: { zero?: boolean } = {}): number | null {
  if (typeof value === 'number') return Number.isInteger(value) && (value > 0 || (zero && value === 0)) ? value : null;
  if (typeof value !== 'string') return null;
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(value.trim());
  if (!m) return null;
  const bytes = Math.floor(Number(m[1]) * SIZE_UNITS[m[2].toLowerCase()]);
  return (bytes > 0 || (zero && bytes === 0)) && Number.isSafeInteger(bytes) ? bytes : null;
}

/** Bytes for people, in binary units: "512 bytes", "1 KiB", "1.5 MiB" (one decimal unless whole). */
export function formatBytes(n: number): string {
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  if (n < 1024) return `${n} bytes`;
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[i]}`;
}
