// The probe end to end in the simulated branch office: real mosquitto, dnsmasq, nftables, ICMP
// across a bridge and a NATing gateway. What headquarters sees is read from a real subscriber.
import Database from "better-sqlite3";
import { Value } from "@sinclair/typebox/value";
import { describe, expect, it } from "vitest";
import { HealthPayload, ResultPayload, StatePayload } from "../../services/contract/src/payloads.ts";
import { useLab } from "./lab-fixture.ts";
import {
  exited,
  probeDb,
  probeStatus,
  startHq,
  startProbe,
  uniqueResults,
  waitFor,
} from "./probe-harness.ts";

// From scripts/lab/probe.lab.yaml: checks every 2 s, red after 2 failing runs.
const INTERVAL_MS = 2000;
const FAIL_AFTER = 2;

describe("probe in the branch office", () => {
  const lab = useLab();
  let probe: ReturnType<typeof startProbe>;
  let hq: ReturnType<typeof startHq>;

  it("within 10 s HQ has a retained online state, a schema-valid ICMP result and a retained health", async () => {
    hq = startHq(lab(), "hq-e2e", true);
    await waitFor("subscriber connected", 10_000, () => hq.connected());
    const t0 = Date.now();
    probe = startProbe(lab());
    const result = await waitFor("an icmp result at HQ", 10_000, () =>
      hq.on("results/").find((m) => m.payload.kind === "icmp"),
    );
    await waitFor("health at HQ", 10_000 - (Date.now() - t0), () => hq.on("health").length > 0);
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeLessThan(10_000);
    expect(Value.Errors(ResultPayload, result.payload).First()).toBeUndefined();
    expect(result.payload).toMatchObject({ site: "lab", probe: "probe-1", status: "ok" });
    expect(result.payload.metrics).toMatchObject({ loss_pct: 0 });

    // A headquarters client that connects later gets the retained state and health at once.
    const late = startHq(lab(), "hq-late", false);
    const state = await waitFor("retained state", 5000, () => late.on("state").find((m) => m.retain));
    const health = await waitFor("retained health", 5000, () => late.on("health").find((m) => m.retain));
    await late.stop();
    expect(Value.Check(StatePayload, state.payload)).toBe(true);
    expect(state.payload.state).toBe("online");
    expect(Value.Errors(HealthPayload, health.payload).First()).toBeUndefined();
  });

  it("gateway down → LAN and WAN turn red within the hysteresis, and HQ gets the events and health once it is back", async () => {
    await waitFor("lan and wan green", 15_000, () => {
      const a = probeStatus(lab()).health?.areas;
      return a?.lan?.state === "ok" && a.wan?.state === "ok";
    });
    const t0 = Date.now();
    await lab().fault("gateway-down", true);
    await waitFor("lan and wan red in the probe's own view", (FAIL_AFTER + 1) * INTERVAL_MS + 3000, () => {
      const a = probeStatus(lab()).health?.areas;
      return a?.lan?.state === "failing" && a.wan?.state === "failing";
    });
    const redAfterMs = Date.now() - t0;
    console.log(
      `gateway-down → LAN/WAN red after ${redAfterMs} ms (bound: ${(FAIL_AFTER + 1) * INTERVAL_MS} ms + timeout)`,
    );
    await lab().fault("gateway-down", false);

    const toRed = await waitFor("events lan→failing at HQ", 30_000, () =>
      hq.on("events").find((m) => m.payload.area === "lan" && m.payload.to === "failing"),
    );
    expect(toRed.payload.reason).toMatch(/gateway-icmp/);
    await waitFor("a health at HQ saying lan and wan are failing", 10_000, () =>
      hq.on("health").find((m) => {
        const areas = m.payload.areas as Record<string, { state: string; led: string }>;
        return (
          areas.lan?.state === "failing" && areas.wan?.state === "failing" && areas.lan.led.startsWith("red")
        );
      }),
    );
    await waitFor("lan back to ok at HQ", 20_000, () =>
      hq
        .on("events")
        .find((m) => m.payload.area === "lan" && m.payload.from === "failing" && m.payload.to === "ok"),
    );
  });

  it("broker down for 60 s loses nothing: every result reaches HQ once after dedup, in seq order per check", async () => {
    const before = uniqueResults(hq.messages).length;
    await lab().fault("broker-down", true);
    await new Promise((r) => setTimeout(r, 60_000));
    const queued = probeStatus(lab()).outbox.rows;
    await lab().fault("broker-down", false);
    await waitFor("outbox drained", 30_000, () => probeStatus(lab()).outbox.rows === 0);
    const maxSeq = Math.max(...probeStatus(lab()).checks.map((c) => c.seq));
    await waitFor(`seq ${maxSeq} at HQ`, 10_000, () =>
      uniqueResults(hq.messages).some((r) => r.seq >= maxSeq),
    );

    const results = uniqueResults(hq.messages);
    console.log(
      `broker-down 60 s: ${queued} rows queued, ${results.length - before} results delivered after`,
    );
    expect(queued).toBeGreaterThan(60); // ~90 results + events/health while the broker was away
    const seqs = results.map((r) => r.seq).sort((a, b) => a - b);
    // Each seq exactly once after dropping duplicate ids, and no gap from the first to the last.
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(seqs.at(-1)! - seqs[0]! + 1).toBe(seqs.length);
    for (const check of new Set(results.map((r) => r.check))) {
      const mine = results.filter((r) => r.check === check).map((r) => r.seq);
      expect(mine).toEqual([...mine].sort((a, b) => a - b));
    }
  });

  it("SIGTERM stops the probe cleanly within 5 s and it says offline", async () => {
    probe.kill("SIGTERM");
    const { code, ms } = await exited(probe);
    expect(code).toBe(0);
    expect(ms).toBeLessThan(5000);
    await waitFor("offline state at HQ", 5000, () => hq.on("state").at(-1)?.payload.state === "offline");
  });

  it("kill -9 at 20 random instants: the database stays intact and every committed result reaches HQ", async () => {
    for (let i = 0; i < 20; i++) {
      const p = startProbe(lab());
      await new Promise((r) => setTimeout(r, 300 + Math.random() * 1700));
      p.kill("SIGKILL");
      await exited(p);
      const db = new Database(probeDb(lab()), { readonly: true });
      try {
        expect(db.pragma("integrity_check", { simple: true })).toBe("ok");
      } finally {
        db.close();
      }
    }
    // One last clean run drains whatever the killed ones committed but did not deliver.
    probe = startProbe(lab());
    await waitFor("outbox drained after the kills", 30_000, () => probeStatus(lab()).outbox.rows === 0);
    const committed = Math.max(...probeStatus(lab()).checks.map((c) => c.seq));
    await waitFor(`seq ${committed} at HQ`, 10_000, () =>
      uniqueResults(hq.messages).some((r) => r.seq >= committed),
    );
    const seqs = new Set(uniqueResults(hq.messages).map((r) => r.seq));
    const missing = [];
    for (let s = 1; s <= committed; s++) if (!seqs.has(s)) missing.push(s);
    expect(missing).toEqual([]);
    probe.kill("SIGTERM");
    await exited(probe);
    await hq.stop();
  });
});
