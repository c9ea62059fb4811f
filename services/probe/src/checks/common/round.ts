/**
 * A reported number to `digits` decimals (default 3: milliseconds to the microsecond, percentages
 * to 1e-3 points, enough for the accuracy bars in docs/architecture.md). One rounding for every
 * metric, so two checks never report the same quantity with different precision.
 */
export function round(value: number, digits = 3): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}
