// STAMP test packets, unauthenticated mode (RFC 8762 §4.2.1 and §4.3.1), which are also
// TWAMP-light test packets (RFC 5357 §4.1.2 / §4.2.1, Appendix I): a router that answers
// TWAMP-light answers these, and tshark decodes them as `twamp.test`.
//
// Session-Sender packet (44 octets before padding):
//   0 Sequence Number (4) | 4 Timestamp (8) | 12 Error Estimate (2) | 14 MBZ (30)
// Session-Reflector packet (44 octets before padding):
//   0 Sequence Number (4) | 4 Timestamp (8, T3) | 12 Error Estimate (2) | 14 MBZ (2)
//   16 Receive Timestamp (8, T2) | 24 Session-Sender Sequence Number (4)
//   28 Session-Sender Timestamp (8, T1) | 36 Session-Sender Error Estimate (2) | 38 MBZ (2)
//   40 Ses-Sender TTL (1) | 41 MBZ (3)
// The sender's 30 MBZ octets make both packets the same size (RFC 8762 §4.2.1: symmetric size, so
// a reflector never has to send more than it received). Timestamps are NTP 64-bit (Z bit 0, §4.2.1).
// Every decoder here returns a reason instead of throwing: replies come from the network.

import { readNtpTimestamp, writeNtpTimestamp } from "./sntp-packet.ts";

/** Size of a STAMP test packet without padding, in both directions (RFC 8762 §4.2.1, §4.3.1). */
export const STAMP_BASE_BYTES = 44;
/** The IANA-assigned STAMP port (RFC 8762 §4.1). */
export const STAMP_PORT = 862;

/**
 * Error Estimate (RFC 4656 §4.1.2, used by RFC 8762 §4.2.1): S = the clock is synchronized to an
 * external source (UTC); Z = 0 means NTP timestamp format (RFC 8186); the error is
 * multiplier × 2^(scale − 32) seconds. A multiplier of 0 is invalid on the wire.
 */
export interface ErrorEstimate {
  synchronized: boolean;
  /** true = PTP timestamp format (RFC 8186); this codec writes and reads NTP format only. */
  ptpFormat: boolean;
  scale: number;
  multiplier: number;
}

/** What a Session-Sender puts in a test packet. */
export interface SenderPacket {
  sequence: number;
  /** T1, Unix milliseconds (fractional). */
  timestampMs: number;
  errorEstimate: ErrorEstimate;
}

/** A Session-Reflector's test packet. */
export interface ReflectorPacket {
  sequence: number;
  /** T3: when the reflector sent it, Unix ms. */
  timestampMs: number;
  errorEstimate: ErrorEstimate;
  /** T2: when the reflector received the sender's packet, Unix ms. */
  receiveTimestampMs: number;
  senderSequence: number;
  /** T1 as the sender wrote it, Unix ms. */
  senderTimestampMs: number;
  senderErrorEstimate: ErrorEstimate;
  /** TTL / hop limit of the sender's packet as it arrived at the reflector (255 = not known). */
  senderTtl: number;
}

/** Encodes an Error Estimate; the multiplier is clamped to 1–255 (0 is invalid on the wire). */
export function encodeErrorEstimate(e: ErrorEstimate): number {
  const multiplier = Math.min(255, Math.max(1, Math.round(e.multiplier)));
  return (e.synchronized ? 0x8000 : 0) | (e.ptpFormat ? 0x4000 : 0) | ((e.scale & 0x3f) << 8) | multiplier;
}

/** Decodes the 16-bit Error Estimate field. */
export function decodeErrorEstimate(value: number): ErrorEstimate {
  return {
    synchronized: (value & 0x8000) !== 0,
    ptpFormat: (value & 0x4000) !== 0,
    scale: (value >> 8) & 0x3f,
    multiplier: value & 0xff,
  };
}

/** The error an estimate stands for, in ms (RFC 4656 §4.1.2: multiplier × 2^−32 × 2^scale s). */
export function errorEstimateMs(e: ErrorEstimate): number {
  return e.multiplier * 2 ** (e.scale - 32) * 1000;
}

/**
 * The smallest-scale estimate covering `errorMs` (multiplier ≤ 255): what a host writes for its
 * clock's error bound. `synchronized` is the S bit.
 */
export function errorEstimateFor(errorMs: number, synchronized: boolean): ErrorEstimate {
  const seconds = Math.max(errorMs, 1e-9) / 1000;
  for (let scale = 0; scale < 64; scale++) {
    const multiplier = Math.ceil(seconds / 2 ** (scale - 32));
    if (multiplier <= 255)
      return { synchronized, ptpFormat: false, scale, multiplier: Math.max(1, multiplier) };
  }
  return { synchronized, ptpFormat: false, scale: 63, multiplier: 255 };
}

/** A Session-Sender test packet: the 44 base octets, then `padding` zero octets (RFC 8762 §4.2.1). */
export function encodeSenderPacket(p: SenderPacket, padding = 0): Buffer {
  const buf = Buffer.alloc(STAMP_BASE_BYTES + padding);
  buf.writeUInt32BE(p.sequence >>> 0, 0);
  writeNtpTimestamp(buf, 4, p.timestampMs);
  buf.writeUInt16BE(encodeErrorEstimate(p.errorEstimate), 12);
  return buf;
}

/** Rewrites the Timestamp of an encoded sender packet (stamped as late as possible before send). */
export function restampSenderPacket(buf: Buffer, timestampMs: number): void {
  writeNtpTimestamp(buf, 4, timestampMs);
}

/** The fields of a Session-Sender packet as a reflector reads them. */
export function decodeSenderPacket(
  buf: Buffer,
): { ok: true; packet: SenderPacket } | { ok: false; reason: string } {
  if (buf.length < STAMP_BASE_BYTES) {
    return {
      ok: false,
      reason: `${buf.length} octets, a STAMP test packet has at least ${STAMP_BASE_BYTES}`,
    };
  }
  return {
    ok: true,
    packet: {
      sequence: buf.readUInt32BE(0),
      timestampMs: readNtpTimestamp(buf, 4),
      errorEstimate: decodeErrorEstimate(buf.readUInt16BE(12)),
    },
  };
}

/**
 * A Session-Reflector reply of exactly `requestBytes` octets (RFC 8762 §4.3: the reply is as large
 * as the request, so a reflector never amplifies). The sender's padding is not copied back: the
 * reply's padding is zero (RFC 8762 §4.3.1 allows either; zero leaks nothing of the request).
 */
export function encodeReflectorPacket(p: ReflectorPacket, requestBytes: number): Buffer {
  const buf = Buffer.alloc(Math.max(STAMP_BASE_BYTES, requestBytes));
  buf.writeUInt32BE(p.sequence >>> 0, 0);
  writeNtpTimestamp(buf, 4, p.timestampMs);
  buf.writeUInt16BE(encodeErrorEstimate(p.errorEstimate), 12);
  writeNtpTimestamp(buf, 16, p.receiveTimestampMs);
  buf.writeUInt32BE(p.senderSequence >>> 0, 24);
  writeNtpTimestamp(buf, 28, p.senderTimestampMs);
  buf.writeUInt16BE(encodeErrorEstimate(p.senderErrorEstimate), 36);
  buf[40] = p.senderTtl & 0xff;
  return buf;
}

/** Rewrites the Timestamp (T3) of an encoded reflector packet right before it is sent. */
export function restampReflectorPacket(buf: Buffer, timestampMs: number): void {
  writeNtpTimestamp(buf, 4, timestampMs);
}

/**
 * Decodes a Session-Reflector packet. Rejected: too short, the PTP timestamp format (Z = 1: we
 * asked for NTP; RFC 8762 §4.2.1 lets a reflector use its own format, but we could not compare
 * it with T1), and zero timestamps (a reflector that did not stamp).
 */
export function decodeReflectorPacket(
  buf: Buffer,
): { ok: true; packet: ReflectorPacket } | { ok: false; reason: string } {
  if (buf.length < STAMP_BASE_BYTES) {
    return { ok: false, reason: `${buf.length} octets, a STAMP reply has at least ${STAMP_BASE_BYTES}` };
  }
  const errorEstimate = decodeErrorEstimate(buf.readUInt16BE(12));
  if (errorEstimate.ptpFormat) return { ok: false, reason: "the reflector uses PTP timestamps (Z bit set)" };
  const timestampMs = readNtpTimestamp(buf, 4);
  const receiveTimestampMs = readNtpTimestamp(buf, 16);
  if (timestampMs === 0 || receiveTimestampMs === 0) {
    return { ok: false, reason: "the reflector left its receive or transmit timestamp zero" };
  }
  return {
    ok: true,
    packet: {
      sequence: buf.readUInt32BE(0),
      timestampMs,
      errorEstimate,
      receiveTimestampMs,
      senderSequence: buf.readUInt32BE(24),
      senderTimestampMs: readNtpTimestamp(buf, 28),
      senderErrorEstimate: decodeErrorEstimate(buf.readUInt16BE(36)),
      senderTtl: buf[40] ?? 0,
    },
  };
}
