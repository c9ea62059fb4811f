// The history routes' bounds and paging, over the in-memory reader: a fixed set of ranges, at most
// MAX_POINTS points a check, checks and events paged with cursors that lose nothing.
import { describe, expect, it } from "vitest";
import type { RollupRow, StoredEvent } from "../../../services/hq/src/history/store.ts";
import { historyRoute, MAX_POINTS, type SeriesPoint } from "../../../services/hq/src/web-history.ts";
import { MemoryHistory } from "../../doubles/history-memory.ts";

const NOW = Date.parse("2026-12-01T00:00:00Z");
const H = 3_600_000;
const site = "branch-042";
const probe = "p1";

const rollup = (check: string, bucket: number, avg: number, fail = 0): RollupRow => ({
  site,
  probe,
  check,
  kind: "icmp",
  area: "wan",
  resolution: "1h",
  bucket,
  count: 60,
  ok: 60 - fail,
  warn: 0,
  fail,
  error: 0,
  value_min: avg,
  value_avg: avg,
  value_p95: avg * 2,
  loss_avg: 0,
});
const checks = ["a-icmp", "b-icmp", "c-icmp"].map((check) => ({
  site,
  probe,
  check,
  kind: "icmp",
  area: "wan",
  target: "203.0.113.1",
  first_at: NOW - 90 * 24 * H,
  last_at: NOW,
}));
const ev = (at: number, to: string): StoredEvent => ({
  site,
  probe,
  type: "area_transition",
  at,
  area: "wan",
  from: "ok",
  to: to as StoredEvent["to"],
  reason: to,
  result_id: null,
  received_at: at,
  boot_id: "b",
  mono_ms: at,
});
const get = async (store: MemoryHistory, q: string) => {
  const a = await historyRoute(store, new URL(`http://hq${q}`), NOW);
  if (!a || "document" in a) throw new Error("expected JSON");
  return a as { code: number; body: Record<string, unknown> };
};

describe("history routes", () => {
  const rollups = Array.from({ length: 90 * 24 }, (_, i) =>
    rollup("a-icmp", NOW - 90 * 24 * H + i * H, 10 + (i % 2)),
  );
  const store = new MemoryHistory({ rollups, checks });

  it("90 days of hourly roll-ups: at most 400 points, weighted means of merged buckets", async () => {
    const a = await get(store, `/api/history/series?key=${site}/${probe}&range=90d`);
    expect(a.code).toBe(200);
    const c = (a.body.checks as Array<{ check: string; points: SeriesPoint[] }>)[0]!;
    // 2160 h / 400 → 5.4 → 6 h a point → 360 points, each the mean of three 10s and three 11s.
    expect(a.body.step_ms).toBe(6 * H);
    expect(c.points).toHaveLength(360);
    expect(c.points.length).toBeLessThanOrEqual(MAX_POINTS);
    expect(c.points[0]).toEqual([NOW - 90 * 24 * H, 10.5, 22, 0, 360, 0]);
  });

  it("checks are paged by name", async () => {
    const p1 = await get(store, `/api/history/series?key=${site}/${probe}&range=7d&limit=2`);
    expect((p1.body.checks as Array<{ check: string }>).map((c) => c.check)).toEqual(["a-icmp", "b-icmp"]);
    expect(p1.body).toMatchObject({ checks_total: 3, next_cursor: "b-icmp" });
    const p2 = await get(store, `/api/history/series?key=${site}/${probe}&range=7d&limit=2&cursor=b-icmp`);
    expect((p2.body.checks as Array<{ check: string }>).map((c) => c.check)).toEqual(["c-icmp"]);
    expect(p2.body.next_cursor).toBeNull();
  });

  it("refuses what is not bounded: unknown range, big limit, no scope, both scopes", async () => {
    for (const q of [
      `/api/history/series?key=${site}/${probe}&range=365d`,
      `/api/history/series?key=${site}/${probe}&range=1h&limit=101`,
      `/api/history/events?range=1h`,
      `/api/history/events?site=${site}&key=${site}/${probe}&range=1h`,
      `/api/history/series?site=${site}&range=1h`,
      `/api/history/events?site=${site}&range=1h&cursor=x`,
    ])
      expect((await get(store, q)).code, q).toBe(400);
    expect(
      (await historyRoute(undefined, new URL(`http://hq/api/history/events?site=${site}`), NOW))?.code,
    ).toBe(404);
    expect(await historyRoute(store, new URL("http://hq/api/fleet"), NOW)).toBeNull();
  });

  it("the events cursor loses nothing when a page ends inside one millisecond", async () => {
    const t = NOW - H;
    const events = [
      ev(t, "failing"),
      ev(t + 1, "ok"),
      ev(t + 1, "failing"),
      ev(t + 1, "ok"),
      ev(t + 2, "failing"),
    ];
    const s = new MemoryHistory({ events });
    const seen: StoredEvent[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const a = await get(
        s,
        `/api/history/events?site=${site}&range=1h&limit=2${cursor ? `&cursor=${cursor}` : ""}`,
      );
      seen.push(...(a.body.events as StoredEvent[]));
      cursor = a.body.next_cursor as string | null;
      pages++;
    } while (cursor !== null && pages < 10);
    expect(seen.map((e) => `${e.at - t}:${e.to}`)).toEqual([
      "0:failing",
      "1:ok",
      "1:failing",
      "1:ok",
      "2:failing",
    ]);
    expect(pages).toBe(3);
  });
});
