// The throughput check's run with doubles for its I/O: a stand-in iperf3 (a shell script that
// records its arguments and prints a report captured from Debian's iperf3), a fake sysfs and a
// fake clock. The real iperf3 against a real server is test/lab/throughput.test.ts.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Value } from "@sinclair/typebox/value";
import { afterAll, describe, expect, it } from "vitest";
import {
  createThroughputCheck,
  type ThroughputDependencies,
  type ThroughputOptions,
} from "../../../services/probe/src/checks/throughput.ts";
import { silentLogger } from "../../../services/contract/src/log.ts";

const dir = mkdtempSync(join(tmpdir(), "netprobe-throughput-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const fixture = (name: string): string =>
  new URL(`../../fixtures/iperf3/${name}.stdout`, import.meta.url).pathname;

/** A stand-in iperf3 that writes its argv to `<dir>/<name>.args` and then runs `body`. */
function fakeIperf3(name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\nprintf '%s\\n' "$@" > ${path}.args\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}
const argsOf = (binary: string): string[] => readFileSync(`${binary}.args`, "utf8").trim().split("\n");

function check(binary: string, over: Partial<ThroughputDependencies> = {}) {
  let clock = 0;
  const deps: ThroughputDependencies = {
    iperf3: binary,
    read: () => undefined,
    monoMs: () => clock,
    now: () => new Date(2026, 11, 3, 3, 0),
    egress: () => "eth0",
    ...over,
  };
  return { kind: createThroughputCheck(deps), advance: (ms: number) => (clock += ms) };
}
const opts = (o: Partial<ThroughputOptions> = {}): ThroughputOptions =>
  Value.Default(Value.Clone(createThroughputCheck({} as ThroughputDependencies).options), {
    skip_above_pct: 0,
    ...o,
  }) as ThroughputOptions;
const onDemand = { log: silentLogger(), onDemand: true };
const scheduled = { log: silentLogger() };

describe("throughput check", () => {
  it("maps the options to iperf3's arguments and the report to metrics", async () => {
    const bin = fakeIperf3("udp", `cat ${fixture("udp-download-overload")}`);
    const m = await check(bin).kind.run(
      "203.0.113.50:5999",
      opts({ protocol: "udp", direction: "download", bitrate_mbps: 80, parallel: 2, duration_s: 7 }),
      onDemand,
      AbortSignal.timeout(5000),
    );
    expect(argsOf(bin)).toEqual([
      "-c",
      "203.0.113.50",
      "-p",
      "5999",
      "-t",
      "7",
      "-P",
      "2",
      "--json",
      "--connect-timeout",
      "3000",
      "-R",
      "-u",
      "-b",
      "40000000",
    ]);
    expect(m.status).toBe("ok");
    expect(Object.keys(m.metrics).sort()).toEqual([
      "bits_per_s",
      "cpu_local_pct",
      "cpu_remote_pct",
      "jitter_ms",
      "loss_pct",
      "lost_packets",
      "packets",
      "received_bytes",
      "sent_bits_per_s",
    ]);
    expect(m.detail).toMatchObject({
      protocol: "udp",
      direction: "download",
      port: 5999,
      on_demand: true,
      iperf3_version: "iperf 3.12",
    });
  });

  it("TCP upload to the default port with retransmits", async () => {
    const bin = fakeIperf3("tcp", `cat ${fixture("tcp-upload")}`);
    const m = await check(bin).kind.run("203.0.113.50", opts(), onDemand, AbortSignal.timeout(5000));
    expect(argsOf(bin)).toEqual([
      "-c",
      "203.0.113.50",
      "-p",
      "5201",
      "-t",
      "5",
      "-P",
      "1",
      "--json",
      "--connect-timeout",
      "3000",
    ]);
    expect(m.metrics.retransmits).toBeGreaterThanOrEqual(0);
    expect(m.metrics.bits_per_s).toBeGreaterThan(40e6);
  });

  it("iperf3 missing is tool_missing (error: the probe cannot measure)", async () => {
    const m = await check(join(dir, "no-such-iperf3")).kind.run(
      "203.0.113.50",
      opts(),
      onDemand,
      AbortSignal.timeout(5000),
    );
    expect(m).toMatchObject({ status: "error", error: { code: "tool_missing" } });
    expect(m.error?.message).toContain("apt-get install iperf3");
  });

  it("iperf3's error report and its garbage are results, not throws", async () => {
    const busy = await check(fakeIperf3("busy", `cat ${fixture("error-busy")}`)).kind.run(
      "203.0.113.50",
      opts(),
      onDemand,
      AbortSignal.timeout(5000),
    );
    expect(busy).toMatchObject({ status: "fail", error: { code: "busy" } });
    const junk = await check(
      fakeIperf3("junk", "echo 'Segmentation fault' >&2; printf '{\"start\":'"),
    ).kind.run("203.0.113.50", opts(), onDemand, AbortSignal.timeout(5000));
    expect(junk).toMatchObject({
      status: "error",
      error: { code: "bad_output" },
      detail: { stderr: "Segmentation fault" },
    });
  });

  it("an abort stops iperf3 and reports a timeout promptly", async () => {
    const bin = fakeIperf3("hang", "exec sleep 30");
    const t0 = Date.now();
    const m = await check(bin).kind.run(
      "203.0.113.50",
      opts({ duration_s: 10 }),
      onDemand,
      AbortSignal.timeout(200),
    );
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(m).toMatchObject({ status: "fail", error: { code: "timeout" } });
    expect(m.error?.message).toContain("at least 13 s");
  });

  it("outside its windows a run not asked for by name is skipped without starting iperf3", async () => {
    const bin = fakeIperf3("never", `cat ${fixture("tcp-upload")}`);
    const k = check(bin, { now: () => new Date(2026, 11, 3, 12, 0) }).kind;
    const m = await k.run(
      "203.0.113.50",
      opts({ windows: ["02:00-04:00"] }),
      scheduled,
      AbortSignal.timeout(5000),
    );
    expect(m).toMatchObject({ status: "ok", metrics: {}, detail: { skipped: "outside_window" } });
    expect(String(m.detail?.skip_reason)).toContain("02:00-04:00");
    const none = await k.run("203.0.113.50", opts(), scheduled, AbortSignal.timeout(5000));
    expect(String(none.detail?.skip_reason)).toContain("no windows are configured");
    expect(() => argsOf(bin)).toThrow(); // never ran
    const asked = await k.run(
      "203.0.113.50",
      opts({ windows: ["02:00-04:00"] }),
      onDemand,
      AbortSignal.timeout(5000),
    );
    expect(asked.metrics.bits_per_s).toBeGreaterThan(0);
  });

  it("inside a window a scheduled run goes ahead", async () => {
    const bin = fakeIperf3("inwin", `cat ${fixture("tcp-upload")}`);
    const m = await check(bin).kind.run(
      "203.0.113.50",
      opts({ windows: ["23:00-04:00"] }),
      scheduled,
      AbortSignal.timeout(5000),
    );
    expect(m.detail).toMatchObject({ window: "23:00-04:00", on_demand: false });
    expect(m.metrics.bits_per_s).toBeGreaterThan(0);
  });

  it("skips while the interface carried more than skip_above_pct over the last minute (from the watch's samples)", async () => {
    const bin = fakeIperf3("busyoffice", `cat ${fixture("tcp-upload")}`);
    const counters = { rx: 0, tx: 0 };
    const sysfs: Record<string, () => string> = {
      speed: () => "1000",
      "statistics/rx_bytes": () => String(counters.rx),
      "statistics/tx_bytes": () => String(counters.tx),
    };
    const c = check(bin, { read: (_iface, attr) => sysfs[attr]?.() });
    const o = opts({ skip_above_pct: 20, capacity_mbps: 100 });
    const stop = new AbortController();
    c.kind.watch?.("203.0.113.50", o, scheduled, stop.signal, () => undefined);
    c.advance(60_000);
    counters.rx = 225e6; // 30 Mbit/s over the minute: 30 % of 100
    const busy = await c.kind.run("203.0.113.50", o, onDemand, AbortSignal.timeout(5000));
    expect(busy).toMatchObject({
      status: "ok",
      metrics: { utilisation_pct: 30 },
      detail: { skipped: "busy", interface: "eth0", utilisation_window_s: 60 },
    });
    expect(String(busy.detail?.skip_reason)).toContain("30 % of 100 Mbit/s");

    // Without capacity_mbps the interface's negotiated 1000 Mb/s is the capacity: 3 %, not busy.
    const quiet = await c.kind.run(
      "203.0.113.50",
      { ...o, capacity_mbps: 0 },
      onDemand,
      AbortSignal.timeout(5000),
    );
    expect(quiet.detail?.skipped).toBeUndefined();
    expect(quiet.metrics).toMatchObject({ utilisation_pct: 3 });
    expect(quiet.metrics.bits_per_s).toBeGreaterThan(0);
    stop.abort();
  });

  it("with no history it samples the counters itself; no speed and no capacity means not checked", async () => {
    const bin = fakeIperf3("fresh", `cat ${fixture("tcp-upload")}`);
    const c = check(bin, {
      read: (_i, attr) => (attr === "speed" ? "-1" : "0"),
      monoMs: () => performance.now(),
    });
    const m = await c.kind.run(
      "203.0.113.50",
      opts({ skip_above_pct: 20 }),
      onDemand,
      AbortSignal.timeout(5000),
    );
    expect(m.detail?.utilisation_note).toContain("no link speed");
    expect(m.metrics.bits_per_s).toBeGreaterThan(0);
    const t0 = performance.now();
    const sampled = await c.kind.run(
      "203.0.113.50",
      opts({ skip_above_pct: 20, capacity_mbps: 50 }),
      onDemand,
      AbortSignal.timeout(5000),
    );
    expect(performance.now() - t0).toBeGreaterThanOrEqual(1900);
    expect(sampled.metrics.utilisation_pct).toBe(0);
    expect(sampled.detail?.utilisation_window_s).toBeCloseTo(2, 0);
  });

  it("a bad target or window is an error result naming it", async () => {
    const k = check(join(dir, "unused")).kind;
    expect(await k.run("203.0.113.50:99999", opts(), onDemand, AbortSignal.timeout(1000))).toMatchObject({
      status: "error",
      error: { code: "invalid_target" },
    });
    const empty = await k.run(
      "203.0.113.50",
      opts({ windows: ["03:00-03:00"] }),
      onDemand,
      AbortSignal.timeout(1000),
    );
    expect(empty).toMatchObject({ status: "error", error: { code: "invalid_option" } });
    expect(empty.error?.message).toContain("03:00-03:00");
  });
});
