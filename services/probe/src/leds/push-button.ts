/**
 * The push button: a GPIO input (to ground, pull-up set in config.txt, so onoff reads it active
 * low), watched through onoff's edge interrupts (epoll on the value file) with its debounce. A
 * short press runs every check now; holding it for `longPressMs` starts the lamp test at once,
 * while still held, so the technician sees it happen.
 */
import type { Logger } from "../../../contract/src/log.ts";
import type { GpioLine } from "./gpio-lines.ts";

/** What the button does. */
export interface ButtonHandlers {
  short(): void;
  long(): void;
}

/** Button timing. */
export interface PushButtonOptions {
  longPressMs: number;
  /** Polling period when the line has no edge interrupts (0: never poll). */
  pollMs?: number;
  now?: () => number;
}

/** A debounced press/release decoder on one input line. */
export class PushButton {
  readonly #line: GpioLine;
  readonly #o: Required<PushButtonOptions>;
  readonly #log: Logger;
  #handlers: ButtonHandlers | undefined;
  #pressed = false;
  #longFired = false;
  #longTimer: NodeJS.Timeout | undefined;
  #poll: NodeJS.Timeout | undefined;
  #lastSample: 0 | 1 = 0;
  /** How the line is watched, for logs and tests. */
  mode: "edge" | "poll" | "stopped" = "stopped";

  constructor(line: GpioLine, o: PushButtonOptions, log: Logger) {
    this.#line = line;
    this.#o = { pollMs: 20, now: Date.now, ...o };
    this.#log = log;
  }

  /** Sets what a press does (the service exists only after the hardware is opened). */
  setHandlers(h: ButtonHandlers): void {
    this.#handlers = h;
  }

  start(): void {
    this.#lastSample = this.#line.readSync();
    this.#pressed = this.#lastSample === 1;
    try {
      this.#line.watch((err, value) => {
        if (err) this.#log.warn({ err: String(err) }, "button read failed");
        else this.level(value);
      });
      this.mode = "edge";
    } catch (err) {
      // Some GPIOs have no interrupt (no `edge` file, onoff#77); epoll then refuses the value file.
      if (this.#o.pollMs <= 0) throw err;
      // onoff registered the listener before epoll refused: drop it (its epoll removal throws too,
      // after the list is emptied), so unexport() later does not trip over it.
      try {
        this.#line.unwatchAll();
      } catch {
        // expected: the fd was never added to epoll
      }
      this.#log.warn({ err: String(err), poll_ms: this.#o.pollMs }, "button: no edge interrupts, polling");
      this.mode = "poll";
      this.#poll = setInterval(() => this.#sample(), this.#o.pollMs);
    }
  }

  /** Feeds one debounced level (1 = pressed). */
  level(value: 0 | 1): void {
    if (value === 1 && !this.#pressed) {
      this.#pressed = true;
      this.#longFired = false;
      this.#longTimer = setTimeout(() => {
        this.#longFired = true;
        this.#log.info("button held: lamp test");
        this.#handlers?.long();
      }, this.#o.longPressMs);
    } else if (value === 0 && this.#pressed) {
      this.#pressed = false;
      clearTimeout(this.#longTimer);
      if (!this.#longFired) {
        this.#log.info("button pressed: running every check now");
        this.#handlers?.short();
      }
    }
  }

  // Polling debounces by taking a level only when two samples in a row agree.
  #sample(): void {
    let v: 0 | 1;
    try {
      v = this.#line.readSync();
    } catch {
      return;
    }
    if (v === this.#lastSample) this.level(v);
    this.#lastSample = v;
  }

  /** Stops watching and releases the line. */
  stop(): void {
    clearTimeout(this.#longTimer);
    clearInterval(this.#poll);
    try {
      if (this.mode === "edge") this.#line.unwatchAll();
      this.#line.unexport();
    } catch (err) {
      this.#log.warn({ err: String(err) }, "could not release the button gpio");
    }
    this.mode = "stopped";
  }
}
