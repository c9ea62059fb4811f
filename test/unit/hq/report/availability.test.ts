// The report's numbers on a hand-made event series; every expectation is computed by hand in the
// comments (times relative to the period start T, a 10 h period).
import { describe, expect, it } from "vitest";
import {
  computeReport,
  type AreaChange,
  type CheckBucket,
} from "../../../../services/hq/src/report/availability.ts";

const T = Date.parse("2026-11-01T00:00:00Z");
const H = 3_600_000;
const M = 60_000;
const S = 1000;
const site = "branch-042";

const ch = (
  probe: string,
  area: string,
  at: number,
  from: string,
  to: string,
  reason = `${area} ${to}`,
): AreaChange => ({
  site,
  probe,
  area,
  at: T + at,
  from,
  to,
  reason,
});

// p1: LINK, DNS, WAN known ok from before the period; p2: PHONE.
const series: AreaChange[] = [
  ch("p1", "link", -H, "unknown", "ok"),
  ch("p1", "dns", -H, "unknown", "ok"),
  ch("p1", "wan", -H, "unknown", "ok"),
  ch("p2", "phone", -H, "unknown", "ok"),
  // Incident 1: the cable: LINK at 1 h, DNS 5 s later, WAN 10 s later; back 1 h 30 m … 1 h 31 m.
  ch("p1", "link", H, "ok", "failing", "link down: no carrier"),
  ch("p1", "dns", H + 5 * S, "ok", "failing", "no answer"),
  ch("p1", "wan", H + 10 * S, "ok", "failing", "gateway unreachable"),
  ch("p1", "link", H + 30 * M, "failing", "ok"),
  ch("p1", "dns", H + 30 * M + 20 * S, "failing", "ok"),
  ch("p1", "wan", H + 31 * M, "failing", "ok"),
  // WAN degraded 4 h … 5 h: up, but counted apart.
  ch("p1", "wan", 4 * H, "ok", "degraded", "loss 3 %"),
  ch("p1", "wan", 5 * H, "degraded", "ok"),
  // Incident 2: DNS 6 h … 6 h 10 m on p1, PHONE 6 h 05 m … 6 h 20 m on p2: overlapping → one.
  ch("p1", "dns", 6 * H, "ok", "failing", "SERVFAIL from 192.0.2.53"),
  ch("p2", "phone", 6 * H + 5 * M, "ok", "failing", "REGISTER timed out"),
  ch("p1", "dns", 6 * H + 10 * M, "failing", "ok"),
  ch("p2", "phone", 6 * H + 20 * M, "failing", "ok"),
  // A replayed verdict (outbox after a reconnect) changes nothing.
  ch("p1", "dns", 6 * H + 10 * M + 1, "failing", "ok"),
  // Incident 3: WAN from 9 h 30 m, still failing at the end.
  ch("p1", "wan", 9.5 * H, "ok", "failing", "no route to 203.0.113.1"),
  // After the period: ignored.
  ch("p1", "wan", 11 * H, "failing", "ok"),
  // Another site: not in this report.
  { ...ch("x", "link", H, "ok", "failing"), site: "branch-007" },
];

const report = computeReport({
  site,
  from: T,
  to: T + 10 * H,
  generated_at: T + 10 * H,
  changes: series,
  buckets: [],
  bucket_ms: H,
});

describe("availability report: numbers of a known event series", () => {
  it("finds three incidents with start, end, duration, root area and reason", () => {
    expect(report.incidents).toEqual([
      {
        site,
        probe: "p1",
        start: T + H,
        end: T + H + 31 * M, // WAN back last
        duration_ms: 31 * M,
        root_area: "link", // failed first
        reason: "link down: no carrier",
        areas: ["link", "dns", "wan"],
      },
      {
        site,
        probe: "p1",
        start: T + 6 * H,
        end: T + 6 * H + 20 * M, // PHONE (p2) back last
        duration_ms: 20 * M,
        root_area: "dns",
        reason: "SERVFAIL from 192.0.2.53",
        areas: ["dns", "phone"],
      },
      {
        site,
        probe: "p1",
        start: T + 9.5 * H,
        end: null,
        duration_ms: 30 * M, // up to the end of the period
        root_area: "wan",
        reason: "no route to 203.0.113.1",
        areas: ["wan"],
      },
    ]);
  });

  it("site availability: 81 min down of 600 observed = 86.5 %; MTTR (31 + 20) / 2 = 25.5 min", () => {
    expect(report.overall).toEqual({
      area: "all",
      availability_pct: 86.5,
      observed_ms: 10 * H,
      down_ms: 81 * M,
      degraded_ms: H,
      incidents: 3,
      mttr_ms: 25.5 * M, // the ongoing incident has no repair time yet
    });
    expect(report.sites).toEqual(
      [{ site, probes: 2, ...report.overall, area: undefined }].map(({ area: _a, ...s }) => s),
    );
  });

  it("per area, in dependency order", () => {
    const byArea = Object.fromEntries(report.areas.map((a) => [a.area, a]));
    expect(report.areas.map((a) => a.area)).toEqual(["link", "dns", "wan", "phone"]);
    // LINK: 30 min of 600 → 95 %.
    expect(byArea.link).toMatchObject({
      availability_pct: 95,
      down_ms: 30 * M,
      incidents: 1,
      mttr_ms: 30 * M,
    });
    // DNS: 30 min 15 s + 10 min = 2415 s of 36000 → 93.2917 %; MTTR (1815 + 600) / 2 = 1207.5 s.
    expect(byArea.dns).toMatchObject({
      availability_pct: 93.2917,
      down_ms: 2415 * S,
      incidents: 2,
      mttr_ms: 1_207_500,
    });
    // WAN: 30 min 50 s + 30 min = 3650 s → 89.8611 %; 1 h degraded; MTTR only the closed one, 1850 s.
    expect(byArea.wan).toMatchObject({
      availability_pct: 89.8611,
      down_ms: 3650 * S,
      degraded_ms: H,
      incidents: 2,
      mttr_ms: 1850 * S,
    });
    // PHONE (p2): 15 min → 97.5 %.
    expect(byArea.phone).toMatchObject({
      availability_pct: 97.5,
      down_ms: 15 * M,
      incidents: 1,
      mttr_ms: 15 * M,
    });
  });

  it("an incident that began before the period keeps its start; only its part inside counts as down", () => {
    const r = computeReport({
      site,
      from: T,
      to: T + H,
      generated_at: T + H,
      changes: [
        ch("p1", "link", -2 * H, "unknown", "ok"),
        ch("p1", "link", -30 * M, "ok", "failing", "cable"),
        ch("p1", "link", 10 * M, "failing", "ok"),
      ],
      buckets: [],
      bucket_ms: M,
    });
    expect(r.incidents).toEqual([
      {
        site,
        probe: "p1",
        start: T - 30 * M,
        end: T + 10 * M,
        duration_ms: 40 * M,
        root_area: "link",
        reason: "cable",
        areas: ["link"],
      },
    ]);
    // 10 of 60 minutes down → 83.3333 %; MTTR the whole 40 minutes.
    expect(r.overall).toMatchObject({ availability_pct: 83.3333, down_ms: 10 * M, mttr_ms: 40 * M });
  });

  it("unknown and off time is not observed: a probe installed half-way is judged on its half", () => {
    const r = computeReport({
      site,
      from: T,
      to: T + 10 * H,
      generated_at: T + 10 * H,
      changes: [
        ch("p1", "wan", 5 * H, "unknown", "ok"),
        ch("p1", "wan", 9 * H, "ok", "failing"),
        ch("p1", "wan", 9.5 * H, "failing", "off"),
      ],
      buckets: [],
      bucket_ms: H,
    });
    // observed 5 h → 9.5 h = 4.5 h, down 0.5 h → 88.8889 %.
    expect(r.overall).toMatchObject({
      availability_pct: 88.8889,
      observed_ms: 4.5 * H,
      down_ms: 0.5 * H,
      incidents: 1,
    });
  });

  it("no event at all: no availability claimed", () => {
    const r = computeReport({
      site,
      from: T,
      to: T + H,
      generated_at: T + H,
      changes: [],
      buckets: [],
      bucket_ms: M,
    });
    expect(r.overall).toMatchObject({ availability_pct: null, incidents: 0, mttr_ms: null });
    expect(r.sites).toEqual([]);
  });
});

describe("availability report: worst checks and trends from roll-ups", () => {
  const b = (
    check: string,
    area: string,
    at: number,
    count: number,
    fail: number,
    avg: number | null,
    p95: number | null,
    loss: number | null,
  ): CheckBucket => ({
    site,
    probe: "p1",
    check,
    kind: check.split("-")[1] ?? check,
    area,
    start: T + at,
    count,
    ok: count - fail,
    warn: 0,
    fail,
    latency_avg_ms: avg,
    latency_p95_ms: p95,
    loss_pct: loss,
  });
  const buckets = [
    b("gw-icmp", "lan", 0, 60, 0, 1, 2, 0),
    b("gw-icmp", "lan", H, 60, 6, 3, 9, 10),
    b("wan-icmp", "wan", 0, 60, 0, 20, 25, 0),
    b("wan-icmp", "wan", H, 60, 0, 30, 40, 0),
    b("dns-dns", "dns", 0, 120, 0, 5, 8, null),
    b("http-http", "wan", 0, 10, 0, null, null, null),
    b("wan-icmp", "wan", 20 * H, 60, 60, null, null, 100), // after the period: ignored
  ];
  const r = computeReport({
    site,
    from: T,
    to: T + 2 * H,
    generated_at: T + 2 * H,
    changes: [],
    buckets,
    bucket_ms: H,
  });

  it("ranks by failure share; averages are weighted by result count", () => {
    expect(r.worst_checks[0]).toEqual({
      site,
      probe: "p1",
      check: "gw-icmp",
      kind: "icmp",
      area: "lan",
      results: 120,
      failed: 6,
      fail_pct: 5, // 6 / 120
      latency_avg_ms: 2, // (60·1 + 60·3) / 120
      latency_p95_max_ms: 9,
      loss_avg_pct: 5, // (0 + 10) / 2
    });
    expect(r.worst_checks.map((c) => c.check)).toEqual(["gw-icmp", "wan-icmp", "dns-dns", "http-http"]);
    expect(r.worst_checks[1]).toMatchObject({
      results: 120,
      failed: 0,
      latency_avg_ms: 25,
      latency_p95_max_ms: 40,
    });
  });

  it("trends: WAN checks first, then by results; checks without a latency are not drawn", () => {
    expect(r.trends.map((t) => t.check)).toEqual(["wan-icmp", "dns-dns", "gw-icmp"]);
    expect(r.trends[0]!.points).toEqual([
      { start: T, latency_avg_ms: 20, loss_pct: 0, results: 60 },
      { start: T + H, latency_avg_ms: 30, loss_pct: 0, results: 60 },
    ]);
    expect(r.trend_bucket_ms).toBe(H);
  });

  it("a long period merges buckets: 90 days of hourly buckets → at most 200 points a line", () => {
    const days = 90;
    const many = Array.from({ length: days * 24 }, (_, i) =>
      b("wan-icmp", "wan", i * H, 60, i % 24 === 0 ? 6 : 0, 10 + (i % 24), null, 0),
    );
    const long = computeReport({
      site,
      from: T,
      to: T + days * 24 * H,
      generated_at: T,
      changes: [],
      buckets: many,
      bucket_ms: H,
    });
    // 2160 h / 200 → 10.8 → 11 h per point → ceil(2160 / 11) = 197 points.
    expect(long.trend_bucket_ms).toBe(11 * H);
    expect(long.trends[0]!.points).toHaveLength(197);
    expect(long.worst_checks[0]).toMatchObject({ results: 2160 * 60, failed: 90 * 6 });
  });
});
