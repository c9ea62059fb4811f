// STAMP Session-Sender (RFC 8762, unauthenticated mode; wan area): a series of test packets to a
// Session-Reflector — a router answering STAMP or TWAMP-light natively, or another probe / HQ
// running services/contract/src/net/stamp-reflector.ts — and from the reflector's timestamps and sequence numbers:
// round-trip delay without the reflector's residence time (RFC 8762 §4: (T4 − T1) − (T3 − T2)),
// one-way delay per direction when both clocks say they are synchronized (S bit of the Error
// Estimate), RFC 3550 jitter per direction, and loss per direction.
//
// Loss per direction (RFC 8762 §4.3.2, stateful reflector): the reflector numbers what it
// reflects with its own counter, so between two replies with sender sequence s1 < s2 and
// reflector sequence r1 < r2, (s2 − s1) − (r2 − r1) test packets were lost on the way out and
// the rest of the gap on the way back. A stateless reflector (§4.3.1) copies the sender's number;
// then the direction of a loss cannot be known and only loss_pct is reported. Packets before the
// first and after the last reply have no known direction either: per-direction loss is over
// the span between them.
//
// Timing as in checks/icmp.ts: T1 and T4 from kernel capture timestamps on the egress interface
// (net/stamp-wire-stamps.ts) when the capture sees the packets (the default port: the shared
// capture filter has `udp port 862`), process hrtime at the send and in the socket callback otherwise.
// Per-direction jitter needs no clock synchronization: the clocks' offset cancels in the
// differences of consecutive one-way delays.

import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { Type, type Static } from "@sinclair/typebox";
import type { CheckContext, CheckError, CheckKind, Measurement } from "./check.ts";
import {
  addressFamilyOption,
  resolveDestination,
  systemLookup,
  type LookupHost,
} from "./common/resolve-host.ts";
import { interarrivalJitter, summarizeSeries } from "./series-stats.ts";
import { normalizeIpLiteral, type IpFamily } from "../net/icmp-packet.ts";
import { openRawUdpTransport, type IcmpTransport } from "../net/icmp-socket.ts";
import { encodeUdpDatagram } from "../net/icmp-packet.ts";
import { sharedPcap } from "../net/pcap-session.ts";
import {
  decodeReflectorPacket,
  encodeSenderPacket,
  errorEstimateFor,
  errorEstimateMs,
  restampSenderPacket,
  STAMP_PORT,
  type ReflectorPacket,
} from "../../../contract/src/net/stamp-packet.ts";
import { stampFrames } from "../net/stamp-wire-stamps.ts";
import { ethernetEgress } from "../net/wire-stamps.ts";
import { medianWallMinusMonoUs } from "../../../contract/src/net/wall-clock.ts";
import { WireTiming, type WireTimestampSource } from "./common/wire-timing.ts";
import { errorMessage } from "./common/failure.ts";
import { round } from "./common/round.ts";

const options = Type.Object(
  {
    count: Type.Integer({ minimum: 1, maximum: 10000, default: 10, description: "test packets per run" }),
    interval_ms: Type.Integer({
      minimum: 1,
      maximum: 60000,
      default: 100,
      description: "gap between the starts of consecutive test packets",
    }),
    padding: Type.Integer({
      minimum: 0,
      maximum: 1400,
      default: 0,
      description:
        "zero octets after the 44-octet test packet (RFC 8762 §4.2.1); the reflector answers with the same size",
    }),
    port: Type.Integer({
      minimum: 1,
      maximum: 65535,
      default: STAMP_PORT,
      description:
        "UDP port of the Session-Reflector (862 = STAMP/TWAMP; kernel timestamps are taken on 862 only)",
    }),
    wait_ms: Type.Integer({
      minimum: 1,
      maximum: 60000,
      default: 1000,
      description:
        "how long to wait for each reflected packet; a later one counts as lost (detail.late), and the run " +
        "ends this long after the last test packet at the latest",
    }),
    dscp: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 63,
        description:
          "DSCP of the test packets (46 = EF); sent through a raw socket (CAP_NET_RAW) since Node's UDP sockets cannot set it; absent = 0",
      }),
    ),
    clock_synchronized: Type.Boolean({
      default: false,
      description:
        "this probe's clock is synchronized to UTC (NTP/PTP): sets the S bit; one-way delays are reported " +
        "only when this and the reflector's S bit are both set",
    }),
    clock_error_ms: Type.Number({
      minimum: 0.000001,
      maximum: 1000,
      default: 1,
      description: "error bound of this probe's clock written in the Error Estimate field (RFC 4656 §4.1.2)",
    }),
    address_family: addressFamilyOption,
  },
  { additionalProperties: false },
);

/** Options of a stamp check, defaults filled in by the config loader. */
export type StampOptions = Static<typeof options>;

/** The UDP socket a session uses; the real one is node:dgram. */
export type OpenUdpSocket = (family: IpFamily) => UdpSocket;

/** The I/O a stamp check uses. */
export interface StampDependencies {
  resolve: LookupHost;
  openSocket: OpenUdpSocket;
  /** Sends with a DSCP (raw IPPROTO_UDP); only opened when the `dscp` option is set. */
  openRawUdp: (family: IpFamily) => IcmpTransport;
  /** Absent: process timestamps only. */
  wire?: WireTimestampSource;
}

/** Builds the stamp check over the given I/O. */
export function createStampCheck(deps: StampDependencies): CheckKind<typeof options> {
  return {
    kind: "stamp",
    defaultArea: "wan",
    options,
    run: async (target, opts, ctx, signal) => {
      const destination = await resolveDestination(deps.resolve, target, opts.address_family, signal);
      if ("failure" in destination) return destination.failure;
      return new StampSession(deps, destination.address, destination.family, opts, ctx, signal).run();
    },
  };
}

/** STAMP sender over node:dgram, timed by the shared pcap sessions. */
export const stamp: CheckKind<typeof options> = createStampCheck({
  resolve: systemLookup,
  openSocket: (family) => createSocket({ type: family === 6 ? "udp6" : "udp4" }),
  openRawUdp: openRawUdpTransport,
  wire: { io: sharedPcap, captureInterface: ethernetEgress },
});

/** Cap on per-packet lists in `detail`. */
export const MAX_DETAIL_PACKETS = 100;

/** One reflected packet the session accepted. */
interface Reply {
  packet: ReflectorPacket;
  /** hrtime when the socket callback ran. */
  receivedAt: bigint;
  /** Arrival order among accepted replies. */
  order: number;
}

/** Maps a socket error to a stable code and a sentence. */
function socketFailure(error: unknown, address: string, port: number): CheckError {
  const code = (error as { code?: unknown }).code;
  const text = errorMessage(error);
  switch (code) {
    case "ECONNREFUSED":
      return {
        code: "port_unreachable",
        message: `nothing answers STAMP on ${address} port ${port} (ICMP port unreachable)`,
      };
    case "ENETUNREACH":
    case "EADDRNOTAVAIL":
      return { code: "no_route", message: `no route to ${address}: ${text}` };
    case "EHOSTUNREACH":
      return { code: "unreachable", message: `${address} is unreachable: ${text}` };
    default:
      return { code: "socket_error", message: `UDP socket failed: ${text}` };
  }
}

class StampSession {
  readonly #deps: StampDependencies;
  readonly #address: string;
  readonly #family: IpFamily;
  readonly #opts: StampOptions;
  readonly #ctx: CheckContext;
  readonly #signal: AbortSignal;
  readonly #sentAt: (bigint | undefined)[] = [];
  /** T1 as written into each packet, Unix ms. */
  readonly #t1Ms: number[] = [];
  readonly #replies = new Map<number, Reply>();
  #socket: UdpSocket | undefined;
  #raw: IcmpTransport | undefined;
  #localPort = 0;
  #offsetUs = 0;
  #issued = 0;
  #sendErrors = 0;
  #firstSendError: CheckError | undefined;
  #socketFailure: CheckError | undefined;
  #portUnreachable = 0;
  #duplicates = 0;
  #late = 0;
  #malformed = 0;
  #foreign = 0;
  #arrivals = 0;
  #aborted = false;
  #startedAtMs = 0;
  #timer: NodeJS.Timeout | undefined;
  #finished = false;
  #finish: (m: Measurement) => void = () => {};
  readonly #timing = new WireTiming();

  constructor(
    deps: StampDependencies,
    address: string,
    family: IpFamily,
    opts: StampOptions,
    ctx: CheckContext,
    signal: AbortSignal,
  ) {
    this.#deps = deps;
    this.#address = address;
    this.#family = family;
    this.#opts = opts;
    this.#ctx = ctx;
    this.#signal = signal;
  }

  run(): Promise<Measurement> {
    if (this.#signal.aborted) {
      this.#aborted = true;
      return Promise.resolve(this.#measure());
    }
    return new Promise<Measurement>((resolve) => {
      this.#finish = resolve;
      this.#signal.addEventListener("abort", this.#onAbort, { once: true });
      this.#open();
    });
  }

  readonly #onAbort = (): void => {
    if (this.#finished) {
      this.#timing.finishNow();
      return;
    }
    this.#aborted = true;
    this.#end();
  };

  #open(): void {
    let socket: UdpSocket;
    try {
      socket = this.#deps.openSocket(this.#family);
    } catch (error) {
      this.#socketFailure = socketFailure(error, this.#address, this.#opts.port);
      this.#end();
      return;
    }
    this.#socket = socket;
    socket.on("error", (error) => this.#onSocketError(error));
    socket.on("message", (msg) => this.#onMessage(msg, process.hrtime.bigint()));
    // A connected socket: the kernel drops datagrams from any other address/port, and an ICMP port
    // unreachable surfaces as ECONNREFUSED. The connect callback gets its error as its argument
    // (docs/architecture.md, "Field lessons": a send on the unconnected socket would then throw).
    socket.connect(this.#opts.port, this.#address, (error?: Error) => {
      if (this.#finished) return;
      if (error) {
        this.#socketFailure = socketFailure(error, this.#address, this.#opts.port);
        this.#end();
        return;
      }
      this.#localPort = socket.address().port;
      if (this.#opts.dscp !== undefined && this.#opts.dscp > 0) {
        try {
          this.#raw = this.#deps.openRawUdp(this.#family);
        } catch (err) {
          const text = errorMessage(err);
          this.#socketFailure = {
            code: /permit/i.test(text) ? "no_permission" : "socket_error",
            message: `cannot open a raw UDP socket to send with DSCP ${this.#opts.dscp}: ${text} (needs CAP_NET_RAW)`,
          };
          this.#end();
          return;
        }
      }
      this.#openTap();
      this.#offsetUs = medianWallMinusMonoUs(3);
      this.#startedAtMs = performance.now();
      this.#sendNext();
    });
  }

  #openTap(): void {
    if (this.#deps.wire !== undefined && this.#opts.port !== STAMP_PORT) {
      this.#timing.unavailable = `the capture filter watches UDP port ${STAMP_PORT} only`;
      return;
    }
    const classify = stampFrames({
      family: this.#family,
      peer: normalizeIpLiteral(this.#address),
      peerPort: this.#opts.port,
      localPort: this.#localPort,
      indexOf: (sequence) => this.#indexOf(sequence),
    });
    this.#timing.open(this.#deps.wire, this.#address, classify, this.#ctx.log);
  }

  #wallMs(at: bigint): number {
    return (Number(at) / 1000 + this.#offsetUs) / 1000;
  }

  #sendNext(): void {
    this.#timer = undefined;
    const socket = this.#socket;
    if (this.#finished || socket === undefined) return;
    const index = this.#issued++;
    // RFC 8762 §4.2.1: sequence numbers start at 0 and count up by one per packet.
    const packet = encodeSenderPacket(
      {
        sequence: index,
        timestampMs: 0,
        errorEstimate: errorEstimateFor(this.#opts.clock_error_ms, this.#opts.clock_synchronized),
      },
      this.#opts.padding,
    );
    const raw = this.#raw;
    if (raw !== undefined) {
      const datagram = encodeUdpDatagram(this.#localPort, this.#opts.port, packet);
      // T1 is written before the raw send's own pre-syscall stamp; the wire stamp replaces it when captured.
      const t1 = process.hrtime.bigint();
      restampSenderPacket(datagram.subarray(8), this.#wallMs(t1));
      this.#t1Ms[index] = this.#wallMs(t1);
      raw.send(datagram, this.#address, (error, sentAt) => this.#sendDone(index, error, sentAt), {
        trafficClass: (this.#opts.dscp ?? 0) << 2,
      });
    } else {
      const t1 = process.hrtime.bigint();
      restampSenderPacket(packet, this.#wallMs(t1));
      this.#t1Ms[index] = this.#wallMs(t1);
      socket.send(packet, (error) => {
        if (error) this.#sendDone(index, error, 0n);
      });
      // As net/dns-transport.ts: on a connected socket libuv calls sendmsg(2) synchronously, so
      // the packet has left when send() returns.
      this.#sendDone(index, undefined, process.hrtime.bigint());
    }
    if (this.#issued < this.#opts.count) {
      const due = this.#startedAtMs + this.#issued * this.#opts.interval_ms;
      this.#timer = setTimeout(() => this.#sendNext(), Math.max(0, due - performance.now()));
    }
  }

  #sendDone(index: number, error: Error | null | undefined, sentAt: bigint): void {
    if (this.#finished) return;
    if (error) {
      this.#sendErrors++;
      this.#firstSendError ??= socketFailure(error, this.#address, this.#opts.port);
      this.#sentAt[index] = undefined;
    } else if (this.#sentAt[index] === undefined) {
      this.#sentAt[index] = sentAt;
    }
    if (index === this.#opts.count - 1 && this.#timer === undefined) {
      this.#timer = setTimeout(() => this.#end(), this.#opts.wait_ms);
    }
    this.#endIfComplete();
  }

  #onSocketError(error: Error): void {
    if (this.#finished) return;
    // ECONNREFUSED on a connected UDP socket is an ICMP port unreachable for one packet: data, not fatal.
    if ((error as { code?: unknown }).code === "ECONNREFUSED") {
      this.#portUnreachable++;
      return;
    }
    this.#socketFailure = socketFailure(error, this.#address, this.#opts.port);
    this.#ctx.log.warn({ err: error.message, address: this.#address }, "stamp: UDP socket failed");
    this.#end();
  }

  #onMessage(msg: Buffer, receivedAt: bigint): void {
    if (this.#finished) return;
    const decoded = decodeReflectorPacket(msg);
    if (!decoded.ok) {
      this.#malformed++;
      return;
    }
    const packet = decoded.packet;
    const index = this.#indexOf(packet.senderSequence);
    const sentAt = index === undefined ? undefined : this.#sentAt[index];
    if (index === undefined || sentAt === undefined) {
      this.#foreign++;
      return;
    }
    // The reflector copies T1 back (RFC 8762 §4.3.1): a mismatch is not a reply to our packet.
    const t1 = this.#t1Ms[index] ?? 0;
    if (Math.abs(packet.senderTimestampMs - t1) > 0.001) {
      this.#foreign++;
      return;
    }
    if (this.#replies.has(index)) {
      this.#duplicates++;
      return;
    }
    if (Number(receivedAt - sentAt) / 1e6 > this.#opts.wait_ms) {
      this.#late++;
      return;
    }
    this.#replies.set(index, { packet, receivedAt, order: this.#arrivals++ });
    this.#endIfComplete();
  }

  #indexOf(sequence: number): number | undefined {
    return sequence < this.#issued ? sequence : undefined;
  }

  #endIfComplete(): void {
    if (this.#issued === this.#opts.count && this.#replies.size + this.#sendErrors >= this.#opts.count)
      this.#end();
  }

  #end(): void {
    if (this.#finished) return;
    this.#finished = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#closeSockets();
    this.#timing.settle(
      !this.#aborted,
      () => this.#timing.framesPending(this.#replies.keys()),
      () => {
        this.#signal.removeEventListener("abort", this.#onAbort);
        this.#finish(this.#measure());
      },
    );
  }

  #closeSockets(): void {
    try {
      this.#socket?.close();
    } catch {
      // already closed
    }
    this.#raw?.close();
  }

  /** T1 and T4 of a reply in Unix ms: the capture's when it saw both frames and they are consistent. */
  #endpoints(index: number, reply: Reply): { t1: number; t4: number; wire: boolean } {
    const t1 = this.#t1Ms[index] ?? 0;
    const t4 = this.#wallMs(reply.receivedAt);
    const stamps = this.#timing.stamps;
    // Compared as intervals (WireStamps.intervalMs), so an error in the wall-minus-monotonic
    // offset cannot reject good stamps.
    const sentUs = stamps?.outUs(index);
    const receivedUs = stamps?.backUs(index);
    if (sentUs !== undefined && receivedUs !== undefined && stamps?.intervalMs(index, t4 - t1) !== undefined)
      return { t1: sentUs / 1000, t4: receivedUs / 1000, wire: true };
    return { t1, t4, wire: false };
  }

  #measure(): Measurement {
    const indices = [...this.#replies.keys()].sort((a, b) => a - b);
    const rtts: number[] = [];
    const forward: number[] = [];
    const backward: number[] = [];
    const rttByIndex = new Map<number, number>();
    let wireCount = 0;
    let synchronized = this.#opts.clock_synchronized;
    let reflectorErrorMs = 0;
    for (const index of indices) {
      const reply = this.#replies.get(index);
      if (reply === undefined) continue;
      const { t1, t4, wire } = this.#endpoints(index, reply);
      if (wire) wireCount++;
      const p = reply.packet;
      const residence = p.timestampMs - p.receiveTimestampMs;
      const rtt = t4 - t1 - Math.max(0, residence);
      rtts.push(rtt);
      rttByIndex.set(index, rtt);
      forward.push(p.receiveTimestampMs - t1);
      backward.push(t4 - p.timestampMs);
      if (!p.errorEstimate.synchronized) synchronized = false;
      reflectorErrorMs = Math.max(reflectorErrorMs, errorEstimateMs(p.errorEstimate));
    }
    const sent = this.#issued - this.#sendErrors;
    const received = this.#replies.size;
    const metrics: Record<string, number> = { sent: this.#issued, received };
    const interrupted = this.#aborted || this.#socketFailure !== undefined;
    if (sent > 0 && !interrupted) metrics.loss_pct = round((100 * (sent - received)) / sent);
    const stats = summarizeSeries(rtts);
    if (stats !== undefined) {
      metrics.rtt_min_ms = round(stats.min);
      metrics.rtt_avg_ms = round(stats.avg);
      metrics.rtt_max_ms = round(stats.max);
      metrics.rtt_p50_ms = round(stats.p50);
      metrics.rtt_p95_ms = round(stats.p95);
      if (stats.jitter !== undefined) metrics.jitter_ms = round(stats.jitter);
    }
    const jitterForward = interarrivalJitter(forward);
    const jitterBackward = interarrivalJitter(backward);
    if (jitterForward !== undefined) metrics.jitter_fwd_ms = round(jitterForward);
    if (jitterBackward !== undefined) metrics.jitter_back_ms = round(jitterBackward);
    const detail: Record<string, unknown> = {
      address: this.#address,
      family: this.#family === 6 ? "ipv6" : "ipv4",
      port: this.#opts.port,
      local_port: this.#localPort,
      packet_bytes: 44 + this.#opts.padding,
    };
    if (synchronized && forward.length > 0) {
      const fwd = summarizeSeries(forward);
      const back = summarizeSeries(backward);
      if (fwd !== undefined && back !== undefined) {
        metrics.owd_fwd_min_ms = round(fwd.min);
        metrics.owd_fwd_avg_ms = round(fwd.avg);
        metrics.owd_fwd_max_ms = round(fwd.max);
        metrics.owd_back_min_ms = round(back.min);
        metrics.owd_back_avg_ms = round(back.avg);
        metrics.owd_back_max_ms = round(back.max);
      }
      detail.one_way = "available";
      detail.clock_error_ms = round(this.#opts.clock_error_ms + reflectorErrorMs);
    } else {
      detail.one_way = "unavailable";
      if (received > 0) {
        detail.one_way_reason = this.#opts.clock_synchronized
          ? "the reflector's clock is not synchronized (S bit clear)"
          : "this probe's clock is not declared synchronized (option clock_synchronized)";
      }
    }
    Object.assign(metrics, this.#directionLoss(indices, detail));
    metrics.duplicates = this.#duplicates;
    metrics.reordered = this.#reordered(indices);
    metrics.malformed = this.#malformed;
    detail.late = this.#late;
    detail.foreign = this.#foreign;
    if (received > 0) {
      detail.timestamps = wireCount === 0 ? "process" : wireCount === received ? "wire" : "mixed";
      detail.wire_rtts = wireCount;
      const first = this.#replies.get(indices[0] ?? 0);
      // RFC 8762 §4.3.1: the TTL (hop limit) of our packet as it reached the reflector.
      if (first !== undefined) detail.reflector_ttl = first.packet.senderTtl;
    }
    if (this.#timing.unavailable !== undefined) detail.wire_unavailable = this.#timing.unavailable;
    detail.rtts_ms = Array.from({ length: Math.min(this.#issued, MAX_DETAIL_PACKETS) }, (_, i) => {
      const rtt = rttByIndex.get(i);
      return rtt === undefined ? null : round(rtt);
    });
    if (this.#portUnreachable > 0) detail.port_unreachable = this.#portUnreachable;
    if (this.#sendErrors > 0) {
      detail.send_errors = this.#sendErrors;
      detail.send_error = this.#firstSendError?.message;
    }
    if (this.#aborted) detail.aborted = true;
    const failure = this.#failure(received);
    return failure === undefined
      ? { status: "ok", metrics, detail }
      : {
          status: failure.code === "socket_error" || failure.code === "no_permission" ? "error" : "fail",
          metrics,
          detail,
          error: failure,
        };
  }

  /**
   * Per-direction loss from the reflector's sequence numbers (see the file comment), over the span
   * from the first to the last reply. Nothing when fewer than two replies came back or the
   * reflector copies sequence numbers while packets were lost.
   */
  #directionLoss(indices: number[], detail: Record<string, unknown>): Record<string, number> {
    const firstIndex = indices[0];
    const lastIndex = indices[indices.length - 1];
    if (firstIndex === undefined || lastIndex === undefined || indices.length < 2) return {};
    const first = this.#replies.get(firstIndex);
    const last = this.#replies.get(lastIndex);
    if (first === undefined || last === undefined) return {};
    const span = lastIndex - firstIndex + 1;
    const reflected = ((last.packet.sequence - first.packet.sequence) >>> 0) + 1;
    const copies = indices.every((i) => this.#replies.get(i)?.packet.sequence === i);
    if (copies && indices.length < span) {
      detail.direction_loss =
        "unknown: the reflector copies the sender's sequence numbers (RFC 8762 §4.3.1 stateless)";
      return {};
    }
    if (reflected > span || reflected < indices.length) {
      detail.direction_loss = `unknown: reflector sequence numbers span ${reflected} for ${span} test packets (a counter shared with other sessions)`;
      return {};
    }
    detail.direction_loss = copies
      ? "no loss in the span"
      : "from the reflector's own counter (RFC 8762 §4.3.2)";
    detail.loss_span = span;
    return {
      loss_fwd_pct: round((100 * (span - reflected)) / span),
      loss_back_pct: round((100 * (reflected - indices.length)) / reflected),
    };
  }

  /** Replies that arrived after a reply to a later test packet (RFC 4737's reordered packets, simplified). */
  #reordered(indices: number[]): number {
    const byArrival = indices
      .map((i) => ({ i, order: this.#replies.get(i)?.order ?? 0 }))
      .sort((a, b) => a.order - b.order);
    let highest = -1;
    let reordered = 0;
    for (const { i } of byArrival) {
      if (i < highest) reordered++;
      else highest = i;
    }
    return reordered;
  }

  #failure(received: number): CheckError | undefined {
    if (this.#socketFailure !== undefined) return this.#socketFailure;
    if (received > 0) return undefined;
    if (this.#sendErrors > 0 && this.#sendErrors === this.#issued && this.#firstSendError !== undefined)
      return this.#firstSendError;
    if (this.#portUnreachable > 0)
      return socketFailure({ code: "ECONNREFUSED" }, this.#address, this.#opts.port);
    if (this.#malformed > 0) {
      return {
        code: "malformed_reply",
        message: `${this.#malformed} replies from ${this.#address} port ${this.#opts.port} are not STAMP test packets`,
      };
    }
    if (this.#aborted) {
      return {
        code: "timeout",
        message: `aborted after ${this.#issued} STAMP test packets to ${this.#address}, no reply`,
      };
    }
    return {
      code: "timeout",
      message: `no STAMP reply to ${this.#issued} test packets to ${this.#address} port ${this.#opts.port} within ${this.#opts.wait_ms} ms each`,
    };
  }
}
