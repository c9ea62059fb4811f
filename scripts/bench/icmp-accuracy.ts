// ICMP accuracy benchmark (docs/architecture.md, "Quality bars": median RTT within 0.05 ms of iputils ping on the same
// path). Builds two throwaway network namespaces joined by a veth pair (192.0.2.1 ↔ 192.0.2.2,
// 2001:db8::1 ↔ 2001:db8::2), then per family and round runs `ping -c N -i 0.01` and the icmp
// check with the same count and interval from the first namespace to the second, alternating
// which goes first. No packet leaves the namespaces; they are removed on exit, also on errors and
// SIGINT/SIGTERM. Needs root (ip netns) and iputils ping.
//
//   node scripts/bench/icmp-accuracy.ts [--rounds 5] [--count 50] [--interval-ms 10] [--json]
import { execFileSync, spawnSync } from "node:child_process";
import { parseArgs } from "node:util";
import { icmp } from "../../services/probe/src/checks/icmp.ts";
import { percentile } from "../../services/probe/src/checks/series-stats.ts";
import { silentLogger } from "../../services/contract/src/log.ts";

const { values: args } = parseArgs({
  options: {
    rounds: { type: "string", default: "5" },
    count: { type: "string", default: "50" },
    "interval-ms": { type: "string", default: "10" },
    json: { type: "boolean", default: false },
    // Internal: run one check in the current namespace and print its measurement.
    child: { type: "string" },
  },
});
const ROUNDS = Number(args.rounds);
const COUNT = Number(args.count);
const INTERVAL_MS = Number(args["interval-ms"]);
const BAR_MS = 0.05;

if (args.child !== undefined) {
  const measurement = await icmp.run(
    args.child,
    { count: COUNT, interval_ms: INTERVAL_MS, size: 56, wait_ms: 1000, address_family: "auto" },
    { log: silentLogger() },
    AbortSignal.timeout(60_000),
  );
  console.log(JSON.stringify(measurement));
  process.exit(0);
}

if (process.getuid?.() !== 0) {
  console.error("icmp-accuracy: needs root to create network namespaces (ip netns)");
  process.exit(2);
}

const near = `npbench-icmp-${process.pid}-a`;
const far = `npbench-icmp-${process.pid}-b`;
const TARGETS = [
  { family: "ipv4", address: "192.0.2.2" },
  { family: "ipv6", address: "2001:db8::2" },
] as const;

function ip(...argv: string[]): void {
  execFileSync("ip", argv, { stdio: ["ignore", "ignore", "inherit"] });
}

function removeNamespaces(): void {
  for (const ns of [near, far]) spawnSync("ip", ["netns", "delete", ns], { stdio: "ignore" });
}

function buildNamespaces(): void {
  ip("netns", "add", near);
  ip("netns", "add", far);
  // Both veth ends are created directly inside the namespaces: nothing appears in the root one.
  ip("link", "add", "eth0", "netns", near, "type", "veth", "peer", "name", "eth0", "netns", far);
  ip("-n", near, "addr", "add", "192.0.2.1/24", "dev", "eth0");
  ip("-n", far, "addr", "add", "192.0.2.2/24", "dev", "eth0");
  ip("-n", near, "-6", "addr", "add", "2001:db8::1/64", "dev", "eth0", "nodad");
  ip("-n", far, "-6", "addr", "add", "2001:db8::2/64", "dev", "eth0", "nodad");
  for (const ns of [near, far]) {
    ip("-n", ns, "link", "set", "lo", "up");
    ip("-n", ns, "link", "set", "eth0", "up");
  }
}

/** Per-packet RTTs printed by iputils ping (`time=0.051 ms`). */
function pingRtts(address: string): number[] {
  const out = execFileSync(
    "ip",
    [
      "netns",
      "exec",
      near,
      "ping",
      "-n",
      "-c",
      String(COUNT),
      "-i",
      String(INTERVAL_MS / 1000),
      "-W",
      "1",
      address,
    ],
    { encoding: "utf8" },
  );
  return [...out.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
}

/** The icmp check's median and metrics, run in a child inside the near namespace. */
function probeMetrics(address: string): Record<string, number> {
  const out = execFileSync(
    "ip",
    ["netns", "exec", near, process.execPath, import.meta.filename, "--child", address, ...forwardedArgs()],
    { encoding: "utf8" },
  );
  const measurement = JSON.parse(out) as { status: string; metrics: Record<string, number> };
  if (measurement.status !== "ok") throw new Error(`icmp check failed: ${out}`);
  return measurement.metrics;
}

function forwardedArgs(): string[] {
  return ["--count", String(COUNT), "--interval-ms", String(INTERVAL_MS)];
}

function median(values: readonly number[]): number {
  return percentile(
    [...values].sort((a, b) => a - b),
    50,
  );
}

function round3(value: number): number {
  return Math.round(value * 1000) / 1000;
}

interface Row {
  family: string;
  round: number;
  ping_p50_ms: number;
  probe_p50_ms: number;
  diff_ms: number;
  ping_received: number;
  probe_received: number;
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    removeNamespaces();
    process.exit(130);
  });
}

const rows: Row[] = [];
try {
  buildNamespaces();
  // Warm the path (neighbour discovery/ARP) so neither side pays for resolution.
  for (const { address } of TARGETS) {
    spawnSync("ip", ["netns", "exec", near, "ping", "-n", "-c", "2", "-i", "0.2", "-W", "2", address], {
      stdio: "ignore",
    });
  }
  for (const { family, address } of TARGETS) {
    for (let round = 1; round <= ROUNDS; round++) {
      let ping: number[];
      let probe: Record<string, number>;
      if (round % 2 === 1) {
        ping = pingRtts(address);
        probe = probeMetrics(address);
      } else {
        probe = probeMetrics(address);
        ping = pingRtts(address);
      }
      const pingP50 = median(ping);
      const probeP50 = probe.rtt_p50_ms ?? Number.NaN;
      rows.push({
        family,
        round,
        ping_p50_ms: round3(pingP50),
        probe_p50_ms: probeP50,
        diff_ms: round3(probeP50 - pingP50),
        ping_received: ping.length,
        probe_received: probe.received ?? 0,
      });
    }
  }
} finally {
  removeNamespaces();
}

const worst = Math.max(...rows.map((row) => Math.abs(row.diff_ms)));
const summary = {
  count: COUNT,
  interval_ms: INTERVAL_MS,
  rounds: ROUNDS,
  bar_ms: BAR_MS,
  worst_abs_diff_ms: worst,
  median_diff_ms: Object.fromEntries(
    TARGETS.map(({ family }) => [
      family,
      round3(median(rows.filter((r) => r.family === family).map((r) => r.diff_ms))),
    ]),
  ),
  pass: worst <= BAR_MS,
};
if (args.json) {
  console.log(JSON.stringify({ rows, summary }));
} else {
  console.table(rows);
  console.log(summary);
}
process.exitCode = summary.pass ? 0 : 1;
