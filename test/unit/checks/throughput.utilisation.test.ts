// How busy the office is before a throughput test: byte counters of the interface over the last
// minute against the link's capacity, in the busier direction.
import { describe, expect, it } from "vitest";
import {
  BUSY_FRESH_SAMPLE_MS,
  BUSY_LOOKBACK_MS,
  baselineSample,
  utilisationPct,
  type CounterSample,
} from "../../../services/probe/src/checks/throughput.ts";

const s = (atMs: number, rxBytes: number, txBytes: number): CounterSample => ({ atMs, rxBytes, txBytes });

describe("utilisation", () => {
  it("is the busier direction's bits per second as a share of capacity", () => {
    // 60 s, 150 MB received = 20 Mbit/s; 15 MB sent = 2 Mbit/s; of 100 Mbit/s: 20 %.
    expect(utilisationPct(s(0, 0, 0), s(60_000, 150e6, 15e6), 100)).toBeCloseTo(20, 9);
    expect(utilisationPct(s(0, 0, 0), s(60_000, 15e6, 150e6), 100)).toBeCloseTo(20, 9);
    expect(utilisationPct(s(1000, 5, 5), s(3000, 5, 5), 1000)).toBe(0);
  });

  it("can exceed 100 % when the capacity given is below the interface's real rate", () => {
    expect(utilisationPct(s(0, 0, 0), s(1000, 25e6, 0), 100)).toBeCloseTo(200, 9);
  });

  it("is unknown when no time passed, a counter went backwards or the capacity is unknown", () => {
    expect(utilisationPct(s(1000, 0, 0), s(1000, 10, 10), 100)).toBeUndefined();
    expect(utilisationPct(s(0, 500, 0), s(1000, 100, 0), 100)).toBeUndefined(); // driver reload
    expect(utilisationPct(s(0, 0, 0), s(1000, 10, 10), 0)).toBeUndefined();
  });

  it("the baseline is the oldest sample within the last minute (plus one sampling period)", () => {
    const history = [0, 5_000, 10_000, 15_000, 70_000].map((t) => s(t, t, t));
    expect(baselineSample(history, 70_000)?.atMs).toBe(5_000);
    expect(baselineSample(history, 75_000)?.atMs).toBe(10_000);
    expect(baselineSample(history, 10_000 + BUSY_LOOKBACK_MS)?.atMs).toBe(5_000);
  });

  it("without a sample old enough there is no baseline: the check samples afresh", () => {
    expect(baselineSample([], 10_000)).toBeUndefined();
    expect(baselineSample([s(9_000, 0, 0)], 9_000 + BUSY_FRESH_SAMPLE_MS - 1)).toBeUndefined();
    expect(baselineSample([s(9_000, 0, 0)], 9_000 + BUSY_FRESH_SAMPLE_MS)?.atMs).toBe(9_000);
    expect(baselineSample([s(0, 0, 0)], 200_000)).toBeUndefined(); // all stale
  });
});
