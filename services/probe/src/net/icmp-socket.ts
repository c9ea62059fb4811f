// One raw ICMP socket per address family, shared by every echo run in the process.
//
// A raw ICMP socket receives every ICMP message the host gets, so N concurrent runs with one
// socket each would each wake up and parse N× the traffic. Instead one socket per family is
// opened when the first run starts and closed when the last one ends (a raw-socket handle keeps
// the event loop alive and has no unref()); replies and errors are demultiplexed to runs by the
// echo identifier, which is unique among the live runs of that socket.

import { randomInt } from "node:crypto";
import { createRequire } from "node:module";
import type { EventEmitter } from "node:events";
import { endianness } from "node:os";
import type * as RawSocket from "raw-socket";
import {
  decodeIcmp,
  encodeEchoRequest,
  encodeUdpDatagram,
  type EchoError,
  type IpFamily,
  type UdpError,
} from "./icmp-packet.ts";

/** Callbacks a transport reports to, given when it is opened. */
export interface IcmpTransportEvents {
  /**
   * A datagram arrived (IPv4: with its IP header). `datagram` is only valid during the call;
   * `receivedAt` is the earliest process.hrtime.bigint() user space can vouch for: an upper
   * bound on the arrival time (see stampReadiness and queuedReader).
   */
  message(datagram: Buffer, source: string, receivedAt: bigint): void;
  /** The socket died under us; the transport delivers nothing more and must not be used. */
  fatal(error: Error): void;
}

/**
 * Per-packet IP header settings. The socket is shared, so they are applied right before the
 * sendto(2) of that one packet (raw-socket's beforeCallback runs synchronously before it, and
 * sends are serialised) and put back to the kernel defaults for the next packet that has none.
 */
export interface SendOptions {
  /** IPv4 TTL / IPv6 hop limit (1–255); absent = the kernel default. */
  ttl?: number;
  /**
   * Don't fragment: "do" sets DF and never fragments (EMSGSIZE above the known path MTU, as
   * `ping -M do`); "probe" sets DF and ignores the cached path MTU (as `ping -M probe`, for path-MTU
   * discovery). Absent = the kernel default (IPv4: DF set, fragments locally above the path MTU).
   */
  dontFragment?: "do" | "probe";
  /** The IPv4 TOS / IPv6 traffic class byte (DSCP << 2); absent = 0. */
  trafficClass?: number;
}

/** A raw ICMP/ICMPv6 socket reduced to what echo needs; raw-socket and the test double implement it. */
export interface IcmpTransport {
  /**
   * Sends one ICMP message to an IP literal. `done` runs once, asynchronously, with the
   * process.hrtime.bigint() taken right before the send syscall, or with the send error. It may
   * never run if the transport fails or is closed first.
   */
  send(
    message: Buffer,
    address: string,
    done: (error: Error | undefined, sentAt: bigint) => void,
    options?: SendOptions,
  ): void;
  /** Closes the socket; no event is reported after this. */
  close(): void;
}

/** Opens a transport; throws like socket(2) does, e.g. "Operation not permitted" without CAP_NET_RAW. */
export type OpenIcmpTransport = (family: IpFamily, events: IcmpTransportEvents) => IcmpTransport;

/** What a run is told about traffic for its identifier. Handlers must not throw. */
export interface EchoListener {
  /** An echo reply with our identifier; `payload` is only valid during the call. */
  reply(sequence: number, payload: Buffer, source: string, receivedAt: bigint): void;
  /** An ICMP error quoting one of our requests; `source` is the router that reported it. */
  icmpError(error: EchoError, source: string, receivedAt: bigint): void;
  /** The shared socket failed; no more replies will come through this session. */
  socketFailed(error: Error): void;
}

/** What a UDP traceroute run is told: ICMP errors quoting datagrams from its source port. */
export interface UdpErrorListener {
  icmpError(error: UdpError, source: string, receivedAt: bigint): void;
  socketFailed(error: Error): void;
}

/** Opens a raw IPPROTO_UDP socket for sending only (replies are ICMP, read from the shared socket). */
export type OpenUdpTransport = (family: IpFamily) => IcmpTransport;

/** A UDP traceroute run's sender: its own source port, send and close. */
export interface UdpSession {
  readonly family: IpFamily;
  readonly sourcePort: number;
  send(
    destinationPort: number,
    payload: Uint8Array,
    address: string,
    done: (error: Error | undefined, sentAt: bigint) => void,
    options?: SendOptions,
  ): void;
  close(): void;
}

/** A run's view of the shared socket: its own echo identifier, send, and close. */
export interface EchoSession {
  readonly family: IpFamily;
  readonly identifier: number;
  /** Sends an echo request; see IcmpTransport.send for `done`. */
  send(
    sequence: number,
    payload: Uint8Array,
    address: string,
    done: (error: Error | undefined, sentAt: bigint) => void,
    options?: SendOptions,
  ): void;
  /** Releases the identifier; the socket closes when no session is left. Idempotent. */
  close(): void;
}

/** Why a session could not be opened. */
export interface EchoSessionError {
  code: "no_permission" | "socket_error";
  message: string;
}

/** Counters over everything a shared socket received, for diagnostics and tests. */
export interface IcmpSocketStats {
  opened: number;
  datagrams: number;
  malformed: number;
  unmatched: number;
}

const MAX_DATAGRAM_BYTES = 65_536;
const SOL_RAW = 255;
const ICMP_FILTER = 1;
const IPPROTO_ICMPV6 = 58;
const ICMP6_FILTER = 1;
/** Types worth waking up for: echo reply and the errors that can quote a request (RFC 792, RFC 4443). */
const WANTED_TYPES: Readonly<Record<IpFamily, readonly number[]>> = {
  4: [0, 3, 11, 12],
  6: [1, 2, 3, 4, 129],
};

let rawSocketModule: typeof RawSocket | undefined;

/** Loads the addon on first use, so a missing or ABI-mismatched build is a check error, not a crash at start. */
function loadRawSocket(): typeof RawSocket {
  rawSocketModule ??= createRequire(import.meta.url)("raw-socket") as typeof RawSocket;
  return rawSocketModule;
}

/**
 * Kernel-side type filter (Linux raw(7) ICMP_FILTER, RFC 3542 §3.2 ICMP6_FILTER): a set bit
 * blocks a type. Keeps echo requests, neighbour discovery and the like out of user space. Best
 * effort: the decoder ignores those types anyway.
 */
function installTypeFilter(socket: RawSocket.Socket, family: IpFamily): void {
  const words = new Uint32Array(family === 4 ? 1 : 8).fill(0xffffffff);
  for (const type of WANTED_TYPES[family]) words[type >> 5] = (words[type >> 5] ?? 0) & ~(1 << (type & 31));
  const filter = Buffer.alloc(words.length * 4);
  words.forEach((word, i) => {
    if (endianness() === "LE") filter.writeUInt32LE(word >>> 0, i * 4);
    else filter.writeUInt32BE(word >>> 0, i * 4);
  });
  try {
    if (family === 4) socket.setOption(SOL_RAW, ICMP_FILTER, filter, filter.length);
    else socket.setOption(IPPROTO_ICMPV6, ICMP6_FILTER, filter, filter.length);
  } catch {
    // Not fatal: an unfiltered socket only costs some wake-ups.
  }
}

/**
 * Receive timestamps as early as JavaScript can take them. iputils ping uses the kernel's
 * SO_TIMESTAMP, which raw-socket (recvfrom, no control messages) cannot give us. The earliest
 * JavaScript point is the addon's `recvReady` event on the socket's internal `wrap` (raw-socket
 * 1.8 index.js), emitted from the poll callback before recvfrom(2), the address formatting and
 * the `message` event; stamping there instead of in the `message` listener saved about 20 µs of
 * the gap to ping on a veth path (see scripts/bench/icmp-accuracy.ts). raw-socket reads exactly
 * one datagram per `recvReady`, so the stamp belongs to the `message` emitted during that event;
 * it is cleared after the event so a failed read never lends its stamp to the next datagram.
 * Falls back to stamping in the `message` listener if the internals ever change.
 */
function stampReadiness(socket: RawSocket.Socket): { value: bigint | undefined } {
  const stamp: { value: bigint | undefined } = { value: undefined };
  // SocketWrap is not an EventEmitter subclass; raw-socket copies the EventEmitter methods onto it.
  const emitter = (socket as unknown as { wrap?: Partial<EventEmitter> }).wrap;
  if (typeof emitter?.prependListener !== "function" || typeof emitter.on !== "function") return stamp;
  emitter.prependListener("recvReady", () => {
    stamp.value = process.hrtime.bigint();
  });
  emitter.on("recvReady", () => {
    stamp.value = undefined;
  });
  return stamp;
}

/** How many datagrams to read right after a send; more wait for the next poll callback. */
const MAX_READS_AFTER_SEND = 8;

/**
 * Reads what is already queued on the socket right after sendto(2) returns, stamped with the
 * time it returned. On paths that never leave the kernel (veth, bridges, the lab) the reply is
 * generated and queued in softirq context before sendto() even returns; waiting for the next
 * event-loop turn to notice it added about 30 µs to every RTT here, more than half the 0.05 ms
 * budget against ping (DESIGN.md §9). The stamp is an upper bound on the arrival time, as every
 * user-space stamp is. On other paths the read finds nothing: raw-socket throws for EAGAIN,
 * which costs a few µs of CPU after the send and no latency. Uses raw-socket 1.8 internals
 * (`wrap.recv`, `buffer`); skipped if they ever disappear.
 */
function queuedReader(
  socket: RawSocket.Socket,
  deliver: (datagram: Buffer, source: string, receivedAt: bigint) => void,
): (returnedAt: bigint, stillOpen: () => boolean) => void {
  const internals = socket as unknown as {
    wrap?: {
      recv?: (buffer: Buffer, callback: (buffer: Buffer, bytes: number, source: string) => void) => void;
    };
    buffer?: unknown;
  };
  const wrap = internals.wrap;
  const buffer = internals.buffer;
  if (typeof wrap?.recv !== "function" || !Buffer.isBuffer(buffer)) return () => {};
  const recv = wrap.recv.bind(wrap);
  return (returnedAt, stillOpen) => {
    for (let i = 0; i < MAX_READS_AFTER_SEND && stillOpen(); i++) {
      try {
        recv(buffer, (data, bytes, source) => deliver(data.subarray(0, bytes), source, returnedAt));
      } catch {
        return; // EAGAIN: nothing queued (or a per-datagram error, see the `error` listener)
      }
    }
  };
}

const IPPROTO_IP = 0;
const IPPROTO_IPV6 = 41;
/** Linux <linux/in.h> / <linux/in6.h> option numbers. */
const IP_TOS = 1;
const IP_TTL = 2;
const IP_MTU_DISCOVER = 10;
const IPV6_CHECKSUM = 7;
const IPV6_UNICAST_HOPS = 16;
const IPV6_MTU_DISCOVER = 23;
const IPV6_DONTFRAG = 62;
const IPV6_TCLASS = 67;
/** IP_PMTUDISC_WANT (the default), _DO, _PROBE; the IPv6 values are the same numbers. */
const PMTUDISC = { default: 1, do: 2, probe: 3 } as const;

/** The header settings a packet without SendOptions goes out with: the socket's own at open. */
interface HeaderDefaults {
  ttl: number;
  tclass: number;
  pmtu: number;
}

/** Kernel defaults (net.ipv4.ip_default_ttl, net.ipv6.conf.*.hop_limit; TOS 0; PMTU "want"). */
const KERNEL_DEFAULTS: HeaderDefaults = { ttl: 64, tclass: 0, pmtu: PMTUDISC.default };

/**
 * Reads the socket's header settings as opened, so a per-packet option can be put back to them.
 * The obvious reset, IP_TTL = -1 ("use the route's default", ip(7)), is refused by raw-socket
 * (its setOption takes only unsigned values): the refused reset left one `ttl: 32` run's TTL on
 * the shared socket, and failed every later packet of every other check. Reading the real value
 * also honours a sysctl that differs from 64.
 */
export function headerDefaults(
  socket: Pick<RawSocket.Socket, "getOption">,
  family: IpFamily,
): HeaderDefaults {
  const read = (level: number, option: number, fallback: number): number => {
    const value = Buffer.alloc(4);
    try {
      return socket.getOption(level, option, value, value.length) === 4 ? value.readInt32LE(0) : fallback;
    } catch {
      return fallback;
    }
  };
  const level = family === 4 ? IPPROTO_IP : IPPROTO_IPV6;
  const ttl = read(level, family === 4 ? IP_TTL : IPV6_UNICAST_HOPS, KERNEL_DEFAULTS.ttl);
  return {
    // IPV6_UNICAST_HOPS reads back -1 when never set on some kernels: that is "the route's default".
    ttl: ttl >= 1 && ttl <= 255 ? ttl : KERNEL_DEFAULTS.ttl,
    tclass: read(level, family === 4 ? IP_TOS : IPV6_TCLASS, KERNEL_DEFAULTS.tclass) & 0xff,
    pmtu: read(level, family === 4 ? IP_MTU_DISCOVER : IPV6_MTU_DISCOVER, KERNEL_DEFAULTS.pmtu),
  };
}

/**
 * Applies SendOptions to a socket right before a send, touching only what differs from the
 * previous packet (setsockopt is a syscall; most sends use the defaults), and putting every
 * setting back to the socket's defaults for a packet without options. A setting whose setsockopt
 * failed is treated as unknown, so the next packet sets it again rather than trusting a stale copy.
 */
export function optionApplier(
  socket: Pick<RawSocket.Socket, "setOption" | "getOption">,
  family: IpFamily,
): (options: SendOptions | undefined) => void {
  const defaults = headerDefaults(socket, family);
  const current = { ...defaults };
  const set = (key: keyof HeaderDefaults, value: number, apply: () => void): void => {
    if (current[key] === value) return;
    current[key] = Number.NaN; // unknown until the kernel took it
    apply();
    current[key] = value;
  };
  return (options) => {
    const ttl = options?.ttl ?? defaults.ttl;
    const tclass = options?.trafficClass ?? defaults.tclass;
    const pmtu = options?.dontFragment === undefined ? defaults.pmtu : PMTUDISC[options.dontFragment];
    set("ttl", ttl, () => {
      if (family === 4) socket.setOption(IPPROTO_IP, IP_TTL, ttl);
      else socket.setOption(IPPROTO_IPV6, IPV6_UNICAST_HOPS, ttl);
    });
    set("tclass", tclass, () => {
      if (family === 4) socket.setOption(IPPROTO_IP, IP_TOS, tclass);
      else socket.setOption(IPPROTO_IPV6, IPV6_TCLASS, tclass);
    });
    set("pmtu", pmtu, () => {
      if (family === 4) socket.setOption(IPPROTO_IP, IP_MTU_DISCOVER, pmtu);
      else {
        socket.setOption(IPPROTO_IPV6, IPV6_MTU_DISCOVER, pmtu);
        // IPv6 routers never fragment; the sender does unless told not to (RFC 3542 §11.2).
        socket.setOption(IPPROTO_IPV6, IPV6_DONTFRAG, pmtu === defaults.pmtu ? 0 : 1);
      }
    });
  };
}

/**
 * One raw-socket send with the contract of IcmpTransport.send: `done` once, with the hrtime taken
 * right before the syscall; `sent` after a successful send, with the hrtime of its return.
 */
function sendOnce(
  socket: RawSocket.Socket,
  open: boolean,
  message: Buffer,
  address: string,
  beforeSend: () => void,
  done: (error: Error | undefined, sentAt: bigint) => void,
  sent?: (returnedAt: bigint) => void,
): void {
  let sentAt = 0n;
  let reported = false;
  const report = (error: Error | undefined): void => {
    // raw-socket calls afterCallback a second time if the first call throws.
    if (reported) return;
    reported = true;
    done(error, sentAt);
  };
  // Sending on a closed raw-socket re-opens its fd inside the addon.
  if (!open) {
    queueMicrotask(() => report(new Error("raw socket closed")));
    return;
  }
  socket.send(
    message,
    0,
    message.length,
    address,
    () => {
      // A throw here (setsockopt failed) reaches afterCallback as the send's error.
      beforeSend();
      sentAt = process.hrtime.bigint();
    },
    (error) => {
      const returnedAt = process.hrtime.bigint();
      report(error ?? undefined);
      if (error === null) sent?.(returnedAt);
    },
  );
}

/** A send-only raw IPPROTO_UDP socket for UDP traceroute (it never reads: receiving is paused). */
export const openRawUdpTransport: OpenUdpTransport = (family) => {
  const raw = loadRawSocket();
  const socket = raw.createSocket({
    protocol: raw.Protocol.UDP,
    addressFamily: family === 4 ? raw.AddressFamily.IPv4 : raw.AddressFamily.IPv6,
  });
  // A raw UDP socket gets a copy of every UDP datagram the host receives; we want none of them.
  socket.pauseRecv();
  socket.on("error", () => undefined);
  if (family === 6) socket.setOption(IPPROTO_IPV6, IPV6_CHECKSUM, 6);
  const apply = optionApplier(socket, family);
  let open = true;
  return {
    send(message, address, done, options) {
      sendOnce(socket, open, message, address, () => apply(options), done);
    },
    close() {
      if (!open) return;
      open = false;
      socket.close();
    },
  };
};

/** The real transport: a raw-socket Socket (IPPROTO_ICMP or IPPROTO_ICMPV6). */
export const openRawIcmpTransport: OpenIcmpTransport = (family, events) => {
  const raw = loadRawSocket();
  const socket = raw.createSocket({
    protocol: family === 4 ? raw.Protocol.ICMP : raw.Protocol.ICMPv6,
    addressFamily: family === 4 ? raw.AddressFamily.IPv4 : raw.AddressFamily.IPv6,
    // raw-socket reads into one buffer (4 KiB by default) and silently truncates longer datagrams.
    bufferSize: MAX_DATAGRAM_BYTES,
  });
  let open = true;
  let lastError: Error | undefined;
  const readyAt = stampReadiness(socket);
  socket.on("message", (datagram: Buffer, source: string) => {
    const receivedAt = readyAt.value ?? process.hrtime.bigint();
    if (open) events.message(datagram, source, receivedAt);
  });
  // raw-socket emits receive errors without closing: EAGAIN on a spurious wake-up, EHOSTUNREACH
  // when rawv6_recvmsg() drops an ICMPv6 datagram with a bad checksum. Those concern one datagram
  // only. A poll error is followed by close(), and only that is fatal.
  socket.on("error", (error: Error) => {
    lastError = error;
  });
  socket.on("close", () => {
    if (!open) return;
    open = false;
    events.fatal(lastError ?? new Error("raw socket closed"));
  });
  installTypeFilter(socket, family);
  const apply = optionApplier(socket, family);
  const readQueued = queuedReader(socket, (datagram, source, receivedAt) => {
    if (open) events.message(datagram, source, receivedAt);
  });
  return {
    send(message, address, done, options) {
      sendOnce(
        socket,
        open,
        message,
        address,
        () => apply(options),
        done,
        (returnedAt) => {
          // `done` may have closed the socket; reading a closed raw-socket would re-open its fd.
          if (open) readQueued(returnedAt, () => open);
        },
      );
    },
    close() {
      if (!open) return;
      open = false;
      socket.close();
    },
  };
};

/** Stands in until openTransport returns (transports never report from inside it). */
const NOT_OPEN: IcmpTransport = {
  send: (_message, _address, done) => queueMicrotask(() => done(new Error("raw socket not open"), 0n)),
  close: () => {},
};

/** One open socket of a family and the sessions using it. */
interface SharedSocket {
  family: IpFamily;
  transport: IcmpTransport;
  sessions: Map<number, EchoListener>;
  /** UDP traceroute runs by source port; they keep the socket open like echo sessions. */
  udpSessions: Map<number, UdpErrorListener>;
  failed: boolean;
}

/** Shares one raw socket per address family between concurrent echo runs (see the file comment). */
export class IcmpSocketPool {
  readonly #openTransport: OpenIcmpTransport;
  readonly #openUdpTransport: OpenUdpTransport;
  readonly #live = new Map<IpFamily, SharedSocket>();
  readonly #stats: Record<IpFamily, IcmpSocketStats> = {
    4: { opened: 0, datagrams: 0, malformed: 0, unmatched: 0 },
    6: { opened: 0, datagrams: 0, malformed: 0, unmatched: 0 },
  };

  constructor(
    openTransport: OpenIcmpTransport = openRawIcmpTransport,
    openUdpTransport: OpenUdpTransport = openRawUdpTransport,
  ) {
    this.#openTransport = openTransport;
    this.#openUdpTransport = openUdpTransport;
  }

  /** Counters for one family since the pool was created. */
  stats(family: IpFamily): IcmpSocketStats {
    return { ...this.#stats[family] };
  }

  /** Whether a socket of this family is open right now (it is only while a session is). */
  isOpen(family: IpFamily): boolean {
    return this.#live.has(family);
  }

  /** Opens a session with an identifier no other live session of the family uses. */
  open(family: IpFamily, listener: EchoListener): EchoSession | EchoSessionError {
    let shared = this.#live.get(family);
    if (shared === undefined) {
      const opened = this.#openShared(family);
      if ("code" in opened) return opened;
      shared = opened;
    }
    const identifier = freeIdentifier(shared.sessions);
    if (identifier === undefined)
      return { code: "socket_error", message: "all 65536 ICMP echo identifiers are in use" };
    shared.sessions.set(identifier, listener);
    const owner = shared;
    let closed = false;
    return {
      family,
      identifier,
      send(sequence, payload, address, done, options) {
        const message = encodeEchoRequest(family, identifier, sequence, payload);
        if (closed || owner.failed) {
          queueMicrotask(() => done(new Error("ICMP session closed"), 0n));
          return;
        }
        owner.transport.send(message, address, done, options);
      },
      close: () => {
        if (closed) return;
        closed = true;
        owner.sessions.delete(identifier);
        this.#closeIfUnused(owner);
      },
    };
  }

  /**
   * Opens a UDP sender with a source port no other live UDP session uses, plus a listener for the
   * ICMP errors quoting its datagrams (they arrive on the shared ICMP socket of the family).
   */
  openUdp(family: IpFamily, listener: UdpErrorListener): UdpSession | EchoSessionError {
    let shared = this.#live.get(family);
    if (shared === undefined) {
      const opened = this.#openShared(family);
      if ("code" in opened) return opened;
      shared = opened;
    }
    const owner = shared;
    let sender: IcmpTransport;
    try {
      sender = this.#openUdpTransport(family);
    } catch (error) {
      this.#closeIfUnused(owner);
      return describeOpenError(family, error);
    }
    // Ephemeral range (RFC 6335 §6), so the port never looks like a service's.
    let sourcePort = 0;
    for (let attempt = 0; attempt < 64 && (sourcePort === 0 || owner.udpSessions.has(sourcePort)); attempt++)
      sourcePort = 49152 + randomInt(16384);
    if (owner.udpSessions.has(sourcePort)) {
      sender.close();
      this.#closeIfUnused(owner);
      return { code: "socket_error", message: "no free UDP source port for traceroute" };
    }
    owner.udpSessions.set(sourcePort, listener);
    let closed = false;
    return {
      family,
      sourcePort,
      send(destinationPort, payload, address, done, options) {
        if (closed || owner.failed) {
          queueMicrotask(() => done(new Error("UDP session closed"), 0n));
          return;
        }
        sender.send(encodeUdpDatagram(sourcePort, destinationPort, payload), address, done, options);
      },
      close: () => {
        if (closed) return;
        closed = true;
        sender.close();
        owner.udpSessions.delete(sourcePort);
        this.#closeIfUnused(owner);
      },
    };
  }

  #closeIfUnused(shared: SharedSocket): void {
    if (shared.sessions.size === 0 && shared.udpSessions.size === 0 && !shared.failed)
      this.#closeShared(shared);
  }

  #openShared(family: IpFamily): SharedSocket | EchoSessionError {
    const shared: SharedSocket = {
      family,
      transport: NOT_OPEN,
      sessions: new Map(),
      udpSessions: new Map(),
      failed: false,
    };
    try {
      shared.transport = this.#openTransport(family, {
        message: (datagram, source, receivedAt) => this.#dispatch(shared, datagram, source, receivedAt),
        fatal: (error) => this.#fail(shared, error),
      });
    } catch (error) {
      return describeOpenError(family, error);
    }
    this.#stats[family].opened++;
    this.#live.set(family, shared);
    return shared;
  }

  #closeShared(shared: SharedSocket): void {
    if (this.#live.get(shared.family) === shared) this.#live.delete(shared.family);
    shared.transport.close();
  }

  /** The socket died: tell its sessions, and let the next session open a fresh one. */
  #fail(shared: SharedSocket, error: Error): void {
    if (shared.failed) return;
    shared.failed = true;
    if (this.#live.get(shared.family) === shared) this.#live.delete(shared.family);
    shared.transport.close();
    for (const listener of [...shared.sessions.values()]) guard(() => listener.socketFailed(error));
    for (const listener of [...shared.udpSessions.values()]) guard(() => listener.socketFailed(error));
  }

  #dispatch(shared: SharedSocket, datagram: Buffer, source: string, receivedAt: bigint): void {
    const stats = this.#stats[shared.family];
    stats.datagrams++;
    const message = decodeIcmp(shared.family, datagram);
    if (message === undefined) {
      stats.malformed++;
      return;
    }
    if (message.kind === "other") {
      stats.unmatched++;
      return;
    }
    if (message.kind === "udp_error") {
      const udpListener = shared.udpSessions.get(message.sourcePort);
      if (udpListener === undefined) stats.unmatched++;
      else guard(() => udpListener.icmpError(message, source, receivedAt));
      return;
    }
    const listener = shared.sessions.get(message.identifier);
    if (listener === undefined) {
      stats.unmatched++;
    } else if (message.kind === "echo_reply") {
      guard(() => listener.reply(message.sequence, message.payload, source, receivedAt));
    } else {
      guard(() => listener.icmpError(message, source, receivedAt));
    }
  }
}

/**
 * Runs a listener callback. A throw here would reach raw-socket's receive path, which re-emits it
 * as a socket error; listeners are written not to throw, so this only keeps the socket alive.
 */
function guard(callback: () => void): void {
  try {
    callback();
  } catch {
    // Deliberately ignored; see above.
  }
}

/** A random identifier not used by a live session (random so that restarts do not reuse ids). */
function freeIdentifier(sessions: ReadonlyMap<number, unknown>): number | undefined {
  if (sessions.size >= 0x10000) return undefined;
  for (let attempt = 0; attempt < 16; attempt++) {
    const candidate = randomInt(0x10000);
    if (!sessions.has(candidate)) return candidate;
  }
  const start = randomInt(0x10000);
  for (let i = 0; i < 0x10000; i++) {
    const candidate = (start + i) & 0xffff;
    if (!sessions.has(candidate)) return candidate;
  }
  return undefined;
}

/** Maps a socket-open failure to an error code; raw-socket throws Error(strerror(errno)) without `code`. */
function describeOpenError(family: IpFamily, error: unknown): EchoSessionError {
  const text = error instanceof Error ? error.message : String(error);
  const errno = (error as { code?: unknown } | undefined)?.code;
  const socketName = family === 4 ? "raw ICMP socket" : "raw ICMPv6 socket";
  if (errno === "EPERM" || errno === "EACCES" || /operation not permitted|permission denied/i.test(text)) {
    return {
      code: "no_permission",
      message:
        `cannot open a ${socketName} (${text}): the probe needs CAP_NET_RAW ` +
        "(systemd AmbientCapabilities=CAP_NET_RAW, or setcap cap_net_raw+ep on the node binary)",
    };
  }
  return { code: "socket_error", message: `cannot open a ${socketName}: ${text}` };
}

/** The process-wide pool every icmp check uses unless a test injects its own. */
export const sharedIcmpSockets = new IcmpSocketPool();
