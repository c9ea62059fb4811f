/**
 * Byte sizes in the config file: an integer byte count or a string with a binary unit (`512KiB`,
 * `64MiB`, `1.5GiB`; a fraction needs a unit above B). Decimal units (MB, GB) are refused on purpose: "64MB" is ambiguous.
 */

/** JSON Schema pattern for a size string. */
export const BYTE_SIZE_PATTERN = "^(?:\\d+ ?B?|\\d+(?:\\.\\d+)? ?(?:KiB|MiB|GiB))$";

const SIZE_RE = new RegExp(BYTE_SIZE_PATTERN);
const PARTS_RE = /^(\d+(?:\.\d+)?) ?(B|KiB|MiB|GiB)?$/;
const UNIT_BYTES: Readonly<Record<string, number>> = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 };

/**
 * Parses a size to a whole number of bytes (fractions round down): undefined when it is not a
 * size, Infinity when it is too large to count exactly (so limits reject it).
 */
export function parseByteSize(value: unknown): number | undefined {
  let bytes: number;
  if (typeof value === "number") {
    if (!Number.isInteger(value) || value < 0) return undefined;
    bytes = value;
  } else if (typeof value === "string") {
    const m = SIZE_RE.test(value) ? PARTS_RE.exec(value) : null;
    if (!m) return undefined;
    bytes = Math.floor(Number(m[1]) * (UNIT_BYTES[m[2] ?? "B"] ?? NaN));
  } else {
    return undefined;
  }
  return bytes > Number.MAX_SAFE_INTEGER ? Number.POSITIVE_INFINITY : bytes;
}

/** Formats bytes with the largest binary unit that divides them: `64MiB`, `1536KiB`, `1000B`. */
export function formatByteSize(bytes: number): string {
  for (const unit of ["GiB", "MiB", "KiB"] as const) {
    const size = UNIT_BYTES[unit] ?? 1;
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return `${bytes}B`;
}
