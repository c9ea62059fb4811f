// WAN accuracy benchmark on the lab (issue 4; docs/architecture.md, "Quality bars"): the probe's icmp check, iputils
// `ping` and `fping` run at the same time from the probe namespace to the far target, whose echo
// replies come from the lab's userspace responder (scripts/lab/icmp-responder.ts) with known
// impairment; the responder reports per flow what it really did (ground truth). Each tool uses
// its own payload size (probe 56, ping 57, fping 58 bytes) so the responder can tell their flows
// apart behind the office NAT.
//
// Bars: median RTT within 0.05 ms of ping's and of fping's (unimpaired path); with 5 % injected
// loss over 1,000 echoes the probe reports 5 ± 1 %; with injected jitter the probe's jitter is
// within 10 % of the responder's. Builds its own throwaway lab (root needed); exit 1 when a bar fails.
//
//   node scripts/bench/wan-accuracy.ts [--count 1000] [--interval-ms 10] [--jitter-ms 5] [--json]
import { parseArgs } from "node:util";
import { labUp, newLabName, type Lab } from "../lab/lab.ts";
import { responderCommand } from "../lab/wan-path.ts";
import { icmp } from "../../services/probe/src/checks/icmp.ts";
import { percentile, interarrivalJitter } from "../../services/probe/src/checks/series-stats.ts";
import { silentLogger } from "../../services/contract/src/log.ts";

const { values: args } = parseArgs({
  options: {
    count: { type: "string", default: "1000" },
    "interval-ms": { type: "string", default: "10" },
    "jitter-ms": { type: "string", default: "5" },
    json: { type: "boolean", default: false },
    child: { type: "string" },
  },
});
const COUNT = Number(args.count);
const INTERVAL_MS = Number(args["interval-ms"]);
const JITTER_MS = Number(args["jitter-ms"]);

if (args.child !== undefined) {
  // Inside the probe namespace: one run of the product's icmp check.
  const [target = "", count = "0", interval = "10"] = args.child.split(",");
  const measurement = await icmp.run(
    target,
    {
      count: Number(count),
      interval_ms: Number(interval),
      size: 56,
      wait_ms: 2000,
      address_family: "auto",
    },
    { log: silentLogger() },
    AbortSignal.timeout(600_000),
  );
  console.log(JSON.stringify(measurement));
  process.exit(0);
}

if (process.getuid?.() !== 0) {
  console.error("wan-accuracy: needs root (it builds a lab in network namespaces)");
  process.exit(2);
}

interface ToolResult {
  /** How the probe's RTTs were timed (detail.timestamps, wire_rtts): "wire 1000", "mixed 990"… */
  timing?: string;
  sent: number;
  received: number;
  loss_pct: number;
  p50_ms: number;
  jitter_ms: number;
}

function median(values: number[]): number {
  return values.length === 0
    ? Number.NaN
    : percentile(
        [...values].sort((a, b) => a - b),
        50,
      );
}

function fromSeries(series: (number | null)[]): ToolResult {
  const got = series.filter((v): v is number => v !== null);
  return {
    sent: series.length,
    received: got.length,
    loss_pct: (100 * (series.length - got.length)) / Math.max(1, series.length),
    p50_ms: median(got),
    jitter_ms: interarrivalJitter(got) ?? Number.NaN,
  };
}

/** iputils ping: per-packet `icmp_seq=N … time=X ms`; missing sequences are lost. */
async function ping(lab: Lab, target: string, count: number): Promise<ToolResult> {
  const interval = String(INTERVAL_MS / 1000);
  const r = await lab.exec(
    "probe",
    ["ping", "-n", "-s", "57", "-c", String(count), "-i", interval, "-W", "2", target],
    {
      timeoutMs: 600_000,
    },
  );
  const series: (number | null)[] = new Array<number | null>(count).fill(null);
  for (const m of r.stdout.matchAll(/icmp_seq=(\d+) .*time=([\d.]+) ms/g))
    series[Number(m[1]) - 1] = Number(m[2]);
  return fromSeries(series);
}

/** fping -C: `target : 0.52 0.48 - 0.51` on stderr, `-` for a lost echo. */
async function fping(lab: Lab, target: string, count: number): Promise<ToolResult> {
  const r = await lab.exec(
    "probe",
    ["fping", "-q", "-b", "58", "-C", String(count), "-p", String(INTERVAL_MS), "-t", "2000", target],
    { timeoutMs: 600_000 },
  );
  const line = (r.stdout + r.stderr).split("\n").find((l) => l.startsWith(`${target} :`)) ?? "";
  const series = line
    .split(":")[1]
    ?.trim()
    .split(/\s+/)
    .map((v) => (v === "-" ? null : Number(v)));
  return fromSeries(series ?? []);
}

async function probe(lab: Lab, target: string, count: number): Promise<ToolResult> {
  const r = await lab.exec(
    "probe",
    [process.execPath, import.meta.filename, "--child", `${target},${count},${INTERVAL_MS}`],
    { timeoutMs: 600_000 },
  );
  const m = JSON.parse(r.stdout) as { metrics: Record<string, number>; detail?: Record<string, unknown> };
  const timing = `${String(m.detail?.timestamps)} ${String(m.detail?.wire_rtts)}`;
  const why = typeof m.detail?.wire_unavailable === "string" ? ` (${m.detail.wire_unavailable})` : "";
  return {
    timing: timing + why,
    sent: m.metrics.sent ?? 0,
    received: m.metrics.received ?? 0,
    loss_pct: m.metrics.loss_pct ?? Number.NaN,
    p50_ms: m.metrics.rtt_p50_ms ?? Number.NaN,
    jitter_ms: m.metrics.jitter_ms ?? Number.NaN,
  };
}

interface Flow {
  payload_bytes: number;
  received: number;
  dropped: number;
  loss_pct: number | null;
  hold_p50_ms: number | null;
  hold_jitter_ms: number | null;
}

const r3 = (v: number): number => Math.round(v * 1000) / 1000;

const lab = await labUp({ name: newLabName("npbw"), ephemeral: true });
const rows: Record<string, unknown>[] = [];
const bars: { bar: string; value: number; limit: string; pass: boolean }[] = [];
try {
  const target = lab.info.addr.farTarget4;
  // Warm the path (ARP, JIT in the responder).
  await lab.exec("probe", ["ping", "-n", "-q", "-c", "20", "-i", "0.01", target]);
  const scenarios: { name: string; fault?: ["wan-loss" | "wan-jitter", number] }[] = [
    { name: "unimpaired" },
    { name: "loss 5 %", fault: ["wan-loss", 5] },
    { name: `jitter ${JITTER_MS} ms`, fault: ["wan-jitter", JITTER_MS] },
  ];
  for (const scenario of scenarios) {
    if (scenario.fault) await lab.fault(scenario.fault[0], true, scenario.fault[1]);
    await responderCommand(lab.info.dir, { stats: true, reset: true });
    const [p, pi, fp] = await Promise.all([
      probe(lab, target, COUNT),
      ping(lab, target, COUNT),
      fping(lab, target, COUNT),
    ]);
    const stats = (await responderCommand(lab.info.dir, { stats: true, reset: true })) as { flows: Flow[] };
    if (scenario.fault) await lab.fault(scenario.fault[0], false);
    const truth = stats.flows.find((f) => f.payload_bytes === 56);
    const tools = { probe: p, ping: pi, fping: fp } as const;
    for (const [tool, t] of Object.entries(tools)) {
      const flow = stats.flows.find((f) => f.payload_bytes === { probe: 56, ping: 57, fping: 58 }[tool]);
      rows.push({
        scenario: scenario.name,
        tool,
        received: `${t.received}/${t.sent}`,
        timing: t.timing ?? "",
        loss_pct: r3(t.loss_pct),
        truth_loss_pct: flow?.loss_pct === null || flow === undefined ? "" : r3(flow.loss_pct),
        rtt_p50_ms: r3(t.p50_ms),
        jitter_ms: r3(t.jitter_ms),
        truth_jitter_ms: flow?.hold_jitter_ms == null ? "" : r3(flow.hold_jitter_ms),
        truth_hold_p50_ms: flow?.hold_p50_ms == null ? "" : r3(flow.hold_p50_ms),
      });
    }
    if (scenario.name === "unimpaired") {
      for (const [other, t] of [
        ["ping", pi],
        ["fping", fp],
      ] as const) {
        const diff = p.p50_ms - t.p50_ms;
        bars.push({
          bar: `RTT median − ${other}'s`,
          value: r3(diff),
          limit: "|·| ≤ 0.05 ms",
          pass: Math.abs(diff) <= 0.05,
        });
      }
    } else if (scenario.fault?.[0] === "wan-loss") {
      bars.push({
        bar: "loss over 1,000 at 5 %",
        value: r3(p.loss_pct),
        limit: "5 ± 1 %",
        pass: Math.abs(p.loss_pct - 5) <= 1,
      });
      if (truth?.loss_pct != null)
        bars.push({
          bar: "loss − ground truth",
          value: r3(p.loss_pct - truth.loss_pct),
          limit: "info",
          pass: true,
        });
    } else if (truth?.hold_jitter_ms != null) {
      const rel = (p.jitter_ms - truth.hold_jitter_ms) / truth.hold_jitter_ms;
      bars.push({
        bar: "jitter vs ground truth",
        value: r3(100 * rel),
        limit: "|·| ≤ 10 %",
        pass: Math.abs(rel) <= 0.1,
      });
    }
  }
} finally {
  await lab.down();
}

const pass = bars.every((b) => b.pass);
if (args.json) console.log(JSON.stringify({ count: COUNT, interval_ms: INTERVAL_MS, rows, bars, pass }));
else {
  console.log(
    `wan-accuracy: ${COUNT} echoes per tool at ${INTERVAL_MS} ms, all three at once, lab far target`,
  );
  console.table(rows);
  console.table(bars);
  console.log(pass ? "all bars met" : "a bar was missed");
}
process.exitCode = pass ? 0 : 1;
