// Throughput benchmark on the lab (docs/throughput.md): the access link gw ── wan shaped to a known
// rate with tc tbf (scripts/lab/iperf3-server.ts), then for TCP and UDP, upload and download, the
// probe's throughput check and Debian's `iperf3 -c` run one right after the other from the probe's
// namespace against the lab's `iperf3 -s` at headquarters. Prints both readings, their difference
// and the ground truth (the bucket's rate less headers). Builds its own throwaway lab (root needed);
// exit 1 when the check differs from iperf3 -c by 5 % or more on any row.
//
//   node scripts/bench/throughput.ts [--mbit 50] [--duration 5] [--json]
//   node scripts/bench/throughput.ts --fixtures test/fixtures/iperf3   # also writes iperf3's raw
//                                    --json reports (successes and failures) as unit-test fixtures
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { labUp, newLabName, type Lab } from "../lab/lab.ts";
import {
  IPERF3_SERVER,
  shapeAccessLink,
  stopIperf3Server,
  ensureIperf3Server,
} from "../lab/iperf3-server.ts";
import type { Measurement } from "../../services/probe/src/checks/check.ts";

const { values: args } = parseArgs({
  options: {
    mbit: { type: "string", default: "50" },
    duration: { type: "string", default: "5" },
    json: { type: "boolean", default: false },
    fixtures: { type: "string" },
  },
});
const MBIT = Number(args.mbit);
const DURATION_S = Number(args.duration);
const ROOT = new URL("../../", import.meta.url).pathname;
const TARGET = IPERF3_SERVER.address;

if (process.getuid?.() !== 0) {
  console.error("throughput bench: needs root (it builds a lab in network namespaces)");
  process.exit(2);
}

interface Row {
  name: string;
  check_bits_per_s: number;
  iperf3_bits_per_s: number;
  diff_pct: number;
  ground_truth_bits_per_s: number;
  check_loss_pct?: number;
  iperf3_loss_pct?: number;
  check_jitter_ms?: number;
  iperf3_jitter_ms?: number;
  retransmits?: number;
}

async function runCheck(lab: Lab, options: Record<string, unknown>): Promise<Measurement> {
  const code = `
    const { checkKind } = await import(${JSON.stringify(join(ROOT, "services/probe/src/checks/registry.ts"))});
    const { Value } = await import("@sinclair/typebox/value");
    const { silentLogger } = await import(${JSON.stringify(join(ROOT, "services/contract/src/log.ts"))});
    const k = checkKind("throughput");
    const opts = Value.Default(k.options, ${JSON.stringify(options)});
    console.log(JSON.stringify(await k.run(${JSON.stringify(TARGET)}, opts, { log: silentLogger(), onDemand: true }, AbortSignal.timeout(120000))));`;
  const r = await lab.exec("probe", [process.execPath, "--input-type=module", "-e", code], {
    timeoutMs: 150_000,
  });
  if (r.code !== 0) throw new Error(`throughput check did not run: ${r.stderr}`);
  return JSON.parse(r.stdout) as Measurement;
}

async function iperf3(lab: Lab, extra: string[], host: "probe" | "wan" = "probe"): Promise<string> {
  const r = await lab.exec(
    host,
    ["iperf3", "-c", TARGET, "-p", String(IPERF3_SERVER.port), "--json", ...extra],
    { timeoutMs: 150_000 },
  );
  return r.stdout;
}

type Doc = {
  error?: string;
  end?: {
    sum_received?: { bits_per_second: number };
    sum?: { lost_percent: number; jitter_ms: number };
  };
};

function saveFixture(name: string, text: string): void {
  if (args.fixtures === undefined) return;
  mkdirSync(args.fixtures, { recursive: true });
  writeFileSync(join(args.fixtures, `${name}.stdout`), text);
}

const lab = await labUp({ name: newLabName("npbt"), ephemeral: true });
const rows: Row[] = [];
let failed = false;
try {
  await shapeAccessLink(lab.info, MBIT);
  const cases: { name: string; options: Record<string, unknown>; iperf3: string[]; truth: number }[] = [
    { name: "tcp-upload", options: {}, iperf3: [], truth: MBIT * 1e6 * (1448 / 1514) },
    {
      name: "tcp-download",
      options: { direction: "download" },
      iperf3: ["-R"],
      truth: MBIT * 1e6 * (1448 / 1514),
    },
    {
      name: "tcp-upload-parallel4",
      options: { parallel: 4 },
      iperf3: ["-P", "4"],
      truth: MBIT * 1e6 * (1448 / 1514),
    },
    // Below the bucket's rate UDP arrives whole; above it the bucket drops the excess.
    {
      name: "udp-upload",
      options: { protocol: "udp", bitrate_mbps: MBIT * 0.4 },
      iperf3: ["-u", "-b", `${MBIT * 0.4}M`],
      truth: MBIT * 0.4 * 1e6,
    },
    {
      name: "udp-download-overload",
      options: { protocol: "udp", direction: "download", bitrate_mbps: MBIT * 1.6 },
      iperf3: ["-u", "-R", "-b", `${MBIT * 1.6}M`],
      truth: MBIT * 1e6 * (1448 / 1490),
    },
  ];
  for (const c of cases) {
    const m = await runCheck(lab, { duration_s: DURATION_S, skip_above_pct: 0, ...c.options });
    const raw = await iperf3(lab, ["-t", String(DURATION_S), ...c.iperf3]);
    saveFixture(c.name, raw);
    const doc = JSON.parse(raw) as Doc;
    if (m.error !== undefined || doc.error !== undefined || doc.end?.sum_received === undefined) {
      console.error(
        `${c.name}: check ${m.error?.code ?? "ok"} ${m.error?.message ?? ""}; iperf3 ${doc.error ?? ""}`,
      );
      failed = true;
      continue;
    }
    const ref = doc.end.sum_received.bits_per_second;
    const got = m.metrics.bits_per_s ?? NaN;
    const row: Row = {
      name: c.name,
      check_bits_per_s: got,
      iperf3_bits_per_s: Math.round(ref),
      diff_pct: Math.round(((got - ref) / ref) * 10000) / 100,
      ground_truth_bits_per_s: Math.round(c.truth),
    };
    if (m.metrics.retransmits !== undefined) row.retransmits = m.metrics.retransmits;
    if (m.metrics.loss_pct !== undefined) {
      row.check_loss_pct = m.metrics.loss_pct;
      row.check_jitter_ms = m.metrics.jitter_ms ?? NaN;
      row.iperf3_loss_pct = Math.round((doc.end.sum?.lost_percent ?? NaN) * 1000) / 1000;
      row.iperf3_jitter_ms = Math.round((doc.end.sum?.jitter_ms ?? NaN) * 1000) / 1000;
    }
    if (!(Math.abs(row.diff_pct) < 5)) failed = true;
    rows.push(row);
  }

  if (args.fixtures !== undefined) {
    // The failures iperf3 reports in its JSON, as the check meets them.
    const busy = lab.exec("wan", ["iperf3", "-c", TARGET, "-t", "4"], { timeoutMs: 20_000 });
    await new Promise((r) => setTimeout(r, 1000));
    saveFixture("error-busy", await iperf3(lab, ["-t", "1"]));
    await busy;
    const midTest = iperf3(lab, ["-t", "6"]);
    await new Promise((r) => setTimeout(r, 2500));
    await stopIperf3Server(lab.info);
    saveFixture("error-server-killed", await midTest);
    saveFixture("error-refused", await iperf3(lab, ["-t", "1"]));
    saveFixture("error-no-route", await iperf3Raw(lab, ["-c", "198.51.100.77", "-t", "1", "--json"], "hq"));
    saveFixture(
      "error-timeout",
      await iperf3Raw(lab, ["-c", "203.0.113.99", "-t", "1", "--connect-timeout", "1000", "--json"]),
    );
    await ensureIperf3Server(lab.info);
  }
} finally {
  await shapeAccessLink(lab.info, null).catch(() => undefined);
  await lab.down();
}

/** iperf3 with argv as given (no server defaults), for the connection failures. */
async function iperf3Raw(l: Lab, argv: string[], host: "probe" | "hq" = "probe"): Promise<string> {
  return (await l.exec(host, ["iperf3", ...argv], { timeoutMs: 30_000 })).stdout;
}

if (args.json) console.log(JSON.stringify({ mbit: MBIT, duration_s: DURATION_S, rows }));
else {
  const mb = (bps: number | undefined): string => (bps === undefined ? "" : (bps / 1e6).toFixed(2));
  console.log(`access link shaped to ${MBIT} Mbit/s (tc tbf), ${DURATION_S} s per run, check then iperf3 -c`);
  console.log(
    "row                     check Mbit/s  iperf3 Mbit/s  diff %  truth Mbit/s  loss % (check/iperf3)  jitter ms (check/iperf3)  retransmits",
  );
  for (const r of rows) {
    const loss = r.check_loss_pct === undefined ? "" : `${r.check_loss_pct} / ${r.iperf3_loss_pct}`;
    const jitter = r.check_jitter_ms === undefined ? "" : `${r.check_jitter_ms} / ${r.iperf3_jitter_ms}`;
    console.log(
      `${r.name.padEnd(22)}  ${mb(r.check_bits_per_s).padStart(12)}  ${mb(r.iperf3_bits_per_s).padStart(13)}  ${r.diff_pct.toFixed(2).padStart(6)}  ${mb(r.ground_truth_bits_per_s).padStart(12)}  ${loss.padStart(21)}  ${jitter.padStart(24)}  ${r.retransmits ?? ""}`,
    );
  }
}
process.exit(failed ? 1 : 0);
