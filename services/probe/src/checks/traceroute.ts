// Traceroute (wan area): the routers between the probe and a target, with loss and RTT per hop,
// and whether the path changed since the previous run.
//
// Probes are ICMP echo requests (as `traceroute -I`, `mtr`) or UDP datagrams to rising ports from
// 33434 (classic traceroute), each sent with its own TTL / hop limit through the shared raw
// sockets (net/icmp-socket.ts sets IP_TTL right before that one packet's sendto). Routers answer
// with "time exceeded" quoting the probe; the target answers with an echo reply (ICMP) or "port
// unreachable" (UDP). Each probe is identified by its sequence number (ICMP) or destination port
// (UDP), so every answer belongs to exactly one TTL.
//
// TTLs are probed `parallel_hops` at a time (`probes_per_hop` rounds, then one wait), and the run
// stops after the window in which the target answered: a short path costs one wait, a path
// that never reaches the target at most ⌈max_hops / parallel_hops⌉ waits.

import { randomBytes, randomInt } from "node:crypto";
import { Type, type Static } from "@sinclair/typebox";
import type { CheckContext, CheckError, CheckKind, Measurement } from "./check.ts";
import {
  addressFamilyOption,
  resolveDestination,
  systemLookup,
  type LookupHost,
} from "./common/resolve-host.ts";
import {
  normalizeIpLiteral,
  type EchoError,
  type IcmpErrorKind,
  type IpFamily,
  type UdpError,
} from "../net/icmp-packet.ts";
import {
  sharedIcmpSockets,
  type EchoSession,
  type IcmpSocketPool,
  type UdpSession,
} from "../net/icmp-socket.ts";
import { socketFailure } from "../net/socket-failure.ts";
import { round } from "./common/round.ts";

const options = Type.Object(
  {
    protocol: Type.Union([Type.Literal("icmp"), Type.Literal("udp")], {
      default: "icmp",
      description:
        "icmp: echo requests (traceroute -I); udp: datagrams to rising ports from `port` (classic traceroute)",
    }),
    max_hops: Type.Integer({ minimum: 1, maximum: 64, default: 30, description: "highest TTL probed" }),
    probes_per_hop: Type.Integer({
      minimum: 1,
      maximum: 20,
      default: 3,
      description: "probes per TTL; a hop's loss_pct is over these",
    }),
    wait_ms: Type.Integer({
      minimum: 1,
      maximum: 60000,
      default: 1000,
      description: "how long after its send a probe's answer still counts",
    }),
    parallel_hops: Type.Integer({
      minimum: 1,
      maximum: 64,
      default: 8,
      description: "TTLs probed at the same time (one wait per window of this many hops)",
    }),
    send_interval_ms: Type.Integer({
      minimum: 0,
      maximum: 1000,
      default: 2,
      description: "gap between consecutive probes (routers rate-limit their ICMP errors)",
    }),
    size: Type.Integer({
      minimum: 16,
      maximum: 1400,
      default: 32,
      description: "payload bytes of each probe; the first 8 are the run's cookie",
    }),
    port: Type.Integer({
      minimum: 1,
      maximum: 65535,
      default: 33434,
      description: "udp: destination port of the first probe; each further probe uses the next one",
    }),
    address_family: addressFamilyOption,
  },
  { additionalProperties: false },
);

/** Options of a traceroute check, defaults filled in by the config loader. */
export type TracerouteOptions = Static<typeof options>;

/** The I/O a traceroute check uses (tests pass a pool over the fake network). */
export interface TracerouteDependencies {
  sockets: Pick<IcmpSocketPool, "open" | "openUdp">;
  resolve: LookupHost;
}

/** One hop as reported in `detail.hops`. */
export interface HopReport {
  ttl: number;
  /** Who answered at this TTL, most frequent first (more than one: load balancing). */
  addresses: string[];
  sent: number;
  received: number;
  loss_pct: number;
  rtt_min_ms?: number;
  rtt_avg_ms?: number;
  rtt_max_ms?: number;
  /** An ICMP unreachable ended the path here (`!H`, `!N`, `!X`… in traceroute's notation). */
  unreachable?: string;
}

const COOKIE_BYTES = 8;

interface Probe {
  ttl: number;
  sentAt?: bigint;
  settled: boolean;
  rttMs?: number;
  from?: string;
  /** The target itself answered (echo reply, or port unreachable for UDP). */
  reached: boolean;
  /** An unreachable other than the target's port unreachable. */
  unreachable?: string;
  sendError?: string;
}

/** Builds the traceroute check over the given I/O; each instance remembers paths for change detection. */
export function createTracerouteCheck(deps: TracerouteDependencies): CheckKind<typeof options> {
  const previousPaths = new Map<string, string[][]>();
  return {
    kind: "traceroute",
    needs: ["net_raw"],
    defaultArea: "wan",
    options,
    run: async (target, opts, ctx, signal) => {
      const destination = await resolveDestination(deps.resolve, target, opts.address_family, signal);
      if ("failure" in destination) return destination.failure;
      const run = new TracerouteRun(deps.sockets, destination.address, destination.family, opts, ctx, signal);
      const measurement = await run.run();
      return withPathChange(previousPaths, `${opts.protocol} ${destination.address}`, measurement);
    },
  };
}

/** Traceroute over the process-wide shared raw sockets. */
export const traceroute: CheckKind<typeof options> = createTracerouteCheck({
  sockets: sharedIcmpSockets,
  resolve: systemLookup,
});

/**
 * Compares this run's path with the previous complete one to the same destination: changed when
 * the target is reached at another TTL, or some hop answered from addresses all different from
 * last time. A hop that stayed silent in either run is no evidence of change.
 */
function withPathChange(store: Map<string, string[][]>, key: string, m: Measurement): Measurement {
  const hops = m.detail?.hops as HopReport[] | undefined;
  if (hops === undefined || m.metrics.destination_reached !== 1) return m;
  const path = hops.map((h) => h.addresses);
  const previous = store.get(key);
  store.set(key, path);
  if (previous === undefined) return m;
  let changedAt: number | undefined;
  if (previous.length !== path.length) changedAt = Math.min(previous.length, path.length) + 1;
  for (let i = 0; i < Math.min(previous.length, path.length) && changedAt === undefined; i++) {
    const before = previous[i] ?? [];
    const now = path[i] ?? [];
    if (before.length > 0 && now.length > 0 && !now.some((a) => before.includes(a))) changedAt = i + 1;
  }
  m.metrics.path_changed = changedAt === undefined ? 0 : 1;
  if (changedAt !== undefined && m.detail !== undefined) {
    m.detail.path_change = { at_ttl: changedAt, previous: previous.map((a) => a[0] ?? null) };
  }
  return m;
}

class TracerouteRun {
  readonly #sockets: Pick<IcmpSocketPool, "open" | "openUdp">;
  readonly #address: string;
  readonly #comparable: string;
  readonly #family: IpFamily;
  readonly #opts: TracerouteOptions;
  readonly #ctx: CheckContext;
  readonly #signal: AbortSignal;
  readonly #payload: Buffer;
  readonly #firstSequence = randomInt(0x10000);
  readonly #probes: Probe[] = [];
  #echo: EchoSession | undefined;
  #udp: UdpSession | undefined;
  #socketError: Error | undefined;
  #aborted = false;
  readonly #waiters = new Set<() => void>();

  constructor(
    sockets: Pick<IcmpSocketPool, "open" | "openUdp">,
    address: string,
    family: IpFamily,
    opts: TracerouteOptions,
    ctx: CheckContext,
    signal: AbortSignal,
  ) {
    this.#sockets = sockets;
    this.#address = address;
    this.#comparable = normalizeIpLiteral(address);
    this.#family = family;
    this.#opts = opts;
    this.#ctx = ctx;
    this.#signal = signal;
    this.#payload = Buffer.alloc(opts.size);
    randomBytes(COOKIE_BYTES).copy(this.#payload);
  }

  async run(): Promise<Measurement> {
    if (this.#signal.aborted) return this.#measure(0);
    const opened =
      this.#opts.protocol === "icmp"
        ? this.#sockets.open(this.#family, {
            reply: (sequence, payload, source, receivedAt) =>
              this.#answer(this.#indexOfSequence(sequence), source, receivedAt, "reply", payload),
            icmpError: (error, source, receivedAt) => this.#echoError(error, source, receivedAt),
            socketFailed: (error) => this.#failed(error),
          })
        : this.#sockets.openUdp(this.#family, {
            icmpError: (error, source, receivedAt) => this.#udpError(error, source, receivedAt),
            socketFailed: (error) => this.#failed(error),
          });
    if ("code" in opened)
      return { status: "error", metrics: {}, error: { code: opened.code, message: opened.message } };
    if ("identifier" in opened) this.#echo = opened;
    else this.#udp = opened;
    const onAbort = (): void => {
      this.#aborted = true;
      this.#wake();
    };
    this.#signal.addEventListener("abort", onAbort, { once: true });
    let lastTtl = 0;
    try {
      for (let first = 1; first <= this.#opts.max_hops && !this.#interrupted();) {
        const last = Math.min(this.#opts.max_hops, first + this.#opts.parallel_hops - 1);
        await this.#probeWindow(first, last);
        lastTtl = last;
        if (this.#endOfPath() !== undefined) break;
        first = last + 1;
      }
    } finally {
      this.#signal.removeEventListener("abort", onAbort);
      this.#echo?.close();
      this.#udp?.close();
    }
    return this.#measure(lastTtl);
  }

  #interrupted(): boolean {
    return this.#aborted || this.#socketError !== undefined;
  }

  async #probeWindow(first: number, last: number): Promise<void> {
    const window: number[] = [];
    for (let round = 0; round < this.#opts.probes_per_hop; round++) {
      for (let ttl = first; ttl <= last; ttl++) {
        if (this.#interrupted()) return;
        if (window.length > 0 && this.#opts.send_interval_ms > 0)
          await this.#sleep(this.#opts.send_interval_ms);
        window.push(this.#send(ttl));
      }
    }
    // Every probe of the window answered, failed, or ran out of wait_ms.
    const deadline = performance.now() + this.#opts.wait_ms;
    while (!this.#interrupted() && window.some((i) => this.#probes[i]?.settled !== true)) {
      const left = deadline - performance.now();
      if (left <= 0) break;
      await this.#sleep(left);
    }
  }

  #send(ttl: number): number {
    const index = this.#probes.length;
    const probe: Probe = { ttl, settled: false, reached: false };
    this.#probes.push(probe);
    const done = (error: Error | undefined, sentAt: bigint): void => {
      if (error !== undefined) {
        probe.sendError = error.message;
        probe.settled = true;
        this.#wake();
      } else probe.sentAt = sentAt;
    };
    if (this.#echo !== undefined) {
      this.#echo.send((this.#firstSequence + index) & 0xffff, this.#payload, this.#address, done, { ttl });
    } else {
      this.#udp?.send(this.#portOf(index), this.#payload, this.#address, done, { ttl });
    }
    return index;
  }

  /** Sleeps up to `ms`, woken early by any answer or the abort. */
  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const finish = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(finish);
        resolve();
      };
      const timer = setTimeout(finish, ms);
      this.#waiters.add(finish);
    });
  }

  #wake(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }

  #portOf(index: number): number {
    return ((this.#opts.port - 1 + index) % 65535) + 1;
  }

  #indexOfSequence(sequence: number): number {
    return (sequence - this.#firstSequence) & 0xffff;
  }

  #echoError(error: EchoError, source: string, receivedAt: bigint): void {
    if (normalizeIpLiteral(error.originalDestination) !== this.#comparable) return;
    const quoted = error.quotedPayload.subarray(0, COOKIE_BYTES);
    if (quoted.compare(this.#payload, 0, quoted.length, 0, quoted.length) !== 0) return;
    this.#answer(
      this.#indexOfSequence(error.sequence),
      source,
      receivedAt,
      error.error,
      undefined,
      error.code,
    );
  }

  #udpError(error: UdpError, source: string, receivedAt: bigint): void {
    if (normalizeIpLiteral(error.originalDestination) !== this.#comparable) return;
    const index = (error.destinationPort - this.#opts.port + 65535) % 65535;
    this.#answer(index, source, receivedAt, error.error, undefined, error.code);
  }

  #answer(
    index: number,
    source: string,
    receivedAt: bigint,
    what: IcmpErrorKind | "reply",
    payload?: Buffer,
    code = 0,
  ): void {
    const probe = this.#probes[index];
    if (probe === undefined || probe.sentAt === undefined || probe.settled) return;
    if (
      payload !== undefined &&
      (payload.length < COOKIE_BYTES ||
        payload.compare(this.#payload, 0, COOKIE_BYTES, 0, COOKIE_BYTES) !== 0)
    )
      return;
    const rttMs = Number(receivedAt - probe.sentAt) / 1e6;
    if (rttMs > this.#opts.wait_ms) return;
    const fromTarget = normalizeIpLiteral(source) === this.#comparable;
    const portUnreachable = (this.#family === 4 && code === 3) || (this.#family === 6 && code === 4);
    if (what === "reply") probe.reached = true;
    else if (what === "unreachable") {
      if (fromTarget && this.#opts.protocol === "udp" && portUnreachable) probe.reached = true;
      else probe.unreachable = unreachableName(this.#family, code);
    } else if (what !== "time_exceeded") {
      probe.unreachable = what;
    }
    probe.rttMs = rttMs;
    probe.from = source;
    probe.settled = true;
    this.#wake();
  }

  #failed(error: Error): void {
    this.#socketError = error;
    this.#ctx.log.warn({ err: error, address: this.#address }, "traceroute: raw socket failed");
    this.#wake();
  }

  /** Lowest TTL at which the path ended: the target answered, or an unreachable came back. */
  #endOfPath(): { ttl: number; reached: boolean } | undefined {
    const ends = this.#probes.filter((p) => p.reached || p.unreachable !== undefined);
    if (ends.length === 0) return undefined;
    const ttl = Math.min(...ends.map((p) => p.ttl));
    return { ttl, reached: ends.some((p) => p.ttl === ttl && p.reached) };
  }

  #measure(lastTtl: number): Measurement {
    const end = this.#endOfPath();
    const hopCount = end?.ttl ?? lastTtl;
    const hops: HopReport[] = [];
    for (let ttl = 1; ttl <= hopCount; ttl++) hops.push(this.#hop(ttl));
    const reached = end?.reached === true;
    const metrics: Record<string, number> = {
      hop_count: hopCount,
      destination_reached: reached ? 1 : 0,
      probes_sent: this.#probes.filter((p) => p.sentAt !== undefined).length,
    };
    const last = hops[hops.length - 1];
    if (reached && last !== undefined) {
      metrics.loss_pct = last.loss_pct;
      if (last.rtt_avg_ms !== undefined) metrics.rtt_avg_ms = last.rtt_avg_ms;
    }
    const lossy = hops.slice(0, reached ? -1 : undefined).filter((h) => h.loss_pct > 0);
    metrics.hops_with_loss = lossy.length;
    const detail: Record<string, unknown> = {
      address: this.#address,
      family: this.#family === 4 ? "ipv4" : "ipv6",
      protocol: this.#opts.protocol,
      hops,
    };
    if (this.#aborted) detail.aborted = true;
    const failure = this.#failure(reached, end, hops);
    return failure === undefined
      ? { status: "ok", metrics, detail }
      : { status: failure.code === "socket_error" ? "error" : "fail", metrics, detail, error: failure };
  }

  #hop(ttl: number): HopReport {
    const probes = this.#probes.filter(
      (p) => p.ttl === ttl && p.sendError === undefined && p.sentAt !== undefined,
    );
    const answered = probes.filter((p) => p.from !== undefined);
    const counts = new Map<string, number>();
    for (const p of answered) counts.set(p.from ?? "", (counts.get(p.from ?? "") ?? 0) + 1);
    const rtts = answered.map((p) => p.rttMs ?? 0);
    const hop: HopReport = {
      ttl,
      addresses: [...counts.entries()].sort((a, b) => b[1] - a[1]).map(([a]) => a),
      sent: probes.length,
      received: answered.length,
      loss_pct: probes.length === 0 ? 100 : round((100 * (probes.length - answered.length)) / probes.length),
    };
    if (rtts.length > 0) {
      hop.rtt_min_ms = round(Math.min(...rtts));
      hop.rtt_avg_ms = round(rtts.reduce((a, b) => a + b, 0) / rtts.length);
      hop.rtt_max_ms = round(Math.max(...rtts));
    }
    const unreachable = answered.find((p) => p.unreachable !== undefined)?.unreachable;
    if (unreachable !== undefined) hop.unreachable = unreachable;
    return hop;
  }

  #failure(
    reached: boolean,
    end: { ttl: number; reached: boolean } | undefined,
    hops: HopReport[],
  ): CheckError | undefined {
    if (reached) return undefined;
    if (this.#socketError !== undefined)
      return {
        code: "socket_error",
        message: `raw socket failed during the run: ${this.#socketError.message}`,
      };
    if (end !== undefined) {
      const hop = hops[end.ttl - 1];
      return {
        code: "unreachable",
        message: `${hop?.unreachable ?? "unreachable"} for ${this.#address}, reported by ${hop?.addresses[0] ?? "?"} at hop ${end.ttl}`,
      };
    }
    const sendError = this.#probes.find((p) => p.sendError !== undefined)?.sendError;
    if (sendError !== undefined && this.#probes.every((p) => p.sendError !== undefined))
      return socketFailure(sendError, this.#address);
    const answeredTtls = hops.filter((h) => h.received > 0).length;
    if (this.#aborted)
      return { code: "timeout", message: `aborted at hop ${hops.length} before ${this.#address} answered` };
    if (answeredTtls === 0)
      return {
        code: "timeout",
        message: `no hop answered within ${this.#opts.wait_ms} ms up to TTL ${hops.length}`,
      };
    return {
      code: "max_hops_exceeded",
      message: `${this.#address} did not answer within ${this.#opts.max_hops} hops (${answeredTtls} hops answered)`,
    };
  }
}

/** traceroute(8)'s annotations for ICMP unreachable codes. */
function unreachableName(family: IpFamily, code: number): string {
  const v4: Record<number, string> = {
    0: "!N network unreachable",
    1: "!H host unreachable",
    2: "!P protocol unreachable",
    3: "port unreachable",
    4: "!F fragmentation needed",
    9: "!X prohibited",
    10: "!X prohibited",
    13: "!X prohibited",
  };
  const v6: Record<number, string> = {
    0: "!N no route",
    1: "!X prohibited",
    3: "!H address unreachable",
    4: "port unreachable",
  };
  return (family === 4 ? v4 : v6)[code] ?? `unreachable (code ${code})`;
}
