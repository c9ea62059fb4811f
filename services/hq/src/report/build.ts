// Reads what a report needs from the history store (only through HistoryReader: either engine)
// and computes it: the area transitions of the site, the roll-ups at the resolution the period
// calls for.
import {
  BUCKET_MS,
  pickResolution,
  type HistoryReader,
  type RollupRow,
  type StoredEvent,
} from "../history/store.ts";
import { computeReport, type AreaChange, type AvailabilityReport, type CheckBucket } from "./availability.ts";

/**
 * How far back the state at the period's start is looked for: the last transition of an area may
 * be long before the period (a healthy site is quiet). Longer than any event retention.
 */
export const STATE_LOOKBACK_MS = 400 * 86_400_000;
/** Most transitions read for one report. */
export const MAX_EVENTS = 1_000_000;

/** What a report is about. */
export interface ReportRequest {
  /** null: every site. */
  site: string | null;
  from: number;
  to: number;
}

function changeOf(e: StoredEvent): AreaChange | null {
  if (e.type !== "area_transition" || e.area === null || e.from === null || e.to === null) return null;
  return { site: e.site, probe: e.probe, area: e.area, at: e.at, from: e.from, to: e.to, reason: e.reason };
}

function bucketOf(r: RollupRow): CheckBucket {
  return {
    site: r.site,
    probe: r.probe,
    check: r.check,
    kind: r.kind,
    area: r.area,
    start: r.bucket,
    count: r.count,
    ok: r.ok,
    warn: r.warn,
    fail: r.fail + r.error,
    latency_avg_ms: r.value_avg,
    latency_p95_ms: r.value_p95,
    loss_pct: r.loss_avg,
  };
}

/** The report of `req` from `store`; `now` is the generation time printed on it. */
export async function buildReport(
  store: HistoryReader,
  req: ReportRequest,
  now: number = Date.now(),
): Promise<AvailabilityReport> {
  const site = req.site === null ? {} : { site: req.site };
  const resolution = pickResolution(req.from, req.to);
  const [events, rollups] = await Promise.all([
    store.events({ ...site, from: req.from - STATE_LOOKBACK_MS, to: req.to, limit: MAX_EVENTS }),
    store.rollups({ ...site, from: req.from, to: req.to, resolution }),
  ]);
  return computeReport({
    site: req.site,
    from: req.from,
    to: req.to,
    generated_at: now,
    changes: events.map(changeOf).filter((c): c is AreaChange => c !== null),
    buckets: rollups.map(bucketOf),
    bucket_ms: BUCKET_MS[resolution],
  });
}
