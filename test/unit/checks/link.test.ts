// The link check over a fake sysfs, its carrier watch driving the scheduler to run at once, and
// the per-check hysteresis that lets a lost link turn the LINK LED red on one run.
import { describe, expect, it } from "vitest";
import { createLinkCheck, type LinkOptions } from "../../../services/probe/src/checks/link.ts";
import { silentLogger } from "../../../services/contract/src/log.ts";
import { AreaTracker } from "../../../services/probe/src/runner/area-state.ts";
import { Scheduler, type Run } from "../../../services/probe/src/runner/scheduler.ts";

const opts: LinkOptions = {
  min_speed_mbps: 0,
  expect_duplex: "full",
  expect_mtu: 0,
  max_flaps: 0,
  watch_interval_ms: 20,
};
const ctx = { log: silentLogger() };
const signal = (): AbortSignal => new AbortController().signal;

function fakeSysfs(initial: Record<string, string>) {
  const files: Record<string, string> = { ...initial };
  return { files, read: (_iface: string, attr: string) => files[attr] };
}

const UP = {
  flags: "0x1003",
  carrier: "1",
  operstate: "up",
  speed: "1000",
  duplex: "full",
  mtu: "1500",
  address: "02:00:00:00:00:10",
  carrier_changes: "2",
  "statistics/rx_errors": "5",
  "statistics/tx_errors": "0",
  "statistics/rx_dropped": "0",
  "statistics/tx_dropped": "0",
};

describe("link check", () => {
  it("reports carrier, speed, duplex, MTU; counter deltas from the second run on", async () => {
    const fs = fakeSysfs(UP);
    const check = createLinkCheck({ read: fs.read });
    const first = await check.run("eth0", opts, ctx, signal());
    expect(first).toMatchObject({
      status: "ok",
      metrics: { carrier: 1, speed_mbps: 1000, mtu: 1500, flaps: 0 },
    });
    expect(first.metrics.rx_errors_delta).toBeUndefined();
    fs.files["statistics/rx_errors"] = "12";
    const second = await check.run("eth0", opts, ctx, signal());
    expect(second.metrics.rx_errors_delta).toBe(7);
  });

  it("no carrier → fail no_carrier; missing interface → fail interface_missing; admin down → interface_down", async () => {
    const fs = fakeSysfs({ ...UP, carrier: "0", operstate: "down" });
    const check = createLinkCheck({ read: fs.read });
    expect((await check.run("eth0", opts, ctx, signal())).error?.code).toBe("no_carrier");
    expect((await check.run("eth9", opts, ctx, signal())).error?.code).toBe("no_carrier"); // fake sysfs ignores iface
    const none = createLinkCheck({ read: () => undefined });
    expect((await none.run("eth0", opts, ctx, signal())).error?.code).toBe("interface_missing");
    const down = createLinkCheck({ read: fakeSysfs({ ...UP, flags: "0x1002" }).read });
    expect((await down.run("eth0", opts, ctx, signal())).error?.code).toBe("interface_down");
  });

  it("a down/up between two runs is a flap (warn); a change the runs saw is not; half duplex and low speed warn", async () => {
    const fs = fakeSysfs(UP);
    const check = createLinkCheck({ read: fs.read });
    await check.run("eth0", opts, ctx, signal());
    fs.files.carrier_changes = "4";
    const flapped = await check.run("eth0", opts, ctx, signal());
    expect(flapped).toMatchObject({
      status: "warn",
      metrics: { flaps: 1 },
      error: { code: "carrier_flaps" },
    });
    fs.files.carrier = "0";
    fs.files.carrier_changes = "5";
    expect((await check.run("eth0", opts, ctx, signal())).error?.code).toBe("no_carrier");
    fs.files.carrier = "1";
    fs.files.carrier_changes = "6";
    expect((await check.run("eth0", opts, ctx, signal())).status).toBe("ok");
    fs.files.duplex = "half";
    fs.files.speed = "100";
    const slow = await check.run("eth0", { ...opts, min_speed_mbps: 1000 }, ctx, signal());
    expect(slow.error?.code).toBe("low_speed");
  });
});

describe("carrier watch and per-check hysteresis", () => {
  it("a carrier change runs the check at once (not at its next interval) and turns LINK red on that one run", async () => {
    const fs = fakeSysfs(UP);
    const kind = createLinkCheck({ read: fs.read });
    const checks = [
      {
        name: "link",
        kind,
        target: "eth0",
        area: "link" as const,
        intervalMs: 3_600_000,
        timeoutMs: 1000,
        jitter: 0,
        options: opts,
        failAfter: kind.failAfter,
      },
    ];
    const tracker = new AreaTracker(checks, { failAfter: 3, recoverAfter: 2 });
    const runs: Run[] = [];
    const scheduler = new Scheduler(
      checks,
      ctx,
      (run) => {
        runs.push(run);
        tracker.update({
          check: "link",
          area: "link",
          status: run.measurement.status,
          resultId: String(runs.length),
          reason: run.measurement.error?.code ?? "ok",
        });
      },
      silentLogger(),
    );
    scheduler.start();
    try {
      await until(() => runs.length === 1); // the first run (jitter 0)
      expect(tracker.snapshot().link.state).toBe("ok");
      const t0 = Date.now();
      fs.files.carrier = "0";
      fs.files.carrier_changes = "3";
      await until(() => tracker.snapshot().link.state === "failing");
      expect(Date.now() - t0).toBeLessThan(1000);
      expect(runs.at(-1)?.measurement.error?.code).toBe("no_carrier");
    } finally {
      await scheduler.stop();
    }
  });
});

async function until(fn: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}
