// STAMP accuracy on the lab: the probe's stamp check (checks/stamp.ts) to the far target's
// reflector (scripts/lab/stamp-responder.ts), with tshark capturing the probe's interface and
// iputils `ping` to the same host running at the same time. Two rounds: unimpaired, then with
// wan-loss / wan-latency / wan-jitter. Prints the probe's numbers beside the wire's (T4 − T1 from
// the capture minus the reflector's T3 − T2), ping's, and the responder's ground truth.
//
// ping's echoes are answered by icmp-responder.ts, whose model holds each reply once (latency +
// U[0, 3 × jitter]); the STAMP responder holds each direction (latency / 2 + U[0, 3 × jitter]),
// so with jitter on, ping's RTT is ~1.5 × jitter lower: compare ping with the probe unimpaired only.
//
//   node scripts/bench/stamp-accuracy.ts [--count 1000] [--interval-ms 10] [--loss 5] [--latency-ms 30] [--jitter-ms 10] [--json]
import { parseArgs } from "node:util";
import { labUp, newLabName, type Lab } from "../lab/lab.ts";
import { stampResponderCommand } from "../lab/stamp-target.ts";
import { interarrivalJitter, percentile } from "../../services/probe/src/checks/series-stats.ts";
import { stamp } from "../../services/probe/src/checks/stamp.ts";
import { silentLogger } from "../../services/contract/src/log.ts";

const { values: args } = parseArgs({
  options: {
    count: { type: "string", default: "1000" },
    "interval-ms": { type: "string", default: "10" },
    loss: { type: "string", default: "5" },
    "latency-ms": { type: "string", default: "30" },
    "jitter-ms": { type: "string", default: "10" },
    json: { type: "boolean", default: false },
    child: { type: "string" },
  },
});
const COUNT = Number(args.count);
const INTERVAL_MS = Number(args["interval-ms"]);

if (args.child !== undefined) {
  // Inside the probe namespace: one run of the product's stamp check.
  const [target = "", count = "0", interval = "10"] = args.child.split(",");
  const m = await stamp.run(
    target,
    {
      count: Number(count),
      interval_ms: Number(interval),
      padding: 0,
      port: 862,
      wait_ms: 2000,
      clock_synchronized: true,
      clock_error_ms: 0.001,
      address_family: "auto",
    },
    { log: silentLogger() },
    AbortSignal.timeout(600_000),
  );
  console.log(JSON.stringify(m));
  process.exit(0);
}

if (process.getuid?.() !== 0) {
  console.error("stamp-accuracy: needs root (it builds a lab in network namespaces)");
  process.exit(2);
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const median = (xs: number[]): number =>
  percentile(
    [...xs].sort((a, b) => a - b),
    50,
  );
const r3 = (x: number | undefined): number | undefined =>
  x === undefined ? undefined : Math.round(x * 1000) / 1000;

interface Flow {
  received: number;
  fwd_dropped: number[];
  back_dropped: number[];
  replied: number;
  holds: Record<string, [number, number]>;
}

/** Unix ms of the NTP timestamp at `offset` of a STAMP payload. */
function ntpMs(payload: Buffer, offset: number): number {
  return (
    (payload.readUInt32BE(offset) - 2_208_988_800) * 1000 +
    (payload.readUInt32BE(offset + 4) / 2 ** 32) * 1000
  );
}

async function round(lab: Lab, impaired: boolean): Promise<Record<string, unknown>> {
  const target = lab.info.addr.farTarget4;
  const file = `${lab.info.dir}/bench-${impaired ? "impaired" : "clean"}.pcap`;
  await stampResponderCommand(lab.info.dir, { stats: true, reset: true });
  const capture = lab.spawn("probe", ["tshark", "-q", "-i", "eth0", "-f", "udp port 862", "-w", file], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  capture.stderr?.on("data", (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise((r) => capture.once("exit", r));
  for (let i = 0; i < 200 && !stderr.includes("Capturing on"); i++)
    await new Promise((r) => setTimeout(r, 50));
  const script = new URL(import.meta.url).pathname;
  const [probeRun, pingRun] = await Promise.all([
    lab.exec("probe", [process.execPath, script, "--child", `${target},${COUNT},${INTERVAL_MS}`], {
      timeoutMs: 600_000,
    }),
    lab.exec(
      "probe",
      ["ping", "-n", "-c", String(COUNT), "-i", String(INTERVAL_MS / 1000), "-W", "2", target],
      {
        timeoutMs: 600_000,
      },
    ),
  ]);
  await new Promise((r) => setTimeout(r, 300));
  capture.kill("SIGINT");
  await exited;
  const probe = JSON.parse(probeRun.stdout) as {
    metrics: Record<string, number>;
    detail: Record<string, unknown>;
  };
  const pingRtts = [...pingRun.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  const dump = await lab.exec(
    "probe",
    [
      "tshark",
      "-r",
      file,
      "-T",
      "fields",
      "-e",
      "frame.time_epoch",
      "-e",
      "udp.dstport",
      "-e",
      "udp.payload",
    ],
    {
      timeoutMs: 120_000,
    },
  );
  const sentAt = new Map<number, number>();
  const wireBySeq = new Map<number, number>();
  const rows = dump.stdout
    .trim()
    .split("\n")
    .map((l) => l.split("\t"));
  for (const [epoch = "", dport = "", hex = ""] of rows) {
    const payload = Buffer.from(hex.replaceAll(":", ""), "hex");
    if (payload.length < 44) continue;
    if (dport === "862") sentAt.set(payload.readUInt32BE(0), Number(epoch) * 1000);
  }
  for (const [epoch = "", dport = "", hex = ""] of rows) {
    const payload = Buffer.from(hex.replaceAll(":", ""), "hex");
    if (dport === "862" || payload.length < 44) continue;
    const seq = payload.readUInt32BE(24);
    const t1 = sentAt.get(seq);
    if (t1 === undefined || wireBySeq.has(seq)) continue;
    wireBySeq.set(seq, Number(epoch) * 1000 - t1 - (ntpMs(payload, 4) - ntpMs(payload, 16)));
  }
  // In send order, as the probe's jitter is (RFC 3550 differences of consecutive packets).
  const wire = [...wireBySeq.entries()].sort((a, b) => a[0] - b[0]).map(([, rtt]) => rtt);
  const flow = ((await stampResponderCommand(lab.info.dir, { stats: true })).flows as Flow[])[0];
  const order = Object.keys(flow?.holds ?? {})
    .map(Number)
    .sort((a, b) => a - b);
  const m = probe.metrics;
  return {
    round: impaired
      ? `impaired (loss ${args.loss} %, latency ${args["latency-ms"]} ms, jitter ${args["jitter-ms"]} ms)`
      : "unimpaired",
    timestamps: `${String(probe.detail.timestamps)} ${String(probe.detail.wire_rtts)}`,
    rtt_p50_ms: { probe: m.rtt_p50_ms, wire: r3(median(wire)), ping: r3(median(pingRtts)) },
    rtt_avg_ms: { probe: m.rtt_avg_ms, wire: r3(mean(wire)), ping: r3(mean(pingRtts)) },
    loss_pct: {
      probe: m.loss_pct,
      truth: flow ? r3((100 * (COUNT - flow.replied)) / COUNT) : undefined,
      ping: r3((100 * (COUNT - pingRtts.length)) / COUNT),
    },
    loss_fwd_pct: {
      probe: m.loss_fwd_pct,
      truth: flow ? r3((100 * flow.fwd_dropped.length) / COUNT) : undefined,
    },
    loss_back_pct: {
      probe: m.loss_back_pct,
      truth: flow ? r3((100 * flow.back_dropped.length) / (COUNT - flow.fwd_dropped.length)) : undefined,
    },
    jitter_fwd_ms: {
      probe: m.jitter_fwd_ms,
      truth: r3(interarrivalJitter(order.map((s) => flow?.holds[s]?.[0] ?? 0))),
    },
    jitter_back_ms: {
      probe: m.jitter_back_ms,
      truth: r3(interarrivalJitter(order.map((s) => flow?.holds[s]?.[1] ?? 0))),
    },
    jitter_ms: {
      probe: m.jitter_ms,
      wire: r3(interarrivalJitter(wire)),
      ping: r3(interarrivalJitter(pingRtts)),
    },
  };
}

const lab = await labUp({ name: newLabName(), ephemeral: true });
try {
  const results = [await round(lab, false)];
  await lab.fault("wan-loss", true, Number(args.loss));
  await lab.fault("wan-latency", true, Number(args["latency-ms"]));
  await lab.fault("wan-jitter", true, Number(args["jitter-ms"]));
  results.push(await round(lab, true));
  if (args.json) console.log(JSON.stringify(results));
  else {
    console.log(
      `stamp-accuracy: ${COUNT} packets every ${INTERVAL_MS} ms, probe vs wire vs ping on the same run`,
    );
    for (const r of results) {
      console.log(`\n${String(r.round)} (probe timestamps: ${String(r.timestamps)})`);
      for (const [k, v] of Object.entries(r))
        if (typeof v === "object") console.log(`  ${k.padEnd(15)} ${JSON.stringify(v)}`);
    }
  }
} finally {
  await lab.down();
}
