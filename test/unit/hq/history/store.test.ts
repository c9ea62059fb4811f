// One suite, both engines (services/hq/src/history/): the same writes and questions against an
// SQLite file and a real PostgreSQL server this file starts on a private socket and removes.
// Under CI=true a PostgreSQL that cannot start fails the suite; it never skips.
import { describe, expect, it, beforeAll, afterAll } from "vitest";
import type {
  HistoryBatch,
  HistoryStore,
  StoredEvent,
  StoredResult,
} from "../../../../services/hq/src/history/store.ts";
import { historyEngines } from "../../../doubles/history-engines.ts";

const DAY = 86_400_000;
const NOW = Date.parse("2026-12-03T12:00:00Z");
const RETENTION = { raw_days: 7, rollup_days: 365, event_days: 365 };

let clock = NOW;
const engines = historyEngines(RETENTION, () => clock);

let ids = 0;
function result(over: Partial<StoredResult> = {}): StoredResult {
  return {
    id: `01R${String(ids++).padStart(10, "0")}`,
    site: "branch-042",
    probe: "pi-01",
    check: "gateway-icmp",
    kind: "icmp",
    area: "lan",
    target: "192.0.2.1",
    status: "ok",
    at: NOW - 3600_000,
    duration_ms: 12,
    value: 1.5,
    loss_pct: 0,
    metrics: { rtt_avg_ms: 1.5, loss_pct: 0 },
    error_code: null,
    error_message: null,
    seq: ids,
    boot_id: "boot-a",
    mono_ms: ids * 1000,
    received_at: NOW - 3600_000 + 5,
    ...over,
  };
}
function transition(area: string, from: string, to: string, at: number, reason = "x"): StoredEvent {
  return {
    site: "branch-042",
    probe: "pi-01",
    type: "area_transition",
    at,
    area,
    from: from as StoredEvent["from"],
    to: to as StoredEvent["to"],
    reason,
    result_id: null,
    received_at: at + 10,
    boot_id: "boot-a",
    mono_ms: at - NOW + 10 * DAY,
  };
}
const batch = (b: Partial<HistoryBatch>): HistoryBatch => ({
  results: [],
  events: [],
  states: [],
  health: [],
  ...b,
});

describe.each(engines)("history store on %s", (_name, make) => {
  let store: HistoryStore;
  beforeAll(async () => {
    store = await make();
    await store.open();
    await store.open(); // migrations are idempotent
  }, 60_000);
  afterAll(async () => {
    await store?.close();
  });

  it("alert incidents: upserted by id; open ones and the latest resolved ones come back; retention drops old resolved ones", async () => {
    const inc = (id: string, opened: number, resolved: number | null) => ({
      id,
      opened_at: opened,
      resolved_at: resolved,
      updated_at: resolved ?? opened,
      body: { id, title: `incident ${id}`, members: [{ area: "link" }] },
    });
    await store.putIncidents([inc("a", NOW - 3000, null), inc("b", NOW - 2000, null)]);
    // b resolves (a new version of the same id), c and d were resolved long ago and just now.
    await store.putIncidents([
      inc("b", NOW - 2000, NOW - 1000),
      inc("c", NOW - 400 * DAY, NOW - 399 * DAY),
      inc("d", NOW - 5000, NOW - 500),
    ]);
    const all = await store.loadIncidents(10);
    expect(all.map((i) => i.id)).toEqual(["a", "d", "b", "c"]);
    expect(all[0]).toEqual(inc("a", NOW - 3000, null));
    expect((await store.loadIncidents(1)).map((i) => i.id)).toEqual(["a", "d"]);
    await store.retain(NOW);
    expect((await store.loadIncidents(10)).map((i) => i.id)).toEqual(["a", "d", "b"]);
  });

  it("a redelivered result (same id, in another batch or the same one) is stored once", async () => {
    const a = result({ check: "dedup" });
    const b = result({ check: "dedup" });
    const first = await store.write(batch({ results: [a, b, a] }));
    expect(first).toMatchObject({ inserted: 2, duplicates: 1 });
    // An unsynced probe's redelivery lands at another receive time: still the same result.
    const second = await store.write(batch({ results: [{ ...a, at: a.at + 5000 }, b] }));
    expect(second).toMatchObject({ inserted: 0, duplicates: 2 });
    const got = await store.results({ check: "dedup", from: 0, to: NOW + DAY });
    expect(got.map((r) => r.id)).toEqual([a.id, b.id]);
    expect(got[0]).toEqual(a);
  });

  it("results come back by probe, check and time range, oldest first, paged", async () => {
    const t0 = NOW - 2 * 3600_000;
    const rs = Array.from({ length: 30 }, (_, i) => result({ check: "range", at: t0 + i * 1000 }));
    rs.push(result({ check: "range", probe: "pi-02", at: t0 }));
    await store.write(batch({ results: rs.reverse() }));
    const page1 = await store.results({
      probe: "pi-01",
      check: "range",
      from: t0 + 5000,
      to: t0 + 25_000,
      limit: 12,
    });
    expect(page1.map((r) => r.at - t0)).toEqual(Array.from({ length: 12 }, (_, i) => (i + 5) * 1000));
    const last = page1.at(-1)!;
    const page2 = await store.results({
      probe: "pi-01",
      check: "range",
      from: t0 + 5000,
      to: t0 + 25_000,
      after: { at: last.at, id: last.id },
    });
    expect(page2.map((r) => r.at - t0)).toEqual(Array.from({ length: 8 }, (_, i) => (i + 17) * 1000));
    expect(await store.results({ probe: "pi-02", check: "range", from: 0, to: NOW })).toHaveLength(1);
  });

  it("a results older than raw retention is counted as expired, not stored", async () => {
    const out = await store.write(batch({ results: [result({ check: "old", at: NOW - 8 * DAY })] }));
    expect(out).toMatchObject({ inserted: 0, expired: 1 });
  });

  it("roll-ups: 1 min and 1 h per check with counts, min/avg/p95 and loss", async () => {
    const m0 = Date.parse("2026-12-03T09:00:00Z");
    const rs: StoredResult[] = [];
    // Minute 0: 20 results, values 1..20, one fail, one warn; minute 1: 10 results of 100.
    for (let i = 1; i <= 20; i++)
      rs.push(
        result({
          check: "roll",
          at: m0 + i * 2000,
          value: i,
          loss_pct: i === 20 ? 50 : 0,
          status: i === 20 ? "fail" : i === 19 ? "warn" : "ok",
        }),
      );
    for (let i = 0; i < 10; i++)
      rs.push(result({ check: "roll", at: m0 + 60_000 + i * 1000, value: 100, loss_pct: null }));
    await store.write(batch({ results: rs }));
    // Still inside the second minute: only the first is over and rolled up.
    expect(await store.rollUp(m0 + 90_000)).toBe(1);
    let m = await store.rollups({ check: "roll", from: m0, to: m0 + 3600_000, resolution: "1m" });
    expect(m).toHaveLength(1);
    expect(m[0]).toMatchObject({
      bucket: m0,
      count: 20,
      ok: 18,
      warn: 1,
      fail: 1,
      error: 0,
      value_min: 1,
      value_p95: 19,
    });
    expect(m[0]!.value_avg).toBeCloseTo(10.5);
    expect(m[0]!.loss_avg).toBeCloseTo(2.5);
    await store.rollUp(m0 + 3 * 60_000);
    m = await store.rollups({ check: "roll", from: m0, to: m0 + 3600_000, resolution: "1m" });
    expect(m.map((r) => r.count)).toEqual([20, 10]);
    expect(m[1]).toMatchObject({ value_min: 100, value_avg: 100, value_p95: 100, loss_avg: null });
    const h = await store.rollups({ check: "roll", from: m0, to: m0 + 3600_000, resolution: "1h" });
    expect(h).toHaveLength(1);
    expect(h[0]).toMatchObject({ bucket: m0, count: 30, ok: 28, fail: 1, value_min: 1, value_p95: 100 });
    expect(h[0]!.value_avg).toBeCloseTo((210 + 1000) / 30);
    // A late result (an outbox drained after an outage) marks its minute again.
    await store.write(
      batch({ results: [result({ check: "roll", at: m0 + 1000, value: 0.5, status: "error" })] }),
    );
    await store.rollUp(m0 + 3 * 60_000);
    const h2 = await store.rollups({ check: "roll", from: m0, to: m0 + 3600_000, resolution: "1h" });
    expect(h2[0]).toMatchObject({ count: 31, error: 1, value_min: 0.5 });
    const d = await store.rollups({ check: "roll", from: m0 - DAY, to: m0 + DAY, resolution: "1d" });
    expect(d[0]).toMatchObject({ count: 31 });
  });

  it("events: the timeline of a probe, a redelivered event stored once", async () => {
    const e1 = transition("wan", "ok", "failing", NOW - 50_000, "gateway unreachable");
    const e2 = transition("wan", "failing", "ok", NOW - 40_000);
    await store.write(batch({ events: [e1, e2, e1] }));
    await store.write(batch({ events: [e2] }));
    const got = await store.events({ probe: "pi-01", area: "wan", from: NOW - 60_000, to: NOW });
    expect(got).toEqual([e1, e2]);
  });

  it("state changes and health are kept; a retained repeat is not a new change", async () => {
    const s = {
      site: "branch-042",
      probe: "pi-01",
      state: "online" as const,
      at: NOW - 1000,
      version: "0.1.0",
      boot_id: "b1",
    };
    await store.write(
      batch({
        states: [s],
        health: [
          { site: "branch-042", probe: "pi-01", at: NOW - 900, areas: {}, outbox_rows: 0, evicted: 0 },
        ],
      }),
    );
    await store.write(batch({ states: [{ ...s, at: NOW }] }));
    await store.write(batch({ states: [{ ...s, state: "offline", at: NOW + 10 }] }));
    const got = await store.states({ probe: "pi-01", from: NOW - 5000, to: NOW + 5000 });
    expect(got.map((x) => [x.state, x.at])).toEqual([
      ["online", NOW - 1000],
      ["offline", NOW + 10],
    ]);
  });

  it("availability per area and incidents from area events, with the root area", async () => {
    const site = "avail";
    const P0 = Date.parse("2026-11-01T00:00:00Z");
    const ev = (area: string, from: string, to: string, at: number, reason = "r") => ({
      ...transition(area, from, to, at, reason),
      site,
    });
    await store.write(
      batch({
        events: [
          ev("lan", "unknown", "ok", P0 - DAY), // before the period: the state at its start
          ev("wan", "unknown", "ok", P0 - DAY + 1),
          ev("lan", "ok", "failing", P0 + 3600_000, "gateway down"),
          ev("wan", "ok", "failing", P0 + 3600_000 + 5000, "no route"),
          ev("wan", "failing", "ok", P0 + 2 * 3600_000),
          ev("lan", "failing", "ok", P0 + 2 * 3600_000 + 1000),
          ev("wan", "ok", "failing", P0 + 10 * 3600_000, "packet loss"), // still failing at the end
        ],
      }),
    );
    const from = P0;
    const to = P0 + 12 * 3600_000;
    const av = await store.availability({ site, from, to });
    const lan = av.find((a) => a.area === "lan")!;
    expect(lan.ms.failing).toBe(3600_000 + 1000);
    expect(lan.availability_pct).toBeCloseTo((100 * (12 * 3600_000 - 3601_000)) / (12 * 3600_000), 6);
    const wan = av.find((a) => a.area === "wan")!;
    expect(wan.ms.failing).toBe(3600_000 - 5000 + 2 * 3600_000);
    const inc = await store.incidents({ site, from, to });
    expect(inc.map((i) => [i.area, i.root_area, i.reason, i.end === null ? null : i.end - i.start])).toEqual([
      ["lan", "lan", "gateway down", 3601_000],
      ["wan", "lan", "no route", 3595_000],
      ["wan", "wan", "packet loss", null],
    ]);
    expect(inc[2]!.duration_ms).toBe(2 * 3600_000);
    // A period that starts inside an incident counts from its start.
    const mid = await store.incidents({ site, area: "lan", from: P0 + 90 * 60_000, to });
    expect(mid).toHaveLength(1);
    expect(mid[0]).toMatchObject({ start: P0 + 3600_000, duration_ms: 30 * 60_000 + 1000 });
  });

  it("checks are listed per probe", async () => {
    const c = await store.checks({ probe: "pi-02" });
    expect(c.map((x) => x.check)).toEqual(["range"]);
  });

  it("retention drops raw results past N days and keeps roll-ups a year", async () => {
    const site = "ret";
    const old = result({ site, check: "ret", at: NOW - 6 * DAY });
    const fresh = result({ site, check: "ret", at: NOW - 1000 });
    await store.write(batch({ results: [old, fresh] }));
    await store.rollUp(NOW + 120_000);
    clock = NOW + 2 * DAY; // the old one is now 8 days old
    try {
      const out = await store.retain(clock);
      expect(out.results_deleted).toBeGreaterThanOrEqual(1);
      if (store.engine === "postgres") expect(out.partitions_dropped).toBeGreaterThanOrEqual(1);
      const left = await store.results({ site, from: 0, to: clock });
      expect(left.map((r) => r.id)).toEqual([fresh.id]);
      const roll = await store.rollups({ site, from: NOW - 7 * DAY, to: clock, resolution: "1h" });
      expect(roll.reduce((n, r) => n + r.count, 0)).toBe(2);
      // Once dropped, a redelivery of the old result is refused as expired: counted, not doubled.
      expect(await store.write(batch({ results: [old] }))).toMatchObject({ inserted: 0, expired: 1 });
    } finally {
      clock = NOW;
    }
  });

  it("stats count what is stored", async () => {
    const s = await store.stats();
    expect(s.engine).toBe(store.engine);
    expect(s.results).toBeGreaterThan(30);
    expect(s.rollups_1m).toBeGreaterThan(0);
  });
});
