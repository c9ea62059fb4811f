import { describe, expect, it } from "vitest";
import { formatByteSize, parseByteSize } from "../../../services/probe/src/config/byte-size.ts";
import { formatDuration, parseDuration } from "../../../services/probe/src/config/duration.ts";

describe("durations", () => {
  it.each([
    ["500ms", 500],
    ["30s", 30_000],
    ["5m", 300_000],
    ["1h", 3_600_000],
    ["1m30s", 90_000],
    ["1h0m5s", 3_605_000],
    ["0.5s", 500],
    ["0.1s", 100],
    [30, 30_000],
    [0.25, 250],
    ["30", 30_000],
    ["0s", 0],
  ] as const)("%j is %d ms", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(["", "s", "30 s", "30sec", "-5s", "1d", "5 m", "1.5.2s", "1e3s", "ms"])(
    "%j is not a duration",
    (text) => {
      expect(parseDuration(text)).toBeUndefined();
    },
  );

  it("refuses sub-millisecond precision and negative or non-finite numbers", () => {
    expect(parseDuration("1.0005s")).toBeUndefined();
    expect(parseDuration(-1)).toBeUndefined();
    expect(parseDuration(Number.NaN)).toBeUndefined();
    expect(parseDuration(true)).toBeUndefined();
  });

  it("reads a duration too long to count in ms as Infinity, so a limit rejects it", () => {
    expect(parseDuration("99999999999999h")).toBe(Number.POSITIVE_INFINITY);
    expect(parseDuration(1e308)).toBe(Number.POSITIVE_INFINITY);
  });

  it("formats the way a person writes them", () => {
    expect([0, 1, 500, 1000, 90_000, 3_600_000, 86_400_000, 3_605_000].map(formatDuration)).toEqual([
      "0s",
      "1ms",
      "500ms",
      "1s",
      "1m30s",
      "1h",
      "24h",
      "1h5s",
    ]);
  });
});

describe("byte sizes", () => {
  it.each([
    [67_108_864, 67_108_864],
    ["64MiB", 67_108_864],
    ["512KiB", 524_288],
    ["1GiB", 1_073_741_824],
    ["1.5GiB", 1_610_612_736],
    ["100B", 100],
    ["100", 100],
    ["64 MiB", 67_108_864],
  ] as const)("%j is %d bytes", (text, bytes) => {
    expect(parseByteSize(text)).toBe(bytes);
  });

  it.each(["64MB", "64mb", "1GB", "-1", "MiB", "", "1.5", 1.5, -1])("%j is not a size", (text) => {
    expect(parseByteSize(text)).toBeUndefined();
  });

  it("formats with the largest unit that divides", () => {
    expect([67_108_864, 1_572_864, 1000, 1024 ** 4].map(formatByteSize)).toEqual([
      "64MiB",
      "1536KiB",
      "1000B",
      "1024GiB",
    ]);
  });
});
