// RTP and RTCP packets (RFC 3550 §5, §6). Decoders take anything off the wire and return
// undefined for what is not a well-formed packet; they never throw.

/** One RTP packet (no CSRC list or header extension is ever sent by the probe). */
export interface RtpPacket {
  payloadType: number;
  marker: boolean;
  sequence: number;
  timestamp: number;
  ssrc: number;
  payload: Buffer;
}

const RTP_VERSION = 2;

/** Encodes an RTP packet with a 12-byte header. */
export function encodeRtp(p: RtpPacket): Buffer {
  const out = Buffer.alloc(12 + p.payload.length);
  out[0] = RTP_VERSION << 6;
  out[1] = (p.marker ? 0x80 : 0) | (p.payloadType & 0x7f);
  out.writeUInt16BE(p.sequence & 0xffff, 2);
  out.writeUInt32BE(p.timestamp >>> 0, 4);
  out.writeUInt32BE(p.ssrc >>> 0, 8);
  p.payload.copy(out, 12);
  return out;
}

/** Decodes an RTP packet (CSRCs, extension and padding honoured); undefined when malformed. */
export function decodeRtp(data: Buffer): RtpPacket | undefined {
  if (data.length < 12) return undefined;
  const b0 = data[0]!;
  if (b0 >> 6 !== RTP_VERSION) return undefined;
  const payloadType = data[1]! & 0x7f;
  // 72-76 would be RTCP SR/RR/SDES/BYE/APP sharing the port (RFC 5761 §4): not RTP.
  if (payloadType >= 72 && payloadType <= 76) return undefined;
  let offset = 12 + 4 * (b0 & 0x0f);
  if (offset > data.length) return undefined;
  if (b0 & 0x10) {
    if (offset + 4 > data.length) return undefined;
    offset += 4 + 4 * data.readUInt16BE(offset + 2);
    if (offset > data.length) return undefined;
  }
  let end = data.length;
  if (b0 & 0x20) {
    const pad = data[data.length - 1]!;
    if (pad === 0 || end - pad < offset) return undefined;
    end -= pad;
  }
  return {
    payloadType,
    marker: (data[1]! & 0x80) !== 0,
    sequence: data.readUInt16BE(2),
    timestamp: data.readUInt32BE(4),
    ssrc: data.readUInt32BE(8),
    payload: data.subarray(offset, end),
  };
}

/** One reception report block (RFC 3550 §6.4.1). */
export interface ReportBlock {
  ssrc: number;
  /** Fraction lost since the previous report, 0..1. */
  fractionLost: number;
  /** Cumulative packets lost (signed 24 bits: duplicates can make it negative). */
  cumulativeLost: number;
  highestSequence: number;
  /** Interarrival jitter in timestamp units. */
  jitter: number;
  lastSr: number;
  delaySinceLastSr: number;
}

/** One RTCP packet of a compound packet. */
export type RtcpPacket =
  | {
      type: "sr";
      ssrc: number;
      ntpSeconds: number;
      ntpFraction: number;
      rtpTimestamp: number;
      packetCount: number;
      octetCount: number;
      reports: ReportBlock[];
    }
  | { type: "rr"; ssrc: number; reports: ReportBlock[] }
  | { type: "bye"; ssrcs: number[] }
  | { type: "other"; packetType: number };

const RTCP_SR = 200;
const RTCP_RR = 201;
const RTCP_SDES = 202;
const RTCP_BYE = 203;

/** Decodes a compound RTCP packet (RFC 3550 §6.1); undefined when any part is malformed. */
export function decodeRtcp(data: Buffer): RtcpPacket[] | undefined {
  const packets: RtcpPacket[] = [];
  let offset = 0;
  while (offset < data.length) {
    if (offset + 4 > data.length) return undefined;
    const b0 = data[offset]!;
    if (b0 >> 6 !== RTP_VERSION) return undefined;
    const count = b0 & 0x1f;
    const packetType = data[offset + 1]!;
    const length = 4 * (data.readUInt16BE(offset + 2) + 1);
    if (offset + length > data.length) return undefined;
    const body = data.subarray(offset + 4, offset + length);
    // The first packet of a compound must be SR or RR (RFC 3550 §6.1).
    if (packets.length === 0 && packetType !== RTCP_SR && packetType !== RTCP_RR) return undefined;
    if (packetType === RTCP_SR) {
      if (body.length < 24 + 24 * count) return undefined;
      packets.push({
        type: "sr",
        ssrc: body.readUInt32BE(0),
        ntpSeconds: body.readUInt32BE(4),
        ntpFraction: body.readUInt32BE(8),
        rtpTimestamp: body.readUInt32BE(12),
        packetCount: body.readUInt32BE(16),
        octetCount: body.readUInt32BE(20),
        reports: readBlocks(body, 24, count),
      });
    } else if (packetType === RTCP_RR) {
      if (body.length < 4 + 24 * count) return undefined;
      packets.push({ type: "rr", ssrc: body.readUInt32BE(0), reports: readBlocks(body, 4, count) });
    } else if (packetType === RTCP_BYE) {
      if (body.length < 4 * count) return undefined;
      const ssrcs: number[] = [];
      for (let i = 0; i < count; i++) ssrcs.push(body.readUInt32BE(4 * i));
      packets.push({ type: "bye", ssrcs });
    } else {
      packets.push({ type: "other", packetType });
    }
    offset += length;
  }
  return packets.length > 0 ? packets : undefined;
}

function readBlocks(body: Buffer, start: number, count: number): ReportBlock[] {
  const blocks: ReportBlock[] = [];
  for (let i = 0; i < count; i++) {
    const o = start + 24 * i;
    const lost = body.readUInt32BE(o + 4) & 0xffffff;
    blocks.push({
      ssrc: body.readUInt32BE(o),
      fractionLost: body[o + 4]! / 256,
      cumulativeLost: lost & 0x800000 ? lost - 0x1000000 : lost,
      highestSequence: body.readUInt32BE(o + 8),
      jitter: body.readUInt32BE(o + 12),
      lastSr: body.readUInt32BE(o + 16),
      delaySinceLastSr: body.readUInt32BE(o + 20),
    });
  }
  return blocks;
}

function writeBlocks(out: Buffer, start: number, blocks: readonly ReportBlock[]): void {
  blocks.forEach((b, i) => {
    const o = start + 24 * i;
    out.writeUInt32BE(b.ssrc >>> 0, o);
    const lost = Math.max(-0x800000, Math.min(0x7fffff, Math.round(b.cumulativeLost))) & 0xffffff;
    out.writeUInt32BE(lost, o + 4);
    out[o + 4] = Math.max(0, Math.min(255, Math.floor(b.fractionLost * 256)));
    out.writeUInt32BE(b.highestSequence >>> 0, o + 8);
    out.writeUInt32BE(Math.max(0, Math.round(b.jitter)) >>> 0, o + 12);
    out.writeUInt32BE(b.lastSr >>> 0, o + 16);
    out.writeUInt32BE(b.delaySinceLastSr >>> 0, o + 20);
  });
}

/** An RTCP SDES packet carrying only a CNAME (required in every compound, RFC 3550 §6.5). */
function encodeSdes(ssrc: number, cname: string): Buffer {
  const text = Buffer.from(cname.slice(0, 255), "utf8").subarray(0, 255);
  const itemsLength = 4 + 2 + text.length + 1; // ssrc, type+len, text, END
  const padded = Math.ceil(itemsLength / 4) * 4;
  const out = Buffer.alloc(4 + padded);
  out[0] = (RTP_VERSION << 6) | 1;
  out[1] = RTCP_SDES;
  out.writeUInt16BE(out.length / 4 - 1, 2);
  out.writeUInt32BE(ssrc >>> 0, 4);
  out[8] = 1; // CNAME
  out[9] = text.length;
  text.copy(out, 10);
  return out;
}

/** A compound RR + SDES (RFC 3550 §6.4.2): what a receiver that sends no media reports. */
export function encodeReceiverReport(ssrc: number, reports: readonly ReportBlock[], cname: string): Buffer {
  const rr = Buffer.alloc(8 + 24 * reports.length);
  rr[0] = (RTP_VERSION << 6) | reports.length;
  rr[1] = RTCP_RR;
  rr.writeUInt16BE(rr.length / 4 - 1, 2);
  rr.writeUInt32BE(ssrc >>> 0, 4);
  writeBlocks(rr, 8, reports);
  return Buffer.concat([rr, encodeSdes(ssrc, cname)]);
}

/** Sender information of an SR. */
export interface SenderInfo {
  ntpSeconds: number;
  ntpFraction: number;
  rtpTimestamp: number;
  packetCount: number;
  octetCount: number;
}

/** A compound SR + SDES (RFC 3550 §6.4.1). */
export function encodeSenderReport(
  ssrc: number,
  info: SenderInfo,
  reports: readonly ReportBlock[],
  cname: string,
): Buffer {
  const sr = Buffer.alloc(28 + 24 * reports.length);
  sr[0] = (RTP_VERSION << 6) | reports.length;
  sr[1] = RTCP_SR;
  sr.writeUInt16BE(sr.length / 4 - 1, 2);
  sr.writeUInt32BE(ssrc >>> 0, 4);
  sr.writeUInt32BE(info.ntpSeconds >>> 0, 8);
  sr.writeUInt32BE(info.ntpFraction >>> 0, 12);
  sr.writeUInt32BE(info.rtpTimestamp >>> 0, 16);
  sr.writeUInt32BE(info.packetCount >>> 0, 20);
  sr.writeUInt32BE(info.octetCount >>> 0, 24);
  writeBlocks(sr, 28, reports);
  return Buffer.concat([sr, encodeSdes(ssrc, cname)]);
}

/** NTP timestamp (RFC 3550 §4) of a wall-clock time in ms. */
export function ntpTime(unixMs: number): { seconds: number; fraction: number } {
  const seconds = Math.floor(unixMs / 1000) + 2_208_988_800;
  const fraction = Math.floor(((unixMs % 1000) / 1000) * 2 ** 32);
  return { seconds: seconds >>> 0, fraction: fraction >>> 0 };
}

/**
 * RFC 3550 §6.4.1 / Appendix A.8 interarrival jitter, fed one packet at a time:
 * J(i) = J(i-1) + (|D(i-1,i)| - J(i-1)) / 16, in whatever unit the transit times are given.
 */
export class JitterEstimator {
  #previousTransit: number | undefined;
  #jitter = 0;

  /** Adds one packet's transit time (arrival minus send, any consistent unit). */
  add(transit: number): void {
    if (this.#previousTransit !== undefined) {
      const d = Math.abs(transit - this.#previousTransit);
      this.#jitter += (d - this.#jitter) / 16;
    }
    this.#previousTransit = transit;
  }

  /** The current estimate, in the unit of the transit times. */
  get value(): number {
    return this.#jitter;
  }
}
