// One benchmark command (`npm run bench`, `-- --quick` for a short run): brings up its own lab,
// runs every benchmark, prints one table (probe, peer on the same run, ratio, target from
// docs/architecture.md "Quality bars", met or not) and writes it as JSON to
// bench-results/latest.json. Sections (--only a,b), each printing its duration: store, history,
// accuracy, stamp and throughput (these build their own labs), icmp-wire, dhcp-wire, dns-wire,
// start-up, detection, drain, memory, flags (these three: scripts/bench/uplink-bench.ts),
// footprint, alerting. Every packet stays inside the lab's namespaces; every peer tool comes
// from scripts/setup.sh.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { parse, stringify } from "yaml";
import { labUp, type Lab } from "../lab/lab.ts";
import { credentialsFile, labCredentials, probeBrokerEnv } from "../lab/broker-tls.ts";
import { readStatus } from "../../services/probe/src/cli/status-command.ts";
import type { Area } from "../../services/probe/src/checks/check.ts";
import { checkKind } from "../../services/probe/src/checks/registry.ts";
import { loadConfig } from "../../services/probe/src/config/load.ts";
import type { FaultName } from "../lab/faults.ts";
import { deployedCli } from "./deployed-cli.ts";
import {
  benchDrain as benchUplinkDrain,
  benchFlags,
  benchMemory,
  type BenchContext,
} from "./uplink-bench.ts";

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
const CLI = deployedCli();
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
  const seen = { results: 0, bench: 0, firstResultMs: -1, connects: 0, duplicates: 0 };
  /** Result ids seen (the outbox's at-least-once may deliver one twice: counted once). */
  const ids = new Set<string>();
  /** Every message line with its arrival time (ms since this subscriber started). */
  const listeners: Array<(m: { topic: string; payload: unknown; at: number }) => void> = [];
  const child = lab.spawn(
    "hq",
    [
      NODE,
      join(ROOT, "scripts/lab/hq-subscriber.ts"),
      labCredentials(lab.info.dir, "hq").url,
      clientId,
      "0",
      credentialsFile(lab.info.dir, "hq"),
    ],
    { stdio: ["ignore", "pipe", "ignore"] },
  );
  let connected = false;
  createInterface({ input: child.stdout! }).on("line", (line) => {
    const at = performance.now();
    if (line.startsWith('{"connected"')) {
      connected = true;
      seen.connects += 1;
    } else if (line.includes('/results/bench"')) seen.bench += 1;
    else if (line.includes("/results/")) {
      const id = /"id":"([^"]+)"/.exec(line)?.[1] ?? line;
      if (ids.has(id)) seen.duplicates += 1;
      else {
        ids.add(id);
        seen.results += 1;
      }
      if (seen.firstResultMs < 0) seen.firstResultMs = at - t0;
    } else if (listeners.length > 0) {
      const m = JSON.parse(line) as { topic: string; payload: unknown };
      for (const l of listeners) l({ ...m, at });
    }
  });
  return {
    child,
    seen,
    ids,
    onMessage: (l: (m: { topic: string; payload: unknown; at: number }) => void) => listeners.push(l),
    connected: () => connected,
    reset: () => ((seen.results = 0), (seen.bench = 0), ids.clear()),
  };
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
  return lab.spawn("probe", [...CLI, "run", "--config", config], {
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

/** HQ history: ingest into SQLite and PostgreSQL, 30-day report from roll-ups (scripts/bench/history-bench.ts). */
async function benchHistory(): Promise<void> {
  const n = QUICK ? 20_000 : 200_000;
  const r = await run([NODE, join(ROOT, "scripts/bench/history-bench.ts"), "--json", "--results", String(n)]);
  const j = JSON.parse(r.stdout) as Record<string, number>;
  for (const [engine, target] of [
    ["sqlite", 10_000],
    ["postgres", 20_000],
  ] as const) {
    const rate = j[`${engine}_ingest_results_per_s`] ?? 0;
    row({
      section: "history",
      metric: `${engine} ingest, 1,000 probes`,
      unit: "results/s",
      probe: rate,
      target: `≥ ${target}`,
      met: rate >= target,
    });
    const ms = j[`${engine}_report_30d_ms`] ?? Infinity;
    row({
      section: "history",
      metric: `${engine} 30-day report, 1,000 probes`,
      unit: "ms",
      probe: ms,
      target: "< 2000",
      met: ms < 2000,
    });
  }
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

/** A lab fault and the LED it shows on. */
interface DetectionCase {
  fault: FaultName;
  /** The area whose LED changes; "uplink" is the UPLINK (status) LED, driven by the broker connection. */
  area: Area;
  /** The quality-bar bound (docs/architecture.md) in ms, when the design sets one for this fault (absent: floor + 1 s). */
  bound?: number;
}

/**
 * Detection: fault on → the LED changes and → the `events` message reaches an HQ subscriber. The
 * area LEDs are read the way `netprobe status` reads them (the health the service stores on every
 * transition, which is what drives the panel); the UPLINK LED follows the broker connection, seen
 * in the service's log. Floor = the area's fastest check: interval × fail_after (hysteresis); for
 * the link check the carrier watch period × 1. Faults that cut the probe's own path to HQ (link,
 * gateway, WAN) can only deliver the event once they are switched off: their row gives the time the
 * service queued it (the event's `at`) and how long after the fault was undone it arrived.
 */
async function benchDetection(lab: Lab): Promise<void> {
  const config = loadConfig({ file: LAB_CONFIG, env: {} });
  const floorOf = (area: Area): number | null => {
    const times = config.checks
      .filter((c) => c.enabled && c.area === area)
      .map((c) => {
        const failAfter = c.fail_after ?? checkKind(c.kind)?.failAfter ?? config.areas.fail_after;
        const watch = (c.options as { watch_interval_ms?: number }).watch_interval_ms;
        return c.kind === "link" && watch !== undefined ? watch * failAfter : c.interval_ms * failAfter;
      });
    return times.length ? Math.min(...times) : null;
  };
  const intervalMs = Math.min(...config.checks.map((c) => c.interval_ms));
  const db = join(lab.info.dir, "detect.db");
  const hq = subscriber(lab, "bench-detect");
  const events: Array<{ area: string; to: string; at: number; arrivedMs: number }> = [];
  hq.onMessage((m) => {
    if (!m.topic.endsWith("/events")) return;
    const p = m.payload as { area: string; to: string; at: string };
    events.push({ area: p.area, to: p.to, at: Date.parse(p.at), arrivedMs: m.at });
  });
  await until("subscriber", 10_000, hq.connected);
  const probe = startProbe(lab, LAB_CONFIG, db);
  const uplink = { connected: false, changedMs: 0 };
  createInterface({ input: probe.stderr! }).on("line", (l) => {
    if (l.includes('"broker connected"')) uplink.connected = true;
    else if (l.includes('"broker disconnected')) {
      if (uplink.connected) uplink.changedMs = performance.now();
      uplink.connected = false;
    }
  });
  const areas = () => readStatus(db).health?.areas ?? {};
  const green = (area: Area) => (area === "uplink" ? uplink.connected : areas()[area]?.state === "ok");
  const cases: DetectionCase[] = [
    { fault: "dhcp-down", area: "dhcp" },
    { fault: "dns-down", area: "dns" },
    { fault: "pbx-down", area: "phone" },
    { fault: "broker-down", area: "uplink" },
    { fault: "gateway-down", area: "lan" },
    { fault: "wan-down", area: "wan" },
    { fault: "link-down", area: "link", bound: 1000 },
  ];
  try {
    await until("lan green", 60_000, () => green("lan") && uplink.connected);
    for (const { fault, area, bound } of cases) {
      // Green and settled: every check of the area passing again after the previous fault.
      await until(`${area} green`, 60_000, () => green(area) && uplink.connected);
      await sleep(2 * intervalMs);
      await until(`${area} still green`, 60_000, () => green(area) && uplink.connected);
      const t0 = performance.now();
      const wall0 = Date.now();
      let ledState = "disconnected";
      await lab.fault(fault, true);
      await until(`${fault}: ${area} LED`, 60_000, () => {
        if (area === "uplink") return !uplink.connected;
        const s = areas()[area]?.state;
        ledState = s ?? "";
        return s === "failing" || s === "degraded";
      });
      const ledMs = area === "uplink" ? uplink.changedMs - t0 : performance.now() - t0;
      const event = () => events.find((e) => e.area === area && e.to !== "ok" && e.arrivedMs > t0);
      // An event the path to HQ lets through arrives within a few seconds of the LED.
      await until(`${fault}: event at HQ`, 5000, () => event() !== undefined).catch(() => undefined);
      const before = event();
      const tOff = performance.now();
      await lab.fault(fault, false);
      if (!before && area !== "uplink")
        await until(`${fault}: event at HQ after the fault`, 60_000, () => event() !== undefined).catch(
          () => undefined,
        );
      const ev = before ?? event();
      const floor = area === "uplink" ? null : floorOf(area);
      const limit = bound ?? (floor === null ? null : floor + 1000);
      // The floor as DESIGN §9 counts it; one run can land just after the fault, so a detection
      // may come in up to one interval under it.
      const floorText =
        floor === null ? "connection close, no hysteresis" : `floor: interval × fail_after = ${floor} ms`;
      const led = area === "uplink" ? "UPLINK LED off green" : `${area.toUpperCase()} LED ${ledState}`;
      row({
        section: "detection",
        metric: `${fault} → ${led} (${floorText})`,
        unit: "ms",
        probe: round(ledMs, 0),
        target: limit === null ? null : `≤ ${limit}${bound ? " (DESIGN §9)" : " (floor + 1 s)"}`,
        met: limit === null ? null : ledMs <= limit,
      });
      if (area === "uplink") continue; // no event: the broker it would go to is down
      const evMs = ev ? (before ? ev.arrivedMs - t0 : ev.at - wall0) : null;
      const how = !ev
        ? "no event arrived"
        : before
          ? "arrival"
          : `path to HQ cut: queued at the probe; arrived ${Math.round(ev.arrivedMs - tOff)} ms after the fault was off`;
      row({
        section: "detection",
        metric: `${fault} → events message at HQ (${how})`,
        unit: "ms",
        probe: evMs === null ? null : round(evMs, 0),
        target: limit === null ? null : `≤ ${limit}`,
        met: evMs === null || limit === null ? null : evMs <= limit,
      });
    }
  } finally {
    await stopProbe(probe);
    hq.child.kill("SIGTERM");
  }
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

  // blackbox_exporter with the modules it has for the probe's checks — ICMP, DNS (same name,
  // same expected address, each resolver), HTTP (same URL, same body regex) — scraped for the
  // same targets every 60 s (the default interval). The probe's other checks (link, LLDP, ARP,
  // gateway, DHCP, SIP, traceroute) have no blackbox_exporter counterpart: the probe does more.
  const dnsCheck = base.checks.find((c) => c.kind === "dns") as
    { target: string; options: { resolvers: string[]; expect_addresses: string[] } } | undefined;
  const httpCheck = base.checks.find((c) => c.kind === "http") as
    { target: string; options: { expect_body_regex: string } } | undefined;
  const bbCfg = join(lab.info.dir, "blackbox.yml");
  writeFileSync(
    bbCfg,
    stringify({
      modules: {
        icmp: { prober: "icmp", timeout: "5s" },
        dns: {
          prober: "dns",
          timeout: "5s",
          dns: {
            query_name: dnsCheck?.target ?? "www.example.net",
            query_type: "A",
            valid_rcodes: ["NOERROR"],
            validate_answer_rrs: {
              fail_if_none_matches_regexp: (dnsCheck?.options.expect_addresses ?? []).map(
                (a) => `.*\\t${a}$`,
              ),
            },
          },
        },
        http: {
          prober: "http",
          timeout: "5s",
          http: { fail_if_body_not_matches_regexp: [httpCheck?.options.expect_body_regex ?? "."] },
        },
      },
    }),
  );
  const bb = lab.spawn(
    "probe",
    ["prometheus-blackbox-exporter", `--config.file=${bbCfg}`, "--web.listen-address=127.0.0.1:9115"],
    { stdio: "ignore" },
  );
  await sleep(1000);
  // "dhcp" means the resolver DHCP handed out: in the lab, the gateway's forwarder.
  const resolvers = (dnsCheck?.options.resolvers ?? []).map((r) => (r === "dhcp" ? lab.info.addr.gwLan4 : r));
  const probes = [
    ...base.checks.filter((c) => c.kind === "icmp").map((c) => ["icmp", String(c.target)]),
    ...resolvers.map((r) => ["dns", r]),
    ...(httpCheck ? [["http", httpCheck.target]] : []),
  ];
  const scrape = async () => {
    for (const [module, t] of probes)
      await runIn(lab, "probe", [
        "curl",
        "-s",
        "-o",
        "/dev/null",
        `http://127.0.0.1:9115/probe?module=${module}&target=${encodeURIComponent(t!)}`,
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
    unit: "MiB",
    probe: round(median(mine.rssMb), 1),
    peer_name: "blackbox_exporter",
    peer: round(median(peer.rssMb), 1),
    target: "≤ 80",
    met: median(mine.rssMb) <= 80,
  });
  row({
    section: "footprint",
    metric: "RSS max",
    unit: "MiB",
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

/** Runs a bench script with --json inside this bench's lab; its last stdout line parsed. */
async function labScript<T>(lab: Lab, script: string, argv: string[]): Promise<T> {
  const r = await run([NODE, join(ROOT, "scripts/bench", script), ...argv, "--lab", lab.info.name, "--json"]);
  const last = r.stdout.trim().split("\n").at(-1) ?? "";
  try {
    return JSON.parse(last) as T;
  } catch {
    throw new Error(`${script} printed no JSON (exit ${r.code}): ${r.stderr.slice(-2000)}`);
  }
}

/**
 * ICMP against the wire (scripts/bench/icmp-wire.ts): the probe, ping, fping, blackbox_exporter and
 * check_icmp at the same time to the gateway, each tool's median RTT − the wire's for its echoes.
 */
async function benchIcmpWire(lab: Lab): Promise<void> {
  const j = await labScript<{
    target: string;
    tools: Record<
      string,
      { median_ms: number; wire_median_ms: number; minus_wire_ms: number; reported: number }
    >;
  }>(lab, "icmp-wire.ts", ["--count", QUICK ? "100" : "500"]);
  const p = j.tools.probe!;
  row({
    section: "icmp-wire",
    metric: `ICMP median RTT − wire's, to ${j.target}, 5 tools at once (probe ${p.median_ms} ms, wire ${p.wire_median_ms} ms)`,
    unit: "ms",
    probe: p.minus_wire_ms,
    target: "|x| ≤ 0.05",
    met: Math.abs(p.minus_wire_ms) <= 0.05,
  });
  for (const peer of ["ping", "fping", "blackbox_exporter", "check_icmp"]) {
    const t = j.tools[peer]!;
    row({
      section: "icmp-wire",
      metric: `  same, vs ${peer} (its median ${t.median_ms} ms, wire ${t.wire_median_ms} ms)`,
      unit: "ms",
      probe: p.minus_wire_ms,
      peer_name: peer,
      peer: t.minus_wire_ms,
    });
  }
}

/** DHCP offer latency against the wire (scripts/bench/dhcp-latency.ts), check_dhcp beside it. */
async function benchDhcpWire(lab: Lab): Promise<void> {
  const j = await labScript<{
    probe_minus_wire_median_ms: number;
    probe_wire_median_ms: number;
    check_dhcp_wire_median_ms: number;
    check_dhcp_wall_median_ms: number;
    probe_matched: number;
    runs: number;
  }>(lab, "dhcp-latency.ts", [QUICK ? "10" : "50", "--nmap-runs", "0"]);
  row({
    section: "dhcp-wire",
    metric: `DHCP offer latency reported − wire (${j.probe_matched}/${j.runs} matched; check_dhcp reports no latency, only OK)`,
    unit: "ms",
    probe: round(j.probe_minus_wire_median_ms),
    target: "|x| ≤ 1",
    met: Math.abs(j.probe_minus_wire_median_ms) <= 1,
  });
  row({
    section: "dhcp-wire",
    metric: "DHCP offer latency on the wire, own exchanges (server answering each tool)",
    unit: "ms",
    probe: round(j.probe_wire_median_ms),
    peer_name: "check_dhcp",
    peer: round(j.check_dhcp_wire_median_ms),
  });
  row({
    section: "dhcp-wire",
    metric: "check_dhcp wall time per run (it waits out its -t 1 s for more offers)",
    unit: "ms",
    probe: null,
    peer_name: "check_dhcp",
    peer: round(j.check_dhcp_wall_median_ms, 1),
  });
}

/** DNS query time against the wire (scripts/bench/dns-accuracy.ts): the dns check, dig, check_dns. */
async function benchDnsWire(lab: Lab): Promise<void> {
  const j = await labScript<{
    probe_minus_wire_median_ms: number;
    probe_median_ms: number;
    dig_minus_wire_median_ms: number;
    check_dns_minus_wire_median_ms: number;
    check_dns_median_ms: number;
  }>(lab, "dns-accuracy.ts", ["--count", QUICK ? "30" : "100"]);
  row({
    section: "dns-wire",
    metric: `DNS query time − wire (probe median ${round(j.probe_median_ms)} ms)`,
    unit: "ms",
    probe: round(j.probe_minus_wire_median_ms),
    peer_name: "dig (whole ms)",
    peer: round(j.dig_minus_wire_median_ms),
    target: "|x| ≤ 0.2",
    met: Math.abs(j.probe_minus_wire_median_ms) <= 0.2,
  });
  row({
    section: "dns-wire",
    metric: `  same, vs check_dns (times an nslookup process, A + AAAA; its median ${round(j.check_dns_median_ms, 1)} ms)`,
    unit: "ms",
    probe: round(j.probe_minus_wire_median_ms),
    peer_name: "check_dns",
    peer: round(j.check_dns_minus_wire_median_ms),
  });
}

/** Fault → notification at the webhook, both paths (scripts/bench/alert-latency.ts; docs/alerting.md). */
async function benchAlertLatency(lab: Lab): Promise<void> {
  const j = await labScript<{ floor_ms: number; hq_median_ms: number; am_median_ms: number; runs: number }>(
    lab,
    "alert-latency.ts",
    [QUICK ? "1" : "3"],
  );
  const floor = j.floor_ms;
  row({
    section: "alerting",
    metric: `dns-down → notification at the webhook, HQ's own (median of ${j.runs}; floor ${floor} ms)`,
    unit: "ms",
    probe: j.hq_median_ms,
    target: `≤ floor + 2000`,
    met: j.hq_median_ms <= floor + 2000,
  });
  row({
    section: "alerting",
    metric: `dns-down → notification at the webhook, Prometheus + Alertmanager (median of ${j.runs}; floor ${floor} ms)`,
    unit: "ms",
    probe: j.am_median_ms,
    target: `≤ floor + 15000`,
    met: j.am_median_ms <= floor + 15_000,
  });
}

/** A bench script that builds its own lab; its last stdout line is its JSON report. */
async function ownLabScript<T>(script: string, argv: string[]): Promise<T> {
  const r = await run([NODE, join(ROOT, "scripts/bench", script), ...argv, "--json"]);
  const last = r.stdout.trim().split("\n").at(-1) ?? "";
  try {
    return JSON.parse(last) as T;
  } catch {
    throw new Error(`${script} printed no JSON (exit ${r.code}): ${r.stderr.slice(-2000)}`);
  }
}

/** STAMP against the wire, ping and the responder's truth (scripts/bench/stamp-accuracy.ts). */
async function benchStamp(): Promise<void> {
  type Pair = { probe: number; wire?: number; ping?: number; truth?: number };
  const count = QUICK ? 300 : 1000;
  const [clear, impaired] = await ownLabScript<Array<Record<string, Pair>>>("stamp-accuracy.ts", [
    "--count",
    String(count),
  ]);
  if (!clear || !impaired) throw new Error("stamp-accuracy.ts reported fewer than two rounds");
  const p50 = clear.rtt_p50_ms!;
  row({
    section: "stamp",
    metric: `STAMP median RTT − wire's (tshark), ${count} packets unimpaired (probe ${p50.probe} ms, wire ${p50.wire} ms)`,
    unit: "ms",
    probe: round(p50.probe - p50.wire!),
    peer_name: "ping − wire",
    peer: round(p50.ping! - p50.wire!),
    target: "|x| ≤ 0.1",
    met: Math.abs(p50.probe - p50.wire!) <= 0.1,
  });
  const avg = impaired.rtt_avg_ms!;
  row({
    section: "stamp",
    metric: `STAMP mean RTT − wire's, 5 % loss / 30 ms / 10 ms jitter (probe ${avg.probe} ms)`,
    unit: "ms",
    probe: round(avg.probe - avg.wire!),
    target: "|x| ≤ 0.1",
    met: Math.abs(avg.probe - avg.wire!) <= 0.1,
  });
  for (const k of ["loss_fwd_pct", "loss_back_pct"]) {
    const v = impaired[k]!;
    row({
      section: "stamp",
      metric: `${k} − the responder's truth (${v.truth} %)`,
      unit: "points",
      probe: round(v.probe - v.truth!),
      target: "|x| ≤ 1",
      met: Math.abs(v.probe - v.truth!) <= 1,
    });
  }
  for (const k of ["jitter_fwd_ms", "jitter_back_ms"]) {
    const v = impaired[k]!;
    const pct = (100 * (v.probe - v.truth!)) / v.truth!;
    row({
      section: "stamp",
      metric: `${k} vs the responder's truth (${v.truth} ms; probe ${v.probe} ms)`,
      unit: "%",
      probe: round(pct, 1),
      target: "|x| ≤ 10",
      met: Math.abs(pct) <= 10,
    });
  }
}

/** The throughput check beside `iperf3 -c` on a link shaped to 50 Mbit/s (scripts/bench/throughput.ts). */
async function benchThroughput(): Promise<void> {
  const j = await ownLabScript<{
    mbit: number;
    rows: { name: string; check_bits_per_s: number; iperf3_bits_per_s: number; diff_pct: number }[];
  }>("throughput.ts", ["--duration", QUICK ? "3" : "5"]);
  for (const r of j.rows)
    row({
      section: "throughput",
      metric: `${r.name}, link shaped to ${j.mbit} Mbit/s (check − iperf3 -c right after)`,
      unit: "Mbit/s",
      probe: round(r.check_bits_per_s / 1e6, 2),
      peer_name: "iperf3 -c",
      peer: round(r.iperf3_bits_per_s / 1e6, 2),
      target: "within 5 %",
      met: Math.abs(r.diff_pct) < 5,
    });
  if (j.rows.length === 0) throw new Error("throughput.ts measured no row");
}

/** Seconds each section took. */
const durations: Record<string, number> = {};

/** Runs one section when selected (--only), printing how long it took. */
async function section(name: string, fn: () => Promise<void>): Promise<void> {
  if (!want(name)) return;
  const t0 = performance.now();
  console.error(`[${name}]`);
  await fn();
  durations[name] = round((performance.now() - t0) / 1000, 1);
  console.error(`[${name}] ${durations[name]} s`);
}

async function main(): Promise<void> {
  console.error(`netprobe bench${QUICK ? " (quick)" : ""} on ${cpus().length} × ${cpus()[0]?.model ?? "?"}`);
  await section("store", () => benchStore());
  await section("history", () => benchHistory());
  await section("accuracy", () => benchIcmp());
  await section("stamp", () => benchStamp());
  await section("throughput", () => benchThroughput());
  const labSections = [
    ...["icmp-wire", "dhcp-wire", "dns-wire", "start-up", "detection"],
    ...["drain", "memory", "flags", "footprint", "alerting"],
  ];
  if (labSections.some(want)) {
    const lab = await labUp({ ephemeral: true });
    try {
      await section("icmp-wire", () => benchIcmpWire(lab));
      await section("dhcp-wire", () => benchDhcpWire(lab));
      await section("dns-wire", () => benchDnsWire(lab));
      await section("start-up", () => benchStartup(lab));
      await section("detection", () => benchDetection(lab));
      const ctx: BenchContext = { lab, quick: QUICK, cli: CLI, labConfig: LAB_CONFIG, row };
      await section("drain", () => benchUplinkDrain(ctx));
      await section("memory", () => benchMemory(ctx));
      await section("flags", () => benchFlags(ctx));
      await section("footprint", () => benchFootprint(lab));
      await section("alerting", () => benchAlertLatency(lab));
    } finally {
      await lab.down();
    }
  }
  console.error(
    `sections (s): ${Object.entries(durations)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ")}`,
  );
  const out = {
    at: new Date().toISOString(),
    quick: QUICK,
    section_s: durations,
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? "", node: process.version },
    rows,
  };
  mkdirSync(join(ROOT, "bench-results"), { recursive: true });
  writeFileSync(resolve(ROOT, args.json), JSON.stringify(out, null, 2) + "\n");
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
