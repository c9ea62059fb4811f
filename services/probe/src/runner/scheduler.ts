import type { Area, CheckContext, CheckKind, Measurement } from "../checks/check.ts";
import { runInCheck } from "../crash-guard.ts";
import type { Logger } from "../../../contract/src/log.ts";
import { monoMs } from "./clock.ts";

/** One configured check as the scheduler needs it. */
export interface ScheduledCheck {
  name: string;
  kind: CheckKind;
  target: string;
  area: Area;
  intervalMs: number;
  timeoutMs: number;
  /** start jitter as a fraction of the interval */
  jitter: number;
  options: unknown;
  /** Per-check hysteresis override (config `fail_after`, else the kind's `failAfter`). */
  failAfter?: number;
  /** Per-check hysteresis override (config `recover_after`). */
  recoverAfter?: number;
}

/** One finished run, before thresholds and the envelope are applied. */
export interface Run {
  check: ScheduledCheck;
  startedAt: Date;
  monoMs: number;
  durationMs: number;
  measurement: Measurement;
}

// A check that ignores its AbortSignal gets this much extra time before the runner reports a
// timeout for it on its own and moves on.
const ABORT_GRACE_MS = 1000;
// A check that is not due (outside its windows) is asked again this often, so a window opening
// between two ticks of a long interval is not missed.
const NOT_DUE_RECHECK_MS = 60_000;

/**
 * Runs every check on its own interval with start jitter, a timeout through AbortSignal, and no
 * overlapping runs of the same check (a tick that finds the previous run still going is skipped).
 */
export class Scheduler {
  readonly #checks: readonly ScheduledCheck[];
  readonly #ctx: CheckContext;
  readonly #onRun: (run: Run) => void;
  readonly #log: Logger;
  readonly #timers = new Map<string, NodeJS.Timeout>();
  readonly #running = new Map<string, Promise<void>>();
  /** Checks whose watch asked for a run while one was going: run again as soon as it ends. */
  readonly #rerun = new Set<string>();
  readonly #stop = new AbortController();

  constructor(checks: readonly ScheduledCheck[], ctx: CheckContext, onRun: (run: Run) => void, log: Logger) {
    this.#checks = checks;
    this.#ctx = ctx;
    this.#onRun = onRun;
    this.#log = log;
  }

  /** Schedules every check; the first run of each starts within its jitter window. */
  start(): void {
    for (const c of this.#checks) {
      const delay = Math.floor(Math.random() * c.jitter * c.intervalMs);
      this.#timers.set(
        c.name,
        setTimeout(() => this.#tick(c), delay),
      );
      this.#startWatch(c);
    }
  }

  #startWatch(c: ScheduledCheck): void {
    if (c.kind.watch === undefined) return;
    const watch = c.kind.watch.bind(c.kind);
    try {
      runInCheck(c.name, () =>
        watch(c.target, c.options, this.#ctx, this.#stop.signal, () => this.#launch(c, true)),
      );
    } catch (err) {
      this.#log.error({ check: c.name, err }, "check watch failed to start");
    }
  }

  /**
   * Runs one check (or every check) now, outside its schedule; skipped if it is already running.
   * A run of a check by name is on demand (CheckContext.onDemand); "every check" is not.
   */
  runNow(name?: string): string[] {
    const picked = this.#checks.filter((c) => name === undefined || c.name === name);
    for (const c of picked) this.#launch(c, false, name !== undefined);
    return picked.map((c) => c.name);
  }

  /** Aborts running checks and waits for them to report. */
  async stop(): Promise<void> {
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    this.#stop.abort();
    await Promise.allSettled(this.#running.values());
  }

  #tick(c: ScheduledCheck): void {
    if (this.#stop.signal.aborted) return;
    const due = c.kind.due?.(c.options, new Date()) ?? true;
    this.#timers.set(
      c.name,
      setTimeout(() => this.#tick(c), due ? c.intervalMs : Math.min(c.intervalMs, NOT_DUE_RECHECK_MS)),
    );
    if (due) this.#launch(c);
  }

  #launch(c: ScheduledCheck, queueIfRunning = false, onDemand = false): void {
    if (this.#stop.signal.aborted) return;
    if (this.#running.has(c.name)) {
      // A watched event (carrier lost) must not be lost to a run that started just before it.
      if (queueIfRunning) this.#rerun.add(c.name);
      else this.#log.warn({ check: c.name }, "previous run still going; skipping this one");
      return;
    }
    const p = this.#runOnce(c, onDemand).finally(() => {
      this.#running.delete(c.name);
      if (this.#rerun.delete(c.name)) this.#launch(c);
    });
    this.#running.set(c.name, p);
  }

  async #runOnce(c: ScheduledCheck, onDemand: boolean): Promise<void> {
    const startedAt = new Date();
    const t0 = monoMs();
    const signal = AbortSignal.any([AbortSignal.timeout(c.timeoutMs), this.#stop.signal]);
    const measurement = await measure(
      c,
      onDemand ? { ...this.#ctx, onDemand } : this.#ctx,
      signal,
      this.#log,
    );
    if (this.#stop.signal.aborted && measurement.status !== "ok") return; // shutting down: not a verdict
    try {
      this.#onRun({ check: c, startedAt, monoMs: t0, durationMs: round3(monoMs() - t0), measurement });
    } catch (err) {
      // Storing or publishing failed: that is the service's to report, not a reason to stop probing.
      this.#log.error({ check: c.name, err }, "handling a result failed");
    }
  }
}

/**
 * Runs one check once, for the scheduler and `netprobe check` alike. Never rejects: a throw, sync
 * or async, is a bug or a config error in the check and comes back as an `error` result with code
 * `internal` naming the check; a check that ignores its AbortSignal gets a timeout result after the
 * grace. The run and everything it schedules carry the check's name (see crash-guard.ts).
 */
export async function measure(
  c: Pick<ScheduledCheck, "name" | "kind" | "target" | "options" | "timeoutMs">,
  ctx: CheckContext,
  signal: AbortSignal,
  log: Logger,
): Promise<Measurement> {
  try {
    return await withDeadline(
      runInCheck(c.name, () => c.kind.run(c.target, c.options, ctx, signal)),
      c.timeoutMs + ABORT_GRACE_MS,
    );
  } catch (err) {
    log.error({ check: c.name, err }, "check threw");
    return {
      status: "error",
      metrics: {},
      error: {
        code: "internal",
        message: `check ${c.name} (${c.kind.kind}) failed inside the probe: ${errorMessage(err)}`,
      },
    };
  }
}

function withDeadline(run: Promise<Measurement>, ms: number): Promise<Measurement> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<Measurement>((resolve) => {
    timer = setTimeout(
      () =>
        resolve({
          status: "fail",
          metrics: {},
          error: { code: "timeout", message: `no result within the ${ms - ABORT_GRACE_MS} ms timeout` },
        }),
      ms,
    );
  });
  return Promise.race([run, deadline]).finally(() => clearTimeout(timer));
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function round3(v: number): number {
  return Math.round(v * 1000) / 1000;
}
