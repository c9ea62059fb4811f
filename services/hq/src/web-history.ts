// The history half of HQ's API (docs/hq.md, "History on the page"): charts, the event timeline and
// availability of a probe or a site over a range, read from the store (HistoryReader: either
// engine), plus the availability report. Bounded like the live routes: a fixed set of ranges, at
// most MAX_POINTS points per check (roll-up buckets are merged above it), checks and events paged.
// web.ts routes here after authentication; nothing here trusts a query parameter's size.
import {
  BUCKET_MS,
  pickResolution,
  type HistoryReader,
  type RollupRow,
  type StoredEvent,
} from "./history/store.ts";
import { buildReport } from "./report/build.ts";
import { renderReport, type ReportFormat } from "./report/render.ts";

/** The ranges the page offers, ms. */
export const RANGES: Readonly<Record<string, number>> = {
  "1h": 3_600_000,
  "6h": 6 * 3_600_000,
  "24h": 86_400_000,
  "7d": 7 * 86_400_000,
  "30d": 30 * 86_400_000,
  "90d": 90 * 86_400_000,
};
/** Most points of one check's line. */
export const MAX_POINTS = 400;
/** Checks per /api/history/series page, events per /api/history/events page, incidents listed. */
export const SERIES_CHECKS = 100;
export const EVENTS_PAGE = 500;
export const MAX_INCIDENTS = 200;
/** Longest report period, and reports built at once (a PDF starts a Chromium). */
export const MAX_REPORT_MS = 400 * 86_400_000;
const MAX_REPORTS_AT_ONCE = 1;

/** One point: [bucket start ms, avg, p95, loss %, results, failed]. */
export type SeriesPoint = [number, number | null, number | null, number | null, number, number];

/** An answer: status and JSON body, or a document. */
export type HistoryAnswer =
  { code: number; body: unknown } | { code: 200; document: Buffer; type: string; filename: string };

const bad = (error: string): HistoryAnswer => ({ code: 400, body: { error } });

/** `key=site/probe` or `site=S`; null when neither (or both) is well-formed. */
function scope(url: URL): { site: string; probe?: string } | null {
  const key = url.searchParams.get("key");
  const site = url.searchParams.get("site");
  if (key !== null && site === null) {
    const i = key.indexOf("/");
    if (i < 1 || i === key.length - 1 || key.length > 513) return null;
    return { site: key.slice(0, i), probe: key.slice(i + 1) };
  }
  if (site !== null && key === null && site.length > 0 && site.length <= 256) return { site };
  return null;
}

function rangeOf(url: URL, now: number): { from: number; to: number; range: string } | null {
  const range = url.searchParams.get("range") ?? "24h";
  const ms = RANGES[range];
  return ms === undefined ? null : { from: now - ms, to: now, range };
}

function limitOf(url: URL, max: number): number | null {
  const l = url.searchParams.get("limit");
  const n = l === null ? max : Number(l);
  return Number.isInteger(n) && n >= 1 && n <= max ? n : null;
}

/** Merges a check's buckets into slots of `step` ms (a multiple of the resolution). */
function points(rows: readonly RollupRow[], from: number, step: number): SeriesPoint[] {
  const slots = new Map<number, RollupRow[]>();
  for (const r of rows) {
    const slot = from + Math.floor((r.bucket - from) / step) * step;
    let l = slots.get(slot);
    if (!l) slots.set(slot, (l = []));
    l.push(r);
  }
  const mean = (list: RollupRow[], v: (r: RollupRow) => number | null): number | null => {
    let n = 0;
    let sum = 0;
    for (const r of list) {
      const x = v(r);
      if (x === null || r.count === 0) continue;
      n += r.count;
      sum += x * r.count;
    }
    return n === 0 ? null : Math.round((sum / n) * 1000) / 1000;
  };
  return [...slots]
    .sort(([a], [b]) => a - b)
    .map(([t, list]) => {
      const p95s = list.map((r) => r.value_p95).filter((v): v is number => v !== null);
      return [
        t,
        mean(list, (r) => r.value_avg),
        p95s.length === 0 ? null : Math.max(...p95s),
        mean(list, (r) => r.loss_avg),
        list.reduce((n, r) => n + r.count, 0),
        list.reduce((n, r) => n + r.fail + r.error, 0),
      ];
    });
}

/** Answers /api/history/* and /api/report; null for any other path. */
export async function historyRoute(
  store: HistoryReader | undefined,
  url: URL,
  now: number = Date.now(),
): Promise<HistoryAnswer | null> {
  const path = url.pathname;
  if (!path.startsWith("/api/history/") && path !== "/api/report") return null;
  if (!store)
    return { code: 404, body: { error: "history is not enabled on this HQ (see docs/hq.md, History)" } };
  if (path === "/api/report") return report(store, url, now);
  const where = scope(url);
  const span = rangeOf(url, now);
  if (!where || !span)
    return bad(`key=<site>/<probe> or site=<site>, and range: one of ${Object.keys(RANGES).join(", ")}`);
  const q = { ...where, from: span.from, to: span.to };
  switch (path) {
    case "/api/history/series": {
      if (where.probe === undefined) return bad("series need key=<site>/<probe>");
      const limit = limitOf(url, SERIES_CHECKS);
      const cursor = url.searchParams.get("cursor");
      if (limit === null || (cursor !== null && cursor.length > 256))
        return bad(`limit: 1..${SERIES_CHECKS}; cursor: a check name`);
      const resolution = pickResolution(span.from, span.to);
      const width = BUCKET_MS[resolution];
      const step = Math.max(1, Math.ceil((span.to - span.from) / MAX_POINTS / width)) * width;
      const [known, rows] = await Promise.all([store.checks(where), store.rollups({ ...q, resolution })]);
      const names = [...new Set(known.map((c) => c.check))].sort();
      const shown = names.filter((n) => cursor === null || n > cursor).slice(0, limit);
      const byCheck = new Map<string, RollupRow[]>();
      for (const r of rows) {
        let l = byCheck.get(r.check);
        if (!l) byCheck.set(r.check, (l = []));
        l.push(r);
      }
      const info = new Map(known.map((c) => [c.check, c]));
      const last = shown.at(-1);
      return {
        code: 200,
        body: {
          key: `${where.site}/${where.probe}`,
          range: span.range,
          from: span.from,
          to: span.to,
          resolution,
          step_ms: step,
          checks: shown.map((name) => {
            const c = info.get(name)!;
            return {
              check: name,
              kind: c.kind,
              area: c.area,
              target: c.target,
              points: points(byCheck.get(name) ?? [], span.from, step),
            };
          }),
          checks_total: names.length,
          next_cursor: last !== undefined && last !== names.at(-1) ? last : null,
        },
      };
    }
    case "/api/history/events": {
      const limit = limitOf(url, EVENTS_PAGE);
      // cursor `<at>:<n>`: the last page ended with n events at ms `at` (more may share that ms).
      const cursor = url.searchParams.get("cursor");
      const m = cursor === null ? null : /^(\d{1,15}):(\d{1,6})$/.exec(cursor);
      if (limit === null || (cursor !== null && !m))
        return bad(`limit: 1..${EVENTS_PAGE}; cursor: from next_cursor`);
      const from = m ? Math.max(span.from, Number(m[1])) : span.from;
      const skip = m ? Number(m[2]) : 0;
      const got = await store.events({ ...q, from, limit: limit + skip + 1 });
      const page = got.slice(skip, skip + limit);
      const more = got.length > skip + limit;
      const lastAt = page.at(-1)?.at;
      const sameMs =
        lastAt === undefined ? 0 : got.slice(0, skip + limit).filter((e) => e.at === lastAt).length;
      return {
        code: 200,
        body: {
          range: span.range,
          from: span.from,
          to: span.to,
          events: page.map((e: StoredEvent) => e),
          next_cursor: more && lastAt !== undefined ? `${lastAt}:${sameMs}` : null,
        },
      };
    }
    case "/api/history/availability": {
      const [areas, incidents] = await Promise.all([store.availability(q), store.incidents(q)]);
      return {
        code: 200,
        body: {
          range: span.range,
          from: span.from,
          to: span.to,
          areas,
          incidents: incidents.slice(-MAX_INCIDENTS),
          incidents_total: incidents.length,
        },
      };
    }
    default:
      return { code: 404, body: { error: "not found" } };
  }
}

let reportsRunning = 0;

async function report(store: HistoryReader, url: URL, now: number): Promise<HistoryAnswer> {
  const site = url.searchParams.get("site");
  const from = Date.parse(url.searchParams.get("from") ?? "");
  const to = Date.parse(url.searchParams.get("to") ?? "");
  const format = (url.searchParams.get("format") ?? "html") as ReportFormat;
  if (site === null || site.length === 0 || site.length > 256) return bad("site: a site name");
  if (!(from < to) || to - from > MAX_REPORT_MS)
    return bad("from, to: ISO 8601 times, from before to, at most 400 days apart");
  if (!["html", "csv", "pdf"].includes(format)) return bad("format: html, csv or pdf");
  if (reportsRunning >= MAX_REPORTS_AT_ONCE)
    return { code: 503, body: { error: "a report is being built: retry shortly" } };
  reportsRunning++;
  try {
    const r = await buildReport(store, { site, from, to }, now);
    const document = await renderReport(r, format);
    const type = { html: "text/html; charset=utf-8", csv: "text/csv; charset=utf-8", pdf: "application/pdf" }[
      format
    ];
    const safe = site.replace(/[^A-Za-z0-9_.-]/g, "_");
    return {
      code: 200,
      document,
      type,
      filename: `${safe}-${new Date(from).toISOString().slice(0, 10)}.${format}`,
    };
  } finally {
    reportsRunning--;
  }
}
