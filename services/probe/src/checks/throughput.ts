// Throughput (wan area): TCP or UDP, upload or download, against a stock `iperf3 -s`, by running
// Debian's iperf3 client with --json (docs/throughput.md says why the binary and not the protocol).
// The test fills the link for `duration_s`, so it is never run by default: a scheduled run happens
// only inside one of `windows` (local time), a run outside them only when asked for by name (HQ's
// `cmd/run`, `netprobe check --force`), and no run at all while the office is using more than
// `skip_above_pct` of the link. A skipped run is a result with status ok, no throughput metrics and
// `detail.skipped` naming why, so it shows in the history and never breaches a threshold.

import { spawn } from "node:child_process";
import { isIP } from "node:net";
import { Type, type Static } from "@sinclair/typebox";
import type { CheckContext, CheckError, CheckKind, Measurement } from "./check.ts";
import type { SysfsReader } from "./link.ts";
import { parseHostPort } from "./tcp.ts";
import { hostFailure, resolveHost } from "./common/resolve-host.ts";
import { round } from "./common/round.ts";
import { defaultInterface, isInterfaceName, readSysfs } from "../net/interfaces.ts";
import { egressInterface } from "../net/routes.ts";

const WINDOW_PATTERN = "^([01]\\d|2[0-3]):[0-5]\\d-(([01]\\d|2[0-3]):[0-5]\\d|24:00)$";

const options = Type.Object(
  {
    protocol: Type.Union([Type.Literal("tcp"), Type.Literal("udp")], {
      default: "tcp",
      description: "tcp: as fast as the path allows (retransmits); udp: at bitrate_mbps (loss, jitter)",
    }),
    direction: Type.Union([Type.Literal("upload"), Type.Literal("download")], {
      default: "upload",
      description: "upload: the probe sends to the server; download: the server sends (iperf3 -R)",
    }),
    duration_s: Type.Integer({
      minimum: 1,
      maximum: 60,
      default: 5,
      description: "length of the test; the check's timeout must be at least duration_s + 3 s",
    }),
    bitrate_mbps: Type.Number({
      exclusiveMinimum: 0,
      maximum: 10000,
      default: 10,
      description: "UDP send rate in Mbit/s (all streams together); ignored for TCP",
    }),
    parallel: Type.Integer({
      minimum: 1,
      maximum: 16,
      default: 1,
      description: "parallel streams (iperf3 -P)",
    }),
    port: Type.Integer({
      minimum: 1,
      maximum: 65535,
      default: 5201,
      description: "server port when the target has none (iperf3's default 5201)",
    }),
    windows: Type.Array(
      Type.String({
        pattern: WINDOW_PATTERN,
        errorMessage: "must be a local-time window HH:MM-HH:MM, e.g. 02:00-04:00 (24:00 only as an end)",
      }),
      {
        default: [],
        description:
          'local-time windows scheduled runs may start in, "HH:MM-HH:MM" (end exclusive; "22:00-02:00" spans midnight, "00:00-24:00" is all day); empty: never scheduled, only on demand',
      },
    ),
    skip_above_pct: Type.Number({
      minimum: 0,
      maximum: 100,
      default: 20,
      description:
        "skip the test while the interface carried more than this share of capacity_mbps in the last minute (either direction); 0: never skip",
    }),
    capacity_mbps: Type.Number({
      minimum: 0,
      default: 0,
      description:
        "the link's capacity for skip_above_pct, e.g. the contracted WAN rate; 0: the interface's negotiated speed",
    }),
    interface: Type.String({
      default: "",
      description:
        "interface whose counters tell whether the office is busy; empty: the one the route to the target leaves by",
    }),
  },
  { additionalProperties: false },
);

/** Options of a throughput check, defaults filled in by the config loader. */
export type ThroughputOptions = Static<typeof options>;

// ---------------------------------------------------------------------------------------------
// Windows

/** A daily window in minutes since local midnight; `end` is exclusive and may be below `start`. */
export interface DailyWindow {
  startMin: number;
  endMin: number;
}

/** Parses "HH:MM-HH:MM" (24:00 only as an end); returns a problem for anything else. */
export function parseWindow(text: string): DailyWindow | { problem: string } {
  if (!new RegExp(WINDOW_PATTERN).test(text))
    return { problem: `window "${text}" is not HH:MM-HH:MM (e.g. 02:00-04:00)` };
  const [start = "", end = ""] = text.split("-");
  const minutes = (hm: string): number => Number(hm.slice(0, 2)) * 60 + Number(hm.slice(3, 5));
  const w = { startMin: minutes(start), endMin: minutes(end) };
  if (w.startMin === w.endMin)
    return { problem: `window "${text}" is empty (start = end); all day is 00:00-24:00` };
  return w;
}

/** True when local time `now` falls in the window (across midnight when end < start). */
export function inWindow(w: DailyWindow, now: Date): boolean {
  const m = now.getHours() * 60 + now.getMinutes();
  return w.startMin < w.endMin ? m >= w.startMin && m < w.endMin : m >= w.startMin || m < w.endMin;
}

/** The first window `now` falls in, undefined when none (or none parses). */
export function activeWindow(windows: readonly string[], now: Date): string | undefined {
  return windows.find((text) => {
    const w = parseWindow(text);
    return !("problem" in w) && inWindow(w, now);
  });
}

// ---------------------------------------------------------------------------------------------
// Utilisation

/** Byte counters of an interface at one instant (monotonic ms). */
export interface CounterSample {
  atMs: number;
  rxBytes: number;
  txBytes: number;
}

/**
 * Share of `capacityMbps` used between two samples, in the busier direction, in percent; undefined
 * when it cannot be told (no time passed, a counter went backwards after a driver reload).
 */
export function utilisationPct(
  older: CounterSample,
  newer: CounterSample,
  capacityMbps: number,
): number | undefined {
  const seconds = (newer.atMs - older.atMs) / 1000;
  const rx = newer.rxBytes - older.rxBytes;
  const tx = newer.txBytes - older.txBytes;
  if (seconds <= 0 || rx < 0 || tx < 0 || !(capacityMbps > 0)) return undefined;
  return (Math.max(rx, tx) * 8 * 100) / (seconds * capacityMbps * 1e6);
}

/** How far back the busy test looks, and how often the watch samples the counters. */
export const BUSY_LOOKBACK_MS = 60_000;
const SAMPLE_EVERY_MS = 5_000;
/** Without a sample at least this old (just started, `netprobe check`), the counters are sampled this long instead. */
export const BUSY_FRESH_SAMPLE_MS = 2_000;

/**
 * From a history of samples (oldest first), the one that best spans the last minute before `now`:
 * the oldest sample not older than lookback + one sampling period. Undefined when there is none at
 * least BUSY_FRESH_SAMPLE_MS old.
 */
export function baselineSample(
  history: readonly CounterSample[],
  nowMs: number,
  lookbackMs = BUSY_LOOKBACK_MS,
): CounterSample | undefined {
  const s = history.find((h) => nowMs - h.atMs <= lookbackMs + SAMPLE_EVERY_MS);
  return s !== undefined && nowMs - s.atMs >= BUSY_FRESH_SAMPLE_MS ? s : undefined;
}

// ---------------------------------------------------------------------------------------------
// iperf3 --json

/** What one iperf3 client run measured, from its --json report. */
export interface Iperf3Report {
  protocol: "tcp" | "udp";
  reverse: boolean;
  streams: number;
  /** Goodput at the receiving end (the number iperf3 prints on its "receiver" line). */
  receivedBitsPerS: number;
  sentBitsPerS: number;
  receivedBytes: number;
  seconds: number;
  retransmits?: number;
  lossPct?: number;
  lostPackets?: number;
  packets?: number;
  jitterMs?: number;
  cpuLocalPct?: number;
  cpuRemotePct?: number;
  version?: string;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const num = (o: Obj | undefined, key: string): number | undefined => {
  const v = o?.[key];
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
};

/**
 * Reads iperf3's --json output. Every field is checked: the text comes from a child process
 * (possibly cut off when it was killed, possibly another iperf3 version). iperf3 reports its own
 * failures as `{"error": "..."}` (with exit status 0 in 3.12), so that comes back as an error.
 * UDP's loss and jitter are in `end.sum` (the receiver's view, iperf3 ≥ 3.0); 3.12 also has
 * `sum_sent`/`sum_received`, older versions only `sum`.
 */
export function parseIperf3Json(text: string): Iperf3Report | { error: CheckError } {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    const shown = JSON.stringify(text.trim().slice(0, 120));
    return {
      error: { code: "bad_output", message: `iperf3 printed no JSON report (got ${shown})` },
    };
  }
  if (!isObj(doc)) return { error: { code: "bad_output", message: "iperf3's JSON report is not an object" } };
  if (typeof doc.error === "string") return { error: iperf3Error(doc.error) };
  const start = isObj(doc.start) ? doc.start : undefined;
  const end = isObj(doc.end) ? doc.end : undefined;
  const test = isObj(start?.test_start) ? start.test_start : undefined;
  const protocolText = typeof test?.protocol === "string" ? test.protocol.toLowerCase() : undefined;
  if (end === undefined || (protocolText !== "tcp" && protocolText !== "udp"))
    return { error: { code: "bad_output", message: "iperf3's JSON report has no end summary or protocol" } };
  const sumSent = isObj(end.sum_sent) ? end.sum_sent : undefined;
  const sumReceived = isObj(end.sum_received) ? end.sum_received : undefined;
  const sum = isObj(end.sum) ? end.sum : undefined;
  const received = sumReceived ?? sum;
  const receivedBitsPerS = num(received, "bits_per_second");
  const sentBitsPerS = num(sumSent, "bits_per_second") ?? num(sum, "bits_per_second");
  if (receivedBitsPerS === undefined || sentBitsPerS === undefined)
    return { error: { code: "bad_output", message: "iperf3's JSON report has no bits_per_second" } };
  const cpu = isObj(end.cpu_utilization_percent) ? end.cpu_utilization_percent : undefined;
  const report: Iperf3Report = {
    protocol: protocolText,
    reverse: num(test, "reverse") === 1,
    streams: num(test, "num_streams") ?? 1,
    receivedBitsPerS,
    sentBitsPerS,
    receivedBytes: num(received, "bytes") ?? 0,
    seconds: num(received, "seconds") ?? 0,
  };
  const set = <K extends keyof Iperf3Report>(key: K, value: Iperf3Report[K] | undefined): void => {
    if (value !== undefined) report[key] = value;
  };
  if (protocolText === "tcp") set("retransmits", num(sumSent, "retransmits"));
  else {
    set("lossPct", num(sum, "lost_percent"));
    set("lostPackets", num(sum, "lost_packets"));
    set("packets", num(sum, "packets"));
    set("jitterMs", num(sum, "jitter_ms"));
  }
  set("cpuLocalPct", num(cpu, "host_total"));
  set("cpuRemotePct", num(cpu, "remote_total"));
  if (typeof start?.version === "string") report.version = start.version;
  return report;
}

/** Maps iperf3's error text (src/iperf_error.c) to a stable code. */
export function iperf3Error(text: string): CheckError {
  const message = `iperf3: ${text.slice(0, 300)}`;
  const has = (s: string): boolean => text.toLowerCase().includes(s);
  if (has("server is busy")) return { code: "busy", message };
  if (has("connection refused")) return { code: "connection_refused", message };
  if (has("network is unreachable") || has("no route to host")) return { code: "no_route", message };
  if (has("timed out")) return { code: "timeout", message };
  // The server went away during the test (killed, restarted, its host lost the link).
  if (has("control socket has closed") || has("connection reset") || has("broken pipe"))
    return { code: "server_lost", message };
  return { code: "iperf3_error", message };
}

// ---------------------------------------------------------------------------------------------
// The check

/** The I/O a throughput check uses; unit tests pass doubles. */
export interface ThroughputDependencies {
  /** iperf3 binary (a name on PATH or a path). */
  iperf3: string;
  read: SysfsReader;
  /** Monotonic ms, for counter samples. */
  monoMs: () => number;
  /** Wall clock, local time, for the windows. */
  now: () => Date;
  /** Interface the route to an IP literal leaves by. */
  egress: (address: string) => string | undefined;
}

/** Builds the throughput check over the given I/O. */
export function createThroughputCheck(deps: ThroughputDependencies): CheckKind<typeof options> {
  // Counter samples per interface, oldest first, kept by the watch while the service runs.
  const history = new Map<string, CounterSample[]>();
  return {
    kind: "throughput",
    defaultArea: "wan",
    options,
    due: (opts, now) => activeWindow(opts.windows, now) !== undefined,
    run: (target, opts, ctx, signal) => runThroughput(deps, history, target, opts, ctx, signal),
    watch: (target, opts, _ctx, signal) => {
      if (opts.skip_above_pct === 0) return;
      const literal = parseHostPort(target, opts.port);
      const iface = busyInterface(deps, opts, "problem" in literal ? "" : literal.host);
      if (iface === undefined) return;
      const sample = (): void => {
        const s = readCounters(deps, iface);
        if (s === undefined) return;
        const list = history.get(iface) ?? [];
        list.push(s);
        while (list.length > 0 && s.atMs - (list[0]?.atMs ?? 0) > BUSY_LOOKBACK_MS + 2 * SAMPLE_EVERY_MS)
          list.shift();
        history.set(iface, list);
      };
      sample();
      const timer = setInterval(sample, SAMPLE_EVERY_MS);
      timer.unref();
      signal.addEventListener("abort", () => clearInterval(timer), { once: true });
    },
  };
}

/** Throughput against an iperf3 server, with Debian's iperf3 client. */
export const throughput: CheckKind<typeof options> = createThroughputCheck({
  iperf3: "iperf3",
  read: readSysfs,
  monoMs: () => performance.now(),
  now: () => new Date(),
  egress: (address) => egressInterface(address),
});

function busyInterface(
  deps: ThroughputDependencies,
  opts: ThroughputOptions,
  address: string,
): string | undefined {
  if (opts.interface !== "") return opts.interface;
  return (isIP(address) !== 0 ? deps.egress(address) : undefined) ?? defaultInterface();
}

function readCounters(deps: ThroughputDependencies, iface: string): CounterSample | undefined {
  const rx = deps.read(iface, "statistics/rx_bytes");
  const tx = deps.read(iface, "statistics/tx_bytes");
  if (rx === undefined || tx === undefined || !/^\d+$/.test(rx) || !/^\d+$/.test(tx)) return undefined;
  return { atMs: deps.monoMs(), rxBytes: Number(rx), txBytes: Number(tx) };
}

function skipped(
  reason: "outside_window" | "busy",
  message: string,
  extra: Measurement["metrics"],
  detail: Record<string, unknown>,
): Measurement {
  return { status: "ok", metrics: extra, detail: { ...detail, skipped: reason, skip_reason: message } };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

async function runThroughput(
  deps: ThroughputDependencies,
  history: Map<string, CounterSample[]>,
  target: string,
  opts: ThroughputOptions,
  ctx: CheckContext,
  signal: AbortSignal,
): Promise<Measurement> {
  const invalid = (message: string): Measurement => ({
    status: "error",
    metrics: {},
    error: { code: "invalid_option", message },
  });
  for (const w of opts.windows) {
    const parsed = parseWindow(w);
    if ("problem" in parsed) return invalid(`windows: ${parsed.problem}`);
  }
  const hp = parseHostPort(target, opts.port);
  if ("problem" in hp)
    return { status: "error", metrics: {}, error: { code: "invalid_target", message: hp.problem } };
  const detail: Record<string, unknown> = {
    protocol: opts.protocol,
    direction: opts.direction,
    duration_s: opts.duration_s,
    parallel: opts.parallel,
    port: hp.port,
    on_demand: ctx.onDemand === true,
  };

  // Scheduled runs are gated by `due` already; this catches the rest (the button's "run all",
  // `netprobe check` without --force) and a tick that fired on the last instant of a window.
  const window = activeWindow(opts.windows, deps.now());
  if (window !== undefined) detail.window = window;
  if (window === undefined && ctx.onDemand !== true) {
    const when =
      opts.windows.length === 0 ? "no windows are configured" : `its windows are ${opts.windows.join(", ")}`;
    return skipped(
      "outside_window",
      `the throughput test loads the link, so it runs only inside its windows or when asked for by name (HQ cmd/run, netprobe check --force); ${when}`,
      {},
      detail,
    );
  }

  const resolved = await resolveHost(hp.host, "auto", signal);
  if ("error" in resolved) return hostFailure(resolved.error, { detail });
  detail.address = resolved.address;

  const metrics: Record<string, number> = {};
  if (opts.skip_above_pct > 0) {
    const busy = await busyCheck(deps, history, opts, resolved.address, signal);
    if (busy.interface !== undefined) detail.interface = busy.interface;
    if (busy.note !== undefined) detail.utilisation_note = busy.note;
    if (busy.pct !== undefined) {
      metrics.utilisation_pct = round(busy.pct, 2);
      detail.utilisation_window_s = round(busy.windowMs / 1000, 1);
      if (busy.pct > opts.skip_above_pct)
        return skipped(
          "busy",
          `${busy.interface ?? "the interface"} carried ${round(busy.pct, 1)} % of ${busy.capacityMbps} Mbit/s over the last ${Math.round(busy.windowMs / 1000)} s (skip_above_pct ${opts.skip_above_pct}): the office is using the link`,
          metrics,
          detail,
        );
    }
  }
  if (signal.aborted) return timeoutResult(metrics, detail, opts);

  const argv = [
    "-c",
    resolved.address,
    "-p",
    String(hp.port),
    "-t",
    String(opts.duration_s),
    "-P",
    String(opts.parallel),
    "--json",
    // iperf3 waits ~2 minutes on an unanswered SYN by default; the run has a deadline.
    "--connect-timeout",
    "3000",
    ...(opts.direction === "download" ? ["-R"] : []),
    ...(opts.protocol === "udp"
      ? ["-u", "-b", `${Math.round((opts.bitrate_mbps * 1e6) / opts.parallel)}`]
      : []),
  ];
  const out = await runIperf3(deps.iperf3, argv, signal);
  if ("error" in out) {
    if (out.error.code === "timeout") return timeoutResult(metrics, detail, opts);
    return {
      status: out.error.code === "tool_missing" ? "error" : "fail",
      metrics,
      detail,
      error: out.error,
    };
  }
  const report = parseIperf3Json(out.stdout);
  if ("error" in report) {
    if (out.stderr !== "") detail.stderr = out.stderr.slice(0, 300);
    return {
      status: report.error.code === "bad_output" ? "error" : "fail",
      metrics,
      detail,
      error: report.error,
    };
  }
  metrics.bits_per_s = Math.round(report.receivedBitsPerS);
  metrics.sent_bits_per_s = Math.round(report.sentBitsPerS);
  metrics.received_bytes = report.receivedBytes;
  if (report.retransmits !== undefined) metrics.retransmits = report.retransmits;
  if (report.lossPct !== undefined) metrics.loss_pct = round(report.lossPct, 3);
  if (report.lostPackets !== undefined) metrics.lost_packets = report.lostPackets;
  if (report.packets !== undefined) metrics.packets = report.packets;
  if (report.jitterMs !== undefined) metrics.jitter_ms = round(report.jitterMs, 3);
  if (report.cpuLocalPct !== undefined) metrics.cpu_local_pct = round(report.cpuLocalPct, 2);
  if (report.cpuRemotePct !== undefined) metrics.cpu_remote_pct = round(report.cpuRemotePct, 2);
  if (report.version !== undefined) detail.iperf3_version = report.version;
  detail.measured_s = round(report.seconds, 3);
  return { status: "ok", metrics, detail };
}

function timeoutResult(
  metrics: Record<string, number>,
  detail: Record<string, unknown>,
  opts: ThroughputOptions,
): Measurement {
  return {
    status: "fail",
    metrics,
    detail,
    error: {
      code: "timeout",
      message: `no iperf3 result before the run's timeout (a ${opts.duration_s} s test needs a timeout of at least ${opts.duration_s + 3} s; or the server stopped answering)`,
    },
  };
}

interface BusyReading {
  interface?: string;
  pct?: number;
  windowMs: number;
  capacityMbps: number;
  note?: string;
}

async function busyCheck(
  deps: ThroughputDependencies,
  history: Map<string, CounterSample[]>,
  opts: ThroughputOptions,
  address: string,
  signal: AbortSignal,
): Promise<BusyReading> {
  const iface = busyInterface(deps, opts, address);
  if (iface === undefined || !isInterfaceName(iface))
    return { windowMs: 0, capacityMbps: 0, note: "no interface to read utilisation from: not checked" };
  const speed = Number(deps.read(iface, "speed") ?? "");
  const capacityMbps = opts.capacity_mbps > 0 ? opts.capacity_mbps : speed > 0 ? speed : 0;
  if (capacityMbps === 0)
    return {
      interface: iface,
      windowMs: 0,
      capacityMbps,
      note: `${iface} reports no link speed and capacity_mbps is 0: not checked`,
    };
  let older = baselineSample(history.get(iface) ?? [], deps.monoMs());
  if (older === undefined) {
    older = readCounters(deps, iface);
    await sleep(BUSY_FRESH_SAMPLE_MS, signal);
  }
  const newer = readCounters(deps, iface);
  if (older === undefined || newer === undefined)
    return {
      interface: iface,
      windowMs: 0,
      capacityMbps,
      note: `no byte counters for ${iface}: not checked`,
    };
  const pct = utilisationPct(older, newer, capacityMbps);
  return pct === undefined
    ? { interface: iface, windowMs: 0, capacityMbps, note: "counters went backwards: not checked" }
    : { interface: iface, pct, windowMs: newer.atMs - older.atMs, capacityMbps };
}

type Iperf3Output = { stdout: string; stderr: string } | { error: CheckError };

/**
 * Runs iperf3 to completion. On abort it gets SIGTERM first (the client then tells the server the
 * test is over, so the server is free for the next one), SIGKILL a second later.
 */
function runIperf3(binary: string, argv: string[], signal: AbortSignal): Promise<Iperf3Output> {
  return new Promise((resolve) => {
    if (signal.aborted)
      return resolve({ error: { code: "timeout", message: "aborted before iperf3 started" } });
    const child = spawn(binary, argv, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let killTimer: NodeJS.Timeout | undefined;
    let settled = false;
    const finish = (out: Iperf3Output): void => {
      if (settled) return;
      settled = true;
      clearTimeout(killTimer);
      signal.removeEventListener("abort", onAbort);
      resolve(out);
    };
    const onAbort = (): void => {
      child.kill("SIGTERM");
      killTimer = setTimeout(() => child.kill("SIGKILL"), 1000);
      killTimer.unref();
    };
    signal.addEventListener("abort", onAbort, { once: true });
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    // A report is a few KiB per second of test; cap what a misbehaving binary can make us hold.
    child.stdout.on("data", (d: string) => {
      if (stdout.length < 4 * 1024 * 1024) stdout += d;
    });
    child.stderr.on("data", (d: string) => {
      if (stderr.length < 4096) stderr += d;
    });
    child.on("error", (err) => {
      const code = (err as { code?: unknown }).code;
      finish({
        error:
          code === "ENOENT"
            ? { code: "tool_missing", message: `${binary} is not installed (apt-get install iperf3)` }
            : { code: "iperf3_error", message: `could not start ${binary}: ${err.message}` },
      });
    });
    child.on("close", () => {
      if (signal.aborted) finish({ error: { code: "timeout", message: "aborted" } });
      else finish({ stdout, stderr: stderr.trim() });
    });
  });
}
