import { describe, expect, test } from "vitest";
import { mosFromR, pingMos, pingRFactor } from "../../../services/probe/src/checks/mos.ts";

// Values worked out by hand from the formula in checks/mos.ts (check_icmp's simplified E-model).
describe("ping MOS (simplified E-model)", () => {
  test("a clean LAN path: Le = 10 ms, R = 92.95, MOS ≈ 4.40", () => {
    expect(pingRFactor(0, 0, 0)).toBeCloseTo(92.95, 6);
    expect(pingMos(0, 0, 0)).toBeCloseTo(4.4044, 3);
  });

  test("past 160 ms of effective latency the R factor falls ten times faster", () => {
    // Le = 150 + 2×25 + 10 = 210 → R = 93.2 − (210 − 120)/10 = 84.2
    expect(pingRFactor(150, 25, 0)).toBeCloseTo(84.2, 6);
    expect(pingMos(150, 25, 0)).toBeCloseTo(4.1724, 3);
    // Just below the knee: Le = 150 → R = 93.2 − 3.75
    expect(pingRFactor(140, 0, 0)).toBeCloseTo(89.45, 6);
  });

  test("each percent of loss costs 2.5 R; R is clamped to [0, 100] and MOS to [1, 4.5]", () => {
    expect(pingRFactor(0, 0, 4)).toBeCloseTo(82.95, 6);
    expect(pingRFactor(0, 0, 50)).toBe(0);
    expect(mosFromR(0)).toBe(1);
    expect(mosFromR(-5)).toBe(1);
    expect(mosFromR(100)).toBe(4.5);
    expect(mosFromR(60)).toBeCloseTo(3.1, 6);
  });

  test("every packet lost (no RTT at all) scores 1", () => {
    expect(pingMos(undefined, undefined, 100)).toBe(1);
  });
});
