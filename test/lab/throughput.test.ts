// The throughput check against the lab's iperf3 server at headquarters (scripts/lab/iperf3-server.ts),
// through the office's access link shaped to 50 Mbit/s with tc tbf: the check reads what
// `iperf3 -c` reads on the same path right after it (TCP both ways), UDP loss over an overfull
// bucket and jitter below it, the window rule (and `netprobe check --force`), the busy-office skip
// under real load, a server that is busy, killed mid-test or gone.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  IPERF3_SERVER,
  ensureIperf3Server,
  shapeAccessLink,
  stopIperf3Server,
} from "../../scripts/lab/iperf3-server.ts";
import type { Measurement } from "../../services/probe/src/checks/check.ts";
import { useLab } from "./lab-fixture.ts";
import { PROBE_BASE, startClient } from "./mqtt-driver.ts";
import { exited, probeStatus, startProbe, waitFor } from "./probe-harness.ts";

const lab = useLab();
const ROOT = new URL("../../", import.meta.url).pathname;
const NETPROBE = join(ROOT, "services/probe/bin/netprobe");
const SHAPED_MBIT = 50;
const TARGET = IPERF3_SERVER.address;
const DURATION_S = 5;

/** Runs the throughput check once inside the probe's namespace, as the scheduler would (`onDemand` as HQ's cmd/run). */
async function throughput(options: Record<string, unknown>, onDemand = true): Promise<Measurement> {
  const code = `
    const { checkKind } = await import(${JSON.stringify(join(ROOT, "services/probe/src/checks/registry.ts"))});
    const { Value } = await import("@sinclair/typebox/value");
    const { silentLogger } = await import(${JSON.stringify(join(ROOT, "services/contract/src/log.ts"))});
    const k = checkKind("throughput");
    const opts = Value.Default(k.options, ${JSON.stringify(options)});
    const m = await k.run(${JSON.stringify(TARGET)}, opts, { log: silentLogger(), onDemand: ${onDemand} }, AbortSignal.timeout(30000));
    console.log(JSON.stringify(m));`;
  const r = await lab().exec("probe", [process.execPath, "--input-type=module", "-e", code], {
    timeoutMs: 45_000,
  });
  if (r.code !== 0) throw new Error(`throughput check failed to run: ${r.stderr}`);
  return JSON.parse(r.stdout) as Measurement;
}

interface Reference {
  receivedBitsPerS: number;
  lostPercent?: number;
}

/** iperf3 -c from the probe's namespace, the reference the check is compared with. */
async function iperf3(args: string[]): Promise<Reference> {
  const r = await lab().exec(
    "probe",
    ["iperf3", "-c", TARGET, "-p", String(IPERF3_SERVER.port), "-t", String(DURATION_S), "--json", ...args],
    { timeoutMs: 30_000 },
  );
  const doc = JSON.parse(r.stdout) as {
    error?: string;
    end: { sum_received: { bits_per_second: number }; sum?: { lost_percent: number } };
  };
  if (doc.error !== undefined) throw new Error(`iperf3 ${args.join(" ")}: ${doc.error}`);
  return {
    receivedBitsPerS: doc.end.sum_received.bits_per_second,
    ...(doc.end.sum ? { lostPercent: doc.end.sum.lost_percent } : {}),
  };
}

const mbit = (bps: number | undefined): string => `${((bps ?? NaN) / 1e6).toFixed(2)} Mbit/s`;

/** "HH:MM-HH:MM" starting `fromH` hours after now, `lenH` hours long (local time). */
function windowFromNow(fromH: number, lenH: number): string {
  const hm = (d: Date): string =>
    `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
  const start = new Date(Date.now() + fromH * 3_600_000);
  const end = new Date(start.getTime() + lenH * 3_600_000);
  return `${hm(start)}-${hm(end)}`;
}

beforeAll(async () => {
  await shapeAccessLink(lab().info, SHAPED_MBIT);
});
afterAll(async () => {
  await shapeAccessLink(lab().info, null).catch(() => undefined);
});

describe("through an access link shaped to 50 Mbit/s", () => {
  for (const direction of ["upload", "download"] as const) {
    it(`TCP ${direction}: the check reads within 5 % of iperf3 -c run right after it`, async () => {
      const m = await throughput({
        direction,
        duration_s: DURATION_S,
        skip_above_pct: 20,
        capacity_mbps: 50,
      });
      expect(m.error).toBeUndefined();
      expect(m.status).toBe("ok");
      const ref = await iperf3(direction === "download" ? ["-R"] : []);
      const check = m.metrics.bits_per_s ?? NaN;
      const diffPct = ((check - ref.receivedBitsPerS) / ref.receivedBitsPerS) * 100;
      console.log(
        `throughput TCP ${direction}: check ${mbit(check)}, iperf3 -c ${mbit(ref.receivedBitsPerS)} (${diffPct.toFixed(2)} %), shaped ${SHAPED_MBIT} Mbit/s, retransmits ${m.metrics.retransmits}, utilisation before ${m.metrics.utilisation_pct} %`,
      );
      expect(Math.abs(diffPct)).toBeLessThan(5);
      // Ground truth: the bucket's rate less TCP/IP/Ethernet headers (~95 %), never above it.
      expect(check).toBeGreaterThan(SHAPED_MBIT * 1e6 * 0.85);
      expect(check).toBeLessThan(SHAPED_MBIT * 1e6 * 1.01);
      expect(m.metrics.retransmits).toBeGreaterThanOrEqual(0);
      expect(m.metrics.cpu_local_pct).toBeGreaterThan(0);
      expect(m.metrics.cpu_remote_pct).toBeGreaterThan(0);
      expect(m.metrics.utilisation_pct).toBeLessThan(5); // an idle office before the test
      expect(m.detail).toMatchObject({ protocol: "tcp", direction, interface: "eth0", on_demand: true });
    });
  }

  it("UDP above the bucket's rate: loss as the bucket makes it, delivered rate at the rate", async () => {
    const m = await throughput({
      protocol: "udp",
      direction: "download",
      bitrate_mbps: 80,
      duration_s: DURATION_S,
    });
    expect(m.error).toBeUndefined();
    const ref = await iperf3(["-u", "-b", "80M", "-R"]);
    console.log(
      `throughput UDP download 80 Mbit/s offered: check ${mbit(m.metrics.bits_per_s)} loss ${m.metrics.loss_pct} % jitter ${m.metrics.jitter_ms} ms; iperf3 -c ${mbit(ref.receivedBitsPerS)} loss ${ref.lostPercent} %`,
    );
    // 1448-byte datagrams are 1490-byte frames in the bucket: 50 Mbit/s of frames carry 48.6 of payload.
    const payloadRate = SHAPED_MBIT * 1e6 * (1448 / 1490);
    expect(Math.abs((m.metrics.bits_per_s ?? 0) - payloadRate) / payloadRate).toBeLessThan(0.05);
    const offered = m.metrics.sent_bits_per_s ?? 0;
    const expectedLoss = (1 - payloadRate / offered) * 100;
    expect(Math.abs((m.metrics.loss_pct ?? NaN) - expectedLoss)).toBeLessThan(3);
    expect(Math.abs((m.metrics.loss_pct ?? NaN) - (ref.lostPercent ?? NaN))).toBeLessThan(5);
    expect(m.metrics.jitter_ms).toBeGreaterThanOrEqual(0);
  });

  it("UDP below the bucket's rate: no loss, jitter reported", async () => {
    const m = await throughput({ protocol: "udp", direction: "upload", bitrate_mbps: 20, duration_s: 3 });
    console.log(
      `throughput UDP upload 20 Mbit/s: ${mbit(m.metrics.bits_per_s)} loss ${m.metrics.loss_pct} % (${m.metrics.lost_packets}/${m.metrics.packets}) jitter ${m.metrics.jitter_ms} ms`,
    );
    expect(m.status).toBe("ok");
    expect(m.metrics.loss_pct).toBeLessThan(1);
    expect(m.metrics.packets).toBeGreaterThan(1000);
    expect(m.metrics.jitter_ms).toBeGreaterThanOrEqual(0);
    expect(m.metrics.jitter_ms).toBeLessThan(10);
    expect(Math.abs((m.metrics.bits_per_s ?? 0) - 20e6) / 20e6).toBeLessThan(0.03);
  });
});

describe("windows", () => {
  const outside = windowFromNow(2, 1);

  it("refuses to run outside its window unless asked for by name", async () => {
    const m = await throughput({ windows: [outside], duration_s: 1 }, false);
    expect(m.status).toBe("ok");
    expect(m.metrics.bits_per_s).toBeUndefined();
    expect(m.detail).toMatchObject({ skipped: "outside_window" });
    expect(String(m.detail?.skip_reason)).toContain(outside);

    const inside = await throughput({ windows: [outside, windowFromNow(-1, 2)], duration_s: 1 }, false);
    expect(inside.metrics.bits_per_s).toBeGreaterThan(0);
    expect(inside.detail?.skipped).toBeUndefined();
  });

  it("netprobe check refuses outside the window (exit 1, says why) and runs with --force", async () => {
    const argv = [
      NETPROBE,
      "check",
      "throughput",
      "-t",
      TARGET,
      "-o",
      `windows=[${outside}]`,
      "-o",
      "duration_s=1",
    ];
    const refused = await lab().exec("probe", argv, { timeoutMs: 30_000 });
    console.log(`netprobe check (outside window): exit ${refused.code}: ${refused.stdout.trim()}`);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toContain("skipped (outside_window");
    const forced = await lab().exec("probe", [...argv, "--force"], { timeoutMs: 30_000 });
    console.log(
      `netprobe check --force: exit ${forced.code}: ${forced.stdout.trim().replaceAll("\n", "; ")}`,
    );
    expect(forced.code).toBe(0);
    expect(forced.stdout).toMatch(/bits_per_s = \d+/);
  });
});

describe("a busy office, a busy or missing server", () => {
  it("skips the test while the office uses the link, and says how much it used", async () => {
    // Real load through the probe's interface, to a second server so the test's own stays free.
    const loadServer = lab().spawn("hq", ["iperf3", "-s", "-1", "-p", "5202"], { stdio: "ignore" });
    try {
      await waitListening(5202);
      const load = lab().exec("probe", ["iperf3", "-c", TARGET, "-p", "5202", "-u", "-b", "30M", "-t", "6"], {
        timeoutMs: 20_000,
      });
      await new Promise((r) => setTimeout(r, 1000));
      const m = await throughput({ skip_above_pct: 20, capacity_mbps: SHAPED_MBIT, duration_s: 2 });
      console.log(
        `busy office: utilisation ${m.metrics.utilisation_pct} % → ${String(m.detail?.skip_reason)}`,
      );
      expect(m.status).toBe("ok");
      expect(m.detail).toMatchObject({ skipped: "busy", interface: "eth0" });
      expect(m.metrics.bits_per_s).toBeUndefined();
      // 30 Mbit/s of payload is ~31 Mbit/s on the wire: ~62 % of 50.
      expect(m.metrics.utilisation_pct).toBeGreaterThan(50);
      expect(m.metrics.utilisation_pct).toBeLessThan(75);
      await load;
    } finally {
      loadServer.kill("SIGKILL");
    }
  });

  it("a server busy with another client's test is reported as busy", async () => {
    const other = lab().exec("wan", ["iperf3", "-c", TARGET, "-t", "5"], { timeoutMs: 20_000 });
    await new Promise((r) => setTimeout(r, 1000));
    const m = await throughput({ duration_s: 2, skip_above_pct: 0 });
    await other;
    expect(m.status).toBe("fail");
    expect(m.error?.code).toBe("busy");
    expect(m.error?.message).toContain("busy");
  });

  it("a server killed mid-test and a server that is gone give clean error results", async () => {
    const running = throughput({ duration_s: 6, skip_above_pct: 0 });
    await new Promise((r) => setTimeout(r, 2500));
    await stopIperf3Server(lab().info);
    const killed = await running;
    console.log(`server killed mid-test: ${killed.status} ${killed.error?.code}: ${killed.error?.message}`);
    expect(killed.status).toBe("fail");
    expect(["server_lost", "timeout"]).toContain(killed.error?.code);
    expect(killed.metrics.bits_per_s).toBeUndefined();

    const gone = await throughput({ duration_s: 2, skip_above_pct: 0 });
    console.log(`server gone: ${gone.status} ${gone.error?.code}: ${gone.error?.message}`);
    expect(gone.status).toBe("fail");
    expect(gone.error?.code).toBe("connection_refused");

    await ensureIperf3Server(lab().info);
    const back = await throughput({ duration_s: 1, skip_above_pct: 0 });
    expect(back.metrics.bits_per_s).toBeGreaterThan(0);
  });
});

async function waitListening(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const r = await lab().exec("hq", ["ss", "-Hltn", `sport = :${port}`]);
    if (r.stdout.trim() !== "") return;
    await new Promise((res) => setTimeout(res, 50));
  }
  throw new Error(`nothing listens on hq:${port}`);
}

describe("on demand from headquarters through the running probe", () => {
  it("a tick outside the window runs nothing; cmd/run by name runs it; the WAN LED is not held at checking", async () => {
    const outside = windowFromNow(2, 1);
    const configFile = join(lab().info.dir, "throughput-probe.yaml");
    writeFileSync(
      configFile,
      [
        "site: lab",
        "probe: probe-1",
        "broker: { url: mqtts://203.0.113.50:8883, reconnect_min: 500ms }",
        "leds: { backend: none }",
        "areas: { fail_after: 1, recover_after: 1 }",
        "checks:",
        `  - { name: wan-icmp, kind: icmp, target: "203.0.113.10", interval: 2s, timeout: 2s, options: { count: 2, interval_ms: 20, wait_ms: 500 } }`,
        // Every 5 s if it were not windowed: two ticks pass below without a run.
        `  - { name: tp, kind: throughput, target: "${TARGET}", interval: 5s, timeout: 5s, jitter: 0, options: { windows: ["${outside}"], duration_s: 1, skip_above_pct: 0 } }`,
        "",
      ].join("\n"),
    );
    const hq = startClient(lab(), "hq", "hq");
    await hq.connected();
    await hq.subscribe(`${PROBE_BASE}#`);
    const probe = startProbe(lab(), {}, configFile);
    try {
      const tpResults = () =>
        hq.on(`${PROBE_BASE}results/tp`).map((m) => JSON.parse(m.payload) as Record<string, unknown>);
      await waitFor(
        "three wan-icmp results",
        20_000,
        () => hq.on(`${PROBE_BASE}results/wan-icmp`).length >= 3,
      );
      expect(tpResults()).toEqual([]);
      expect(probeStatus(lab()).health?.areas.wan?.state).toBe("ok");

      const reply = await hq.command("run", { request_id: "tp-1", check: "tp" });
      expect(reply).toMatchObject({ ok: true, result: { started: ["tp"] } });
      const r = await waitFor("the on-demand throughput result", 15_000, () => tpResults()[0]);
      const metrics = r.metrics as Record<string, number>;
      const detail = r.detail as Record<string, unknown>;
      console.log(
        `cmd/run tp outside ${outside}: ${String(r.status)}, ${mbit(metrics.bits_per_s)}, on_demand ${String(detail.on_demand)}`,
      );
      expect(r.status).toBe("ok");
      expect(detail).toMatchObject({ on_demand: true });
      expect(detail.skipped).toBeUndefined();
      expect(metrics.bits_per_s).toBeGreaterThan(SHAPED_MBIT * 1e6 * 0.8);
      // And nothing more: the schedule still does not run it.
      await new Promise((res) => setTimeout(res, 6000));
      expect(tpResults()).toHaveLength(1);
    } finally {
      probe.kill("SIGTERM");
      await exited(probe);
      await hq.stop();
    }
  });
});
