// ProbeService end to end without a network: a real store in a temp dir, a scripted check kind, the
// fake uplink draining the real outbox, a recording LED panel. What HQ would receive is asserted.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { Measurement } from "../../services/probe/src/checks/check.ts";
import { validateConfig } from "../../services/probe/src/config/validate.ts";
import type {
  AreaTransitionEvent,
  HealthPayload,
  ReplyPayload,
  ResultPayload,
} from "../../services/contract/src/payloads.ts";
import { lookName } from "../../services/contract/src/led-table.ts";
import { silentLogger } from "../../services/contract/src/log.ts";
import { monoMs } from "../../services/probe/src/runner/clock.ts";
import type { Clock } from "../../services/probe/src/runner/clock-sync.ts";
import { ProbeService } from "../../services/probe/src/service.ts";
import { fakeUplinks } from "../doubles/fake-uplink.ts";
import { RecordingLeds, scriptedKind } from "../doubles/scripted-check.ts";

const BASE = "netprobe/v1/branch-1/probe-1/";
const failed: Measurement = {
  status: "fail",
  metrics: {},
  error: { code: "refused", message: "connection refused" },
};

let dir: string | undefined;
let service: ProbeService | undefined;
afterEach(async () => {
  await service?.stop();
  service = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

/** A wall clock the test can step, against the real monotonic one. */
function steppableClock() {
  let shift = 0;
  const clock: Clock = { wallMs: () => Date.now() + shift, monoMs };
  return { clock, step: (ms: number) => (shift += ms) };
}

function startService(script: Measurement[], check: Record<string, unknown> = {}, clock?: Clock) {
  dir = mkdtempSync(join(tmpdir(), "np-service-"));
  const checked = validateConfig({
    site: "branch-1",
    probe: "probe-1",
    broker: { url: "mqtt://broker.invalid" },
    store: { path: join(dir, "probe.db") },
    leds: { lamp_test: "0s" },
    areas: { fail_after: 3, recover_after: 2 },
    // jitter 0: the first run starts with the service; later ones only when asked (24 h interval).
    checks: [{ name: "gw-tcp", kind: "tcp", target: "192.0.2.1:443", interval: "24h", jitter: 0, ...check }],
  });
  if (!checked.ok) throw new Error(checked.problems.join("\n"));
  const kind = scriptedKind("tcp", script);
  const uplinks = fakeUplinks();
  const leds = new RecordingLeds();
  service = new ProbeService(checked.config, silentLogger(), leds, undefined, {
    uplink: uplinks.factory,
    kinds: (k) => (k === "tcp" ? kind.kind : undefined),
    ...(clock ? { clock } : {}),
  });
  service.start();
  return { service, kind, uplink: uplinks.latest(), leds };
}

async function until(what: string, ok: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("ProbeService", () => {
  it("a check failing fail_after times in a row turns its area failing: event, health and LED follow", async () => {
    const { service: s, uplink, leds } = startService([failed]);
    uplink.connect();
    const results = () => uplink.payloadsOn("results/gw-tcp") as ResultPayload[];
    const transitions = () =>
      (uplink.payloadsOn("events") as AreaTransitionEvent[]).filter((e) => e.type === "area_transition");
    await until("first result", () => results().length === 1);
    for (const n of [2, 3]) {
      expect(transitions()).toEqual([]); // below fail_after: no verdict yet
      expect(lookName(leds.last!.wan)).toBe("green-slow-blink");
      s.runNow("gw-tcp");
      await until(`result ${n}`, () => results().length === n);
    }
    const [event] = transitions();
    expect(event).toMatchObject({ area: "wan", from: "unknown", to: "failing", result_id: results()[2]!.id });
    expect(event!.reason).toBe("gw-tcp: refused: connection refused");
    expect(lookName(leds.last!.wan)).toBe("red-blink"); // failing, changed in the last 5 minutes
    const health = (uplink.payloadsOn("health") as HealthPayload[]).at(-1)!;
    expect(health.areas.wan).toMatchObject({ state: "failing", led: "red-blink" });
    // Topic flags from the contract: results and events not retained, health retained; all via the outbox.
    const flags = (t: string) => uplink.published.find((p) => p.topic === BASE + t)!;
    expect(flags("results/gw-tcp")).toMatchObject({ qos: 1, retain: false, via: "outbox" });
    expect(flags("events")).toMatchObject({ qos: 1, retain: false, via: "outbox" });
    expect(flags("health")).toMatchObject({ qos: 1, retain: true, via: "outbox" });
    expect(flags("config")).toMatchObject({ qos: 1, retain: true, via: "direct" });
    expect(results().map((r) => r.seq)).toEqual([1, 2, 3].map((i) => results()[0]!.seq + i - 1));
  });

  it("thresholds come with the scheduled check: a slow connect is published as warn", async () => {
    const { uplink } = startService([{ status: "ok", metrics: { connect_ms: 80 } }], {
      thresholds: { connect_ms: { warn: 50, fail: 200 } },
    });
    uplink.connect();
    await until("result", () => uplink.payloadsOn("results/gw-tcp").length === 1);
    const [r] = uplink.payloadsOn("results/gw-tcp") as ResultPayload[];
    expect(r).toMatchObject({
      status: "warn",
      error: { code: "threshold", message: "connect_ms 80 > warn 50" },
    });
  });

  it("a result stored before the wall clock stepped is published with the corrected time", async () => {
    const c = steppableClock();
    const { kind, uplink } = startService([{ status: "ok", metrics: {} }], {}, c.clock);
    const stored = Date.now();
    await until("first run", () => kind.runs() === 1);
    await new Promise((r) => setTimeout(r, 100)); // done, and in the outbox: the uplink is down
    const DAY = 86_400_000;
    c.step(DAY); // NTP; the uplink connecting samples the clock before the outbox drains
    uplink.connect();
    await until("result", () => uplink.payloadsOn("results/gw-tcp").length >= 1);
    const [r] = uplink.payloadsOn("results/gw-tcp") as ResultPayload[];
    expect(r!.clock).toBe("corrected");
    expect(Math.abs(Date.parse(r!.started_at) - (stored + DAY))).toBeLessThan(1000);
  });

  it("cmd/run goes to the service as the command target; the reply is published directly and expires", async () => {
    const { uplink } = startService([{ status: "ok", metrics: {} }]);
    uplink.connect();
    await until("first result", () => uplink.payloadsOn("results/gw-tcp").length === 1);
    const ask = (check: string, id: string) =>
      uplink.emit("command", {
        name: "run",
        payload: Buffer.from(JSON.stringify({ schema: 1, request_id: id, check })),
      });
    ask("gw-tcp", "r1");
    ask("nope", "r2");
    await until(
      "replies",
      () => uplink.published.filter((p) => p.topic.startsWith(BASE + "reply/")).length === 2,
    );
    const [ok] = uplink.payloadsOn("reply/r1") as ReplyPayload[];
    const [refused] = uplink.payloadsOn("reply/r2") as ReplyPayload[];
    expect(ok).toMatchObject({ ok: true, result: { started: ["gw-tcp"] } });
    expect(refused).toMatchObject({ ok: false, error: { code: "unknown_check" } });
    expect(uplink.published.find((p) => p.topic === BASE + "reply/r1")).toMatchObject({
      qos: 1,
      retain: false,
      via: "direct",
      expirySeconds: 60,
    });
    await until("the run it started", () => uplink.payloadsOn("results/gw-tcp").length === 2);
  });
});
