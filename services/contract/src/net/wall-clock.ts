// The two clocks of a capture: process.hrtime (CLOCK_MONOTONIC) is what the probe stamps its own
// sends with; pcap stamps each frame with the kernel's CLOCK_REALTIME at arrival. To subtract one
// from the other a check needs their offset at that moment, to a microsecond — Date.now() alone
// is a millisecond clock. The offset moves only when the wall clock is stepped (NTP slews both
// clocks alike), so measuring it right before a timed send is enough.

/**
 * Longest spin for the next millisecond edge, in reads of both clocks (~40 ns each, so ~4 ms):
 * a stalled VM can miss an edge, and under fake timers neither clock moves. Counted, not timed,
 * for that reason; when it runs out we take what we have (good to a millisecond).
 */
const MAX_SPIN_READS = 100_000;

/**
 * Wall clock minus monotonic clock, in microseconds: `wallUs = monoNs / 1000 + offset`. Spins on
 * Date.now() until its millisecond ticks over (≤ 1 ms, 0.5 ms on average) and pairs the edge with
 * the hrtime read just before it, so the result is good to about a microsecond.
 */
export function wallMinusMonoUs(): number {
  const first = Date.now();
  for (let reads = 1; ; reads++) {
    const mono = process.hrtime.bigint();
    const wall = Date.now();
    if (wall !== first || reads >= MAX_SPIN_READS) return wall * 1000 - Number(mono) / 1000;
  }
}

/**
 * The median of `samples` wallMinusMonoUs() readings: one reading is off by the length of a
 * preemption that lands inside its spin (a tenth of a millisecond and more on a loaded VM), which
 * a one-way delay between two hosts (checks/stamp.ts) would carry in full.
 */
export function medianWallMinusMonoUs(samples: number): number {
  const readings = Array.from({ length: Math.max(1, samples) }, () => wallMinusMonoUs()).sort(
    (a, b) => a - b,
  );
  return readings[Math.floor(readings.length / 2)] ?? wallMinusMonoUs();
}

/**
 * The time from a send (hrtime, `sentAt`) to a frame's kernel capture stamp (`wireUs`), in ms:
 * the event loop's wake-up after the frame arrived is not in it. Falls back to `receivedAt` −
 * `sentAt` (user space) when the two clocks disagree — the wall clock was stepped in between, or
 * the stamp is not a kernel one: a capture stamp can only be earlier than the frame's delivery.
 */
export function latencyFromWireMs(
  sentAt: bigint,
  offsetUs: number,
  frame: { receivedAt: bigint; wireUs: number },
): { ms: number; stamps: "wire" | "user" } {
  const userMs = Number(frame.receivedAt - sentAt) / 1e6;
  const wireMs = (frame.wireUs - (Number(sentAt) / 1000 + offsetUs)) / 1000;
  // 0.05 ms of slack: the offset's own error and the µs resolution of the capture stamp.
  return wireMs >= 0 && wireMs <= userMs + 0.05
    ? { ms: wireMs, stamps: "wire" }
    : { ms: userMs, stamps: "user" };
}
