// The incident logic of services/hq/src/alerts/incidents.ts as scenarios: a pulled cable is one
// incident with its dependants inside, a cause learnt a moment late re-roots the incident, the same
// WAN target at two sites is one incident, flapping re-opens the same one, maintenance holds it.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { HealthPayload } from "../../../../services/contract/src/payloads.ts";
import type { CheckHistory } from "../../../../services/hq/src/fleet.ts";
import {
  MemoryIncidentStore,
  PersistentIncidentStore,
} from "../../../../services/hq/src/alerts/incident-store.ts";
import { sqliteHistoryStore } from "../../../../services/hq/src/history/sqlite-store.ts";
import { silentLogger } from "../../../../services/contract/src/log.ts";
import {
  IncidentEngine,
  PROBE_AREAS,
  type IncidentNotice,
  type ProbeArea,
  type ProbeSnapshot,
} from "../../../../services/hq/src/alerts/incidents.ts";

const S = {
  unreachableAfterMs: 10_000,
  settleMs: 2000,
  resolveAfterMs: 5000,
  flapWindowMs: 60_000,
  correlateWindowMs: 30_000,
};

function health(failing: ProbeArea[], at = 0): HealthPayload {
  const areas: HealthPayload["areas"] = {};
  for (const a of PROBE_AREAS)
    areas[a] = {
      state: failing.includes(a) ? "failing" : "ok",
      since: new Date(at).toISOString(),
      led: failing.includes(a) ? "red-blink" : "green",
      last_result_id: failing.includes(a) ? `r-${a}` : null,
      reason: failing.includes(a) ? `${a}-check: fail (timeout: no reply)` : `${a}-check: ok`,
    };
  return {
    schema: 1,
    at: new Date(at).toISOString(),
    boot_id: "b",
    mono_ms: 1,
    areas,
    outbox: { rows: 3, evicted: 0 },
  };
}

function checks(failing: ProbeArea[], wanTarget = "203.0.113.10"): CheckHistory[] {
  return PROBE_AREAS.map((a) => ({
    check: `${a}-check`,
    kind: a === "wan" ? "icmp" : a,
    area: a,
    target: a === "wan" ? wanTarget : "eth0",
    results: [
      {
        id: failing.includes(a) ? `r-${a}` : `ok-${a}`,
        seq: 1,
        check: `${a}-check`,
        kind: a,
        area: a,
        target: a === "wan" ? wanTarget : "eth0",
        status: failing.includes(a) ? "fail" : "ok",
        started_at: new Date(0).toISOString(),
        duration_ms: 1,
        metrics: {},
        ...(failing.includes(a)
          ? { error: { code: a === "link" ? "no_carrier" : "timeout", message: `${a} broke` } }
          : {}),
        boot_id: "b",
        mono_ms: 1,
        received_at: 0,
      },
    ],
  }));
}

function snap(
  site: string,
  failing: ProbeArea[],
  state: ProbeSnapshot["state"] = "online",
  wanTarget?: string,
): ProbeSnapshot {
  return {
    key: `${site}/pi`,
    site,
    probe: "pi",
    state,
    health: health(failing),
    checks: checks(failing, wanTarget),
  };
}

function rig() {
  const store = new MemoryIncidentStore();
  const engine = new IncidentEngine(store, S);
  const notices: IncidentNotice[] = [];
  engine.on("notify", (n: IncidentNotice) => notices.push(n));
  const feed = (s: ProbeSnapshot, now: number) => {
    engine.observe(s.key, s, now);
    engine.tick(now);
  };
  return { store, engine, notices, feed };
}

describe("dependency roll-up", () => {
  it("a pulled cable: one 'link down' with LAN, DHCP, DNS, WAN, PHONE inside, one resolve", () => {
    const { engine, notices, feed } = rig();
    feed(snap("lab", []), 0);
    feed(snap("lab", ["link"]), 1000);
    feed(snap("lab", ["link", "lan"]), 1200);
    feed(snap("lab", ["link", "lan", "dhcp", "dns"]), 1500);
    feed(snap("lab", ["link", "lan", "dhcp", "dns", "wan", "phone"]), 2000);
    engine.tick(3100);
    expect(notices).toHaveLength(1);
    const inc = notices[0]!.incident;
    expect(notices[0]!.status).toBe("firing");
    expect(inc.kind).toBe("link_down");
    expect(inc.title).toBe("lab: link down (pi) — also LAN, DHCP, DNS, WAN, PHONE");
    expect(inc.evidence[0]).toMatchObject({
      area: "link",
      code: "no_carrier",
      message: "link broke",
      check: "link-check",
    });
    // Plugged back: the link first, the dependants one by one; one resolve, after resolve_after.
    feed(snap("lab", ["lan", "dhcp", "dns", "wan", "phone"]), 10_000);
    feed(snap("lab", ["phone"]), 12_000);
    engine.tick(16_000);
    expect(notices).toHaveLength(1);
    feed(snap("lab", []), 14_000);
    engine.tick(18_999);
    expect(notices).toHaveLength(1);
    engine.tick(19_000);
    expect(notices.map((n) => n.status)).toEqual(["firing", "resolved"]);
    expect(notices[1]!.incident.id).toBe(inc.id);
    expect(engine.open()).toHaveLength(0);
  });

  it("a downstream area failing a moment before its cause is folded in before anything is sent", () => {
    const { notices, feed, engine } = rig();
    feed(snap("lab", ["wan"]), 0);
    feed(snap("lab", ["wan", "dns"]), 800);
    engine.tick(2900);
    expect(notices).toHaveLength(1);
    expect(notices[0]!.incident).toMatchObject({ kind: "dns_failing", root_area: "dns" });
    expect(notices[0]!.incident.title).toBe("lab: DNS failing (pi) — also WAN");
  });

  it("siblings are separate causes: DNS does not explain DHCP", () => {
    const { notices, feed, engine } = rig();
    feed(snap("lab", ["dns"]), 0);
    feed(snap("lab", ["dns", "dhcp"]), 500);
    engine.tick(3000);
    expect(notices.map((n) => n.incident.kind).sort()).toEqual(["dhcp_failing", "dns_failing"]);
  });

  it("a cause that appears after the announcement opens its own incident; the old one stays", () => {
    const { notices, feed, engine } = rig();
    feed(snap("lab", ["dns"]), 0);
    engine.tick(2500);
    feed(snap("lab", ["dns", "link"]), 3000);
    engine.tick(6000);
    expect(notices.map((n) => n.incident.kind)).toEqual(["dns_failing", "link_down"]);
  });
});

describe("probe unreachable", () => {
  it("offline at HQ opens 'probe unreachable' after the delay, with its last health, not area alerts", () => {
    const { notices, feed, engine } = rig();
    feed(snap("lab", ["dns"]), 0);
    engine.tick(3000);
    const offline = { ...snap("lab", ["dns"]), state: "offline" as const };
    feed(offline, 5000);
    engine.tick(14_999);
    expect(notices.map((n) => n.incident.kind)).toEqual(["dns_failing"]);
    engine.tick(15_000);
    engine.tick(17_000);
    expect(notices.map((n) => n.incident.kind)).toEqual(["dns_failing", "probe_unreachable"]);
    const inc = notices[1]!.incident;
    expect(inc.last_health?.outbox.rows).toBe(3);
    expect(inc.title).toBe("lab: probe unreachable (pi)");
    // Back online, its outbox tells what happened meanwhile: folded into the same incident.
    feed(snap("lab", ["link", "lan", "dns"]), 20_000);
    feed(snap("lab", []), 21_000);
    engine.tick(30_000);
    expect(notices.map((n) => `${n.incident.kind}:${n.status}`)).toEqual([
      "dns_failing:firing",
      "probe_unreachable:firing",
      "dns_failing:resolved",
      "probe_unreachable:resolved",
    ]);
    expect(notices[3]!.incident.title).toBe(
      "lab: probe unreachable (pi) — reported: LINK failing, LAN failing",
    );
  });

  it("HQ losing the broker makes every probe unreachable after the delay", () => {
    const { notices, feed, engine } = rig();
    feed(snap("a", []), 0);
    feed(snap("b", []), 0);
    engine.setBroker(false, 1000);
    engine.tick(11_000);
    engine.tick(13_100);
    expect(notices.map((n) => `${n.incident.kind}:${n.incident.site}`)).toEqual([
      "probe_unreachable:a",
      "probe_unreachable:b",
    ]);
    engine.setBroker(true, 14_000);
    engine.tick(19_000);
    expect(notices.filter((n) => n.status === "resolved")).toHaveLength(2);
  });

  it("a short offline blip (shorter than the delay) is no incident", () => {
    const { notices, feed, engine } = rig();
    feed(snap("lab", [], "offline"), 0);
    feed(snap("lab", []), 9000);
    engine.tick(30_000);
    expect(notices).toEqual([]);
  });
});

describe("correlation across sites", () => {
  it("the same WAN target failing at two sites is one incident naming both", () => {
    const { notices, feed, engine } = rig();
    feed(snap("a", ["wan"]), 0);
    feed(snap("b", ["wan", "phone"]), 500);
    engine.tick(2500);
    expect(notices).toHaveLength(1);
    const inc = notices[0]!.incident;
    expect(inc.kind).toBe("wan_target_down");
    expect(inc.sites).toEqual(["a", "b"]);
    expect(inc.title).toBe("WAN target 203.0.113.10 down at 2 sites: a, b");
    expect(inc.members.map((m) => `${m.site}:${m.area}`).sort()).toEqual(["a:wan", "b:phone", "b:wan"]);
  });

  it("different targets are different incidents", () => {
    const { notices, feed, engine } = rig();
    feed(snap("a", ["wan"], "online", "203.0.113.10"), 0);
    feed(snap("b", ["wan"], "online", "203.0.113.99"), 500);
    engine.tick(2500);
    expect(notices.map((n) => n.incident.kind)).toEqual(["wan_down", "wan_down"]);
  });
});

describe("quiet by design", () => {
  it("a failure that recovers before it settled is never announced", () => {
    const { notices, feed, engine } = rig();
    feed(snap("lab", ["dns"]), 0);
    feed(snap("lab", []), 1000);
    engine.tick(20_000);
    expect(notices).toEqual([]);
  });

  it("failing again while resolving keeps the incident: nothing sent", () => {
    const { notices, feed, engine } = rig();
    feed(snap("lab", ["dns"]), 0);
    engine.tick(2000);
    feed(snap("lab", []), 3000);
    feed(snap("lab", ["dns"]), 6000);
    feed(snap("lab", []), 7000);
    engine.tick(11_999);
    expect(notices.map((n) => n.status)).toEqual(["firing"]);
    engine.tick(12_000);
    expect(notices.map((n) => n.status)).toEqual(["firing", "resolved"]);
  });

  it("re-opened within the flap window: the same incident id, its re-open counted", () => {
    const { notices, feed, engine } = rig();
    feed(snap("lab", ["dns"]), 0);
    engine.tick(2000);
    feed(snap("lab", []), 3000);
    engine.tick(8000);
    feed(snap("lab", ["dns"]), 20_000);
    engine.tick(22_000);
    expect(notices.map((n) => n.status)).toEqual(["firing", "resolved", "firing"]);
    expect(notices[2]!.incident.id).toBe(notices[0]!.incident.id);
    expect(notices[2]!.incident.reopened).toBe(1);
    // After the window it is a new incident.
    feed(snap("lab", []), 23_000);
    engine.tick(28_000);
    feed(snap("lab", ["dns"]), 100_000);
    engine.tick(102_000);
    expect(notices.at(-1)!.incident.id).not.toBe(notices[0]!.incident.id);
  });

  it("a site in maintenance is not announced; the incident is announced if it outlasts the window", () => {
    const { notices, feed, engine, store } = rig();
    const w = engine.addMaintenance(
      { site: "lab", from: 0, until: 10_000, reason: "switch swap", by: "op" },
      0,
    );
    feed(snap("lab", ["link"]), 1000);
    feed(snap("other", ["dns"]), 1000);
    engine.tick(5000);
    expect(notices.map((n) => n.incident.site)).toEqual(["other"]);
    expect(store.list({ open: true }).find((i) => i.site === "lab")?.in_maintenance).toBe(true);
    engine.tick(10_000);
    expect(notices.map((n) => n.incident.site)).toEqual(["other", "lab"]);
    expect(engine.removeMaintenance(w.id, 10_000)).toBe(false);
  });

  it("an incident that ends inside the window is never announced at all", () => {
    const { notices, feed, engine } = rig();
    engine.addMaintenance({ site: "lab", from: 0, until: 60_000, reason: "", by: "op" }, 0);
    feed(snap("lab", ["link"]), 1000);
    feed(snap("lab", []), 20_000);
    engine.tick(40_000);
    engine.tick(70_000);
    expect(notices).toEqual([]);
  });
});

describe("store and acknowledgement", () => {
  it("incidents are stored with their times; acknowledging records who and when", () => {
    const { store, feed, engine } = rig();
    feed(snap("lab", ["dns"]), 1000);
    engine.tick(3000);
    const [inc] = store.list({ open: true });
    expect(inc).toMatchObject({ opened_at: 1000, notified_at: 3000, resolved_at: null });
    expect(engine.acknowledge(inc!.id, "alice", 4000)).toBe(true);
    expect(store.get(inc!.id)).toMatchObject({ acknowledged_at: 4000, acknowledged_by: "alice" });
    expect(engine.acknowledge("nope", "alice", 4000)).toBe(false);
    feed(snap("lab", []), 5000);
    engine.tick(10_000);
    expect(store.list({ open: false })[0]).toMatchObject({ id: inc!.id, resolved_at: 10_000 });
  });

  it("the memory store keeps only the latest resolved incidents", () => {
    const store = new MemoryIncidentStore(2);
    const engine = new IncidentEngine(store, { ...S, flapWindowMs: 0 });
    for (let i = 0; i < 4; i++) {
      const t = i * 100_000;
      engine.observe("lab/pi", snap("lab", ["dns"]), t);
      engine.tick(t + 2000);
      engine.observe("lab/pi", snap("lab", []), t + 3000);
      engine.tick(t + 9000);
    }
    expect(store.list({ open: false })).toHaveLength(2);
  });
});

describe("incidents outlive an HQ restart (history store)", () => {
  it("an open, acknowledged incident comes back open with its times: not notified again, resolved once", async () => {
    const dir = mkdtempSync(join(tmpdir(), "netprobe-incidents-"));
    try {
      const retention = { raw_days: 30, rollup_days: 365, event_days: 365 };
      const history = sqliteHistoryStore(join(dir, "h.db"), retention);
      await history.open();
      const store = await PersistentIncidentStore.open(history, silentLogger());
      const engine = new IncidentEngine(store, S);
      const notices: IncidentNotice[] = [];
      engine.on("notify", (n: IncidentNotice) => notices.push(n));
      const feed = (e: IncidentEngine, s: ProbeSnapshot, now: number) => {
        e.observe(s.key, s, now);
        e.tick(now);
      };
      feed(engine, snap("lab", []), 0);
      feed(engine, snap("lab", ["link", "lan"]), 1000);
      engine.tick(3100);
      expect(notices.map((n) => n.status)).toEqual(["firing"]);
      const id = notices[0]!.incident.id;
      engine.acknowledge(id, "alice", 4000);
      await store.flush();
      await history.close();

      // HQ restarts: a new store over the same file, a new engine.
      const history2 = sqliteHistoryStore(join(dir, "h.db"), retention);
      await history2.open();
      const store2 = await PersistentIncidentStore.open(history2, silentLogger());
      const engine2 = new IncidentEngine(store2, S);
      const after: IncidentNotice[] = [];
      engine2.on("notify", (n: IncidentNotice) => after.push(n));
      expect(engine2.open().map((i) => [i.id, i.opened_at, i.acknowledged_by])).toEqual([
        [id, 1000, "alice"],
      ]);
      // Still failing when the fleet's state comes back: the same incident, no second page.
      feed(engine2, snap("lab", ["link", "lan"]), 10_000);
      engine2.tick(20_000);
      expect(after).toEqual([]);
      expect(engine2.open()).toHaveLength(1);
      // Repaired: it resolves, once.
      feed(engine2, snap("lab", []), 30_000);
      engine2.tick(40_000);
      expect(after.map((n) => [n.status, n.incident.id])).toEqual([["resolved", id]]);
      await store2.flush();
      expect((await history2.loadIncidents(10)).map((i) => [i.id, i.resolved_at !== null])).toEqual([
        [id, true],
      ]);
      await history2.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
