// The internet path of the lab (issue 4): traceroute lists every hop in order, a hop that drops
// its replies shows loss while the path stays complete, path-mtu finds the narrow link under
// `mtu-small`, and the responder's impairment faults turn the WAN area amber/red through the
// thresholds of scripts/lab/probe.lab.yaml and back — all with the real probe in the probe namespace.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import type { HopReport } from "../../services/probe/src/checks/traceroute.ts";
import { LAB_PROBE_CONFIG } from "../../scripts/lab/lab-command.ts";
import { useLab } from "./lab-fixture.ts";
import { exited, probeStatus, startProbe, waitFor } from "./probe-harness.ts";

const CLI = new URL("../../services/probe/src/cli.ts", import.meta.url).pathname;

interface CheckOutput {
  status: string;
  metrics: Record<string, number>;
  detail?: { hops?: HopReport[]; reported_by?: string };
  error?: { code: string; message: string };
}

describe("the internet path", () => {
  const lab = useLab();

  /** `netprobe check KIND -t TARGET -o k=v… --json` inside the probe namespace. */
  async function check(kind: string, target: string, options: Record<string, string | number> = {}) {
    const argv = [process.execPath, CLI, "check", kind, "-t", target, "--json"];
    for (const [k, v] of Object.entries(options)) argv.push("-o", `${k}=${v}`);
    const r = await lab().exec("probe", argv, { timeoutMs: 30_000 });
    try {
      return JSON.parse(r.stdout) as CheckOutput;
    } catch {
      throw new Error(`netprobe check ${kind} printed no JSON (exit ${r.code}): ${r.stdout}${r.stderr}`);
    }
  }

  it("traceroute lists every hop in order, over ICMP and UDP, IPv4 and IPv6", async () => {
    const a = lab().info.addr;
    const expected = {
      [a.farTarget4]: [a.gwLan4, a.wanGw4, a.pathR1Wan4, a.pathR2R1_4, a.farTarget4],
      [a.farTarget6]: [a.gwLan6, a.wanGw6, a.pathR1Wan6, a.pathR2R1_6, a.farTarget6],
    };
    for (const [target, hops] of Object.entries(expected)) {
      for (const protocol of ["icmp", "udp"]) {
        const result = await check("traceroute", target, { protocol, wait_ms: 1000 });
        expect(result.status, `${protocol} ${target}: ${result.error?.message}`).toBe("ok");
        expect(result.detail?.hops?.map((h) => h.addresses)).toEqual(hops.map((h) => [h]));
        expect(result.metrics).toMatchObject({ hop_count: 5, destination_reached: 1, hops_with_loss: 0 });
      }
    }
  });

  it("a hop dropping half its replies shows loss there while the path stays complete", async () => {
    await lab().fault("wan-hop-loss", true, 50);
    try {
      const result = await check("traceroute", lab().info.addr.farTarget4, { probes_per_hop: 20 });
      expect(result.status).toBe("ok");
      expect(result.metrics).toMatchObject({ destination_reached: 1, hop_count: 5, hops_with_loss: 1 });
      const hop3 = result.detail?.hops?.[2];
      expect(hop3?.addresses).toEqual([lab().info.addr.pathR1Wan4]);
      // 20 probes, each answered with probability 1/2: outside 10–90 % happens about once in 5,000 runs.
      expect(hop3?.loss_pct).toBeGreaterThanOrEqual(10);
      expect(hop3?.loss_pct).toBeLessThanOrEqual(90);
      expect(result.detail?.hops?.filter((h) => h.ttl !== 3).every((h) => h.loss_pct === 0)).toBe(true);
    } finally {
      await lab().fault("wan-hop-loss", false);
    }
  });

  it("path-mtu finds 1500 bytes, then the 1400-byte link under mtu-small (warn), then 1500 again", async () => {
    for (const target of [lab().info.addr.farTarget4, lab().info.addr.farTarget6]) {
      expect((await check("path-mtu", target)).metrics.path_mtu_bytes).toBe(1500);
    }
    await lab().fault("mtu-small", true);
    try {
      for (const [target, router] of [
        [lab().info.addr.farTarget4, lab().info.addr.pathR1Wan4],
        [lab().info.addr.farTarget6, lab().info.addr.pathR1Wan6],
      ] as const) {
        const result = await check("path-mtu", target);
        expect(result).toMatchObject({
          status: "warn",
          metrics: { path_mtu_bytes: 1400 },
          error: { code: "mtu_low" },
        });
        expect(result.detail?.reported_by).toBe(router);
      }
    } finally {
      await lab().fault("mtu-small", false);
    }
    expect((await check("path-mtu", lab().info.addr.farTarget4)).status).toBe("ok");
  });

  describe("WAN impairment faults through the probe's thresholds", () => {
    let probe: ReturnType<typeof startProbe> | undefined;
    afterAll(async () => {
      if (probe) {
        probe.kill("SIGTERM");
        await exited(probe);
      }
    });

    it("wan-latency → amber, wan-loss → red, wan-jitter → amber, each back to green when off", async () => {
      // Only this file's WAN checks (from the lab config), so the verdict is theirs alone.
      const config = parse(readFileSync(LAB_PROBE_CONFIG, "utf8")) as { checks: { name: string }[] };
      config.checks = config.checks.filter((c) => c.name === "wan-far-icmp" || c.name === "wan-traceroute");
      expect(config.checks).toHaveLength(2);
      const configFile = join(lab().info.dir, "wan-path.probe.yaml");
      writeFileSync(configFile, stringify(config));
      probe = startProbe(lab(), {}, configFile);
      const wan = () => probeStatus(lab()).health?.areas.wan;
      const lastIcmp = () => {
        try {
          const c = probeStatus(lab()).checks.find((r) => r.check === "wan-far-icmp");
          return (
            c &&
            `seq ${c.seq} at ${c.started_at}: ${c.status}, loss ${c.metrics.loss_pct} %, avg ${c.metrics.rtt_avg_ms} ms`
          );
        } catch (err) {
          return `status unreadable: ${String(err)}`;
        }
      };
      const settle = async (what: string, state: string) => {
        // fail_after / recover_after 2 at a 2 s interval, plus the run and the write: ~5 s on an
        // idle machine. The budget is for a CI box whose two cores also run the fault suite (its
        // fsyncs can stall every process on the disk); the detection time is the bench's to measure.
        await waitFor(
          () =>
            `WAN ${state} (${what}); at ${new Date().toISOString()} the last wan-far-icmp was ${lastIcmp()}; probe log: ${probe?.log.slice(-5).join(" | ")}`,
          30_000,
          () => wan()?.state === state,
        );
      };
      await settle("start", "ok");
      const steps: [name: "wan-latency" | "wan-loss" | "wan-jitter", value: number, state: string][] = [
        ["wan-latency", 100, "degraded"], // rtt_avg_ms warn 50, fail 200
        ["wan-loss", 60, "failing"], // loss_pct fail 50
        ["wan-jitter", 25, "degraded"], // jitter_ms warn 10, fail 50
      ];
      for (const [fault, value, state] of steps) {
        await lab().fault(fault, true, value);
        await settle(`${fault} ${value}`, state);
        expect(wan()?.reason).toContain("wan-far-icmp");
        await lab().fault(fault, false);
        await settle(`${fault} off`, "ok");
      }
    }, 240_000);
  });
});
