// One benchmark command (`npm run bench`, `-- --quick` for a short run): brings up its own lab,
// runs every benchmark, prints one table (probe, peer on the same run, ratio, DESIGN.md §9 target
// met or not) and writes it as JSON to bench-results/latest.json. Every packet stays inside the
// lab's namespaces; every peer tool comes from scripts/setup.sh.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { parse, stringify } from "yaml";
import { labUp, type Lab } from "../lab/lab.ts";
import { credentialsFile, labCredentials, probeBrokerEnv } from "../lab/broker-tls.ts";
import { Store } from "../../services/probe/src/store/store.ts";
import { readStatus } from "../../services/probe/src/cli/status-command.ts";

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    json: { type: "string", default: "bench-results/latest.json" },
    only: { type: "string", default: "" },
  },
});
const QUICK = args.quick;
/** Sections to run (comma-separated), all when empty. */
const ONLY = new Set(args.only.split(",").filter(Boolean));
const want = (section: string) => ONLY.size === 0 || ONLY.has(section);
const ROOT = new URL("../../", import.meta.url).pathname;
const CLI = join(ROOT, "services/probe/src/cli.ts");
const LAB_CONFIG = join(ROOT, "scripts/lab/probe.lab.yaml");
const NODE = process.execPath;

/** One row of the table. */
interface Row {
  section: string;
  metric: string;
  unit: string;
  probe: number | null;
  peer_name: string | null;
  peer: number | null;
  /** probe ÷ peer */
  ratio: number | null;
  target: string | null;
  met: boolean | null;
}

const rows: Row[] = [];
function row(r: Omit<Row, "ratio" | "peer_name" | "peer" | "target" | "met"> & Partial<Row>): void {
  const ratio = r.probe !== null && r.peer != null && r.peer !== 0 ? round(r.probe / r.peer, 2) : null;
  rows.push({ peer_name: null, peer: null, target: null, met: null, ...r, ratio });
  const peer = r.peer_name ? `  ${r.peer_name}: ${fmt(r.peer ?? null)}` : "";
  const met = r.met === undefined || r.met === null ? "" : r.met ? "  [met]" : "  [NOT met]";
  console.error(`  ${r.section} / ${r.metric}: ${fmt(r.probe)} ${r.unit}${peer}${met}`);
}

function round(v: number, d = 3): number {
  const f = 10 ** d;
  return Math.round(v * f) / f;
}
function fmt(v: number | null): string {
  return v === null ? "—" : String(round(v, 3));
}
function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Runs a command to completion, returns stdout. */
function run(argv: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(argv[0]!, argv.slice(1), { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    c.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    c.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    c.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
    c.stdin.end(input ?? "");
  });
}

/** A headquarters subscriber in the lab counting what arrives. */
function subscriber(lab: Lab, clientId: string) {
  const t0 = performance.now();
  const seen = { results: 0, bench: 0, firstResultMs: -1 };
  const child = lab.spawn(
    "hq",
    [
      NODE,
      join(ROOT, "test/lab/hq-subscriber.ts"),
      labCredentials(lab.info.dir, "hq").url,
      clientId,
      "0",
      credentialsFile(lab.info.dir, "hq"),
    ],
    { stdio: ["ignore", "pipe", "ignore"] },
  );
  let connected = false;
  createInterface({ input: child.stdout! }).on("line", (line) => {
    if (line.startsWith('{"connected"')) connected = true;
    else if (line.includes('/results/bench"')) seen.bench += 1;
    else if (line.includes("/results/")) {
      seen.results += 1;
      if (seen.firstResultMs < 0) seen.firstResultMs = performance.now() - t0;
    }
  });
  return { child, seen, connected: () => connected, reset: () => ((seen.results = 0), (seen.bench = 0)) };
}

async function until(what: string, timeoutMs: number, fn: () => boolean): Promise<void> {
  const end = Date.now() + timeoutMs;
  const ok = () => {
    try {
      return fn();
    } catch {
      return false; // e.g. the database does not exist yet
    }
  };
  while (!ok()) {
    if (Date.now() > end) throw new Error(`bench: timed out waiting for ${what}`);
    await sleep(20);
  }
}

function startProbe(lab: Lab, config: string, db: string, env: Record<string, string> = {}): ChildProcess {
  return lab.spawn("probe", [NODE, CLI, "run", "--config", config], {
    env: { ...process.env, NETPROBE_STORE_PATH: db, ...probeBrokerEnv(lab.info.dir), ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
}

async function stopProbe(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null) return;
  p.kill("SIGTERM");
  await new Promise((r) => p.once("exit", r));
}

/** Store: results/s written with the durability setting in use (scripts/bench/store-bench.ts). */
async function benchStore(): Promise<void> {
  const n = QUICK ? 20_000 : 100_000;
  const r = await run([NODE, join(ROOT, "scripts/bench/store-bench.ts"), "--json", "--results", String(n)]);
  const j = JSON.parse(r.stdout) as { write_results_per_s: number; drain_rows_per_s: number };
  row({
    section: "store",
    metric: "results written (WAL, synchronous=NORMAL, 1 txn each)",
    unit: "results/s",
    probe: j.write_results_per_s,
    target: "≥ 5000",
    met: j.write_results_per_s >= 5000,
  });
}

/** Drain: a 100,000-result backlog to the lab broker, next to mosquitto_pub publishing the same payloads at QoS 1. */
async function benchDrain(lab: Lab): Promise<void> {
  const n = QUICK ? 20_000 : 100_000;
  const db = join(lab.info.dir, "drain.db");
  const store = new Store(db, { maxRows: 10_000_000, maxBytes: 10_000_000_000 });
  store.open();
  const payload = (seq: number) =>
    JSON.stringify({
      schema: 1,
      id: `01BENCH${String(seq).padStart(19, "0")}`,
      seq,
      site: "lab",
      probe: "probe-1",
      check: "wan-icmp",
      kind: "icmp",
      area: "wan",
      target: "203.0.113.10",
      started_at: new Date().toISOString(),
      boot_id: "bench",
      mono_ms: seq,
      duration_ms: 61.2,
      status: "ok",
      metrics: { sent: 5, received: 5, loss_pct: 0, rtt_min_ms: 0.1, rtt_avg_ms: 0.12, rtt_max_ms: 0.2 },
      detail: { address: "203.0.113.10", family: "ipv4" },
      version: "bench",
    });
  let sample = "";
  for (let i = 0; i < n; i++) {
    store.appendResult("wan-icmp", (seq) => {
      sample = payload(seq);
      return {
        message: { topic: "results/wan-icmp", payload: sample, qos: 1, retain: false, priority: 0 },
        summary: {},
      };
    });
  }
  store.close();

  const hq = subscriber(lab, "bench-drain");
  await until("subscriber", 10_000, hq.connected);
  // A config with no checks: only the backlog flows.
  const cfg = join(lab.info.dir, "drain.yaml");
  const base = parse(readFileSync(LAB_CONFIG, "utf8")) as Record<string, unknown>;
  writeFileSync(cfg, stringify({ ...base, checks: [] }));
  // Both sides are timed to the broker's last PUBACK: the probe until its outbox is empty,
  // mosquitto_pub until it exits (it waits for every PUBACK). HQ's subscriber confirms arrival.
  const t0 = performance.now();
  const probe = startProbe(lab, cfg, db);
  await until("outbox drained", 300_000, () => readStatus(db).outbox.rows === 0);
  const probeS = (performance.now() - t0) / 1000;
  // A single test subscriber may fall behind a full-speed drain and mosquitto then drops what
  // exceeds its per-client queue (max_queued_messages): report what arrived, do not wait forever.
  await until("backlog at HQ", 60_000, () => hq.seen.results >= n).catch(() => undefined);
  const atHq = hq.seen.results;
  await stopProbe(probe);

  const lines = Array.from({ length: n }, () => sample).join("\n") + "\n";
  // The probe's own credentials and prefix: the broker's ACL confines every probe to it.
  const c = labCredentials(lab.info.dir, "probe-1");
  const url = new URL(c.url);
  const t1 = performance.now();
  const pub = await runIn(
    lab,
    "probe",
    ["mosquitto_pub", "-h", url.hostname, "-p", url.port, "--cafile", c.ca_file, "--cert", c.cert_file]
      .concat(["--key", c.key_file, "-u", c.username, "-P", c.password, "-i", "bench-pub", "-q", "1"])
      .concat(["-t", "netprobe/v1/lab/probe-1/results/bench", "-l"]),
    lines,
  );
  const peerS = (performance.now() - t1) / 1000;
  if (pub.code !== 0) throw new Error(`mosquitto_pub failed: ${pub.stderr}`);
  hq.child.kill("SIGTERM");
  row({
    section: "drain",
    metric: `${n.toLocaleString("en-US")}-result backlog to the lab broker (process start to last PUBACK; ${atHq} seen by one HQ subscriber)`,
    unit: "s",
    probe: round(probeS, 2),
    peer_name: "mosquitto_pub -q 1 -l",
    peer: round(peerS, 2),
    target: QUICK ? "≤ 30 (for 100,000)" : "≤ 30",
    met: probeS * (100_000 / n) <= 30,
  });
}

function runIn(lab: Lab, host: "probe" | "hq", argv: string[], input?: string) {
  return run(["ip", "netns", "exec", lab.info.ns[host], ...argv], input);
}

/** Start-up: process start to first result at HQ, cold (fresh database) and warm. */
async function benchStartup(lab: Lab): Promise<void> {
  const db = join(lab.info.dir, "startup.db");
  for (const kind of ["cold", "warm"] as const) {
    const hq = subscriber(lab, `bench-start-${kind}`);
    await until("subscriber", 10_000, hq.connected);
    const t0 = performance.now();
    const probe = startProbe(lab, LAB_CONFIG, db);
    await until("first result", 30_000, () => hq.seen.results > 0);
    const ms = performance.now() - t0;
    await stopProbe(probe);
    hq.child.kill("SIGTERM");
    row({
      section: "start-up",
      metric: `process start → first result at HQ (${kind})`,
      unit: "ms",
      probe: round(ms, 0),
    });
  }
}

/** Detection: fault on → the area's LED (the probe's health) changes; floor = interval × hysteresis. */
async function benchDetection(lab: Lab): Promise<void> {
  const base = parse(readFileSync(LAB_CONFIG, "utf8")) as {
    areas: { fail_after: number };
    defaults: { interval: string };
  };
  const intervalMs = parseFloat(base.defaults.interval) * 1000;
  const floor = base.areas.fail_after * intervalMs;
  const db = join(lab.info.dir, "detect.db");
  const probe = startProbe(lab, LAB_CONFIG, db);
  const areas = () => readStatus(db).health?.areas ?? {};
  await until("lan green", 30_000, () => areas().lan?.state === "ok");
  const faults: Array<{ fault: "gateway-down" | "wan-down"; area: string }> = [
    { fault: "gateway-down", area: "lan" },
    { fault: "wan-down", area: "wan" },
  ];
  for (const { fault, area } of faults) {
    // Green and settled: every check of the area passing again after the previous fault.
    await until(`${area} green`, 30_000, () => areas()[area]?.state === "ok");
    await sleep(2 * intervalMs);
    await until(`${area} still green`, 30_000, () => areas()[area]?.state === "ok");
    const t0 = performance.now();
    await lab.fault(fault, true);
    await until(`${area} red`, 60_000, () => areas()[area]?.state === "failing");
    const ms = performance.now() - t0;
    await lab.fault(fault, false);
    row({
      section: "detection",
      metric: `${fault} → ${area.toUpperCase()} LED red`,
      unit: "ms",
      probe: round(ms, 0),
      target: `≤ ${floor + 1000} (fail_after × interval + 1 s)`,
      met: ms <= floor + 1000,
    });
  }
  await stopProbe(probe);
}

/** /proc figures of one process: RSS (kB) and CPU ticks. */
function procStat(pid: number): { rssKb: number; ticks: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { rssKb, ticks: Number(f[11]) + Number(f[12]) };
}

/** Samples RSS and CPU of a process for `seconds`. */
async function sampleProcess(pid: number, seconds: number): Promise<{ rssMb: number[]; cpuPct: number }> {
  const hz = 100; // USER_HZ on Linux
  const rssMb: number[] = [];
  const first = procStat(pid);
  const t0 = performance.now();
  for (let i = 0; i < seconds; i++) {
    await sleep(1000);
    rssMb.push(procStat(pid).rssKb / 1024);
  }
  const last = procStat(pid);
  const cpuPct = ((last.ticks - first.ticks) / hz / ((performance.now() - t0) / 1000)) * 100;
  return { rssMb, cpuPct };
}

/**
 * Footprint at the default schedule (every check in the lab config, intervals from the schema's
 * defaults) next to blackbox_exporter probing the same targets at the same rate.
 */
async function benchFootprint(lab: Lab): Promise<void> {
  const seconds = QUICK ? 60 : 600;
  const base = parse(readFileSync(LAB_CONFIG, "utf8")) as { checks: Array<Record<string, unknown>> } & Record<
    string,
    unknown
  >;
  const checks = base.checks.map((c) => {
    const copy = { ...c };
    delete copy.interval;
    delete copy.timeout;
    return copy;
  });
  const cfg = join(lab.info.dir, "footprint.yaml");
  writeFileSync(cfg, stringify({ ...base, defaults: undefined, checks }));
  const probe = startProbe(lab, cfg, join(lab.info.dir, "footprint.db"), { NETPROBE_RUNTIME_LOG_S: "10" });
  const lags: number[] = [];
  createInterface({ input: probe.stderr! }).on("line", (l) => {
    if (!l.includes('"runtime"')) return;
    const r = (JSON.parse(l) as { runtime?: { loop_lag_p99_ms: number } }).runtime;
    if (r) lags.push(r.loop_lag_p99_ms);
  });
  await sleep(3000);
  const mine = await sampleProcess(probe.pid!, seconds);
  await stopProbe(probe);

  // blackbox_exporter with the ICMP module, scraped for the same targets every 60 s (the default interval).
  const bbCfg = join(lab.info.dir, "blackbox.yml");
  writeFileSync(bbCfg, "modules:\n  icmp:\n    prober: icmp\n    timeout: 5s\n");
  const bb = lab.spawn(
    "probe",
    ["prometheus-blackbox-exporter", `--config.file=${bbCfg}`, "--web.listen-address=127.0.0.1:9115"],
    { stdio: "ignore" },
  );
  await sleep(1000);
  const targets = base.checks.filter((c) => c.kind === "icmp").map((c) => String(c.target));
  const scrape = async () => {
    for (const t of targets)
      await runIn(lab, "probe", [
        "curl",
        "-s",
        "-o",
        "/dev/null",
        `http://127.0.0.1:9115/probe?module=icmp&target=${t}`,
      ]);
  };
  await scrape();
  const scraper = setInterval(() => void scrape(), 60_000);
  const peer = await sampleProcess(bb.pid!, seconds);
  clearInterval(scraper);
  bb.kill("SIGTERM");

  row({
    section: "footprint",
    metric: "RSS median",
    unit: "MB",
    probe: round(median(mine.rssMb), 1),
    peer_name: "blackbox_exporter",
    peer: round(median(peer.rssMb), 1),
    target: "≤ 80",
    met: median(mine.rssMb) <= 80,
  });
  row({
    section: "footprint",
    metric: "RSS max",
    unit: "MB",
    probe: round(Math.max(...mine.rssMb), 1),
    peer_name: "blackbox_exporter",
    peer: round(Math.max(...peer.rssMb), 1),
  });
  row({
    section: "footprint",
    metric: "CPU (% of one core)",
    unit: "%",
    probe: round(mine.cpuPct, 2),
    peer_name: "blackbox_exporter",
    peer: round(peer.cpuPct, 2),
    target: "≤ 3",
    met: mine.cpuPct <= 3,
  });
  const lagP99 = lags.length ? Math.max(...lags) : null;
  row({
    section: "footprint",
    metric: "event-loop lag p99 (worst 10 s window)",
    unit: "ms",
    probe: lagP99,
    target: "≤ 20",
    met: lagP99 === null ? null : lagP99 <= 20,
  });
}

/** ICMP accuracy: the probe's median RTT against iputils ping on the same path (scripts/bench/icmp-accuracy.ts). */
async function benchIcmp(): Promise<void> {
  const r = await run([
    NODE,
    join(ROOT, "scripts/bench/icmp-accuracy.ts"),
    "--json",
    "--rounds",
    QUICK ? "2" : "5",
  ]);
  const j = JSON.parse(r.stdout.trim().split("\n").at(-1) ?? "{}") as {
    summary?: { worst_abs_diff_ms: number; median_diff_ms: Record<string, number> };
  };
  if (!j.summary) throw new Error(`icmp-accuracy printed no summary: ${r.stderr}`);
  for (const [family, d] of Object.entries(j.summary.median_diff_ms)) {
    row({
      section: "accuracy",
      metric: `ICMP median RTT − ping's (${family})`,
      unit: "ms",
      probe: d,
      target: "|x| ≤ 0.05",
      met: Math.abs(d) <= 0.05,
    });
  }
}

async function main(): Promise<void> {
  console.error(`netprobe bench${QUICK ? " (quick)" : ""} on ${cpus().length} × ${cpus()[0]?.model ?? "?"}`);
  if (want("store")) await benchStore();
  if (want("accuracy")) await benchIcmp();
  const lab = await labUp({ ephemeral: true });
  try {
    if (want("start-up")) await benchStartup(lab);
    if (want("detection")) await benchDetection(lab);
    if (want("drain")) await benchDrain(lab);
    if (want("footprint")) await benchFootprint(lab);
  } finally {
    await lab.down();
  }
  const out = {
    at: new Date().toISOString(),
    quick: QUICK,
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? "", node: process.version },
    rows,
  };
  mkdirSync(join(ROOT, "bench-results"), { recursive: true });
  writeFileSync(join(ROOT, args.json), JSON.stringify(out, null, 2) + "\n");
  const head = "| section | metric | probe | peer | ratio | target | met |";
  console.log([head, "|---|---|---|---|---|---|---|"].join("\n"));
  for (const r of rows) {
    const peer = r.peer_name ? `${fmt(r.peer)} (${r.peer_name})` : "—";
    const met = r.met === null ? "—" : r.met ? "met" : "**not met**";
    console.log(
      `| ${r.section} | ${r.metric} | ${fmt(r.probe)} ${r.unit} | ${peer} | ${r.ratio ?? "—"} | ${r.target ?? "—"} | ${met} |`,
    );
  }
}

await main();
