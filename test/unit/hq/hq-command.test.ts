import { describe, expect, it } from "vitest";
import { Fleet } from "../../../services/hq/src/fleet.ts";
import { fleetSubscriptions } from "../../../services/hq/src/fleet-link.ts";
import { formatFleet } from "../../../services/hq/src/hq-command.ts";
import { loadHqConfig, HqConfigError } from "../../../services/hq/src/hq-config.ts";

const T = "netprobe/v1/branch-042/pi-01/";
const iso = (ms: number) => new Date(ms).toISOString();
const state = (s: "online" | "offline") =>
  JSON.stringify({ schema: 1, state: s, version: "0.1.0", boot_id: "b", started_at: iso(0) });
const health = (wan: "ok" | "failing", since: number) =>
  JSON.stringify({
    schema: 1,
    at: iso(since),
    boot_id: "b",
    mono_ms: 1,
    areas: { wan: { state: wan, since: iso(since), led: "x", last_result_id: null, reason: `wan ${wan}` } },
    outbox: { rows: 0, evicted: 0 },
  });
let n = 0;
const result = (seq: number, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    schema: 1,
    id: `id-${seq}-${n++}`,
    seq,
    site: "branch-042",
    probe: "pi-01",
    check: "gw",
    kind: "icmp",
    area: "lan",
    target: "192.0.2.1",
    started_at: iso(1000 * seq),
    boot_id: "b",
    mono_ms: seq,
    duration_ms: 3,
    status: "ok",
    metrics: { rtt_avg_ms: 1.5, loss_pct: 0 },
    detail: {},
    version: "0.1.0",
    ...extra,
  });

describe("HQ fleet state", () => {
  it("online/offline from state, the LED panel from health with the probe's LED table", () => {
    const f = new Fleet();
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(f.ingest(`${T}state`, state("online"), now).ok).toBe(true);
    f.ingest(`${T}health`, health("failing", now - 1000), now);
    let p = f.list(now)[0]!;
    expect(p.state).toBe("online");
    const led = (name: string) => p.leds.find((l) => l.led === name)!.look;
    expect(led("wan")).toBe("red-blink"); // a recent failure blinks, whatever the payload's `led` says
    expect(led("status")).toBe("green-heartbeat");
    expect(led("lan")).toBe("off");
    p = f.list(now + 6 * 60_000)[0]!;
    expect(p.leds.find((l) => l.led === "wan")!.look).toBe("red"); // solid after 5 minutes
    f.ingest(`${T}state`, state("offline"), now + 1);
    p = f.list(now)[0]!;
    expect(p.state).toBe("offline");
    expect(p.leds.find((l) => l.led === "status")!.look).toBe("amber-fast-blink");
  });

  it("drops duplicate results by id, keeps a bounded history in seq order", () => {
    const f = new Fleet({ resultsPerCheck: 5 });
    const r3 = result(3);
    f.ingest(`${T}results/gw`, r3);
    f.ingest(`${T}results/gw`, r3);
    for (const seq of [1, 2, 4, 5, 6, 7]) f.ingest(`${T}results/gw`, result(seq));
    const d = f.get("branch-042/pi-01")!;
    expect(f.counters.duplicates).toBe(1);
    expect(d.results_total).toBe(7);
    expect(d.checks[0]!.results.map((r) => r.seq)).toEqual([3, 4, 5, 6, 7]);
  });

  it("never throws on malformed messages: counts them by reason and keeps the state", () => {
    const f = new Fleet();
    f.ingest(`${T}state`, state("online"));
    const bad: Array<[string, string | Buffer]> = [
      [`${T}state`, "{not json"],
      [`${T}state`, Buffer.from([0xff, 0xfe, 0x00])],
      [`${T}state`, JSON.stringify({ schema: 1, state: "sideways" })],
      [`${T}health`, "null"],
      [`${T}results/gw`, result(1, { site: "elsewhere" })],
      [`${T}results/gw`, result(1, { metrics: { rtt: "fast" } })],
      [`${T}results/gw`, "x".repeat(2 * 1024 * 1024)],
      [`${T}bogus`, "{}"],
      ["netprobe/v1/only-site", "{}"],
      ["elsewhere/topic", "{}"],
    ];
    for (let i = 0; i < 1000; i++) {
      const [topic, payload] = bad[i % bad.length]!;
      expect(() => f.ingest(topic, payload)).not.toThrow();
    }
    expect(f.counters.malformed).toBe(1000);
    expect(f.counters.malformed_by_reason).toMatchObject({
      bad_json: 200,
      mismatch: 100,
      too_large: 100,
      bad_topic: 300,
    });
    expect(f.list()[0]!.state).toBe("online");
    expect(f.size).toBe(1);
  });

  it("the terminal view shows each probe's state and first problem", () => {
    const f = new Fleet();
    f.ingest(`${T}state`, state("online"));
    f.ingest(`${T}health`, health("failing", Date.now()));
    const text = formatFleet(f.list(), Date.now(), false);
    expect(text).toMatch(/branch-042\/pi-01\s+online/);
    expect(text).toContain("WAN: wan failing");
  });
});

describe("HQ subscriptions and config", () => {
  it("a shared group splits only results; state, health, events go to every instance", () => {
    expect(fleetSubscriptions(undefined)).toEqual(["netprobe/v1/+/+/#"]);
    const s = fleetSubscriptions("hq");
    expect(s).toContain("$share/hq/netprobe/v1/+/+/results/#");
    expect(s).toContain("netprobe/v1/+/+/state");
    expect(s.filter((x) => x.startsWith("$share/"))).toHaveLength(1);
  });

  it("flags over file defaults; a shared group without MQTT 5 is refused", () => {
    const c = loadHqConfig({ url: "mqtt://192.0.2.5:1883", port: "9000" }, {});
    expect(c.http).toMatchObject({ host: "127.0.0.1", port: 9000 });
    expect(c.broker.protocol_version).toBe(5);
    expect(() => loadHqConfig({ url: "mqtt://x", group: "g", mqtt3: true }, {})).toThrow(HqConfigError);
    expect(() => loadHqConfig({}, {})).toThrow(/broker/);
  });
});
