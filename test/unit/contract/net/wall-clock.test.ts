// The monotonic → wall clock offset that turns pcap capture stamps into latencies (net/wall-clock.ts).
import { describe, expect, it, vi } from "vitest";
import { latencyFromWireMs, wallMinusMonoUs } from "../../../../services/contract/src/net/wall-clock.ts";

describe("wall clock offset", () => {
  it("agrees with Date.now() to within its millisecond, and with itself to a few microseconds", () => {
    const offsets = Array.from({ length: 20 }, () => wallMinusMonoUs());
    const nowUs = Number(process.hrtime.bigint()) / 1000 + offsets.at(-1)!;
    const dateUs = Date.now() * 1000;
    // Date.now() floors to the millisecond: the precise wall clock is at most 1 ms ahead of it.
    expect(nowUs - dateUs).toBeGreaterThan(-50);
    expect(nowUs - dateUs).toBeLessThan(1050);
    const sorted = [...offsets].sort((a, b) => a - b);
    // The median pair agrees to far better than the 1 ms Date.now() gives alone (a VM stall can spoil one).
    expect(sorted[14]! - sorted[5]!).toBeLessThan(50);
  });

  it("returns under fake timers, where neither clock moves (a bounded spin, not a timed one)", () => {
    vi.useFakeTimers();
    try {
      expect(Number.isFinite(wallMinusMonoUs())).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });

  it("a capture stamp inside [send, delivery] gives the wire latency; outside, the user-space one", () => {
    const offsetUs = 1_000_000;
    const sentAt = 5_000_000_000n; // 5 s on the monotonic clock = 5,000,000 µs + offset on the wall
    const frame = (deliveredMs: number, wireMs: number) => ({
      receivedAt: sentAt + BigInt(deliveredMs * 1e6),
      wireUs: 5_000_000 + offsetUs + wireMs * 1000,
    });
    expect(latencyFromWireMs(sentAt, offsetUs, frame(30, 1.5))).toEqual({ ms: 1.5, stamps: "wire" });
    expect(latencyFromWireMs(sentAt, offsetUs, frame(30, 31))).toEqual({ ms: 30, stamps: "user" });
    expect(latencyFromWireMs(sentAt, offsetUs, frame(30, -2))).toEqual({ ms: 30, stamps: "user" });
  });
});
