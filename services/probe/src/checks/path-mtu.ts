// Path MTU (wan area): the largest IP packet that reaches the target without fragmentation, found
// by binary search with echo requests that carry DF (IPv4) or may not be fragmented (IPv6).
//
// Sockets use IP_PMTUDISC_PROBE / IPV6_PMTUDISC_PROBE (as `ping -M probe`): DF is set and the
// kernel's cached path MTU is ignored, so each size is really tried on the wire instead of being
// refused locally from what an earlier run learnt. A size "passes" when its echo reply comes back;
// it "fails" on "fragmentation needed" / "packet too big" (whose next-hop MTU, RFC 1191 / RFC
// 4443 §3.2, lets the search jump straight to that size), on EMSGSIZE from our own interface, or
// when every try of it goes unanswered while smaller ones pass (a PMTU black hole: a router that
// drops big packets without saying so — reported in detail.black_hole).

import { randomBytes, randomInt } from "node:crypto";
import { Type, type Static } from "@sinclair/typebox";
import type { CheckContext, CheckKind, Measurement } from "./check.ts";
import {
  addressFamilyOption,
  resolveDestination,
  systemLookup,
  type LookupHost,
} from "./common/resolve-host.ts";
import { ICMP_HEADER_BYTES, normalizeIpLiteral, type EchoError, type IpFamily } from "../net/icmp-packet.ts";
import { sharedIcmpSockets, type EchoSession, type IcmpSocketPool } from "../net/icmp-socket.ts";
import { socketFailure } from "../net/socket-failure.ts";

const options = Type.Object(
  {
    max_bytes: Type.Integer({
      minimum: 1280,
      maximum: 9216,
      default: 1500,
      description: "largest IP packet size tried (the link MTU; 9000 for jumbo frames)",
    }),
    min_bytes: Type.Integer({
      minimum: 68,
      maximum: 9216,
      default: 576,
      description:
        "smallest size searched; must pass, or the target is reported unreachable (IPv6 never goes below 1280)",
    }),
    warn_below_bytes: Type.Integer({
      minimum: 68,
      maximum: 9216,
      default: 1500,
      description:
        "warn when the path MTU is below this (PPPoE is 1492, VPN tunnels ~1400); set it to the site's expected MTU",
    }),
    tries: Type.Integer({
      minimum: 1,
      maximum: 10,
      default: 2,
      description: "echo requests per size before it counts as not passing",
    }),
    wait_ms: Type.Integer({
      minimum: 1,
      maximum: 60000,
      default: 1000,
      description: "how long to wait for each answer",
    }),
    address_family: addressFamilyOption,
  },
  { additionalProperties: false },
);

/** Options of a path-mtu check, defaults filled in by the config loader. */
export type PathMtuOptions = Static<typeof options>;

/** The I/O a path-mtu check uses. */
export interface PathMtuDependencies {
  sockets: Pick<IcmpSocketPool, "open">;
  resolve: LookupHost;
}

const COOKIE_BYTES = 8;
const IP_HEADER_BYTES: Readonly<Record<IpFamily, number>> = { 4: 20, 6: 40 };

/** What became of one size. */
type Outcome =
  | { kind: "passed" }
  | { kind: "too_big"; nextHopMtu?: number; from: string }
  | { kind: "local_too_big"; message: string }
  | { kind: "silent" }
  | { kind: "unreachable"; message: string; code?: string }
  | { kind: "aborted" };

/** Builds the path-mtu check over the given I/O. */
export function createPathMtuCheck(deps: PathMtuDependencies): CheckKind<typeof options> {
  return {
    kind: "path-mtu",
    needs: ["net_raw"],
    defaultArea: "wan",
    options,
    run: async (target, opts, ctx, signal) => {
      const destination = await resolveDestination(deps.resolve, target, opts.address_family, signal);
      if ("failure" in destination) return destination.failure;
      return new PathMtuSearch(
        deps.sockets,
        destination.address,
        destination.family,
        opts,
        ctx,
        signal,
      ).run();
    },
  };
}

/** Path MTU discovery over the process-wide shared raw sockets. */
export const pathMtu: CheckKind<typeof options> = createPathMtuCheck({
  sockets: sharedIcmpSockets,
  resolve: systemLookup,
});

class PathMtuSearch {
  readonly #sockets: Pick<IcmpSocketPool, "open">;
  readonly #address: string;
  readonly #comparable: string;
  readonly #family: IpFamily;
  readonly #opts: PathMtuOptions;
  readonly #ctx: CheckContext;
  readonly #signal: AbortSignal;
  readonly #cookie = randomBytes(COOKIE_BYTES);
  #sequence = randomInt(0x10000);
  #session: EchoSession | undefined;
  /** The probe in flight: its sequence and how it ends. */
  #pending: { sequence: number; sentAt?: bigint; settle: (outcome: Outcome) => void } | undefined;
  #socketError: Error | undefined;
  #probes = 0;
  readonly #tried: { bytes: number; result: Outcome["kind"] }[] = [];

  constructor(
    sockets: Pick<IcmpSocketPool, "open">,
    address: string,
    family: IpFamily,
    opts: PathMtuOptions,
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
  }

  async run(): Promise<Measurement> {
    const session = this.#sockets.open(this.#family, {
      reply: (sequence, payload) => {
        if (this.#pending?.sequence !== sequence) return;
        if (
          payload.length < COOKIE_BYTES ||
          payload.compare(this.#cookie, 0, COOKIE_BYTES, 0, COOKIE_BYTES) !== 0
        )
          return;
        this.#pending.settle({ kind: "passed" });
      },
      icmpError: (error, source) => this.#icmpError(error, source),
      socketFailed: (error) => {
        this.#socketError = error;
        this.#ctx.log.warn({ err: error, address: this.#address }, "path-mtu: raw socket failed");
        this.#pending?.settle({ kind: "aborted" });
      },
    });
    if ("code" in session)
      return { status: "error", metrics: {}, error: { code: session.code, message: session.message } };
    this.#session = session;
    try {
      return await this.#search();
    } finally {
      session.close();
    }
  }

  async #search(): Promise<Measurement> {
    const floor = Math.max(this.#opts.min_bytes, this.#family === 6 ? 1280 : 68);
    let good = 0;
    let bad = this.#opts.max_bytes + 1;
    let reportedBy: string | undefined;
    let nextHopMtu: number | undefined;
    let blackHole = false;
    // The common case first: the whole link MTU passes and one probe settles it.
    let size = this.#opts.max_bytes;
    for (;;) {
      const outcome = await this.#trySize(size);
      this.#tried.push({ bytes: size, result: outcome.kind });
      if (outcome.kind === "aborted")
        return this.#measure(good, { aborted: true, reportedBy, nextHopMtu, blackHole });
      if (outcome.kind === "unreachable") {
        return {
          status: "fail",
          metrics: { probes: this.#probes },
          detail: this.#detail({ reportedBy, nextHopMtu, blackHole }),
          error: { code: outcome.code ?? "unreachable", message: outcome.message },
        };
      }
      if (outcome.kind === "passed") good = size;
      else {
        bad = size;
        if (outcome.kind === "too_big") {
          reportedBy = outcome.from;
          // A router told us its MTU: try exactly that next (0 = a pre-RFC 1191 router, no hint).
          if (outcome.nextHopMtu !== undefined && outcome.nextHopMtu > 0) {
            nextHopMtu = outcome.nextHopMtu;
            if (outcome.nextHopMtu > good && outcome.nextHopMtu < bad) {
              size = outcome.nextHopMtu;
              continue;
            }
          }
        }
        if (outcome.kind === "silent") blackHole = true;
      }
      if (good === 0 && size !== floor) {
        // Nothing has passed yet: make sure the smallest size does before bisecting.
        size = floor;
        continue;
      }
      if (good === 0) {
        return {
          status: "fail",
          metrics: { probes: this.#probes },
          detail: this.#detail({ reportedBy, nextHopMtu, blackHole: false }),
          error: {
            code: "timeout",
            message: `${this.#address} did not answer ${floor}-byte echo requests within ${this.#opts.wait_ms} ms`,
          },
        };
      }
      if (bad - good <= 1) break;
      size = Math.floor((good + bad) / 2);
    }
    // A silent size above a passing one is a black hole only if it was not the top of the search.
    return this.#measure(good, {
      aborted: false,
      reportedBy,
      nextHopMtu,
      blackHole: blackHole && good < this.#opts.max_bytes,
    });
  }

  #detail(extra: { reportedBy?: string; nextHopMtu?: number; blackHole: boolean }): Record<string, unknown> {
    const detail: Record<string, unknown> = {
      address: this.#address,
      family: this.#family === 4 ? "ipv4" : "ipv6",
      tried: this.#tried,
      black_hole: extra.blackHole,
    };
    if (extra.reportedBy !== undefined) detail.reported_by = extra.reportedBy;
    if (extra.nextHopMtu !== undefined) detail.next_hop_mtu = extra.nextHopMtu;
    return detail;
  }

  #measure(
    mtu: number,
    extra: { aborted: boolean; reportedBy?: string; nextHopMtu?: number; blackHole: boolean },
  ): Measurement {
    const detail = this.#detail(extra);
    const metrics: Record<string, number> = { probes: this.#probes };
    if (extra.aborted) {
      detail.aborted = true;
      if (mtu > 0) metrics.path_mtu_min_bytes = mtu;
      return {
        status: this.#socketError ? "error" : "fail",
        metrics,
        detail,
        error: this.#socketError
          ? {
              code: "socket_error",
              message: `raw socket failed during the run: ${this.#socketError.message}`,
            }
          : { code: "timeout", message: `aborted during the search; at least ${mtu} bytes pass` },
      };
    }
    metrics.path_mtu_bytes = mtu;
    if (mtu < this.#opts.warn_below_bytes) {
      const by = extra.reportedBy === undefined ? "" : ` (reported by ${extra.reportedBy})`;
      return {
        status: "warn",
        metrics,
        detail,
        error: {
          code: extra.blackHole ? "pmtu_black_hole" : "mtu_low",
          message: `path MTU to ${this.#address} is ${mtu} bytes, below ${this.#opts.warn_below_bytes}${by}${extra.blackHole ? "; larger packets vanish without an ICMP error" : ""}`,
        },
      };
    }
    return { status: "ok", metrics, detail };
  }

  /** Sends up to `tries` echo requests of `bytes` (whole IP packet) and settles on the first answer. */
  async #trySize(bytes: number): Promise<Outcome> {
    const payloadBytes = bytes - IP_HEADER_BYTES[this.#family] - ICMP_HEADER_BYTES;
    const payload = Buffer.alloc(Math.max(COOKIE_BYTES, payloadBytes));
    this.#cookie.copy(payload);
    for (let attempt = 0; attempt < this.#opts.tries; attempt++) {
      if (this.#signal.aborted || this.#socketError !== undefined) return { kind: "aborted" };
      const outcome = await this.#probe(payload);
      if (outcome.kind !== "silent") return outcome;
    }
    return { kind: "silent" };
  }

  #probe(payload: Buffer): Promise<Outcome> {
    const sequence = this.#sequence++ & 0xffff;
    this.#probes++;
    return new Promise<Outcome>((resolve) => {
      const onAbort = (): void => settle({ kind: "aborted" });
      const timer = setTimeout(() => settle({ kind: "silent" }), this.#opts.wait_ms);
      const settle = (outcome: Outcome): void => {
        if (this.#pending?.sequence !== sequence) return;
        this.#pending = undefined;
        clearTimeout(timer);
        this.#signal.removeEventListener("abort", onAbort);
        resolve(outcome);
      };
      this.#pending = { sequence, settle };
      this.#signal.addEventListener("abort", onAbort, { once: true });
      this.#session?.send(
        sequence,
        payload,
        this.#address,
        (error) => {
          if (error === undefined) return;
          // EMSGSIZE: larger than our own interface's MTU (PROBE still honours the device MTU).
          if (/message too long/i.test(error.message))
            settle({ kind: "local_too_big", message: error.message });
          else settle({ kind: "unreachable", ...socketFailure(error, this.#address) });
        },
        { dontFragment: "probe" },
      );
    });
  }

  #icmpError(error: EchoError, source: string): void {
    const pending = this.#pending;
    if (pending === undefined || pending.sequence !== error.sequence) return;
    if (normalizeIpLiteral(error.originalDestination) !== this.#comparable) return;
    const quoted = error.quotedPayload.subarray(0, COOKIE_BYTES);
    if (quoted.compare(this.#cookie, 0, quoted.length, 0, quoted.length) !== 0) return;
    const tooBig =
      error.error === "packet_too_big" ||
      (this.#family === 4 && error.error === "unreachable" && error.code === 4);
    if (tooBig) {
      const outcome: Outcome = { kind: "too_big", from: source };
      if (error.nextHopMtu !== undefined) outcome.nextHopMtu = error.nextHopMtu;
      pending.settle(outcome);
    } else {
      pending.settle({
        kind: "unreachable",
        message: `${error.error.replace("_", " ")} (type ${error.type} code ${error.code}) for ${this.#address}, reported by ${source}`,
      });
    }
  }
}
