// One ICMP/ICMPv6 echo series (checks/icmp.ts parses the options and resolves the target): sends
// on a timer, matches replies by identifier, sequence and cookie, and turns what came back into
// loss, RTT distribution and jitter, timed by kernel capture stamps where it can
// (checks/common/wire-timing.ts).

import { randomBytes, randomInt } from "node:crypto";
import type { CheckContext, CheckError, Measurement } from "./check.ts";
import { round } from "./common/round.ts";
import { WireTiming, type WireTimestampSource } from "./common/wire-timing.ts";
import { pingMos } from "./mos.ts";
import { summarizeSeries } from "./series-stats.ts";
import { echoFrames } from "../net/echo-wire-stamps.ts";
import { normalizeIpLiteral, type EchoError, type IpFamily } from "../net/icmp-packet.ts";
import type { EchoListener, EchoSession, IcmpSocketPool, SendOptions } from "../net/icmp-socket.ts";
import { socketFailure } from "../net/socket-failure.ts";

/** What a series needs of the icmp options. */
export interface EchoSeriesSettings {
  count: number;
  interval_ms: number;
  size: number;
  wait_ms: number;
  ttl?: number | undefined;
  dont_fragment?: boolean | undefined;
  dscp?: number | undefined;
  mos?: boolean | undefined;
}

/** The I/O a series uses. */
export interface EchoSeriesIo {
  sockets: Pick<IcmpSocketPool, "open">;
  /** Absent: RTTs from user-space timestamps only. */
  wire?: WireTimestampSource | undefined;
}

/** Cap on the per-request RTT list in `detail.rtts_ms` (a run may have 10 000 requests). */
export const MAX_DETAIL_RTTS = 100;
/** Cap on the ICMP error list in `detail.icmp_errors`. */
export const MAX_DETAIL_ERRORS = 10;

const COOKIE_BYTES = 8;
const FAMILY_NAMES: Readonly<Record<IpFamily, "ipv4" | "ipv6">> = { 4: "ipv4", 6: "ipv6" };
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
export class EchoSeries implements EchoListener {
  readonly #sockets: Pick<IcmpSocketPool, "open">;
  readonly #wire: WireTimestampSource | undefined;
  readonly #address: string;
  readonly #family: IpFamily;
  readonly #opts: EchoSeriesSettings;
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
  readonly #timing = new WireTiming();

  constructor(
    deps: EchoSeriesIo,
    address: string,
    family: IpFamily,
    opts: EchoSeriesSettings,
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
    if ("code" in session)
      return Promise.resolve({
        status: "error",
        metrics: {},
        error: { code: session.code, message: session.message },
      });
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
      this.#timing.finishNow();
      return;
    }
    this.#aborted = true;
    this.#end();
  };

  /** Subscribes to the egress interface's frames; any failure just means process timestamps. */
  #openTap(identifier: number): void {
    const classify = echoFrames({
      family: this.#family,
      peer: this.#comparableAddress,
      identifier,
      cookie: this.#payload.subarray(0, COOKIE_BYTES),
      indexOf: (sequence) => this.#indexOf(sequence),
    });
    this.#timing.open(this.#wire, this.#address, classify, this.#ctx.log);
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
    const replied: number[] = [];
    for (let i = 0; i < this.#issued; i++) if (this.#outcomes[i] === "replied") replied.push(i);
    this.#timing.settle(
      !this.#aborted && this.#socketError === undefined,
      () => this.#timing.framesPending(replied),
      () => {
        this.#signal.removeEventListener("abort", this.#onAbort);
        this.#finish(this.#measure());
      },
    );
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
      const wireMs = processMs === undefined ? undefined : this.#timing.stamps?.intervalMs(i, processMs);
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
    if (this.#timing.unavailable !== undefined) detail.wire_unavailable = this.#timing.unavailable;
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
