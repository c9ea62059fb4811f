// A Pi has no real-time clock: until NTP steps it, the wall clock may read 1970. Results carry
// boot_id + mono_ms; this watches the wall clock against CLOCK_MONOTONIC, and when it steps,
// the results of this boot still in the outbox get their started_at recomputed from mono_ms and
// the offset learned after the step, flagged `clock: "corrected"`. A result made while the wall
// clock reads before 2020 is flagged `clock: "unsynced"` (runner/result.ts), so none reaches HQ
// with such a timestamp unflagged.
import { monoMs } from "./clock.ts";

/** The two clocks a result is stamped with; injectable for tests. */
export interface Clock {
  /** Wall clock, ms since the epoch. */
  wallMs(): number;
  /** CLOCK_MONOTONIC, ms since boot. */
  monoMs(): number;
}

export const systemClock: Clock = { wallMs: () => Date.now(), monoMs };

/** A wall clock before this is not trusted (no RTC, not synced yet). */
export const TRUSTED_AFTER_MS = Date.UTC(2020, 0, 1);

/** A jump of the wall clock against the monotonic one larger than this is a step (NTP, manual). */
export const STEP_THRESHOLD_MS = 2000;

/** A detected step: the offset wall − mono before and after. */
export interface ClockStep {
  fromOffsetMs: number;
  toOffsetMs: number;
  /** Monotonic time when the step was seen. */
  atMonoMs: number;
}

/** The flag a result made at `wallMs` carries, if any. */
export function clockFlag(wallMs: number): "unsynced" | undefined {
  return wallMs < TRUSTED_AFTER_MS ? "unsynced" : undefined;
}

/** Compares the wall clock with the monotonic one at each sample; reports steps. */
export class ClockWatch {
  readonly #clock: Clock;
  readonly #thresholdMs: number;
  readonly #onStep: (step: ClockStep) => void;
  #offset: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(clock: Clock, onStep: (step: ClockStep) => void, thresholdMs = STEP_THRESHOLD_MS) {
    this.#clock = clock;
    this.#onStep = onStep;
    this.#thresholdMs = thresholdMs;
    this.#offset = clock.wallMs() - clock.monoMs();
  }

  /** Offset wall − mono as last sampled: wall time of a monotonic instant is mono + offset. */
  get offsetMs(): number {
    return this.#offset;
  }

  /** Takes one sample; returns the step if |Δwall − Δmono| exceeded the threshold since the last. */
  sample(): ClockStep | null {
    const mono = this.#clock.monoMs();
    const offset = this.#clock.wallMs() - mono;
    const prev = this.#offset;
    this.#offset = offset;
    if (Math.abs(offset - prev) <= this.#thresholdMs) return null;
    const step = { fromOffsetMs: prev, toOffsetMs: offset, atMonoMs: mono };
    this.#onStep(step);
    return step;
  }

  start(intervalMs = 1000): void {
    this.#timer = setInterval(() => this.sample(), intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

/** What a clock correction reads of a result: its boot, monotonic start and wall-clock start. */
export interface ClockStamp {
  boot_id?: unknown;
  mono_ms?: unknown;
  started_at?: unknown;
}

/**
 * The wall-clock start of a result after a step, recomputed from `mono_ms` and the offset learned
 * after the step; null when it needs none: another boot, started after the step, or a timestamp
 * already within the threshold of the corrected one. The one rule for results still being made
 * (runner/result.ts) and results already in the outbox ({@link correctResult}).
 */
export function correctedStart(
  r: ClockStamp,
  bootId: string,
  step: ClockStep,
  thresholdMs = STEP_THRESHOLD_MS,
): string | null {
  if (r.boot_id !== bootId || typeof r.mono_ms !== "number" || r.mono_ms > step.atMonoMs) return null;
  const corrected = r.mono_ms + step.toOffsetMs;
  const was = typeof r.started_at === "string" ? Date.parse(r.started_at) : NaN;
  if (Math.abs(was - corrected) <= thresholdMs) return null;
  return new Date(corrected).toISOString();
}

/** The corrected payload of one stored result after a step, or null when it needs none ({@link correctedStart}). */
export function correctResult(
  payload: string,
  bootId: string,
  step: ClockStep,
  thresholdMs = STEP_THRESHOLD_MS,
): string | null {
  let r: ClockStamp | null;
  try {
    r = JSON.parse(payload) as typeof r;
  } catch {
    return null;
  }
  // A row whose payload is JSON but not an object (`null`, a number) is not a result to correct.
  if (typeof r !== "object" || r === null) return null;
  const startedAt = correctedStart(r, bootId, step, thresholdMs);
  return startedAt === null ? null : JSON.stringify({ ...r, started_at: startedAt, clock: "corrected" });
}
