// ICMP (RFC 792) and ICMPv6 (RFC 4443) echo encoding and decoding for raw sockets.
//
// Decoding works on whatever a raw socket hands us, which includes other processes' traffic,
// junk and truncated datagrams: every decoder returns undefined for anything it cannot use and
// never throws (test/unit/net/icmp-packet.test.ts feeds it random buffers).

/** IP version of a socket, an address or a packet. */
export type IpFamily = 4 | 6;

/** Length of the ICMP/ICMPv6 header: type, code, checksum, then identifier and sequence for echo. */
export const ICMP_HEADER_BYTES = 8;

const ECHO_REQUEST: Readonly<Record<IpFamily, number>> = { 4: 8, 6: 128 };
const ECHO_REPLY: Readonly<Record<IpFamily, number>> = { 4: 0, 6: 129 };
const IPV4_PROTOCOL_ICMP = 1;
const IPV6_NEXT_HEADER_ICMPV6 = 58;
const PROTOCOL_UDP = 17;
const UDP_HEADER_BYTES = 8;
const IPV6_HEADER_BYTES = 40;

/** ICMP errors that quote one of our echo requests; all of them mean "this request died on the way". */
export type IcmpErrorKind = "unreachable" | "time_exceeded" | "packet_too_big" | "parameter_problem";

/** Error types by family (RFC 792 / RFC 4443 §3). Redirects and source quench are not errors for us. */
const ERROR_KINDS: Readonly<Record<IpFamily, Readonly<Record<number, IcmpErrorKind>>>> = {
  4: { 3: "unreachable", 11: "time_exceeded", 12: "parameter_problem" },
  6: { 1: "unreachable", 2: "packet_too_big", 3: "time_exceeded", 4: "parameter_problem" },
};

/** An echo reply (type 0 / 129). `payload` is a view into the received buffer: copy it to keep it. */
export interface EchoReply {
  kind: "echo_reply";
  identifier: number;
  sequence: number;
  payload: Buffer;
}

/** An ICMP error quoting one of the sender's echo requests (so it can be matched by id and seq). */
export interface EchoError {
  kind: "error";
  error: IcmpErrorKind;
  type: number;
  code: number;
  /** Destination of the quoted request, in the canonical text form of formatIpAddress. */
  originalDestination: string;
  identifier: number;
  sequence: number;
  /** The part of the quoted request's payload the router sent back (often empty for IPv4). */
  quotedPayload: Buffer;
  /**
   * Next-hop MTU a router reported: IPv4 "fragmentation needed" (type 3 code 4, RFC 1191 §4, 0
   * from pre-RFC 1191 routers) or ICMPv6 "packet too big" (RFC 4443 §3.2). Absent otherwise.
   */
  nextHopMtu?: number;
}

/** An ICMP error quoting one of the sender's UDP datagrams (UDP traceroute), matched by ports. */
export interface UdpError {
  kind: "udp_error";
  error: IcmpErrorKind;
  type: number;
  code: number;
  originalDestination: string;
  sourcePort: number;
  destinationPort: number;
  nextHopMtu?: number;
}

/** Anything well formed that we do not act on (echo requests, NDP, redirects, foreign errors). */
export interface OtherIcmp {
  kind: "other";
  type: number;
  code: number;
}

/** A decoded ICMP message. */
export type IcmpMessage = EchoReply | EchoError | UdpError | OtherIcmp;

/**
 * Internet checksum (RFC 1071): ones'-complement of the ones'-complement sum of 16-bit big-endian
 * words, an odd trailing byte padded with zero. Returns the value to store in the checksum field;
 * over a message that already carries a correct checksum it returns 0.
 */
export function internetChecksum(data: Uint8Array, start = 0, end = data.length): number {
  let sum = 0;
  let i = start;
  for (; i + 1 < end; i += 2) sum += ((data[i] ?? 0) << 8) | (data[i + 1] ?? 0);
  if (i < end) sum += (data[i] ?? 0) << 8;
  // 32 768 words of at most 0xffff stay below 2^31, so summing in a double is exact; fold the carries.
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

/**
 * Builds an echo request. For IPv4 the checksum is computed here; for ICMPv6 it covers a
 * pseudo-header with our source address, which the kernel fills in on raw ICMPv6 sockets
 * (RFC 3542 §3.1: it always computes and verifies ICMPv6 checksums), so the field stays zero.
 */
export function encodeEchoRequest(
  family: IpFamily,
  identifier: number,
  sequence: number,
  payload: Uint8Array,
): Buffer {
  const packet = Buffer.alloc(ICMP_HEADER_BYTES + payload.length);
  packet[0] = ECHO_REQUEST[family];
  packet[1] = 0;
  packet.writeUInt16BE(identifier & 0xffff, 4);
  packet.writeUInt16BE(sequence & 0xffff, 6);
  packet.set(payload, ICMP_HEADER_BYTES);
  if (family === 4) packet.writeUInt16BE(internetChecksum(packet), 2);
  return packet;
}

/**
 * Decodes what a raw ICMP socket received. IPv4 raw sockets deliver the IP header first (its
 * length is IHL × 4, options included); IPv6 raw sockets deliver the ICMPv6 message alone
 * (RFC 3542 §3). Returns undefined for anything malformed, truncated or with a bad IPv4 checksum.
 */
export function decodeIcmp(family: IpFamily, datagram: Buffer): IcmpMessage | undefined {
  let icmp: Buffer;
  if (family === 4) {
    const ip = parseIpv4Header(datagram);
    if (ip === undefined || ip.protocol !== IPV4_PROTOCOL_ICMP) return undefined;
    icmp = datagram.subarray(ip.headerBytes);
    if (icmp.length < ICMP_HEADER_BYTES) return undefined;
    // Raw IPv4 sockets see packets before icmp_rcv() validates them, so check here. (The kernel
    // does verify ICMPv6 checksums before raw delivery, and we lack the pseudo-header for them.)
    if (internetChecksum(icmp) !== 0) return undefined;
  } else {
    if (datagram.length < ICMP_HEADER_BYTES) return undefined;
    icmp = datagram;
  }
  const type = icmp[0] ?? 0;
  const code = icmp[1] ?? 0;
  if (type === ECHO_REPLY[family]) {
    return {
      kind: "echo_reply",
      identifier: icmp.readUInt16BE(4),
      sequence: icmp.readUInt16BE(6),
      payload: icmp.subarray(ICMP_HEADER_BYTES),
    };
  }
  const error = ERROR_KINDS[family][type];
  if (error === undefined) return { kind: "other", type, code };
  const nextHopMtu =
    family === 4 && type === 3 && code === 4
      ? icmp.readUInt16BE(6)
      : family === 6 && type === 2
        ? icmp.readUInt32BE(4)
        : undefined;
  const quote = icmp.subarray(ICMP_HEADER_BYTES);
  const quoted = decodeQuotedEchoRequest(family, quote);
  if (quoted === undefined) {
    const udp = decodeQuotedUdp(family, quote);
    if (udp === undefined) return { kind: "other", type, code };
    const udpError: UdpError = { kind: "udp_error", error, type, code, ...udp };
    if (nextHopMtu !== undefined) udpError.nextHopMtu = nextHopMtu;
    return udpError;
  }
  const echoError: EchoError = { kind: "error", error, type, code, ...quoted };
  if (nextHopMtu !== undefined) echoError.nextHopMtu = nextHopMtu;
  return echoError;
}

/** The invoking IP header and the quoted UDP ports (the 8 bytes every router must quote, RFC 792). */
function decodeQuotedUdp(
  family: IpFamily,
  quote: Buffer,
): { originalDestination: string; sourcePort: number; destinationPort: number } | undefined {
  let inner: Buffer;
  let originalDestination: string;
  if (family === 4) {
    const ip = parseIpv4Header(quote);
    if (ip === undefined || ip.protocol !== PROTOCOL_UDP) return undefined;
    originalDestination = ip.destination;
    inner = quote.subarray(ip.headerBytes);
  } else {
    if (quote.length < IPV6_HEADER_BYTES || (quote[0] ?? 0) >> 4 !== 6) return undefined;
    if (quote[6] !== PROTOCOL_UDP) return undefined;
    originalDestination = formatIpAddress(quote.subarray(24, 40));
    inner = quote.subarray(IPV6_HEADER_BYTES);
  }
  if (inner.length < UDP_HEADER_BYTES) return undefined;
  return { originalDestination, sourcePort: inner.readUInt16BE(0), destinationPort: inner.readUInt16BE(2) };
}

/**
 * A UDP datagram (header + payload) for a raw IPPROTO_UDP socket, for UDP traceroute. The IPv4
 * checksum is left 0 ("no checksum", RFC 768); on IPv6 it is mandatory (RFC 8200 §8.1) and the
 * transport asks the kernel to fill it in (IPV6_CHECKSUM, RFC 3542 §3.1).
 */
export function encodeUdpDatagram(sourcePort: number, destinationPort: number, payload: Uint8Array): Buffer {
  const datagram = Buffer.alloc(UDP_HEADER_BYTES + payload.length);
  datagram.writeUInt16BE(sourcePort & 0xffff, 0);
  datagram.writeUInt16BE(destinationPort & 0xffff, 2);
  datagram.writeUInt16BE(datagram.length & 0xffff, 4);
  datagram.set(payload, UDP_HEADER_BYTES);
  return datagram;
}

interface QuotedEchoRequest {
  originalDestination: string;
  identifier: number;
  sequence: number;
  quotedPayload: Buffer;
}

/**
 * The invoking packet an ICMP error carries: for IPv4 its IP header plus at least 8 bytes
 * (RFC 792; RFC 1812 §4.3.2.3 lets routers quote more), for IPv6 as much as fits in the minimum
 * MTU (RFC 4443 §2.4c). Only our own echo requests matter; they carry no IPv6 extension headers,
 * so anything else is not ours.
 */
function decodeQuotedEchoRequest(family: IpFamily, quote: Buffer): QuotedEchoRequest | undefined {
  let inner: Buffer;
  let originalDestination: string;
  if (family === 4) {
    const ip = parseIpv4Header(quote);
    if (ip === undefined || ip.protocol !== IPV4_PROTOCOL_ICMP) return undefined;
    originalDestination = ip.destination;
    inner = quote.subarray(ip.headerBytes);
  } else {
    if (quote.length < IPV6_HEADER_BYTES || (quote[0] ?? 0) >> 4 !== 6) return undefined;
    if (quote[6] !== IPV6_NEXT_HEADER_ICMPV6) return undefined;
    originalDestination = formatIpAddress(quote.subarray(24, 40));
    inner = quote.subarray(IPV6_HEADER_BYTES);
  }
  if (inner.length < ICMP_HEADER_BYTES || inner[0] !== ECHO_REQUEST[family] || inner[1] !== 0)
    return undefined;
  return {
    originalDestination,
    identifier: inner.readUInt16BE(4),
    sequence: inner.readUInt16BE(6),
    quotedPayload: inner.subarray(ICMP_HEADER_BYTES),
  };
}

interface Ipv4Header {
  headerBytes: number;
  protocol: number;
  destination: string;
}

function parseIpv4Header(datagram: Buffer): Ipv4Header | undefined {
  if (datagram.length < 20) return undefined;
  const versionIhl = datagram[0] ?? 0;
  const headerBytes = (versionIhl & 0x0f) * 4;
  if (versionIhl >> 4 !== 4 || headerBytes < 20 || datagram.length < headerBytes) return undefined;
  return { headerBytes, protocol: datagram[9] ?? 0, destination: formatIpAddress(datagram.subarray(16, 20)) };
}

/**
 * Text form of a 4- or 16-byte address. IPv6 follows RFC 5952 §4 as the WHATWG URL serializer
 * does (lowercase, no leading zeros, longest run of two or more zero groups compressed, first
 * one on a tie, no dotted quad), so it equals normalizeIpLiteral() of the same address.
 */
export function formatIpAddress(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join(".");
  const groups: number[] = [];
  for (let i = 0; i + 1 < bytes.length; i += 2) groups.push(((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0));
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < groups.length;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (list: number[]): string => list.map((g) => g.toString(16)).join(":");
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
}

/**
 * Canonical text of an IP literal without its zone index (IPv6 per RFC 5952, via the URL parser),
 * so destinations quoted inside ICMP errors can be compared with the target.
 */
export function normalizeIpLiteral(address: string): string {
  const zoneAt = address.indexOf("%");
  const bare = zoneAt < 0 ? address : address.slice(0, zoneAt);
  if (!bare.includes(":")) return bare;
  try {
    return new URL(`http://[${bare}]/`).hostname.slice(1, -1);
  } catch {
    return bare;
  }
}
