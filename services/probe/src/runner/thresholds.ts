import type { CheckError, Measurement, Status } from "../checks/check.ts";

/** Bounds for one metric: above `warn`/`fail`, or below `warn_below`/`fail_below` (lower-is-worse metrics). */
export interface Threshold {
  warn?: number;
  fail?: number;
  warn_below?: number;
  fail_below?: number;
}

const RANK: Record<Status, number> = { ok: 0, warn: 1, fail: 2, error: 3 };

/** The worse of two statuses. */
export function worse(a: Status, b: Status): Status {
  return RANK[a] >= RANK[b] ? a : b;
}

/**
 * Turns metrics into a verdict. Thresholds can only make a measurement worse, never better, and do
 * not apply to `error` (the probe could not measure, so its metrics mean nothing).
 */
export function applyThresholds(
  m: Measurement,
  thresholds: Readonly<Record<string, Threshold>>,
): Measurement {
  if (m.status === "error") return m;
  let status: Status = m.status;
  const breaches: string[] = [];
  for (const [metric, t] of Object.entries(thresholds)) {
    const v = m.metrics[metric];
    if (v === undefined || Number.isNaN(v)) continue;
    const verdict = judge(v, t);
    if (verdict === undefined) continue;
    status = worse(status, verdict.status);
    breaches.push(`${metric} ${round(v)} ${verdict.why}`);
  }
  if (breaches.length === 0) return m;
  const error: CheckError | undefined =
    m.error ?? (status === "ok" ? undefined : { code: "threshold", message: breaches.join("; ") });
  return { ...m, status, detail: { ...m.detail, threshold_breaches: breaches }, ...(error ? { error } : {}) };
}

function judge(v: number, t: Threshold): { status: Status; why: string } | undefined {
  if (t.fail !== undefined && v > t.fail) return { status: "fail", why: `> fail ${t.fail}` };
  if (t.fail_below !== undefined && v < t.fail_below)
    return { status: "fail", why: `< fail ${t.fail_below}` };
  if (t.warn !== undefined && v > t.warn) return { status: "warn", why: `> warn ${t.warn}` };
  if (t.warn_below !== undefined && v < t.warn_below)
    return { status: "warn", why: `< warn ${t.warn_below}` };
  return undefined;
}

function round(v: number): number {
  return Math.round(v * 1000) / 1000;
}
