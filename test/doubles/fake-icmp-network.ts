// In-memory double of the raw ICMP transport (docs/architecture.md, "Conventions"): unit tests script the far side
// (replies, losses, errors, foreign traffic) and no packet ever reaches a real socket.
//
// Time comes from process.hrtime.bigint() and timers, so under vitest fake timers a scenario is
// deterministic: a reply scheduled `rttMs` after a request is stamped exactly sentAt + rttMs.

import {
  ICMP_HEADER_BYTES,
  internetChecksum,
  type IpFamily,
} from "../../services/probe/src/net/icmp-packet.ts";
import type {
  IcmpTransport,
  IcmpTransportEvents,
  OpenIcmpTransport,
  OpenUdpTransport,
  SendOptions,
} from "../../services/probe/src/net/icmp-socket.ts";

/** An echo request the code under test sent, as it went on the (fake) wire. */
export interface SentEcho {
  family: IpFamily;
  address: string;
  /** The ICMP message (no IP header), copied. */
  message: Buffer;
  identifier: number;
  sequence: number;
  payload: Buffer;
  sentAt: bigint;
  /** The per-packet IP settings the sender asked for (TTL, DF, traffic class). */
  options?: SendOptions;
}

/** A UDP datagram the code under test sent through a fake raw UDP socket. */
export interface SentUdp {
  family: IpFamily;
  address: string;
  /** UDP header + payload, copied. */
  datagram: Buffer;
  sourcePort: number;
  destinationPort: number;
  sentAt: bigint;
  options?: SendOptions;
}

/** One fake raw socket as the network sees it. */
interface FakeSocket {
  family: IpFamily;
  events: IcmpTransportEvents;
  open: boolean;
}

/** The address the fake host sends from; replies to it are what the kernel would deliver. */
export const FAKE_LOCAL_ADDRESS: Readonly<Record<IpFamily, string>> = { 4: "192.0.2.1", 6: "2001:db8::1" };

/** A scripted network behind fake raw sockets; pass `network.open` where an OpenIcmpTransport goes. */
export class FakeIcmpNetwork {
  /** Every echo request sent, in order. */
  readonly sent: SentEcho[] = [];
  /** When set, opening a socket throws it (raw-socket throws Error(strerror(errno))). */
  openError: Error | undefined;
  /** When it returns an error, that send fails with it (like sendto(2) failing). */
  sendError: (echo: SentEcho) => Error | undefined = () => undefined;
  /** The far side: called after each successful send; schedule replies from here. */
  onSend: (echo: SentEcho) => void = () => {};
  /** Every UDP datagram sent, in order. */
  readonly sentUdp: SentUdp[] = [];
  /** The far side for UDP: called after each UDP send. */
  onSendUdp: (udp: SentUdp) => void = () => {};
  /** How many sockets were opened and closed, per family. */
  readonly opened: Record<IpFamily, number> = { 4: 0, 6: 0 };
  readonly closed: Record<IpFamily, number> = { 4: 0, 6: 0 };
  readonly #sockets: FakeSocket[] = [];

  /** The OpenIcmpTransport for IcmpSocketPool. */
  readonly open: OpenIcmpTransport = (family, events) => {
    if (this.openError !== undefined) throw this.openError;
    const socket: FakeSocket = { family, events, open: true };
    this.#sockets.push(socket);
    this.opened[family]++;
    const transport: IcmpTransport = {
      send: (message, address, done, options) => {
        const copy = Buffer.from(message);
        // Like raw-socket, the send happens later (from the poll callback), never inside send().
        queueMicrotask(() => {
          const echo: SentEcho = {
            family,
            address,
            message: copy,
            identifier: copy.readUInt16BE(4),
            sequence: copy.readUInt16BE(6),
            payload: copy.subarray(ICMP_HEADER_BYTES),
            sentAt: process.hrtime.bigint(),
          };
          if (options !== undefined) echo.options = { ...options };
          if (!socket.open) return;
          const error = this.sendError(echo);
          if (error !== undefined) {
            done(error, echo.sentAt);
            return;
          }
          this.sent.push(echo);
          done(undefined, echo.sentAt);
          this.onSend(echo);
        });
      },
      close: () => {
        if (!socket.open) return;
        socket.open = false;
        this.closed[family]++;
      },
    };
    return transport;
  };

  /** The OpenUdpTransport for IcmpSocketPool: records datagrams, calls onSendUdp. */
  readonly openUdp: OpenUdpTransport = (family) => {
    if (this.openError !== undefined) throw this.openError;
    let open = true;
    return {
      send: (datagram, address, done, options) => {
        const copy = Buffer.from(datagram);
        queueMicrotask(() => {
          if (!open) return;
          const udp: SentUdp = {
            family,
            address,
            datagram: copy,
            sourcePort: copy.readUInt16BE(0),
            destinationPort: copy.readUInt16BE(2),
            sentAt: process.hrtime.bigint(),
          };
          if (options !== undefined) udp.options = { ...options };
          this.sentUdp.push(udp);
          done(undefined, udp.sentAt);
          this.onSendUdp(udp);
        });
      },
      close: () => {
        open = false;
      },
    };
  };

  /** Number of fake sockets of a family currently open. */
  openCount(family: IpFamily): number {
    return this.#sockets.filter((s) => s.open && s.family === family).length;
  }

  /**
   * Delivers a datagram to every open socket of the family, as the kernel does for raw sockets,
   * stamped `receivedAt` (default: now). IPv4 datagrams must carry their IP header.
   */
  deliver(
    family: IpFamily,
    datagram: Buffer,
    source: string,
    receivedAt: bigint = process.hrtime.bigint(),
  ): void {
    for (const socket of this.#sockets) {
      if (socket.open && socket.family === family) socket.events.message(datagram, source, receivedAt);
    }
  }

  /** Delivers `datagram` `delayMs` after `echo` was sent, stamped exactly sentAt + delayMs. */
  deliverAfter(echo: SentEcho, delayMs: number, datagram: Buffer, source = echo.address): void {
    const receivedAt = echo.sentAt + BigInt(Math.round(delayMs * 1e6));
    setTimeout(() => this.deliver(echo.family, datagram, source, receivedAt), Math.floor(delayMs));
  }

  /** Schedules the normal echo reply to `echo` after `rttMs`. */
  replyAfter(echo: SentEcho, rttMs: number): void {
    this.deliverAfter(echo, rttMs, echoReplyFor(echo));
  }

  /** Kills every open socket of the family, as a poll error would. */
  fail(family: IpFamily, error: Error): void {
    for (const socket of this.#sockets) {
      if (socket.open && socket.family === family) {
        socket.open = false;
        this.closed[family]++;
        socket.events.fatal(error);
      }
    }
  }
}

/**
 * The datagram a raw socket receives for the reply to `echo`: for IPv4 an IP header plus the
 * ICMP echo reply (type 0), for IPv6 the ICMPv6 echo reply (type 129) alone. `change` edits the
 * reply before checksumming (to corrupt it, or to forge someone else's reply).
 */
export function echoReplyFor(
  echo: SentEcho,
  change: { identifier?: number; sequence?: number; payload?: Buffer } = {},
): Buffer {
  const payload = change.payload ?? echo.payload;
  const icmp = Buffer.alloc(ICMP_HEADER_BYTES + payload.length);
  icmp[0] = echo.family === 4 ? 0 : 129;
  icmp.writeUInt16BE(change.identifier ?? echo.identifier, 4);
  icmp.writeUInt16BE(change.sequence ?? echo.sequence, 6);
  payload.copy(icmp, ICMP_HEADER_BYTES);
  return echo.family === 4 ? ipv4Datagram(echo.address, FAKE_LOCAL_ADDRESS[4], withChecksum(icmp)) : icmp;
}

/**
 * An ICMP error from router `from` quoting `echo` (its IP header and the first `quoteBytes` of
 * its ICMP message), as delivered to a raw socket. IPv4 types: 3 unreachable, 11 time exceeded;
 * IPv6: 1 unreachable, 3 time exceeded.
 */
export function icmpErrorFor(
  echo: SentEcho,
  type: number,
  code: number,
  from: string,
  quoteBytes = 8,
): Buffer {
  const quotedIcmp = echo.message.subarray(0, Math.min(quoteBytes, echo.message.length));
  const quote =
    echo.family === 4
      ? ipv4Datagram(FAKE_LOCAL_ADDRESS[4], echo.address, quotedIcmp)
      : Buffer.concat([ipv6Header(FAKE_LOCAL_ADDRESS[6], echo.address, echo.message.length), quotedIcmp]);
  const icmp = Buffer.alloc(ICMP_HEADER_BYTES + quote.length);
  icmp[0] = type;
  icmp[1] = code;
  quote.copy(icmp, ICMP_HEADER_BYTES);
  return echo.family === 4 ? ipv4Datagram(from, FAKE_LOCAL_ADDRESS[4], withChecksum(icmp)) : icmp;
}

/** Sets the ICMP checksum field of `icmp` (in place) and returns it. */
export function withChecksum(icmp: Buffer): Buffer {
  icmp.writeUInt16BE(0, 2);
  icmp.writeUInt16BE(internetChecksum(icmp), 2);
  return icmp;
}

/** A 20-byte IPv4 header (protocol ICMP, TTL 64, header checksum set) followed by `payload`. */
export function ipv4Datagram(source: string, destination: string, payload: Buffer): Buffer {
  const header = Buffer.alloc(20);
  header[0] = 0x45;
  header.writeUInt16BE(20 + payload.length, 2);
  header[8] = 64;
  header[9] = 1;
  Buffer.from(source.split(".").map(Number)).copy(header, 12);
  Buffer.from(destination.split(".").map(Number)).copy(header, 16);
  header.writeUInt16BE(internetChecksum(header), 10);
  return Buffer.concat([header, payload]);
}

/** A 40-byte IPv6 header (next header ICMPv6 unless given, hop limit 64). */
export function ipv6Header(
  source: string,
  destination: string,
  payloadLength: number,
  nextHeader = 58,
): Buffer {
  const header = Buffer.alloc(40);
  header[0] = 0x60;
  header.writeUInt16BE(payloadLength, 4);
  header[6] = nextHeader;
  header[7] = 64;
  ipv6Bytes(source).copy(header, 8);
  ipv6Bytes(destination).copy(header, 24);
  return header;
}

/** The 16 bytes of an IPv6 literal (no zone, no dotted quad). */
export function ipv6Bytes(address: string): Buffer {
  const [head = "", tail] = address.split("::");
  const headGroups = head === "" ? [] : head.split(":");
  const tailGroups = tail === undefined || tail === "" ? [] : tail.split(":");
  const zeros = new Array<string>(8 - headGroups.length - tailGroups.length).fill("0");
  const groups = tail === undefined ? headGroups : [...headGroups, ...zeros, ...tailGroups];
  const bytes = Buffer.alloc(16);
  groups.forEach((group, i) => bytes.writeUInt16BE(parseInt(group, 16), i * 2));
  return bytes;
}

/**
 * An ICMP error from `from` quoting a UDP datagram `udp` (IP header + the 8-byte UDP header), as a
 * raw ICMP socket receives it. IPv4 types: 3 unreachable (code 3 = port), 11 time exceeded.
 */
export function udpErrorFor(udp: SentUdp, type: number, code: number, from: string): Buffer {
  const quotedUdp = udp.datagram.subarray(0, 8);
  const quote =
    udp.family === 4
      ? withProtocol(ipv4Datagram(FAKE_LOCAL_ADDRESS[4], udp.address, quotedUdp), 17)
      : Buffer.concat([ipv6Header(FAKE_LOCAL_ADDRESS[6], udp.address, udp.datagram.length, 17), quotedUdp]);
  const icmp = Buffer.alloc(ICMP_HEADER_BYTES + quote.length);
  icmp[0] = type;
  icmp[1] = code;
  quote.copy(icmp, ICMP_HEADER_BYTES);
  return udp.family === 4 ? ipv4Datagram(from, FAKE_LOCAL_ADDRESS[4], withChecksum(icmp)) : icmp;
}

/** Rewrites the protocol of an IPv4 datagram built by ipv4Datagram (and its header checksum). */
function withProtocol(datagram: Buffer, protocol: number): Buffer {
  datagram[9] = protocol;
  datagram.writeUInt16BE(0, 10);
  datagram.writeUInt16BE(internetChecksum(datagram, 0, 20), 10);
  return datagram;
}
