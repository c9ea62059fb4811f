import { monitorEventLoopDelay, type IntervalHistogram } from "node:perf_hooks";
import type { Logger } from "../../contract/src/log.ts";

/** Interval of the `runtime` log line; NETPROBE_RUNTIME_LOG_S overrides it (benchmarks, soak). */
export const RUNTIME_LOG_MS = Number(process.env.NETPROBE_RUNTIME_LOG_S ?? 60) * 1000;

/** One `runtime` log line: what a soak or a benchmark reads to see leaks and stalls. */
export interface RuntimeSample {
  rss_mb: number;
  heap_used_mb: number;
  loop_lag_p50_ms: number;
  loop_lag_p99_ms: number;
  loop_lag_max_ms: number;
  cpu_user_ms: number;
  cpu_system_ms: number;
  handles: number;
}

/** Timer period of the lag histogram. */
const LAG_RESOLUTION_MS = 10;

/**
 * Logs memory, CPU and event-loop lag (p50/p99/max over the interval) once per interval.
 *
 * Lag is how late the histogram's timer fired: node's monitorEventLoopDelay records the whole
 * time between two firings, so an idle loop reads the timer period itself (p50 ≈ 10 ms at a
 * 10 ms resolution); the period is subtracted here.
 */
export class RuntimeStats {
  readonly #log: Logger;
  readonly #intervalMs: number;
  #hist: IntervalHistogram | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(log: Logger, intervalMs: number = RUNTIME_LOG_MS) {
    this.#log = log;
    this.#intervalMs = intervalMs;
  }

  /** Starts sampling; does nothing for a non-positive interval. */
  start(): void {
    if (!(this.#intervalMs > 0)) return;
    this.#hist = monitorEventLoopDelay({ resolution: LAG_RESOLUTION_MS });
    this.#hist.enable();
    this.#timer = setInterval(() => this.#log.info({ runtime: this.sample() }, "runtime"), this.#intervalMs);
    this.#timer.unref();
  }

  /** Current figures; resets the lag histogram. */
  sample(): RuntimeSample {
    const mem = process.memoryUsage();
    const cpu = process.cpuUsage();
    const h = this.#hist;
    const ms = (ns: number) => Math.round(ns / 1e4) / 100;
    const lag = (ns: number) => Math.max(0, ms(ns - LAG_RESOLUTION_MS * 1e6));
    const s: RuntimeSample = {
      rss_mb: Math.round(mem.rss / 1e4) / 100,
      heap_used_mb: Math.round(mem.heapUsed / 1e4) / 100,
      loop_lag_p50_ms: h ? lag(h.percentile(50)) : 0,
      loop_lag_p99_ms: h ? lag(h.percentile(99)) : 0,
      loop_lag_max_ms: h ? lag(h.max) : 0,
      cpu_user_ms: Math.round(cpu.user / 1000),
      cpu_system_ms: Math.round(cpu.system / 1000),
      handles: process.getActiveResourcesInfo().length,
    };
    h?.reset();
    return s;
  }

  /** Stops sampling. */
  stop(): void {
    clearInterval(this.#timer);
    this.#hist?.disable();
  }
}
