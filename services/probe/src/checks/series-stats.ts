// Statistics over a series of measurements (RTTs in ms, in the order the probes were sent).
// Shared by every check that measures a series: ICMP echo now, RTP and TCP connect later.

/** Summary of a non-empty series, in the unit of its values. */
export interface SeriesStats {
  count: number;
  min: number;
  avg: number;
  max: number;
  p50: number;
  p95: number;
  /** Mean absolute difference of consecutive values; undefined with fewer than two values. */
  jitter: number | undefined;
}

/**
 * Percentile by linear interpolation between closest ranks (Hyndman & Fan type 7, the default of
 * numpy, R and spreadsheet PERCENTILE.INC): with the n values sorted ascending, the p-th
 * percentile sits at 0-based rank h = (n − 1) × p / 100 and is
 * sorted[⌊h⌋] + (h − ⌊h⌋) × (sorted[⌊h⌋ + 1] − sorted[⌊h⌋]).
 * So p50 is the textbook median (the mean of the two middle values for even n), which is what
 * the accuracy bench compares with `ping`, p0 is the minimum and p100 the maximum. Nearest-rank
 * was rejected because with the short default series (5 probes) it moves p50 and p95 in whole
 * sample steps. `sorted` must be ascending and non-empty; `p` is in [0, 100].
 */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) throw new RangeError("percentile of an empty series");
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile ${p} is outside [0, 100]`);
  const rank = ((sorted.length - 1) * p) / 100;
  const lower = Math.floor(rank);
  const below = sorted[lower] ?? 0;
  const above = sorted[Math.min(lower + 1, sorted.length - 1)] ?? below;
  return below + (rank - lower) * (above - below);
}

/**
 * Jitter in the RFC 3550 §6.4.1 sense, for round trips: D_i = RTT_i − RTT_{i−1} is the change
 * in transit time between consecutive probes (the send-time difference cancels out because
 * both ends are our clock), and the result is the mean of |D_i| over the series.
 *
 * RFC 3550 estimates that mean with a running filter J += (|D| − J) / 16 started at 0, which
 * suits an endless RTP stream but is biased low on a short series: after k differences the
 * initial 0 still weighs (15/16)^k, so with the default 5 probes (4 differences) J is about 23 %
 * of the true value. The plain mean is what that filter converges to, without the start-up bias.
 *
 * `series` is in send order and holds only answered probes; a lost probe is skipped, so the
 * difference spans the gap, as RFC 3550 does for packets that never arrive.
 */
export function interarrivalJitter(series: readonly number[]): number | undefined {
  if (series.length < 2) return undefined;
  let total = 0;
  for (let i = 1; i < series.length; i++) total += Math.abs((series[i] ?? 0) - (series[i - 1] ?? 0));
  return total / (series.length - 1);
}

/** Summarizes a series given in send order; undefined when it is empty. */
export function summarizeSeries(series: readonly number[]): SeriesStats | undefined {
  if (series.length === 0) return undefined;
  const sorted = [...series].sort((a, b) => a - b);
  let sum = 0;
  for (const value of series) sum += value;
  return {
    count: series.length,
    min: sorted[0] ?? 0,
    avg: sum / series.length,
    max: sorted[sorted.length - 1] ?? 0,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    jitter: interarrivalJitter(series),
  };
}
