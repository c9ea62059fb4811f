/**
 * LED backend `gpio`: every die of every bi-colour LED on its own GPIO, driven through onoff. The
 * service blinks them: one timer, armed for the next edge of any blinking LED, writes only the
 * lines that change, so an idle panel costs nothing and every LED blinks in phase.
 */
import type { Logger } from "../../../contract/src/log.ts";
import type { LedSink } from "../service.ts";
import type { BoardId, PinMap } from "./board-profiles.ts";
import { GPIO_SYSFS, resolveGpioChip, sysfsNumber, type ResolvedChip } from "./gpio-chip.ts";
import { exportGpio, type GpioLine, type GpioOpener } from "./gpio-lines.ts";
import { channelsOf, litAt, nextChangeAt, type BlinkTiming } from "./led-pattern.ts";
import { OFF, PANEL, type LedLook, type PanelLed, type PanelLooks } from "../../../contract/src/led-table.ts";

/** Settings of the gpio backend. */
export interface GpioLedsOptions {
  board: BoardId;
  pins: PinMap;
  /** true when a line must go low to light its die (LEDs wired to 3.3 V, common anode). */
  activeLow: boolean;
  blink: BlinkTiming;
  /** GPIO sysfs root (tests: a sysfs-shaped directory). */
  root?: string;
  open: GpioOpener;
  log: Logger;
  now?: () => number;
}

interface Die {
  line: GpioLine;
  gpio: number;
  value: 0 | 1 | undefined;
}

/**
 * Resolves the header's controller, exports and opens every LED line (set low: dark); on any
 * failure releases what it opened and throws (GpioUnavailableError names the LED and pin).
 */
export async function openGpioLeds(o: GpioLedsOptions): Promise<GpioLeds> {
  const root = o.root ?? GPIO_SYSFS;
  const resolved = resolveGpioChip(o.board, root);
  const dies = new Map<string, Die>();
  try {
    for (const led of PANEL) {
      for (const colour of ["red", "green"] as const) {
        const bcm = o.pins[led][colour];
        const gpio = sysfsNumber(resolved, bcm, `leds.pins.${led}.${colour}`);
        await exportGpio(gpio, root);
        const line = o.open(gpio, "low", "none", { activeLow: o.activeLow });
        dies.set(`${led}.${colour}`, { line, gpio, value: 0 });
      }
    }
  } catch (err) {
    for (const d of dies.values()) release(d, o.log);
    throw err;
  }
  o.log.info(
    {
      chip: resolved.chip.name,
      label: resolved.chip.label,
      base: resolved.chip.base,
      board: resolved.board.id,
    },
    "gpio leds ready",
  );
  return new GpioLeds(dies, resolved, o);
}

function release(d: Die, log: Logger): void {
  try {
    d.line.writeSync(0);
    d.line.unexport();
  } catch (err) {
    log.warn({ gpio: d.gpio, err: String(err) }, "could not release gpio");
  }
}

/** The onoff LED driver; create it with {@link openGpioLeds}. */
export class GpioLeds implements LedSink {
  readonly #dies: Map<string, Die>;
  readonly #resolved: ResolvedChip;
  readonly #blink: BlinkTiming;
  readonly #log: Logger;
  readonly #now: () => number;
  #looks: Partial<PanelLooks> = {};
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(dies: Map<string, Die>, resolved: ResolvedChip, o: GpioLedsOptions) {
    this.#dies = dies;
    this.#resolved = resolved;
    this.#blink = o.blink;
    this.#log = o.log;
    this.#now = o.now ?? Date.now;
  }

  /** The controller in use, e.g. `gpiochip571 "pinctrl-rp1" base 571`. */
  get chip(): ResolvedChip {
    return this.#resolved;
  }

  show(leds: PanelLooks): void {
    if (this.#stopped) return;
    this.#looks = leds;
    this.#render();
  }

  describe(): { backend: string; problem: string | null } {
    return { backend: "gpio", problem: null };
  }

  /** Clean shutdown: every die dark (the "service stopped" look), every line unexported. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    for (const d of this.#dies.values()) release(d, this.#log);
    this.#dies.clear();
  }

  #render(): void {
    clearTimeout(this.#timer);
    const now = this.#now();
    let next = Infinity;
    for (const led of PANEL) {
      const look: LedLook = this.#looks[led] ?? OFF;
      const lit = litAt(look, now, this.#blink);
      const on = channelsOf(look.colour);
      this.#write(led, "red", lit && on.red);
      this.#write(led, "green", lit && on.green);
      next = Math.min(next, nextChangeAt(look, now, this.#blink) ?? Infinity);
    }
    if (next !== Infinity) this.#timer = setTimeout(() => this.#render(), Math.max(1, next - this.#now()));
  }

  #write(led: PanelLed, colour: "red" | "green", on: boolean): void {
    const d = this.#dies.get(`${led}.${colour}`);
    const value = on ? 1 : 0;
    if (!d || d.value === value) return;
    try {
      d.line.writeSync(value);
      d.value = value;
    } catch (err) {
      // Keep going: one bad line must not freeze the rest of the panel. Retried on the next change.
      d.value = undefined;
      this.#log.warn({ led, colour, gpio: d.gpio, err: String(err) }, "gpio write failed");
    }
  }
}
