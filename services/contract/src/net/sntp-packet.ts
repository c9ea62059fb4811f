// SNTP (RFC 4330, NTPv4 packet format RFC 5905 §7.3): the client request, the server reply parser
// (never throws) and the offset/delay arithmetic. Timestamps are Unix milliseconds (fractional).

/** Seconds between the NTP era 0 epoch (1900) and the Unix epoch (1970). */
export const NTP_UNIX_OFFSET_S = 2_208_988_800;
/** Size of an NTP packet without extensions. */
export const SNTP_PACKET_BYTES = 48;

/** A client request (mode 3) whose transmit timestamp is `transmitMs`; the server echoes it as originate. */
export function encodeSntpRequest(transmitMs: number, version = 4): Buffer {
  const buf = Buffer.alloc(SNTP_PACKET_BYTES);
  buf[0] = (0 << 6) | (version << 3) | 3; // LI 0, VN, mode 3 (client)
  writeNtpTimestamp(buf, 40, transmitMs);
  return buf;
}

/** The fields of a server reply the check uses. */
export interface SntpReply {
  leap: number;
  version: number;
  mode: number;
  stratum: number;
  /** Reference id: 4 ASCII characters for stratum 0/1 (the kiss code, or the source), else an address. */
  referenceId: string;
  rootDelayMs: number;
  rootDispersionMs: number;
  /** The 64-bit originate timestamp as sent (compared bit for bit with the request's transmit). */
  originate: Buffer;
  receiveMs: number;
  transmitMs: number;
}

/** Parses a reply; never throws. */
export function parseSntpReply(buf: Buffer): { ok: true; reply: SntpReply } | { ok: false; reason: string } {
  if (buf.length < SNTP_PACKET_BYTES)
    return { ok: false, reason: `${buf.length} bytes, shorter than an NTP packet` };
  const first = buf[0] ?? 0;
  const stratum = buf[1] ?? 0;
  const refBytes = buf.subarray(12, 16);
  const referenceId =
    stratum <= 1
      ? refBytes
          .toString("latin1")
          .replace(/\0+$/, "")
          .replace(/[^\x20-\x7e]/g, "?")
      : [...refBytes].join(".");
  return {
    ok: true,
    reply: {
      leap: first >> 6,
      version: (first >> 3) & 0x7,
      mode: first & 0x7,
      stratum,
      referenceId,
      rootDelayMs: shortFormatMs(buf.readUInt32BE(4)),
      rootDispersionMs: shortFormatMs(buf.readUInt32BE(8)),
      originate: Buffer.from(buf.subarray(24, 32)),
      receiveMs: readNtpTimestamp(buf, 32),
      transmitMs: readNtpTimestamp(buf, 40),
    },
  };
}

/**
 * Clock offset (server − local; positive = the local clock is behind) and round-trip delay from the
 * four timestamps (RFC 4330 §5): t1 request sent, t2 server received, t3 server sent, t4 reply received.
 */
export function offsetAndDelay(
  t1: number,
  t2: number,
  t3: number,
  t4: number,
): { offsetMs: number; delayMs: number } {
  return { offsetMs: (t2 - t1 + (t3 - t4)) / 2, delayMs: t4 - t1 - (t3 - t2) };
}

/** Writes a Unix-ms time as an NTP 64-bit timestamp (era 0; wraps in 2036 as the format does). */
export function writeNtpTimestamp(buf: Buffer, offset: number, unixMs: number): void {
  const seconds = Math.floor(unixMs / 1000);
  const fraction = Math.floor(((unixMs - seconds * 1000) / 1000) * 2 ** 32);
  buf.writeUInt32BE((seconds + NTP_UNIX_OFFSET_S) >>> 0, offset);
  buf.writeUInt32BE(Math.min(fraction, 0xffffffff) >>> 0, offset + 4);
}

/** Reads an NTP 64-bit timestamp as Unix ms (era 0 before 2036, era 1 for small values after). */
export function readNtpTimestamp(buf: Buffer, offset: number): number {
  let seconds = buf.readUInt32BE(offset);
  const fraction = buf.readUInt32BE(offset + 4);
  if (seconds === 0 && fraction === 0) return 0;
  // RFC 5905 §6 era handling: values below 1968's are taken to be in era 1 (after 2036-02-07).
  if (seconds < 0x80000000) seconds += 2 ** 32;
  return (seconds - NTP_UNIX_OFFSET_S) * 1000 + (fraction / 2 ** 32) * 1000;
}

function shortFormatMs(value: number): number {
  return (value / 65536) * 1000;
}
