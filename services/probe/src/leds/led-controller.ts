/**
 * The LED state machine between the service and a backend: the service says what each LED should
 * show (from area states); the controller lays whole-panel patterns over that for a while — the
 * lamp test, `identify` — and restores the latest panel when they end. Backends only draw looks.
 */
import type { LedSink } from "../service.ts";
import { PANEL_LEGEND, uniformPanel, type PanelLooks } from "../../../contract/src/led-table.ts";

/** What the panel is doing. */
export type LedMode = "normal" | "lamp-test" | "identify" | "stopped";

/** Longest identify a command may ask for; longer requests are cut to it. */
export const MAX_IDENTIFY_MS = 10 * 60_000;

/** Controller timing. */
export interface LedControllerOptions {
  /** Whole lamp test; each colour shows for a third of it. 0: no lamp test. */
  lampTestMs: number;
}

/** Lays the lamp test and identify over the service's panel. */
export class LedController implements LedSink {
  readonly #sink: LedSink;
  readonly #o: LedControllerOptions;
  #wanted: PanelLooks | undefined;
  #mode: LedMode = "normal";
  #timers: NodeJS.Timeout[] = [];

  constructor(sink: LedSink, o: LedControllerOptions) {
    this.#sink = sink;
    this.#o = o;
  }

  /** What the panel is doing now. */
  get mode(): LedMode {
    return this.#mode;
  }

  /** The service's panel: drawn now, or kept until a lamp test or identify ends. */
  show(leds: PanelLooks): void {
    this.#wanted = leds;
    if (this.#mode === "normal") this.#sink.show(leds);
  }

  /** Every LED red, then green, then amber, for a third of `lampTestMs` each; then the panel. */
  lampTest(): void {
    if (this.#mode === "stopped" || this.#o.lampTestMs <= 0) return;
    this.#begin("lamp-test");
    const looks = PANEL_LEGEND["lamp-test"].looks;
    const step = this.#o.lampTestMs / looks.length;
    looks.forEach((look, i) => {
      if (i === 0) this.#sink.show(uniformPanel(look));
      else this.#timers.push(setTimeout(() => this.#sink.show(uniformPanel(look)), Math.round(step * i)));
    });
    this.#timers.push(setTimeout(() => this.#restore(), this.#o.lampTestMs));
  }

  /** Every LED blinks amber for `durationMs` (capped at {@link MAX_IDENTIFY_MS}); then the panel. */
  identify(durationMs: number): void {
    if (this.#mode === "stopped" || !(durationMs > 0)) return;
    this.#begin("identify");
    this.#sink.show(uniformPanel(PANEL_LEGEND.identify.looks[0]));
    this.#timers.push(setTimeout(() => this.#restore(), Math.min(durationMs, MAX_IDENTIFY_MS)));
  }

  describe(): { backend: string; problem: string | null } {
    return this.#sink.describe?.() ?? { backend: "unknown", problem: null };
  }

  /** Ends any pattern and stops the backend (which turns every LED off). */
  stop(): void {
    this.#clear();
    this.#mode = "stopped";
    this.#sink.stop();
  }

  #begin(mode: LedMode): void {
    this.#clear();
    this.#mode = mode;
  }

  #restore(): void {
    this.#clear();
    this.#mode = "normal";
    this.#sink.show(this.#wanted ?? uniformPanel(PANEL_LEGEND.stopped.looks[0]));
  }

  #clear(): void {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers = [];
  }
}
