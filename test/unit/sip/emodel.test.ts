import { describe, expect, test } from "vitest";
import {
  burstRatio,
  CODEC_IMPAIRMENT,
  effectiveIe,
  mosFromR,
  oneWayDelayMs,
  rFactor,
} from "../../../services/probe/src/sip/emodel.ts";

const G711 = CODEC_IMPAIRMENT.PCMU;

describe("ITU-T G.107 E-model", () => {
  test("all defaults give R = 93.2 and MOS 4.41 (G.107 §7.3)", () => {
    const r = rFactor({ oneWayDelayMs: 0, lossPct: 0, codec: G711 });
    expect(r).toBeCloseTo(93.2, 1);
    expect(mosFromR(r)).toBeCloseTo(4.41, 2);
  });

  test("Ie,eff by hand: G.711 with PLC (Bpl 25.1) at 5 % random loss = 95 × 5 / 30.1", () => {
    expect(effectiveIe(G711, 5)).toBeCloseTo((95 * 5) / 30.1, 6);
    expect(effectiveIe(CODEC_IMPAIRMENT.G729, 0)).toBe(11);
  });

  test("delay below 100 ms costs little, above 177 ms a lot; loss costs more than delay", () => {
    const at = (t: number, loss = 0) => rFactor({ oneWayDelayMs: t, lossPct: loss, codec: G711 });
    expect(at(0) - at(80)).toBeLessThan(3);
    expect(at(150) - at(300)).toBeGreaterThan(15);
    expect(at(50, 5)).toBeLessThan(at(150));
  });

  test("MOS mapping (G.107 B-4) is bounded and monotonic", () => {
    expect(mosFromR(-5)).toBe(1);
    expect(mosFromR(120)).toBe(4.5);
    expect(mosFromR(50)).toBeCloseTo(2.58, 2);
    for (let r = 1; r <= 100; r++) expect(mosFromR(r)).toBeGreaterThanOrEqual(mosFromR(r - 1));
    for (let r = 7; r <= 100; r++) expect(mosFromR(r)).toBeGreaterThan(mosFromR(r - 1));
  });

  test("burst ratio: 1 for isolated losses, above 1 when losses cluster", () => {
    const isolated = Array.from({ length: 100 }, (_, i) => i % 10 !== 5);
    const clustered = Array.from({ length: 100 }, (_, i) => !(i >= 40 && i < 50));
    expect(burstRatio(isolated)).toBeCloseTo(1 / (10 / 90 + 1), 1);
    expect(burstRatio(clustered)).toBeGreaterThan(5);
    expect(burstRatio([true, true, true])).toBe(1);
  });

  test("mouth-to-ear delay: RTT/2 + one packet + a jitter buffer of 2 × jitter (at least a packet)", () => {
    expect(oneWayDelayMs(40, 0, 20)).toBe(60);
    expect(oneWayDelayMs(40, 30, 20)).toBe(100);
  });
});
