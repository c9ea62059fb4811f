// Ethernet II, IPv4 and UDP framing for the checks that speak at Ethernet level through pcap
// (DHCP from an interface without an address, ARP, LLDP). Decoders never throw: a frame that is
// too short or inconsistent decodes to undefined and the caller counts it as malformed.

/** EtherTypes the probe decodes. */
export const ETHERTYPE = {
  /**
   * Not a real EtherType: an IEEE 802.3 frame whose type field is a length (≤ 1500), so an LLC
   * header follows (CDP, STP). decodeEthernet reports such frames under this value.
   */
  llc: 0x0000,
  ipv4: 0x0800,
  arp: 0x0806,
  vlan: 0x8100,
  lldp: 0x88cc,
} as const;

/** Largest value of the type field that is an 802.3 length rather than an EtherType. */
const MAX_8023_LENGTH = 1500;

/** The all-ones broadcast MAC. */
export const BROADCAST_MAC = "ff:ff:ff:ff:ff:ff";

/** One decoded Ethernet II header; `payload` starts after any 802.1Q tag. */
export interface EthernetFrame {
  dst: string;
  src: string;
  etherType: number;
  /** 802.1Q VLAN id when the frame carried a tag. */
  vlan?: number;
  payload: Buffer;
}

/**
 * Decodes an Ethernet II header (one optional 802.1Q tag), or undefined when the frame is too short.
 * An 802.3 frame (length field) comes back as ETHERTYPE.llc with the LLC bytes, padding cut off.
 */
export function decodeEthernet(frame: Buffer): EthernetFrame | undefined {
  if (frame.length < 14) return undefined;
  let etherType = frame.readUInt16BE(12);
  let offset = 14;
  let vlan: number | undefined;
  if (etherType === ETHERTYPE.vlan) {
    if (frame.length < 18) return undefined;
    vlan = frame.readUInt16BE(14) & 0x0fff;
    etherType = frame.readUInt16BE(16);
    offset = 18;
  }
  let payload = frame.subarray(offset);
  if (etherType <= MAX_8023_LENGTH) {
    if (payload.length < etherType) return undefined;
    payload = payload.subarray(0, etherType);
    etherType = ETHERTYPE.llc;
  }
  return {
    dst: formatMac(frame, 0),
    src: formatMac(frame, 6),
    etherType,
    ...(vlan === undefined ? {} : { vlan }),
    payload,
  };
}

/** Builds an Ethernet II frame; with `vlan` (1-4094) it carries an 802.1Q tag (priority 0). */
export function encodeEthernet(
  dst: string,
  src: string,
  etherType: number,
  payload: Buffer,
  vlan?: number,
): Buffer {
  const tag = vlan === undefined || vlan === 0 ? 0 : 4;
  const frame = Buffer.alloc(14 + tag + payload.length);
  parseMac(dst).copy(frame, 0);
  parseMac(src).copy(frame, 6);
  if (tag > 0) {
    frame.writeUInt16BE(ETHERTYPE.vlan, 12);
    frame.writeUInt16BE((vlan ?? 0) & 0x0fff, 14);
  }
  frame.writeUInt16BE(etherType, 12 + tag);
  payload.copy(frame, 14 + tag);
  return frame;
}

/** `aa:bb:cc:dd:ee:ff` (lower case) from 6 bytes at `offset`. */
export function formatMac(buf: Buffer, offset = 0): string {
  const parts: string[] = [];
  for (let i = 0; i < 6; i++) parts.push((buf[offset + i] ?? 0).toString(16).padStart(2, "0"));
  return parts.join(":");
}

const MAC_PATTERN = /^[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}$/i;

/** True for `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff`. */
export function isMac(text: string): boolean {
  return MAC_PATTERN.test(text);
}

/** Canonical lower-case colon form of a MAC, or undefined when it is not one. */
export function normalizeMac(text: string): string | undefined {
  return isMac(text) ? text.toLowerCase().replaceAll("-", ":") : undefined;
}

/** 6 bytes of a MAC; throws on a malformed one (a programming or config error, never network input). */
export function parseMac(mac: string): Buffer {
  const norm = normalizeMac(mac);
  if (norm === undefined) throw new Error(`not a MAC address: ${mac}`);
  return Buffer.from(norm.replaceAll(":", ""), "hex");
}

/** 4 bytes of a dotted IPv4 address; throws on a malformed one (never network input). */
export function parseIpv4(ip: string): Buffer {
  const parts = ip.split(".").map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255))
    throw new Error(`not an IPv4 address: ${ip}`);
  return Buffer.from(parts);
}

/** Dotted IPv4 from 4 bytes at `offset`. */
export function formatIpv4(buf: Buffer, offset = 0): string {
  return `${buf[offset] ?? 0}.${buf[offset + 1] ?? 0}.${buf[offset + 2] ?? 0}.${buf[offset + 3] ?? 0}`;
}

/** A decoded IPv4 + UDP datagram. */
export interface UdpDatagram {
  srcIp: string;
  dstIp: string;
  srcPort: number;
  dstPort: number;
  payload: Buffer;
}

/** Decodes an IPv4 packet carrying UDP; undefined for anything else or a malformed/fragmented one. */
export function decodeIpv4Udp(packet: Buffer): UdpDatagram | undefined {
  if (packet.length < 20) return undefined;
  const versionIhl = packet[0] ?? 0;
  if (versionIhl >> 4 !== 4) return undefined;
  const ihl = (versionIhl & 0x0f) * 4;
  if (ihl < 20 || packet.length < ihl + 8) return undefined;
  const totalLength = packet.readUInt16BE(2);
  if (totalLength < ihl + 8 || totalLength > packet.length) return undefined;
  // A fragment (MF set or offset ≠ 0) is not a whole datagram; DHCP messages are never fragmented.
  if ((packet.readUInt16BE(6) & 0x3fff) !== 0) return undefined;
  if (packet[9] !== 17) return undefined;
  const udpLength = packet.readUInt16BE(ihl + 4);
  if (udpLength < 8 || ihl + udpLength > totalLength) return undefined;
  return {
    srcIp: formatIpv4(packet, 12),
    dstIp: formatIpv4(packet, 16),
    srcPort: packet.readUInt16BE(ihl),
    dstPort: packet.readUInt16BE(ihl + 2),
    payload: packet.subarray(ihl + 8, ihl + udpLength),
  };
}

/** Builds an IPv4 header + UDP datagram (checksums filled in, TTL 64, DF clear). */
export function encodeIpv4Udp(d: UdpDatagram): Buffer {
  const udpLength = 8 + d.payload.length;
  const packet = Buffer.alloc(20 + udpLength);
  packet[0] = 0x45;
  packet.writeUInt16BE(20 + udpLength, 2);
  packet[8] = 64;
  packet[9] = 17;
  parseIpv4(d.srcIp).copy(packet, 12);
  parseIpv4(d.dstIp).copy(packet, 16);
  packet.writeUInt16BE(internetChecksum(packet.subarray(0, 20)), 10);
  packet.writeUInt16BE(d.srcPort, 20);
  packet.writeUInt16BE(d.dstPort, 22);
  packet.writeUInt16BE(udpLength, 24);
  d.payload.copy(packet, 28);
  // RFC 768: the checksum covers a pseudo-header; 0 means "none", so a computed 0 is sent as 0xffff.
  const pseudo = Buffer.alloc(12 + udpLength);
  packet.copy(pseudo, 0, 12, 20);
  pseudo[9] = 17;
  pseudo.writeUInt16BE(udpLength, 10);
  packet.copy(pseudo, 12, 20);
  packet.writeUInt16BE(internetChecksum(pseudo) || 0xffff, 26);
  return packet;
}

/** RFC 1071 ones' complement sum. */
export function internetChecksum(data: Buffer): number {
  let sum = 0;
  for (let i = 0; i + 1 < data.length; i += 2) sum += data.readUInt16BE(i);
  if (data.length % 2 === 1) sum += (data[data.length - 1] ?? 0) << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}
