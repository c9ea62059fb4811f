// Clock without RTC, for real: `netprobe run` in the lab under libfaketime, its wall clock years
// in the past (1970 as a Pi after a power loss, 2019 as one with a stale fake-hwclock), then
// stepped to the real time as NTP would, by rewriting FAKETIME_TIMESTAMP_FILE while it runs.
// CLOCK_MONOTONIC is left alone (FAKETIME_DONT_FAKE_MONOTONIC), so mono_ms stays true. At a real
// HQ subscriber: every result made before the step arrives flagged — `clock: "corrected"` with
// started_at = mono_ms + the offset learned after the step — none with a pre-2020 started_at
// unflagged, and every seq exactly once. The unit-level version (injected clock) is
// clock-correction.test.ts.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { probeBrokerEnv } from "../../scripts/lab/broker-tls.ts";
import type { ResultPayload } from "../../services/contract/src/payloads.ts";
import { TRUSTED_AFTER_MS } from "../../services/probe/src/runner/clock-sync.ts";
import { monoMs } from "../../services/probe/src/runner/clock.ts";
import { useLab } from "../lab/lab-fixture.ts";
import { exited, startHq, waitFor, type Received } from "../lab/probe-harness.ts";
import { count, integrity, maxSeq, statusOf } from "./fault-harness.ts";

const CLI = new URL("../../services/probe/src/cli.ts", import.meta.url).pathname;

/** libfaketime's preload library (Debian package libfaketime, pulled in by `faketime`). */
function findLibfaketime(): string | undefined {
  for (const dir of ["/usr/lib", "/usr/lib64"]) {
    if (!existsSync(dir)) continue;
    for (const arch of readdirSync(dir)) {
      const lib = join(dir, arch, "faketime", "libfaketime.so.1");
      if (existsSync(lib)) return lib;
    }
  }
  return undefined;
}

const ICMP = "options: { count: 2, interval_ms: 20, wait_ms: 400 }";
const CONFIG = [
  "site: lab",
  "probe: probe-1",
  "broker:",
  "  url: mqtts://203.0.113.50:8883",
  "  keepalive: 5s",
  "  reconnect_min: 500ms",
  "  reconnect_max: 2s",
  "leds: { backend: none }",
  "defaults: { interval: 1s, timeout: 1s, jitter: 0 }",
  "checks:",
  `  - { name: gateway-icmp, kind: icmp, target: 192.0.2.1, area: lan, ${ICMP} }`,
  "  - { name: web-tcp, kind: tcp, target: 203.0.113.80:80, area: wan }",
  "  - { name: dns-tcp, kind: tcp, target: 192.0.2.1:53, area: lan }",
  "",
].join("\n");

/** libfaketime spec for "the wall clock reads `atMs` now" (an offset from the real time, in s). */
const specAt = (atMs: number) => `${((atMs - Date.now()) / 1000).toFixed(3)}\n`;
/** libfaketime spec for the real time: what NTP steps the clock to. */
const REAL = "+0\n";

type Result = ResultPayload & { seq: number };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("clock without RTC under libfaketime: the real service, stepped as NTP would", () => {
  const lab = useLab();
  let lib: string;
  let hq: ReturnType<typeof startHq>;

  beforeAll(async () => {
    const found = findLibfaketime();
    if (!found) {
      const ci = process.env.CI === "true" ? " (CI: this test must run)" : "";
      throw new Error(`libfaketime.so.1 not found${ci}: apt-get install faketime (scripts/setup.sh)`);
    }
    lib = found;
    hq = startHq(lab(), "hq-clock", true);
    await waitFor("HQ connected", 15_000, () => hq.connected());
  });

  afterAll(async () => {
    await hq?.stop();
  });

  const faked = (tsFile: string) => [
    "env",
    `LD_PRELOAD=${lib}`,
    `FAKETIME_TIMESTAMP_FILE=${tsFile}`,
    "FAKETIME_NO_CACHE=1",
    "FAKETIME_DONT_FAKE_MONOTONIC=1",
  ];

  it("precondition: under the preload Node's Date follows the file, process.hrtime (CLOCK_MONOTONIC) does not", () => {
    const tsFile = join(lab().info.dir, "faketime-probe.ts");
    writeFileSync(tsFile, specAt(Date.UTC(1970, 0, 1, 0, 5)));
    const script =
      "const m=()=>Number(process.hrtime.bigint()/1000n)/1000;" +
      "const a={wall:Date.now(),mono:m()};" +
      `require("fs").writeFileSync(${JSON.stringify(tsFile)},"+0\\n");` +
      "console.log(JSON.stringify({a,b:{wall:Date.now(),mono:m()}}))";
    const mono0 = monoMs();
    const out = execFileSync(
      "ip",
      ["netns", "exec", lab().info.ns.probe, ...faked(tsFile), process.execPath, "-e", script],
      {
        encoding: "utf8",
      },
    );
    const mono1 = monoMs();
    const { a, b } = JSON.parse(out) as Record<"a" | "b", { wall: number; mono: number }>;
    console.log(
      `under libfaketime: Date ${new Date(a.wall).toISOString()} → ${new Date(b.wall).toISOString()}`,
    );
    expect(new Date(a.wall).getUTCFullYear()).toBe(1970);
    expect(Math.abs(b.wall - Date.now())).toBeLessThan(2000); // stepped at runtime (FAKETIME_NO_CACHE)
    expect(a.mono).toBeGreaterThanOrEqual(mono0);
    expect(b.mono).toBeLessThanOrEqual(mono1);
  });

  /**
   * Runs the probe under libfaketime from `startAtMs` for `beforeStepMs`, steps its wall clock to
   * the real time, and returns what HQ received of it plus where the step was.
   */
  async function scenario(o: {
    name: string;
    startAtMs: number;
    beforeStepMs: number;
    brokerDown: boolean;
    afterStepMs: number;
  }) {
    const dir = lab().info.dir;
    const file = join(dir, `${o.name}.yaml`);
    const db = join(dir, `${o.name}.db`);
    const tsFile = join(dir, `${o.name}.faketime`);
    writeFileSync(file, CONFIG);
    writeFileSync(tsFile, specAt(o.startAtMs));
    if (o.brokerDown) await lab().fault("broker-down", true);
    const from = hq.messages.length;
    const probe = lab().spawn("probe", [...faked(tsFile), process.execPath, CLI, "run", "--config", file], {
      env: { ...process.env, ...probeBrokerEnv(dir), NETPROBE_STORE_PATH: db },
      stdio: ["ignore", "ignore", "pipe"],
    });
    const log: string[] = [];
    probe.stderr!.setEncoding("utf8").on("data", (d: string) => log.push(...d.split("\n").filter(Boolean)));
    try {
      // Results accumulate with the wall clock in the past: the service itself stamps them so.
      await waitFor("first results stored", 20_000, () => maxSeq(db) >= 3);
      const early = statusOf(db)!.checks;
      expect(early.every((c) => Date.parse(c.started_at) < TRUSTED_AFTER_MS)).toBe(true);
      await sleep(o.beforeStepMs);
      const seenBefore = hq.messages.slice(from).filter((m) => m.topic.includes("/results/")).length;
      const queuedAtStep = statusOf(db)!.outbox.rows; // results, health, events

      // NTP steps the wall clock.
      const stepMono = monoMs();
      const realOffset = Date.now() - stepMono; // real wall − CLOCK_MONOTONIC, what the probe should learn
      writeFileSync(tsFile, REAL);
      await waitFor("the probe logged the step", 5000, () =>
        log.some((l) => l.includes("wall clock stepped")),
      );
      if (o.afterStepMs > 0) await sleep(o.afterStepMs);
      if (o.brokerDown) await lab().fault("broker-down", false);

      await waitFor("outbox drained", 60_000, () => statusOf(db)?.outbox.rows === 0);
      const last = maxSeq(db);
      await waitFor(`seq ${last} at HQ`, 15_000, () =>
        hq.messages
          .slice(from)
          .some((m) => m.topic.includes("/results/") && (m.payload as Result).seq === last),
      );
      probe.kill("SIGTERM");
      expect((await exited(probe)).code).toBe(0);
      expect(integrity(db)).toBe("ok");
      const step = log.find((l) => l.includes("wall clock stepped"));
      console.log(
        `${o.name}: ${last} results, ${queuedAtStep} outbox rows at the step, ${seenBefore} at HQ before it; ${step}`,
      );
      return { messages: hq.messages.slice(from), last, stepMono, realOffset, seenBefore, log };
    } finally {
      if (probe.exitCode === null && probe.signalCode === null) probe.kill("SIGKILL");
      if (o.brokerDown) await lab().fault("broker-down", false);
    }
  }

  /** The assertions of the issue, on what HQ received in one scenario. */
  function check(name: string, r: Awaited<ReturnType<typeof scenario>>) {
    const results = r.messages.filter((m: Received) => m.topic.includes("/results/"));
    const payloads = results.map((m) => m.payload as unknown as Result);
    // Every seq exactly once (after dedup by result id; QoS 1 may redeliver a copy of the same id).
    const c = count(r.messages, { idx: 0, seq: 0 }, r.last);
    expect(c.missing, `${name}: seqs never delivered`).toEqual([]);
    const idOf = new Map<number, string>();
    for (const p of payloads) {
      expect(idOf.get(p.seq) ?? p.id, `${name}: seq ${p.seq} is one result`).toBe(p.id);
      idOf.set(p.seq, p.id);
    }
    // No result at HQ with a pre-2020 timestamp unflagged.
    const unflaggedOld = payloads.filter((p) => Date.parse(p.started_at) < TRUSTED_AFTER_MS && !p.clock);
    expect(unflaggedOld, `${name}: pre-2020 results without a clock flag`).toEqual([]);
    // Made before the step and still queued then: corrected from boot_id + mono_ms.
    const before = payloads.filter((p) => p.mono_ms < r.stepMono);
    const after = payloads.filter((p) => p.mono_ms > r.stepMono);
    expect(before.length, `${name}: results made before the step`).toBeGreaterThan(5);
    expect(after.length, `${name}: results made after the step`).toBeGreaterThan(0);
    const counts: Record<string, number> = {};
    for (const p of before) {
      counts[p.clock ?? "none"] = (counts[p.clock ?? "none"] ?? 0) + 1;
      expect(p.clock, `${name}: seq ${p.seq} made before the step`).toBe("corrected");
      expect(Math.abs(Date.parse(p.started_at) - (p.mono_ms + r.realOffset))).toBeLessThan(100);
    }
    // Made after the step: the real wall clock, no flag.
    for (const p of after) {
      expect(p.clock, `${name}: seq ${p.seq} made after the step`).toBeUndefined();
      expect(Math.abs(Date.parse(p.started_at) - (p.mono_ms + r.realOffset))).toBeLessThan(100);
    }
    const others = r.messages.filter((m) => !m.topic.includes("/results/"));
    const oldOthers = others.filter((m) => {
      const at = (m.payload as { at?: unknown }).at;
      return typeof at === "string" && Date.parse(at) < TRUSTED_AFTER_MS;
    });
    console.log(
      `${name}: ${payloads.length} result messages (${c.duplicated} duplicate copies), before the step ` +
        `${JSON.stringify(counts)}, after ${after.length}; non-result messages with a pre-2020 \`at\`: ` +
        `${oldOthers.map((m) => m.topic.split("/").slice(4).join("/")).join(", ") || "none"}`,
    );
  }

  it("1970, broker up (TLS refuses: its certificate is not yet valid): results queue, arrive corrected after the step", async () => {
    // A Pi without RTC boots with the wall clock at the epoch: wall ≈ 1970 + time since boot.
    const r = await scenario({
      name: "epoch",
      startAtMs: Math.round(monoMs()),
      beforeStepMs: 6000,
      brokerDown: false,
      afterStepMs: 2500,
    });
    const tlsRefused = r.log.find((l) => l.includes("broker connection error"));
    console.log(`epoch: before the step the uplink said: ${tlsRefused ?? "(nothing)"}`);
    check("epoch", r);
  });

  it("2019, broker down: the step while offline, results before it corrected, after it on the real clock", async () => {
    const r = await scenario({
      name: "stale",
      startAtMs: Date.UTC(2019, 5, 1),
      beforeStepMs: 5000,
      brokerDown: true,
      afterStepMs: 3000,
    });
    check("stale", r);
  });
});
