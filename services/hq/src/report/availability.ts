// The availability report's numbers, computed from what the store hands over: the area
// transitions of a period (plus the last one before it, which gives each area's state at the
// start) and the per-check roll-up buckets. Pure: no I/O, no clock; the renderers (html.ts,
// csv.ts, pdf.ts) only format what this returns (docs/hq.md, "Availability reports").
//
// Definitions, chosen to match what a technician at the rack saw:
// - an area is DOWN while it is `failing` and UP while `ok` or `degraded` (a degraded WAN still
//   carries traffic); `unknown` and `off` time is not observed and counts neither way;
// - availability = 1 − down / observed, per area (down when any probe of the site sees the area
//   failing) and per site (down while any area of any of its probes is failing);
// - an incident is a run of overlapping failing intervals of one site, whatever the area: a pulled
//   cable fails LINK, DHCP, DNS and WAN at once and is one incident. Its root area is the one that
//   failed first (the lowest layer on a tie: link before lan before dhcp …), its reason that
//   area's transition reason;
// - MTTR is the mean duration of the incidents that ended within the period (an ongoing one has
//   no repair time yet); an incident that began before the period keeps its real start.
// The per-probe, per-area numbers equal the store's own availability() (the lab test compares
// them); the site-level union and the merged incidents need the timelines, so they are built here.
import { AREA_ORDER } from "../history/store.ts";

/** One area transition as the report needs it (times in ms since the epoch). */
export interface AreaChange {
  site: string;
  probe: string;
  area: string;
  at: number;
  from: string;
  to: string;
  reason: string;
}

/** One roll-up bucket of one check: counts and the main metric's statistics. */
export interface CheckBucket {
  site: string;
  probe: string;
  check: string;
  kind: string;
  area: string;
  /** Bucket start, ms since the epoch. */
  start: number;
  count: number;
  ok: number;
  warn: number;
  /** fail + error */
  fail: number;
  latency_avg_ms: number | null;
  latency_p95_ms: number | null;
  loss_pct: number | null;
}

/** What computeReport needs. */
export interface ReportInput {
  /** The site reported on; null: every site in the data. */
  site: string | null;
  from: number;
  to: number;
  generated_at: number;
  /** Transitions in the period, plus per probe and area the last one before `from` (any order). */
  changes: readonly AreaChange[];
  /** Roll-up buckets inside the period (any order). */
  buckets: readonly CheckBucket[];
  /** Bucket width of `buckets`, ms. */
  bucket_ms: number;
}

/** Availability of one area (or of a whole site, area "all"). */
export interface AreaAvailability {
  area: string;
  /** null when the area was never observed in the period. */
  availability_pct: number | null;
  observed_ms: number;
  down_ms: number;
  degraded_ms: number;
  incidents: number;
  mttr_ms: number | null;
}

/** One site's line of the summary. */
export interface SiteAvailability extends Omit<AreaAvailability, "area"> {
  site: string;
  probes: number;
}

/** One outage. */
export interface Incident {
  site: string;
  /** The probe that saw the root area fail. */
  probe: string;
  start: number;
  /** null: still failing at the end of the period. */
  end: number | null;
  /** end − start, or period end − start while ongoing. */
  duration_ms: number;
  root_area: string;
  reason: string;
  /** Every area that failed during the incident, in dependency order. */
  areas: string[];
}

/** A check with its failure share over the period. */
export interface CheckSummary {
  site: string;
  probe: string;
  check: string;
  kind: string;
  area: string;
  results: number;
  failed: number;
  fail_pct: number;
  latency_avg_ms: number | null;
  /** The highest bucket p95: the worst hour (or minute) of the period. */
  latency_p95_max_ms: number | null;
  loss_avg_pct: number | null;
}

/** One point of a trend line. */
export interface TrendPoint {
  start: number;
  latency_avg_ms: number | null;
  loss_pct: number | null;
  results: number;
}

/** Latency and loss over the period of one check. */
export interface CheckTrend {
  site: string;
  probe: string;
  check: string;
  area: string;
  points: TrendPoint[];
}

/** The whole report. */
export interface AvailabilityReport {
  title: string;
  site: string | null;
  from: number;
  to: number;
  generated_at: number;
  overall: AreaAvailability;
  sites: SiteAvailability[];
  areas: AreaAvailability[];
  incidents: Incident[];
  worst_checks: CheckSummary[];
  trends: CheckTrend[];
  /** Width of one trend point, ms. */
  trend_bucket_ms: number;
}

/** Most worst checks listed. */
export const WORST_CHECKS = 10;
/** Most checks drawn in the trend chart. */
export const TREND_CHECKS = 3;
/** Most points per trend line (buckets are merged above it). */
export const TREND_POINTS = 200;

type Span = [number, number];

/** Sorted, merged copy of intervals (touching ones merge). */
function union(spans: readonly Span[]): Span[] {
  const s = [...spans].filter(([a, b]) => b > a).sort((x, y) => x[0] - y[0]);
  const out: Span[] = [];
  for (const [a, b] of s) {
    const last = out.at(-1);
    if (last && a <= last[1]) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

const total = (spans: readonly Span[]): number => spans.reduce((n, [a, b]) => n + (b - a), 0);
const clip = ([a, b]: Span, from: number, to: number): Span => [Math.max(a, from), Math.min(b, to)];
const pct = (down: number, observed: number): number | null =>
  observed > 0 ? Math.round((1 - down / observed) * 1e6) / 1e4 : null;
const layer = (area: string): number => {
  const i = (AREA_ORDER as readonly string[]).indexOf(area);
  return i < 0 ? AREA_ORDER.length : i;
};

/** One state run of one probe's area; `start` may lie before the period. */
interface Run {
  site: string;
  probe: string;
  area: string;
  state: string;
  start: number;
  end: number;
  reason: string;
}

/** Each probe's areas as state runs covering [from, to] (clipped at `to`, not at `from`). */
function runsOf(changes: readonly AreaChange[], from: number, to: number): Run[] {
  const byArea = new Map<string, AreaChange[]>();
  for (const c of changes) {
    if (c.at > to) continue;
    const k = `${c.site}\u0000${c.probe}\u0000${c.area}`;
    let l = byArea.get(k);
    if (!l) byArea.set(k, (l = []));
    l.push(c);
  }
  const runs: Run[] = [];
  for (const list of byArea.values()) {
    list.sort((a, b) => a.at - b.at);
    const before = list.filter((c) => c.at <= from).at(-1);
    const inside = list.filter((c) => c.at > from);
    const first = inside[0]!;
    // The state at the start: the last transition before the period, else what the first one
    // inside says it left (a probe installed mid-period leaves `unknown`).
    let cur: Run = before
      ? { ...pick(before), state: before.to, start: before.at, end: to, reason: before.reason }
      : { ...pick(first), state: first.from, start: from, end: to, reason: "" };
    for (const c of inside) {
      if (c.to === cur.state) continue; // a repeated verdict (replay, restart) changes nothing
      runs.push({ ...cur, end: c.at });
      cur = { ...pick(c), state: c.to, start: c.at, end: to, reason: c.reason };
    }
    runs.push(cur);
  }
  return runs.filter((r) => r.end > from);
}

function pick(c: AreaChange): Pick<Run, "site" | "probe" | "area"> {
  return { site: c.site, probe: c.probe, area: c.area };
}

const OBSERVED = new Set(["ok", "degraded", "failing"]);

/** Incidents of one site from its failing runs. */
function incidentsOf(failing: readonly Run[], to: number): Incident[] {
  const sorted = [...failing].sort((a, b) => a.start - b.start || layer(a.area) - layer(b.area));
  const out: Incident[] = [];
  let group: Run[] = [];
  let groupEnd = -Infinity;
  const close = (): void => {
    const root = group[0];
    if (!root) return;
    const ongoing = groupEnd >= to;
    const areas = [...new Set(group.map((r) => r.area))].sort((a, b) => layer(a) - layer(b));
    out.push({
      site: root.site,
      probe: root.probe,
      start: root.start,
      end: ongoing ? null : groupEnd,
      duration_ms: Math.min(groupEnd, to) - root.start,
      root_area: root.area,
      reason: root.reason,
      areas,
    });
  };
  for (const r of sorted) {
    if (group.length > 0 && r.start > groupEnd) {
      close();
      group = [];
      groupEnd = -Infinity;
    }
    group.push(r);
    groupEnd = Math.max(groupEnd, r.end);
  }
  close();
  return out;
}

function mttr(incidents: readonly Incident[]): number | null {
  const closed = incidents.filter((i) => i.end !== null);
  return closed.length === 0
    ? null
    : Math.round(closed.reduce((n, i) => n + i.duration_ms, 0) / closed.length);
}

/** Availability of a set of runs (one area, or everything of a site). */
function availabilityOf(runs: readonly Run[], from: number, to: number, incidents: readonly Incident[]) {
  const spans = (states: (s: string) => boolean) =>
    union(runs.filter((r) => states(r.state)).map((r) => clip([r.start, r.end], from, to)));
  const observed = total(spans((s) => OBSERVED.has(s)));
  const down = total(spans((s) => s === "failing"));
  // Degraded time while nothing failed (a failing probe hides another's degraded verdict).
  const degradedSpans = spans((s) => s === "degraded");
  const downSpans = spans((s) => s === "failing");
  const degraded = total(degradedSpans) - overlap(degradedSpans, downSpans);
  return {
    availability_pct: pct(down, observed),
    observed_ms: observed,
    down_ms: down,
    degraded_ms: degraded,
    incidents: incidents.length,
    mttr_ms: mttr(incidents),
  };
}

function overlap(a: readonly Span[], b: readonly Span[]): number {
  let n = 0;
  for (const [a0, a1] of a) for (const [b0, b1] of b) n += Math.max(0, Math.min(a1, b1) - Math.max(a0, b0));
  return n;
}

/** The report of `input`. */
export function computeReport(input: ReportInput): AvailabilityReport {
  const { from, to } = input;
  const inSite = (s: string) => input.site === null || s === input.site;
  const runs = runsOf(
    input.changes.filter((c) => inSite(c.site)),
    from,
    to,
  );
  const bySite = new Map<string, Run[]>();
  for (const r of runs) {
    let l = bySite.get(r.site);
    if (!l) bySite.set(r.site, (l = []));
    l.push(r);
  }
  const sites: SiteAvailability[] = [];
  const incidents: Incident[] = [];
  const areaSums = new Map<string, { observed: number; down: number; degraded: number; inc: Incident[] }>();
  for (const [site, siteRuns] of [...bySite].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const failing = siteRuns.filter((r) => r.state === "failing");
    const siteIncidents = incidentsOf(failing, to);
    incidents.push(...siteIncidents);
    sites.push({
      site,
      probes: new Set(siteRuns.map((r) => r.probe)).size,
      ...availabilityOf(siteRuns, from, to, siteIncidents),
    });
    for (const area of new Set(siteRuns.map((r) => r.area))) {
      const areaRuns = siteRuns.filter((r) => r.area === area);
      const areaIncidents = incidentsOf(
        areaRuns.filter((r) => r.state === "failing"),
        to,
      );
      const a = availabilityOf(areaRuns, from, to, areaIncidents);
      const sum = areaSums.get(area) ?? { observed: 0, down: 0, degraded: 0, inc: [] };
      sum.observed += a.observed_ms;
      sum.down += a.down_ms;
      sum.degraded += a.degraded_ms;
      sum.inc.push(...areaIncidents);
      areaSums.set(area, sum);
    }
  }
  const areas: AreaAvailability[] = [...areaSums]
    .sort(([a], [b]) => layer(a) - layer(b) || (a < b ? -1 : 1))
    .map(([area, s]) => ({
      area,
      availability_pct: pct(s.down, s.observed),
      observed_ms: s.observed,
      down_ms: s.down,
      degraded_ms: s.degraded,
      incidents: s.inc.length,
      mttr_ms: mttr(s.inc),
    }));
  const observed = sites.reduce((n, s) => n + s.observed_ms, 0);
  const down = sites.reduce((n, s) => n + s.down_ms, 0);
  incidents.sort((a, b) => a.start - b.start);
  const buckets = input.buckets.filter((b) => inSite(b.site) && b.start >= from && b.start < to);
  return {
    title: `Network availability — ${input.site ?? "all sites"}`,
    site: input.site,
    from,
    to,
    generated_at: input.generated_at,
    overall: {
      area: "all",
      availability_pct: pct(down, observed),
      observed_ms: observed,
      down_ms: down,
      degraded_ms: sites.reduce((n, s) => n + s.degraded_ms, 0),
      incidents: incidents.length,
      mttr_ms: mttr(incidents),
    },
    sites,
    areas,
    incidents,
    worst_checks: worstChecks(buckets),
    ...trends(buckets, from, to, input.bucket_ms),
  };
}

const checkKey = (b: Pick<CheckBucket, "site" | "probe" | "check">) => `${b.site}/${b.probe}/${b.check}`;

/** Weighted mean of `value` by `count` over the buckets that have one. */
function weighted(list: readonly CheckBucket[], value: (b: CheckBucket) => number | null): number | null {
  let n = 0;
  let sum = 0;
  for (const b of list) {
    const v = value(b);
    if (v === null || b.count === 0) continue;
    n += b.count;
    sum += v * b.count;
  }
  return n === 0 ? null : round2(sum / n);
}

const round2 = (v: number): number => Math.round(v * 100) / 100;

function summaries(buckets: readonly CheckBucket[]): Map<string, CheckSummary> {
  const byCheck = new Map<string, CheckBucket[]>();
  for (const b of buckets) {
    const k = checkKey(b);
    let l = byCheck.get(k);
    if (!l) byCheck.set(k, (l = []));
    l.push(b);
  }
  const out = new Map<string, CheckSummary>();
  for (const [k, list] of byCheck) {
    const first = list[0]!;
    const results = list.reduce((n, b) => n + b.count, 0);
    const failed = list.reduce((n, b) => n + b.fail, 0);
    const p95s = list.map((b) => b.latency_p95_ms).filter((v): v is number => v !== null);
    out.set(k, {
      site: first.site,
      probe: first.probe,
      check: first.check,
      kind: first.kind,
      area: first.area,
      results,
      failed,
      fail_pct: results === 0 ? 0 : round2((failed / results) * 100),
      latency_avg_ms: weighted(list, (b) => b.latency_avg_ms),
      latency_p95_max_ms: p95s.length === 0 ? null : Math.max(...p95s),
      loss_avg_pct: weighted(list, (b) => b.loss_pct),
    });
  }
  return out;
}

/** The checks that failed most (then lost most, then were slowest). */
function worstChecks(buckets: readonly CheckBucket[]): CheckSummary[] {
  return [...summaries(buckets).values()]
    .sort(
      (a, b) =>
        b.fail_pct - a.fail_pct ||
        (b.loss_avg_pct ?? 0) - (a.loss_avg_pct ?? 0) ||
        (b.latency_avg_ms ?? 0) - (a.latency_avg_ms ?? 0) ||
        (checkKey(a) < checkKey(b) ? -1 : 1),
    )
    .slice(0, WORST_CHECKS);
}

/**
 * Latency/loss lines of the checks worth a chart: those with a latency, WAN first (what a branch
 * notices), then the most results. Buckets are merged so a line has at most TREND_POINTS points.
 */
function trends(
  buckets: readonly CheckBucket[],
  from: number,
  to: number,
  bucketMs: number,
): { trends: CheckTrend[]; trend_bucket_ms: number } {
  const step = Math.max(bucketMs, Math.ceil((to - from) / TREND_POINTS / bucketMs) * bucketMs);
  const chosen = [...summaries(buckets).values()]
    .filter((s) => s.latency_avg_ms !== null)
    .sort(
      (a, b) =>
        Number(b.area === "wan") - Number(a.area === "wan") ||
        b.results - a.results ||
        (checkKey(a) < checkKey(b) ? -1 : 1),
    )
    .slice(0, TREND_CHECKS);
  const out: CheckTrend[] = [];
  for (const s of chosen) {
    const k = checkKey(s);
    const slots = new Map<number, CheckBucket[]>();
    for (const b of buckets) {
      if (checkKey(b) !== k) continue;
      const slot = from + Math.floor((b.start - from) / step) * step;
      let l = slots.get(slot);
      if (!l) slots.set(slot, (l = []));
      l.push(b);
    }
    out.push({
      site: s.site,
      probe: s.probe,
      check: s.check,
      area: s.area,
      points: [...slots]
        .sort(([a], [b]) => a - b)
        .map(([start, list]) => ({
          start,
          latency_avg_ms: weighted(list, (b) => b.latency_avg_ms),
          loss_pct: weighted(list, (b) => b.loss_pct),
          results: list.reduce((n, b) => n + b.count, 0),
        })),
    });
  }
  return { trends: out, trend_bucket_ms: step };
}
