// The STAMP test packet codec (net/stamp-packet.ts): round trips of both packet kinds, the field
// offsets RFC 8762 §4.2.1 / §4.3.1 fix, the Error Estimate, and 100,000 malformed replies through
// the decoder with the shared seeded PRNG: nothing throws, and what decodes is consistent.
import { describe, expect, test } from "vitest";
import {
  decodeErrorEstimate,
  decodeReflectorPacket,
  decodeSenderPacket,
  encodeErrorEstimate,
  encodeReflectorPacket,
  encodeSenderPacket,
  errorEstimateFor,
  errorEstimateMs,
  STAMP_BASE_BYTES,
  type ReflectorPacket,
} from "../../../../services/contract/src/net/stamp-packet.ts";
import { prng } from "../../../fixtures/prng.ts";

const T1 = Date.UTC(2026, 11, 3, 14, 0, 0) + 0.123456;

function reflectorPacket(): ReflectorPacket {
  return {
    sequence: 7,
    timestampMs: T1 + 10.5,
    errorEstimate: errorEstimateFor(0.001, true),
    receiveTimestampMs: T1 + 10.25,
    senderSequence: 9,
    senderTimestampMs: T1,
    senderErrorEstimate: errorEstimateFor(1, false),
    senderTtl: 61,
  };
}

describe("STAMP sender packet", () => {
  test("44 octets plus padding, fields at their RFC 8762 §4.2.1 offsets, MBZ zero", () => {
    const buf = encodeSenderPacket(
      { sequence: 0x01020304, timestampMs: T1, errorEstimate: errorEstimateFor(1, true) },
      20,
    );
    expect(buf.length).toBe(STAMP_BASE_BYTES + 20);
    expect(buf.readUInt32BE(0)).toBe(0x01020304);
    // NTP seconds since 1900 at offset 4.
    expect(buf.readUInt32BE(4)).toBe(Math.floor(T1 / 1000) + 2_208_988_800);
    expect(buf.readUInt16BE(12) & 0xc000).toBe(0x8000); // S = 1, Z = 0
    expect(buf.subarray(14).every((b) => b === 0)).toBe(true);
    const back = decodeSenderPacket(buf);
    expect(back.ok && back.packet.sequence).toBe(0x01020304);
    expect(back.ok && Math.abs(back.packet.timestampMs - T1)).toBeLessThan(1e-3);
  });

  test("shorter than 44 octets is rejected with a reason", () => {
    expect(decodeSenderPacket(Buffer.alloc(43))).toEqual({
      ok: false,
      reason: "43 octets, a STAMP test packet has at least 44",
    });
  });
});

describe("STAMP reflector packet", () => {
  test("round trip, same size as the request, fields at their RFC 8762 §4.3.1 offsets", () => {
    const p = reflectorPacket();
    const buf = encodeReflectorPacket(p, 64);
    expect(buf.length).toBe(64);
    expect(buf.readUInt32BE(0)).toBe(7);
    expect(buf.readUInt32BE(24)).toBe(9);
    expect(buf[40]).toBe(61);
    expect(buf.readUInt16BE(14)).toBe(0); // MBZ
    expect(buf.readUInt16BE(38)).toBe(0); // MBZ
    expect(buf.subarray(41).every((b) => b === 0)).toBe(true);
    const back = decodeReflectorPacket(buf);
    if (!back.ok) throw new Error(back.reason);
    expect(back.packet.sequence).toBe(7);
    expect(back.packet.senderSequence).toBe(9);
    expect(back.packet.senderTtl).toBe(61);
    for (const key of ["timestampMs", "receiveTimestampMs", "senderTimestampMs"] as const) {
      expect(Math.abs(back.packet[key] - p[key])).toBeLessThan(1e-3);
    }
    expect(back.packet.errorEstimate).toEqual(p.errorEstimate);
    expect(back.packet.senderErrorEstimate).toEqual(p.senderErrorEstimate);
  });

  test("never smaller than 44 octets, even for a short request", () => {
    expect(encodeReflectorPacket(reflectorPacket(), 10).length).toBe(44);
  });

  test("PTP timestamps (Z = 1) and unstamped replies are rejected", () => {
    const ptp = encodeReflectorPacket(reflectorPacket(), 44);
    ptp.writeUInt16BE(ptp.readUInt16BE(12) | 0x4000, 12);
    expect(decodeReflectorPacket(ptp)).toEqual({
      ok: false,
      reason: "the reflector uses PTP timestamps (Z bit set)",
    });
    const unstamped = encodeReflectorPacket(reflectorPacket(), 44);
    unstamped.fill(0, 16, 24);
    expect(decodeReflectorPacket(unstamped)).toEqual({
      ok: false,
      reason: "the reflector left its receive or transmit timestamp zero",
    });
  });
});

describe("Error Estimate (RFC 4656 §4.1.2)", () => {
  test("the chosen scale and multiplier cover the error, tightly", () => {
    for (const ms of [0.000001, 0.001, 1, 10, 999]) {
      const e = errorEstimateFor(ms, false);
      expect(errorEstimateMs(e)).toBeGreaterThanOrEqual(ms);
      expect(errorEstimateMs(e)).toBeLessThan(ms * 1.02 + 1e-6);
      expect(decodeErrorEstimate(encodeErrorEstimate(e))).toEqual(e);
    }
  });

  test("a multiplier of 0 is never written", () => {
    expect(
      encodeErrorEstimate({ synchronized: false, ptpFormat: false, scale: 0, multiplier: 0 }) & 0xff,
    ).toBe(1);
  });
});

describe("malformed replies (seeded fuzz)", () => {
  test("100,000 mutated and random datagrams: no throw, decoded fields consistent with the bytes", () => {
    const random = prng(0x57a3b);
    const seed = encodeReflectorPacket(reflectorPacket(), 60);
    let decoded = 0;
    const problems: string[] = [];
    for (let i = 0; i < 100_000; i++) {
      let buf: Buffer;
      const shape = random();
      if (shape < 0.3) {
        buf = Buffer.from(seed.subarray(0, Math.floor(random() * (seed.length + 1))));
      } else if (shape < 0.8) {
        buf = Buffer.from(seed);
        const flips = 1 + Math.floor(random() * 6);
        for (let f = 0; f < flips; f++) buf[Math.floor(random() * buf.length)] = Math.floor(random() * 256);
      } else {
        buf = Buffer.alloc(Math.floor(random() * 120));
        for (let b = 0; b < buf.length; b++) buf[b] = Math.floor(random() * 256);
      }
      const r = decodeReflectorPacket(buf);
      const s = decodeSenderPacket(buf);
      // Plain comparisons, one expect at the end: 100,000 expect() calls take seconds.
      if (s.ok !== buf.length >= 44)
        problems.push(`case ${i}: sender decode ok=${s.ok} for ${buf.length} octets`);
      if (!r.ok) {
        if (r.reason.length === 0) problems.push(`case ${i}: empty reason`);
        continue;
      }
      decoded++;
      const consistent =
        buf.length >= 44 &&
        r.packet.sequence === buf.readUInt32BE(0) &&
        r.packet.senderSequence === buf.readUInt32BE(24) &&
        Number.isFinite(r.packet.timestampMs) &&
        Number.isFinite(r.packet.receiveTimestampMs) &&
        !r.packet.errorEstimate.ptpFormat;
      if (!consistent) problems.push(`case ${i}: inconsistent decode ${buf.toString("hex")}`);
    }
    expect(problems.slice(0, 5)).toEqual([]);
    expect(decoded).toBeGreaterThan(30_000);
  });
});
