/**
 * Durations in the config file: `500ms`, `30s`, `5m`, `1h`, combinations such as `1m30s`, or a
 * plain number of seconds (`30`, `0.5`). The loaded config carries them as integer milliseconds.
 */

/** JSON Schema pattern for a duration string (a unit-less string is seconds, like a plain number). */
export const DURATION_PATTERN = "^(?:(?:\\d+(?:\\.\\d+)?(?:ms|h|m|s))+|\\d+(?:\\.\\d+)?)$";

const DURATION_RE = new RegExp(DURATION_PATTERN);
// `ms` must come before `m` so that "5ms" is not read as 5 minutes followed by a stray "s".
const PART_RE = /(\d+(?:\.\d+)?)(ms|h|m|s)/g;
const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Parses a duration to milliseconds: undefined when it is not a duration or not whole
 * milliseconds, Infinity when it is too long to count in milliseconds (so limits reject it).
 */
export function parseDuration(value: unknown): number | undefined {
  let ms: number;
  if (typeof value === "number") {
    if (!Number.isFinite(value) || value < 0) return undefined;
    ms = value * 1000;
  } else if (typeof value === "string" && DURATION_RE.test(value)) {
    if (/^\d+(?:\.\d+)?$/.test(value)) {
      ms = Number(value) * 1000;
    } else {
      ms = 0;
      for (const [, amount, unit] of value.matchAll(PART_RE))
        ms += Number(amount) * (UNIT_MS[unit ?? ""] ?? NaN);
    }
  } else {
    return undefined;
  }
  // Round away binary noise (0.1s * 1000 = 100.00000000000001) but refuse real sub-millisecond parts.
  if (ms > Number.MAX_SAFE_INTEGER) return Number.POSITIVE_INFINITY;
  const rounded = Math.round(ms);
  if (Math.abs(ms - rounded) > 1e-6) return undefined;
  return rounded;
}

/** Formats milliseconds the way a person would write them in the config: `1h`, `5m`, `1m30s`, `500ms`. */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0s";
  let rest = ms;
  let out = "";
  for (const [unit, size] of [
    ["h", 3_600_000],
    ["m", 60_000],
    ["s", 1000],
    ["ms", 1],
  ] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * size;
    }
  }
  return out;
}
