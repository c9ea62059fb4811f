// ARP for Ethernet/IPv4 (RFC 826) and the RFC 5227 probe. decodeArp never throws: anything that is
// not a well-formed Ethernet/IPv4 ARP packet decodes to undefined and the caller counts it.

import { formatIpv4, formatMac, parseIpv4, parseMac } from "./ethernet.ts";

/** ARP operations. */
export const ARP_OP = { request: 1, reply: 2 } as const;

/** A decoded Ethernet/IPv4 ARP packet. */
export interface ArpPacket {
  op: number;
  senderMac: string;
  senderIp: string;
  targetMac: string;
  targetIp: string;
}

const ARP_LENGTH = 28;

/** Decodes an ARP payload (after the Ethernet header); undefined unless it is Ethernet/IPv4 ARP. */
export function decodeArp(payload: Buffer): ArpPacket | undefined {
  if (payload.length < ARP_LENGTH) return undefined;
  if (payload.readUInt16BE(0) !== 1 || payload.readUInt16BE(2) !== 0x0800) return undefined;
  if (payload[4] !== 6 || payload[5] !== 4) return undefined;
  const op = payload.readUInt16BE(6);
  if (op !== ARP_OP.request && op !== ARP_OP.reply) return undefined;
  return {
    op,
    senderMac: formatMac(payload, 8),
    senderIp: formatIpv4(payload, 14),
    targetMac: formatMac(payload, 18),
    targetIp: formatIpv4(payload, 24),
  };
}

/** Encodes an ARP payload (28 bytes, to be wrapped in an Ethernet frame of type 0x0806). */
export function encodeArp(p: ArpPacket): Buffer {
  const out = Buffer.alloc(ARP_LENGTH);
  out.writeUInt16BE(1, 0);
  out.writeUInt16BE(0x0800, 2);
  out[4] = 6;
  out[5] = 4;
  out.writeUInt16BE(p.op, 6);
  parseMac(p.senderMac).copy(out, 8);
  parseIpv4(p.senderIp).copy(out, 14);
  parseMac(p.targetMac).copy(out, 18);
  parseIpv4(p.targetIp).copy(out, 24);
  return out;
}

/**
 * An RFC 5227 §2.1.1 ARP probe for `ip`: sender IP all zeros (so no host updates its cache from
 * it), target MAC zero. Any reply, or another host's probe for the same address, is a conflict.
 */
export function arpProbe(senderMac: string, ip: string): Buffer {
  return encodeArp({
    op: ARP_OP.request,
    senderMac,
    senderIp: "0.0.0.0",
    targetMac: "00:00:00:00:00:00",
    targetIp: ip,
  });
}
