// ICMP RTT accuracy against the wire: the probe's icmp check, iputils ping, fping,
// blackbox_exporter's ICMP prober and monitoring-plugins' check_icmp all ping the same lab target
// from the probe's namespace AT THE SAME TIME, while tshark captures on the probe's eth0
// (wire-capture.ts). Each tool sends a different ICMP payload size, so every echo on the wire is
// attributed to its tool by length and paired request → reply by (identifier, sequence). Per tool:
// median of what the tool reported − median of the wire RTTs of its own echoes.
//
//   node scripts/bench/icmp-wire.ts [--count 200] [--interval-ms 20] [--target 192.0.2.1]
//                                   [--lab NAME] [--json]
//
// Root; builds and removes a throwaway lab unless --lab names a running one. The probe side runs
// the check through icmp-accuracy.ts's --child mode (payload 56 bytes). blackbox_exporter listens
// on 127.0.0.1 inside the probe namespace only and is scraped once per echo (one echo per scrape).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Lab, labUp } from "../lab/lab.ts";
import { median, readFields, startCapture } from "./wire-capture.ts";

const { values: args } = parseArgs({
  options: {
    count: { type: "string", default: "200" },
    "interval-ms": { type: "string", default: "20" },
    target: { type: "string", default: "192.0.2.1" },
    lab: { type: "string" },
    json: { type: "boolean", default: false },
  },
});
const COUNT = Number(args.count);
const INTERVAL_MS = Number(args["interval-ms"]);
const TARGET = args.target;
const BB_PORT = 9116; // not the footprint section's 9115: both may run in one lab
const PLUGINS = "/usr/lib/nagios/plugins";

/** ICMP payload bytes per tool: the wire tells the tools apart by length. */
const PAYLOAD = { probe: 56, ping: 64, fping: 72, check_icmp: 88, blackbox_exporter: 104 } as const;
type Tool = keyof typeof PAYLOAD;
const TOOLS = Object.keys(PAYLOAD) as Tool[];

if (process.getuid?.() !== 0) {
  console.error("icmp-wire: needs root (the lab uses network namespaces)");
  process.exit(2);
}

/** Per tool: what it reported and what the wire saw for its echoes. */
export interface ToolAccuracy {
  reported: number;
  wire_pairs: number;
  median_ms: number;
  wire_median_ms: number;
  minus_wire_ms: number;
}

const lab = args.lab ? Lab.load(args.lab) : await labUp({ ephemeral: true });
const work = mkdtempSync(join(tmpdir(), "np-icmp-wire-"));
const bb = startBlackbox(lab, work);
try {
  const capture = await startCapture(
    lab,
    "probe",
    "eth0",
    `icmp and host ${TARGET}`,
    join(work, "icmp.pcap"),
  );
  const reported = await Promise.all([probe(), ping(), fping(), checkIcmp(), blackbox()]);
  await capture.stop();
  const wire = wireRtts(capture.file);
  const out = {} as Record<Tool, ToolAccuracy>;
  TOOLS.forEach((tool, i) => {
    const mine = reported[i]!;
    const w = wire.get(PAYLOAD[tool]) ?? [];
    out[tool] = {
      reported: mine.length,
      wire_pairs: w.length,
      median_ms: r3(median(mine)),
      wire_median_ms: r3(median(w)),
      minus_wire_ms: r3(median(mine) - median(w)),
    };
  });
  if (args.json)
    console.log(JSON.stringify({ target: TARGET, count: COUNT, interval_ms: INTERVAL_MS, tools: out }));
  else {
    console.log(
      `ICMP RTT vs the wire: ${COUNT} echoes per tool to ${TARGET} every ${INTERVAL_MS} ms, all tools at once, lab ${lab.info.name}`,
    );
    console.log(
      "tool                 payload  reported  wire pairs  median ms  wire median ms  median − wire ms",
    );
    for (const tool of TOOLS) {
      const t = out[tool];
      console.log(
        `${tool.padEnd(20)} ${String(PAYLOAD[tool]).padStart(7)}  ${String(t.reported).padStart(8)}  ${String(t.wire_pairs).padStart(10)}  ${t.median_ms.toFixed(3).padStart(9)}  ${t.wire_median_ms.toFixed(3).padStart(14)}  ${t.minus_wire_ms.toFixed(3).padStart(16)}`,
      );
    }
  }
} finally {
  bb.kill("SIGTERM");
  rmSync(work, { recursive: true, force: true });
  if (!args.lab) await lab.down();
}

function r3(v: number): number {
  return Math.round(v * 1000) / 1000;
}

/** The icmp check (icmp-accuracy.ts --child): its per-request RTTs. */
async function probe(): Promise<number[]> {
  const script = new URL("./icmp-accuracy.ts", import.meta.url).pathname;
  const r = await lab.exec(
    "probe",
    [
      process.execPath,
      script,
      "--child",
      TARGET,
      "--count",
      String(COUNT),
      "--interval-ms",
      String(INTERVAL_MS),
    ],
    { timeoutMs: 120_000 },
  );
  const m = JSON.parse(r.stdout) as { detail?: { rtts_ms?: Array<number | null> } };
  return (m.detail?.rtts_ms ?? []).filter((v): v is number => typeof v === "number");
}

/** iputils ping: `time=0.051 ms` per reply. */
async function ping(): Promise<number[]> {
  const r = await lab.exec(
    "probe",
    ["ping", "-n", "-c", String(COUNT), "-i", String(INTERVAL_MS / 1000), "-s", String(PAYLOAD.ping), TARGET],
    { timeoutMs: 120_000 },
  );
  return [...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
}

/** fping -C: one line `target : 0.05 0.04 …` on stderr. */
async function fping(): Promise<number[]> {
  const r = await lab.exec(
    "probe",
    ["fping", "-q", "-C", String(COUNT), "-p", String(INTERVAL_MS), "-b", String(PAYLOAD.fping), TARGET],
    { timeoutMs: 120_000 },
  );
  const line = r.stderr.split("\n").find((l) => l.startsWith(`${TARGET} :`)) ?? "";
  return line
    .slice(line.indexOf(":") + 1)
    .trim()
    .split(/\s+/)
    .map(Number)
    .filter((v) => Number.isFinite(v));
}

/**
 * check_icmp -v: `0.077 ms rtt from 192.0.2.1, …` per reply. One echo per run: asked for several,
 * check_icmp sends them back to back whatever -i says (5 echoes within ~80 µs on a veth), and an
 * echo right behind another one is not the isolated echo the other tools send.
 */
async function checkIcmp(): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < COUNT; i++) {
    const t0 = performance.now();
    const r = await lab.exec(
      "probe",
      [`${PLUGINS}/check_icmp`, "-v", "-H", TARGET, "-n", "1", "-b", String(PAYLOAD.check_icmp)],
      {
        timeoutMs: 30_000,
      },
    );
    const got = /^([\d.]+) ms rtt from/m.exec(r.stdout)?.[1];
    if (got !== undefined) out.push(Number(got));
    await new Promise((res) => setTimeout(res, Math.max(0, INTERVAL_MS - (performance.now() - t0))));
  }
  if (out.length === 0) throw new Error("check_icmp reported no RTT");
  return out;
}

/** blackbox_exporter in the probe namespace, listening on its loopback only. */
function startBlackbox(l: Lab, dir: string) {
  const cfg = join(dir, "blackbox.yml");
  writeFileSync(
    cfg,
    `modules:\n  icmp:\n    prober: icmp\n    timeout: 2s\n    icmp:\n      payload_size: ${PAYLOAD.blackbox_exporter}\n`,
  );
  return l.spawn(
    "probe",
    ["prometheus-blackbox-exporter", `--config.file=${cfg}`, `--web.listen-address=127.0.0.1:${BB_PORT}`],
    { stdio: "ignore" },
  );
}

/** One scrape per echo: probe_icmp_duration_seconds{phase="rtt"}. */
async function blackbox(): Promise<number[]> {
  const url = `http://127.0.0.1:${BB_PORT}/probe?module=icmp&target=${TARGET}`;
  const out: number[] = [];
  for (let i = 0; i < 50 && out.length === 0; i++) {
    // Wait until it listens (the first scrape that answers counts).
    const r = await lab.exec("probe", ["curl", "-s", "--max-time", "3", url]);
    const v = /probe_icmp_duration_seconds\{phase="rtt"\} ([\d.e+-]+)/.exec(r.stdout)?.[1];
    if (v !== undefined) out.push(Number(v) * 1000);
    else await new Promise((res) => setTimeout(res, 100));
  }
  // Many scrapes per curl process (`--next`-free: curl takes several URLs), to keep pace with the others.
  const batch = 20;
  while (out.length < COUNT) {
    const n = Math.min(batch, COUNT - out.length);
    const r = await lab.exec(
      "probe",
      ["curl", "-s", "--max-time", "10", ...Array.from({ length: n }, () => url)],
      {
        timeoutMs: 60_000,
      },
    );
    const got = [...r.stdout.matchAll(/probe_icmp_duration_seconds\{phase="rtt"\} ([\d.e+-]+)/g)].map(
      (m) => Number(m[1]) * 1000,
    );
    if (got.length === 0) break;
    out.push(...got);
  }
  return out;
}

/** ICMP payload bytes → wire RTTs (ms) of that size's echoes, request → reply by (id, seq). */
function wireRtts(file: string): Map<number, number[]> {
  const frames = readFields(file, ["frame.time_epoch", "ip.len", "icmp.type", "icmp.ident", "icmp.seq"]);
  const requests = new Map<string, number>();
  const out = new Map<number, number[]>();
  for (const [time, ipLen, type, ident, seq] of frames) {
    if (!time || !ipLen || !type || !ident || !seq) continue;
    // ip.len may list the inner header of an ICMP error too; the first is the outer one.
    const payload = Number(ipLen.split(",")[0]) - 28;
    const key = `${payload}/${ident.split(",")[0]}/${seq.split(",")[0]}`;
    const t = Number(time) * 1000;
    if (type === "8") requests.set(key, t);
    else if (type === "0") {
      const t0 = requests.get(key);
      if (t0 === undefined) continue;
      requests.delete(key);
      const list = out.get(payload) ?? [];
      list.push(t - t0);
      out.set(payload, list);
    }
  }
  return out;
}
