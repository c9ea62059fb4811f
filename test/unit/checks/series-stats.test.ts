import { describe, expect, test } from "vitest";
import {
  interarrivalJitter,
  percentile,
  summarizeSeries,
} from "../../../services/probe/src/checks/series-stats.ts";

describe("percentile: linear interpolation between closest ranks (type 7)", () => {
  test("p50 of an even count is the mean of the two middle values", () => {
    expect(percentile([1, 2, 3, 4], 50)).toBe(2.5);
  });

  test("p50 of an odd count is the middle value", () => {
    expect(percentile([10, 11, 12, 13, 15], 50)).toBe(12);
  });

  test("p95 interpolates between the two highest ranks", () => {
    // rank = (5 − 1) × 0.95 = 3.8 → 13 + 0.8 × (15 − 13)
    expect(percentile([10, 11, 12, 13, 15], 95)).toBeCloseTo(14.6, 12);
    // rank = 99 × 0.95 = 94.05 over 1..100 → 95.05
    const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(hundred, 95)).toBeCloseTo(95.05, 12);
  });

  test("p0 and p100 are min and max; one value is every percentile", () => {
    expect(percentile([3, 5, 8], 0)).toBe(3);
    expect(percentile([3, 5, 8], 100)).toBe(8);
    expect(percentile([7], 95)).toBe(7);
  });

  test("rejects an empty series and out-of-range p", () => {
    expect(() => percentile([], 50)).toThrow(RangeError);
    expect(() => percentile([1], 101)).toThrow(RangeError);
    expect(() => percentile([1], Number.NaN)).toThrow(RangeError);
  });
});

describe("jitter: mean |RTT_i − RTT_(i−1)| (RFC 3550 §6.4.1 D, averaged)", () => {
  test("mean absolute difference of consecutive values", () => {
    // |12−10| + |11−12| + |15−11| + |13−15| = 2 + 1 + 4 + 2 = 9 over 4 differences
    expect(interarrivalJitter([10, 12, 11, 15, 13])).toBe(2.25);
  });

  test("a constant series has no jitter; a constant slope has its step as jitter", () => {
    expect(interarrivalJitter([5, 5, 5])).toBe(0);
    expect(interarrivalJitter([1, 2, 3, 4])).toBe(1);
  });

  test("undefined with fewer than two values", () => {
    expect(interarrivalJitter([])).toBeUndefined();
    expect(interarrivalJitter([4])).toBeUndefined();
  });

  test("is not the 1/16 running estimate, which a short series leaves biased low", () => {
    const series = [10, 20, 10, 20, 10];
    let running = 0;
    for (let i = 1; i < series.length; i++) {
      running += (Math.abs((series[i] ?? 0) - (series[i - 1] ?? 0)) - running) / 16;
    }
    expect(interarrivalJitter(series)).toBe(10);
    expect(running).toBeLessThan(2.5);
  });
});

describe("summarizeSeries", () => {
  test("min/avg/max/p50/p95/jitter of a scripted series, in send order", () => {
    expect(summarizeSeries([10, 12, 11, 15, 13])).toEqual({
      count: 5,
      min: 10,
      avg: 12.2,
      max: 15,
      p50: 12,
      p95: expect.closeTo(14.6, 12) as number,
      jitter: 2.25,
    });
  });

  test("does not reorder its input", () => {
    const series = [3, 1, 2];
    summarizeSeries(series);
    expect(series).toEqual([3, 1, 2]);
  });

  test("undefined for an empty series", () => {
    expect(summarizeSeries([])).toBeUndefined();
  });
});
