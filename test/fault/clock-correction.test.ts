// Clock without RTC: the probe starts with its wall clock in 1970, NTP steps it forward; the
// results still in the outbox get started_at from boot_id + mono_ms and `clock: "corrected"`;
// none leaves with a pre-2020 timestamp unflagged. Injected clock, real store.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { ResultPayload } from "../../services/contract/src/payloads.ts";
import {
  ClockWatch,
  correctResult,
  TRUSTED_AFTER_MS,
  type Clock,
  type ClockStep,
} from "../../services/probe/src/runner/clock-sync.ts";
import { envelope } from "../../services/probe/src/runner/result.ts";
import type { Run } from "../../services/probe/src/runner/scheduler.ts";
import { Store } from "../../services/probe/src/store/store.ts";

const BOOT = "8c1d3f1e-0000-4000-8000-000000000001";
const NTP_TIME = Date.parse("2026-03-01T12:00:00Z");

/** A Pi just booted: wall clock at the epoch, monotonic from 5 s after boot; `step` is NTP. */
function fakeClock() {
  let mono = 5000;
  let wall = 0;
  const clock: Clock = { wallMs: () => wall, monoMs: () => mono };
  return {
    clock,
    advance: (ms: number) => {
      mono += ms;
      wall += ms;
    },
    step: (toWall: number) => {
      wall = toWall;
    },
    now: () => ({ wall, mono }),
  };
}

function runAt(wall: number, mono: number, seqName = "gw"): Run {
  return {
    check: { name: seqName, kind: { kind: "icmp" }, area: "lan", target: "192.0.2.1" },
    startedAt: new Date(wall),
    monoMs: mono,
    durationMs: 12,
    measurement: { status: "ok", metrics: { rtt_avg_ms: 1 } },
  } as unknown as Run;
}

const who = { site: "lab", probe: "probe-1", bootId: BOOT, version: "test" };

describe("clock without RTC", () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it("a result made while the wall clock reads 1970 is flagged unsynced; after 2020 it carries no flag", () => {
    const early = envelope(runAt(60_000, 65_000), {}, who);
    expect(early.started_at.startsWith("1970-")).toBe(true);
    expect(early.clock).toBe("unsynced");
    expect(envelope(runAt(NTP_TIME, 65_000), {}, who).clock).toBeUndefined();
  });

  it("a step is seen when wall and monotonic time disagree by more than 2 s, not on normal ticking", () => {
    const f = fakeClock();
    const steps: ClockStep[] = [];
    const watch = new ClockWatch(f.clock, (s) => steps.push(s));
    for (let i = 0; i < 10; i++) {
      f.advance(1000);
      watch.sample();
    }
    f.step(f.now().wall + 1500); // a slew-sized correction is not a step
    watch.sample();
    expect(steps).toEqual([]);
    f.step(NTP_TIME);
    f.advance(1000);
    const step = watch.sample();
    expect(step).not.toBeNull();
    expect(steps).toHaveLength(1);
    expect(step!.toOffsetMs).toBe(NTP_TIME + 1000 - f.now().mono);
  });

  it("after the step, undelivered results of this boot get started_at from mono_ms and the flag; others are untouched", () => {
    dir = mkdtempSync(join(tmpdir(), "np-clock-"));
    const store = new Store(join(dir, "p.db"), { maxRows: 1000, maxBytes: 1 << 20, reserveBytes: 0 });
    store.open();
    const f = fakeClock();
    const watch = new ClockWatch(f.clock, (step) => {
      store.rewriteUnsent("results/", (p) => correctResult(p, BOOT, step));
    });
    const put = (r: ResultPayload | Omit<ResultPayload, "seq">) =>
      store.appendResult(r.check, (seq) => ({
        message: {
          topic: `results/${r.check}`,
          payload: JSON.stringify({ ...r, seq }),
          qos: 1,
          retain: false,
          priority: 0,
        },
        summary: { ...r, seq },
      }));
    // Ten results in 1970, the first three delivered (acked) before NTP.
    const made: Array<{ mono: number }> = [];
    for (let i = 0; i < 10; i++) {
      f.advance(1000);
      watch.sample();
      const { wall, mono } = f.now();
      made.push({ mono });
      put(envelope(runAt(wall, mono), {}, who));
    }
    // A row of another boot (the previous power cycle) stays as it was.
    put({ ...envelope(runAt(30_000, 40_000, "old"), {}, who), boot_id: "another-boot" });
    const first = store.peek(0, 3);
    store.ack(first.map((r) => r.id));

    f.step(NTP_TIME);
    f.advance(500);
    expect(watch.sample()).not.toBeNull();
    const offset = watch.offsetMs;

    const rows = store.peek(0, 100).map((r) => JSON.parse(r.payload) as ResultPayload);
    const mine = rows.filter((r) => r.boot_id === BOOT);
    expect(mine).toHaveLength(7);
    for (const r of mine) {
      expect(r.clock).toBe("corrected");
      expect(Date.parse(r.started_at)).toBe(Math.round(r.mono_ms + offset));
      expect(Date.parse(r.started_at)).toBeGreaterThan(TRUSTED_AFTER_MS);
    }
    // In order, one second apart, ending just before the step.
    expect(mine.map((r) => r.mono_ms)).toEqual(made.slice(3).map((m) => m.mono));
    const other = rows.find((r) => r.boot_id === "another-boot")!;
    expect(other.started_at.startsWith("1970-")).toBe(true);
    expect(other.clock).toBe("unsynced");
    // Nothing in the outbox carries a pre-2020 time without a flag.
    for (const r of rows) if (Date.parse(r.started_at) < TRUSTED_AFTER_MS) expect(r.clock).toBeDefined();
    // The byte total follows the rewritten payloads.
    const bytes = store.peek(0, 100).reduce((n, r) => n + Buffer.byteLength(r.payload), 0);
    expect(store.stats().bytes).toBe(bytes);
    store.close();
  });
});
