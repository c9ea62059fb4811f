// ICMP / ICMPv6 echo series (wan area): loss, RTT distribution and jitter to one target.
//
// Each run gets its own echo identifier from the shared raw socket of its family
// (net/icmp-socket.ts), a random starting sequence number and a random 8-byte payload cookie;
// a reply counts only when identifier, sequence and cookie all match, so other pingers on the
// host, concurrent runs and stale replies from earlier runs are ignored.
//
// RTTs come from kernel capture timestamps when it can (net/echo-wire-stamps.ts): a frame tap on
// the shared pcap session of the egress interface sees each request leave and each reply arrive,
// without the event loop's wake-up latency that user-space stamps carry (it put the probe ~0.3 ms
// above ping through the lab WAN, scripts/bench/wan-accuracy.ts). The raw socket still decides
// what was received, lost, late or an error; where a frame was not captured (no pcap permission,
// a non-Ethernet or unknown egress interface, a capture drop) that echo keeps its user-space RTT.

import { randomBytes, randomInt } from "node:crypto";
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { Type, type Static } from "@sinclair/typebox";
import type { CheckContext, CheckError, CheckKind, Measurement } from "./check.ts";
import { pingMos } from "./mos.ts";
import { summarizeSeries } from "./series-stats.ts";
import { EchoWireStamps, ethernetEgress, type CaptureInterface } from "../net/echo-wire-stamps.ts";
import { normalizeIpLiteral, type EchoError, type IpFamily } from "../net/icmp-packet.ts";
import {
  sharedIcmpSockets,
  type EchoListener,
  type EchoSession,
  type IcmpSocketPool,
  type SendOptions,
} from "../net/icmp-socket.ts";
import { sharedPcap, type FrameIo, type FrameTap } from "../net/pcap-session.ts";
import { socketFailure } from "../net/socket-failure.ts";

/** The `address_family` option of every check that resolves its target with resolveTarget. */
export const addressFamilyOption = Type.Union(
  [Type.Literal("auto"), Type.Literal("ipv4"), Type.Literal("ipv6")],
  {
    default: "auto",
    description:
      "which address of a host name to probe: auto takes the resolver's first answer (as ping " +
      "does); an IP literal must match it unless auto",
  },
);

const options = Type.Object(
  {
    count: Type.Integer({ minimum: 1, maximum: 10000, default: 5, description: "echo requests per run" }),
    interval_ms: Type.Integer({
      minimum: 1,
      maximum: 60000,
      default: 200,
      description: "gap between the starts of consecutive requests",
    }),
    size: Type.Integer({
      minimum: 16,
      maximum: 65000,
      default: 56,
      description: "ICMP payload bytes (as ping -s); the first 8 are the run's cookie",
    }),
    wait_ms: Type.Integer({
      minimum: 1,
      maximum: 60000,
      default: 1000,
      description:
        "how long to wait for each reply; a later reply counts as lost (detail.late), and the run " +
        "ends this long after the last request at the latest",
    }),
    address_family: addressFamilyOption,
    ttl: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 255,
        description:
          "IPv4 TTL / IPv6 hop limit of the requests (as ping -t); absent = the system default (64)",
      }),
    ),
    dont_fragment: Type.Optional(
      Type.Boolean({
        description:
          "true: set DF and never fragment (as ping -M do): a size above the path MTU fails with " +
          "`unreachable` (fragmentation needed / message too long); absent or false: the system default (DF set, fragmented locally above the path MTU)",
      }),
    ),
    dscp: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 63,
        description: "DSCP of the requests (46 = EF, voice), as ping -Q (DSCP << 2); absent = 0",
      }),
    ),
    mos: Type.Optional(
      Type.Boolean({
        description:
          "also report `mos` (1–4.5): voice readiness from RTT, jitter and loss by " +
          "check_icmp's simplified E-model (checks/mos.ts)",
      }),
    ),
  },
  { additionalProperties: false },
);

/** Options of an icmp check, defaults filled in by the config loader. */
export type IcmpOptions = Static<typeof options>;

/** Resolves a host name to one address of the wanted family (0 = whichever comes first). */
export type ResolveHost = (
  host: string,
  family: 0 | IpFamily,
) => Promise<{ address: string; family: IpFamily }>;

/** Where kernel timestamps of the echoes come from: frame capture on the egress interface. */
export interface WireTimestampSource {
  io: FrameIo;
  /** The Ethernet interface requests to the IP literal `address` leave by, or why there is none. */
  captureInterface(address: string): CaptureInterface;
}

/** The I/O an icmp check uses; tests pass an IcmpSocketPool over a fake transport and a fake resolver. */
export interface IcmpDependencies {
  sockets: Pick<IcmpSocketPool, "open">;
  resolve: ResolveHost;
  /** Absent: RTTs from user-space timestamps only. */
  wire?: WireTimestampSource;
}

/** Cap on the per-request RTT list in `detail.rtts_ms` (a run may have 10 000 requests). */
export const MAX_DETAIL_RTTS = 100;
/** Cap on the ICMP error list in `detail.icmp_errors`. */
export const MAX_DETAIL_ERRORS = 10;

const COOKIE_BYTES = 8;
/**
 * How long a finished series waits for frames the capture has not delivered yet: the socket and
 * the pcap session are separate file descriptors, so a reply can reach the series an event-loop
 * turn before its frames. Only waited when such a frame is missing.
 */
const WIRE_GRACE_MS = 10;
const FAMILY_NAMES: Readonly<Record<IpFamily, "ipv4" | "ipv6">> = { 4: "ipv4", 6: "ipv6" };
const FAMILY_NUMBERS: Readonly<Record<IcmpOptions["address_family"], 0 | IpFamily>> = {
  auto: 0,
  ipv4: 4,
  ipv6: 6,
};

/** Resolves with the system resolver (getaddrinfo, so /etc/hosts and nsswitch apply, as for ping). */
export const resolveWithSystem: ResolveHost = async (host, family) => {
  const answer = await lookup(host, { family, order: "verbatim" });
  return { address: answer.address, family: answer.family === 6 ? 6 : 4 };
};

/** Builds the icmp check over the given I/O (STYLE.md §3). */
export function createIcmpCheck(deps: IcmpDependencies): CheckKind<typeof options> {
  return {
    kind: "icmp",
    defaultArea: "wan",
    options,
    run: (target, opts, ctx, signal) => runEchoSeries(deps, target, opts, ctx, signal),
  };
}

/** ICMP/ICMPv6 echo series over the process-wide shared raw sockets, timed by the shared pcap sessions. */
export const icmp: CheckKind<typeof options> = createIcmpCheck({
  sockets: sharedIcmpSockets,
  resolve: resolveWithSystem,
  wire: { io: sharedPcap, captureInterface: ethernetEgress },
});

/** A resolved target, or the measurement that reports why there is none. */
export type Destination = { address: string; family: IpFamily } | { failure: Measurement };

async function runEchoSeries(
  deps: IcmpDependencies,
  target: string,
  opts: IcmpOptions,
  ctx: CheckContext,
  signal: AbortSignal,
): Promise<Measurement> {
  const destination = await resolveTarget(deps.resolve, target, opts.address_family, signal);
  if ("failure" in destination) return destination.failure;
  return new EchoSeries(deps, destination.address, destination.family, opts, ctx, signal).run();
}

/**
 * Resolves a target (IP literal or host name) to one address of the wanted family, or a failure
 * result (`invalid_target`, `resolve_failed`, `timeout` when aborted); shared by the ICMP-based checks.
 */
export async function resolveTarget(
  resolve: ResolveHost,
  rawTarget: string,
  wanted: IcmpOptions["address_family"],
  signal: AbortSignal,
): Promise<Destination> {
  const target = rawTarget.trim().replace(/^\[(.*)\]$/, "$1");
  const literalFamily = isIP(target);
  if (literalFamily === 4 || literalFamily === 6) {
    if (wanted !== "auto" && FAMILY_NAMES[literalFamily] !== wanted) {
      const message = `target ${target} is an ${FAMILY_NAMES[literalFamily]} address but address_family is ${wanted}`;
      return { failure: errorResult("invalid_target", message) };
    }
    return { address: target, family: literalFamily };
  }
  if (signal.aborted) return { failure: abortedWhileResolving(target) };
  // getaddrinfo cannot be cancelled; an abort stops waiting for it, the lookup finishes unobserved.
  let onAbort = (): void => {};
  const aborted = new Promise<"aborted">((resolveAborted) => {
    onAbort = () => resolveAborted("aborted");
    signal.addEventListener("abort", onAbort, { once: true });
  });
  const pending = resolve(target, FAMILY_NUMBERS[wanted]);
  try {
    const answer = await Promise.race([pending, aborted]);
    if (answer === "aborted") {
      pending.catch(() => undefined);
      return { failure: abortedWhileResolving(target) };
    }
    return answer;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    const reason = typeof code === "string" ? code : error instanceof Error ? error.message : String(error);
    const familyText = wanted === "auto" ? "" : ` (${wanted})`;
    return { failure: errorResult("resolve_failed", `cannot resolve ${target}${familyText}: ${reason}`) };
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

function abortedWhileResolving(target: string): Measurement {
  return {
    status: "fail",
    metrics: { sent: 0, received: 0 },
    detail: { aborted: true },
    error: { code: "timeout", message: `aborted while resolving ${target}` },
  };
}

function errorResult(code: string, message: string): Measurement {
  return { status: "error", metrics: {}, error: { code, message } };
}

/** What became of one echo request. */
type Outcome = "pending" | "sent" | "replied" | "icmp_error" | "send_failed";

interface ReportedError {
  request: number;
  from: string;
  error: EchoError["error"];
  type: number;
  code: number;
}

/** One run: sends on a timer, matches replies as they arrive, settles when done or aborted. */
class EchoSeries implements EchoListener {
  readonly #sockets: Pick<IcmpSocketPool, "open">;
  readonly #wire: WireTimestampSource | undefined;
  readonly #address: string;
  readonly #family: IpFamily;
  readonly #opts: IcmpOptions;
  readonly #ctx: CheckContext;
  readonly #signal: AbortSignal;
  readonly #comparableAddress: string;
  readonly #payload: Buffer;
  readonly #sendOptions: SendOptions | undefined;
  readonly #firstSequence = randomInt(0x10000);
  readonly #outcomes: Outcome[] = [];
  readonly #sentAt: bigint[] = [];
  readonly #rttMs: (number | undefined)[] = [];
  readonly #errors: ReportedError[] = [];
  #session: EchoSession | undefined;
  #issued = 0;
  #replied = 0;
  #settled = 0;
  #duplicates = 0;
  #late = 0;
  #corrupted = 0;
  #icmpErrors = 0;
  #sendErrors = 0;
  #firstSendError: string | undefined;
  #socketError: Error | undefined;
  #aborted = false;
  #startedAtMs = 0;
  #timer: NodeJS.Timeout | undefined;
  #finish: (measurement: Measurement) => void = () => {};
  #finished = false;
  #stamps: EchoWireStamps | undefined;
  #tap: FrameTap | undefined;
  #wireUnavailable: string | undefined;
  #graceTimer: NodeJS.Timeout | undefined;
  #resolved = false;

  constructor(
    deps: IcmpDependencies,
    address: string,
    family: IpFamily,
    opts: IcmpOptions,
    ctx: CheckContext,
    signal: AbortSignal,
  ) {
    this.#sockets = deps.sockets;
    this.#wire = deps.wire;
    this.#address = address;
    this.#family = family;
    this.#opts = opts;
    this.#ctx = ctx;
    this.#signal = signal;
    this.#comparableAddress = normalizeIpLiteral(address);
    this.#payload = Buffer.alloc(opts.size);
    randomBytes(COOKIE_BYTES).copy(this.#payload);
    for (let i = COOKIE_BYTES; i < opts.size; i++) this.#payload[i] = i & 0xff;
    const sendOptions: SendOptions = {};
    if (opts.ttl !== undefined) sendOptions.ttl = opts.ttl;
    if (opts.dont_fragment === true) sendOptions.dontFragment = "do";
    if (opts.dscp !== undefined && opts.dscp > 0) sendOptions.trafficClass = opts.dscp << 2;
    this.#sendOptions = Object.keys(sendOptions).length > 0 ? sendOptions : undefined;
  }

  run(): Promise<Measurement> {
    if (this.#signal.aborted) {
      this.#aborted = true;
      return Promise.resolve(this.#measure());
    }
    const session = this.#sockets.open(this.#family, this);
    if ("code" in session) return Promise.resolve(errorResult(session.code, session.message));
    this.#session = session;
    this.#openTap(session.identifier);
    return new Promise<Measurement>((resolve) => {
      this.#finish = resolve;
      this.#signal.addEventListener("abort", this.#onAbort, { once: true });
      this.#startedAtMs = performance.now();
      this.#sendNext();
    });
  }

  readonly #onAbort = (): void => {
    // Aborted while waiting for late frames: the series itself was complete.
    if (this.#finished) {
      this.#resolve();
      return;
    }
    this.#aborted = true;
    this.#end();
  };

  /** Subscribes to the egress interface's frames; any failure just means process timestamps. */
  #openTap(identifier: number): void {
    if (this.#wire === undefined) return;
    const where = this.#wire.captureInterface(this.#address);
    if ("reason" in where) {
      this.#wireUnavailable = where.reason;
      return;
    }
    const stamps = new EchoWireStamps({
      family: this.#family,
      peer: this.#comparableAddress,
      identifier,
      cookie: this.#payload.subarray(0, COOKIE_BYTES),
      indexOf: (sequence) => this.#indexOf(sequence),
    });
    let tap: FrameTap | CheckError;
    try {
      tap = this.#wire.io.open(where.iface, stamps);
    } catch (error) {
      tap = { code: "capture_failed", message: error instanceof Error ? error.message : String(error) };
    }
    if ("code" in tap) {
      this.#wireUnavailable = `${tap.code}: ${tap.message}`;
      this.#ctx.log.debug({ iface: where.iface, err: tap.message }, "icmp: no wire timestamps");
      return;
    }
    this.#tap = tap;
    this.#stamps = stamps;
  }

  #sendNext(): void {
    this.#timer = undefined;
    if (this.#finished || this.#session === undefined) return;
    const index = this.#issued++;
    this.#outcomes[index] = "pending";
    const sequence = (this.#firstSequence + index) & 0xffff;
    this.#session.send(
      sequence,
      this.#payload,
      this.#address,
      (error, sentAt) => this.#sendDone(index, error, sentAt),
      this.#sendOptions,
    );
    if (this.#issued < this.#opts.count) {
      // Scheduled from the start time, not from the previous send, so timer lateness does not
      // accumulate over a long series.
      const due = this.#startedAtMs + this.#issued * this.#opts.interval_ms;
      this.#timer = setTimeout(() => this.#sendNext(), Math.max(0, due - performance.now()));
    }
  }

  #sendDone(index: number, error: Error | undefined, sentAt: bigint): void {
    if (this.#finished) return;
    if (error !== undefined) {
      this.#outcomes[index] = "send_failed";
      this.#sendErrors++;
      this.#firstSendError ??= error.message;
      this.#settled++;
    } else {
      this.#outcomes[index] = "sent";
      this.#sentAt[index] = sentAt;
    }
    if (index === this.#opts.count - 1) {
      // Last request: nothing more to send; whatever has not come back by now + wait_ms is lost.
      this.#timer = setTimeout(() => this.#end(), this.#opts.wait_ms);
    }
    this.#endIfComplete();
  }

  reply(sequence: number, payload: Buffer, _source: string, receivedAt: bigint): void {
    if (this.#finished) return;
    const index = this.#indexOf(sequence);
    const sentAt = index === undefined ? undefined : this.#sentAt[index];
    if (index === undefined || sentAt === undefined) return;
    if (
      payload.length < COOKIE_BYTES ||
      payload.compare(this.#payload, 0, COOKIE_BYTES, 0, COOKIE_BYTES) !== 0
    )
      return;
    const outcome = this.#outcomes[index];
    if (outcome === "replied") {
      this.#duplicates++;
      return;
    }
    const rttMs = Number(receivedAt - sentAt) / 1e6;
    if (rttMs > this.#opts.wait_ms) {
      this.#late++;
      return;
    }
    if (!payload.equals(this.#payload)) this.#corrupted++;
    this.#rttMs[index] = rttMs;
    this.#outcomes[index] = "replied";
    this.#replied++;
    // An ICMP error for this request already settled it; the reply wins but is not settled twice.
    if (outcome !== "icmp_error") this.#settled++;
    this.#endIfComplete();
  }

  icmpError(error: EchoError, source: string): void {
    if (this.#finished) return;
    const index = this.#indexOf(error.sequence);
    if (index === undefined || this.#sentAt[index] === undefined) return;
    if (normalizeIpLiteral(error.originalDestination) !== this.#comparableAddress) return;
    // IPv4 routers need quote only 8 bytes past the ICMP header (RFC 792); check the cookie when they quote more.
    const quoted = error.quotedPayload.subarray(0, COOKIE_BYTES);
    if (quoted.compare(this.#payload, 0, quoted.length, 0, quoted.length) !== 0) return;
    this.#icmpErrors++;
    if (this.#errors.length < MAX_DETAIL_ERRORS) {
      this.#errors.push({
        request: index,
        from: source,
        error: error.error,
        type: error.type,
        code: error.code,
      });
    }
    if (this.#outcomes[index] !== "sent") return;
    this.#outcomes[index] = "icmp_error";
    this.#settled++;
    this.#endIfComplete();
  }

  socketFailed(error: Error): void {
    this.#socketError = error;
    this.#ctx.log.warn({ err: error, address: this.#address }, "icmp: shared raw socket failed");
    this.#end();
  }

  #indexOf(sequence: number): number | undefined {
    const index = (sequence - this.#firstSequence) & 0xffff;
    return index < this.#issued ? index : undefined;
  }

  #endIfComplete(): void {
    if (this.#issued === this.#opts.count && this.#settled === this.#opts.count) this.#end();
  }

  #end(): void {
    if (this.#finished) return;
    this.#finished = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#session?.close();
    const stamps = this.#stamps;
    if (stamps === undefined || this.#aborted || this.#socketError !== undefined || !this.#framesPending()) {
      this.#resolve();
      return;
    }
    // The timer is followed by one more turn (setImmediate runs after the poll phase), so frames
    // the kernel had already captured are read even if the event loop was late for the timer.
    stamps.onStamp = () => {
      if (!this.#framesPending()) this.#resolve();
    };
    this.#graceTimer = setTimeout(() => setImmediate(() => this.#resolve()), WIRE_GRACE_MS);
  }

  /**
   * Whether a reply the socket accepted still lacks one of its two frames, while the capture works
   * (it has seen some request leave). On a fast path the whole last exchange can be done before
   * the capture's poll callback runs for either frame.
   */
  #framesPending(): boolean {
    const stamps = this.#stamps;
    if (stamps === undefined || stamps.requestsSeen === 0) return false;
    for (let i = 0; i < this.#issued; i++) {
      if (this.#outcomes[i] === "replied" && !(stamps.hasRequest(i) && stamps.hasReply(i))) return true;
    }
    return false;
  }

  #resolve(): void {
    if (this.#resolved) return;
    this.#resolved = true;
    if (this.#graceTimer !== undefined) clearTimeout(this.#graceTimer);
    this.#signal.removeEventListener("abort", this.#onAbort);
    this.#tap?.close();
    this.#finish(this.#measure());
  }

  #measure(): Measurement {
    const now = process.hrtime.bigint();
    const interrupted = this.#aborted || this.#socketError !== undefined;
    // Requests still inside their wait when the run was cut short have no known fate yet: they
    // count as sent but not in loss_pct, so aborting a run does not report loss that may not exist.
    let inFlight = 0;
    if (interrupted) {
      const waitNs = BigInt(this.#opts.wait_ms) * 1_000_000n;
      for (let i = 0; i < this.#issued; i++) {
        const sentAt = this.#sentAt[i];
        const open = this.#outcomes[i] === "pending" || this.#outcomes[i] === "sent";
        if (open && (sentAt === undefined || now - sentAt < waitNs)) inFlight++;
      }
    }
    // Wire RTTs where both frames were captured; the user-space RTT otherwise.
    const rtts: (number | undefined)[] = [];
    let wireRtts = 0;
    for (let i = 0; i < this.#issued; i++) {
      const processMs = this.#rttMs[i];
      const wireMs = processMs === undefined ? undefined : this.#stamps?.rttMs(i, processMs);
      if (wireMs !== undefined) wireRtts++;
      rtts[i] = wireMs ?? processMs;
    }
    const series: number[] = [];
    for (const rtt of rtts) if (rtt !== undefined) series.push(rtt);
    const known = this.#issued - inFlight;
    const metrics: Record<string, number> = { sent: this.#issued, received: this.#replied };
    if (known > 0) metrics.loss_pct = round((100 * (known - this.#replied)) / known);
    const stats = summarizeSeries(series);
    if (stats !== undefined) {
      metrics.rtt_min_ms = round(stats.min);
      metrics.rtt_avg_ms = round(stats.avg);
      metrics.rtt_max_ms = round(stats.max);
      metrics.rtt_p50_ms = round(stats.p50);
      metrics.rtt_p95_ms = round(stats.p95);
      if (stats.jitter !== undefined) metrics.jitter_ms = round(stats.jitter);
    }
    if (this.#opts.mos === true && metrics.loss_pct !== undefined) {
      metrics.mos = round(pingMos(stats?.avg, stats?.jitter, metrics.loss_pct));
    }
    const detail: Record<string, unknown> = {
      address: this.#address,
      family: FAMILY_NAMES[this.#family],
      identifier: this.#session?.identifier,
      payload_bytes: this.#opts.size,
      rtts_ms: this.#outcomes.slice(0, MAX_DETAIL_RTTS).map((_, i) => {
        const rtt = rtts[i];
        return rtt === undefined ? null : round(rtt);
      }),

      duplicates: this.#duplicates,
      late: this.#late,
      corrupted: this.#corrupted,
    };
    if (this.#issued > MAX_DETAIL_RTTS) detail.rtts_truncated = true;
    if (series.length > 0) {
      detail.timestamps = wireRtts === 0 ? "process" : wireRtts === series.length ? "wire" : "mixed";
      detail.wire_rtts = wireRtts;
    }
    if (this.#wireUnavailable !== undefined) detail.wire_unavailable = this.#wireUnavailable;
    if (this.#icmpErrors > 0) {
      detail.icmp_errors = this.#errors;
      detail.icmp_error_count = this.#icmpErrors;
    }
    if (this.#sendErrors > 0) {
      detail.send_errors = this.#sendErrors;
      detail.send_error = this.#firstSendError;
    }
    if (interrupted) detail.in_flight = inFlight;
    if (this.#aborted) detail.aborted = true;
    const failure = this.#failure();
    return failure === undefined
      ? { status: "ok", metrics, detail }
      : { status: failure.code === "socket_error" ? "error" : "fail", metrics, detail, error: failure };
  }

  /** Why the run failed, or undefined when replies came back (thresholds are the runner's job). */
  #failure(): CheckError | undefined {
    if (this.#socketError !== undefined) {
      return {
        code: "socket_error",
        message: `raw socket failed during the run: ${this.#socketError.message}`,
      };
    }
    if (this.#replied > 0) return undefined;
    const first = this.#errors[0];
    if (first !== undefined) {
      return {
        code: "unreachable",
        message: `${describeIcmpError(this.#family, first)} for ${this.#address}, reported by ${first.from}`,
      };
    }
    if (this.#sendErrors > 0 && this.#sendErrors === this.#issued) {
      return socketFailure(this.#firstSendError ?? "send failed", this.#address);
    }
    if (this.#aborted) {
      return {
        code: "timeout",
        message: `aborted after ${this.#issued} echo requests to ${this.#address}, no reply`,
      };
    }
    return {
      code: "timeout",
      message: `no reply to ${this.#issued} echo requests to ${this.#address} within ${this.#opts.wait_ms} ms each`,
    };
  }
}

const UNREACHABLE_CODES: Readonly<Record<IpFamily, readonly string[]>> = {
  // RFC 792 and RFC 1812 §5.2.7.1
  4: [
    "network unreachable",
    "host unreachable",
    "protocol unreachable",
    "port unreachable",
    "fragmentation needed",
    "source route failed",
    "destination network unknown",
    "destination host unknown",
    "source host isolated",
    "network administratively prohibited",
    "host administratively prohibited",
    "network unreachable for TOS",
    "host unreachable for TOS",
    "communication administratively prohibited",
    "host precedence violation",
    "precedence cutoff in effect",
  ],
  // RFC 4443 §3.1
  6: [
    "no route to destination",
    "communication administratively prohibited",
    "beyond scope of source address",
    "address unreachable",
    "port unreachable",
    "source address failed ingress/egress policy",
    "reject route to destination",
  ],
};

function describeIcmpError(family: IpFamily, error: ReportedError): string {
  switch (error.error) {
    case "unreachable": {
      const reason = UNREACHABLE_CODES[family][error.code] ?? `code ${error.code}`;
      return `destination unreachable (${reason})`;
    }
    case "time_exceeded":
      return error.code === 0
        ? "time exceeded (TTL/hop limit expired in transit)"
        : "time exceeded (reassembly)";
    case "packet_too_big":
      return "packet too big";
    case "parameter_problem":
      return `parameter problem (code ${error.code})`;
  }
}

/** Milliseconds to the microsecond, percentages to 1e-3 points: enough for the §9 accuracy bars. */
function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}
