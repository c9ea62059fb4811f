/**
 * LED backend `kernel`: the LED class devices the netprobe-leds overlay declares
 * (firmware/overlays/netprobe-leds.dts, `gpio-leds`), one per die, named
 * `netprobe:<red|green>:<led>`. Blinking is handed to the kernel's `timer` trigger and the STATUS
 * heartbeat to its `heartbeat` trigger, so the LEDs keep their pattern even if the service stalls
 * (a frozen panel would lie; a blinking one at least keeps saying what was last known).
 */
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "../../../contract/src/log.ts";
import type { LedSink } from "../service.ts";
import { GpioUnavailableError } from "./gpio-chip.ts";
import { blinkHalfPeriod, channelsOf, type BlinkTiming } from "./led-pattern.ts";
import { OFF, PANEL, type PanelLooks } from "../../../contract/src/led-table.ts";

/** Where the kernel's LED class lives. */
export const LEDS_SYSFS = "/sys/class/leds";

/** Name of one die's LED class device (the overlay's `label`). */
export function kernelLedName(led: string, colour: "red" | "green"): string {
  return `netprobe:${colour}:${led}`;
}

/** What one die is set to. */
type DieMode =
  | { trigger: "none"; on: boolean }
  | { trigger: "timer"; onMs: number; offMs: number }
  | { trigger: "heartbeat" };

/** Settings of the kernel backend. */
export interface KernelLedsOptions {
  blink: BlinkTiming;
  /** LED class root (tests: a sysfs-shaped directory). */
  root?: string;
  log: Logger;
}

/** Checks every die's LED class device exists; throws naming the first that does not. */
export function openKernelLeds(o: KernelLedsOptions): KernelLeds {
  const root = o.root ?? LEDS_SYSFS;
  for (const led of PANEL) {
    for (const colour of ["red", "green"] as const) {
      const dir = join(root, kernelLedName(led, colour));
      try {
        statSync(join(dir, "brightness"));
      } catch {
        throw new GpioUnavailableError(
          `no LED class device ${dir} for the ${colour} die of ${led.toUpperCase()} ` +
            "(is dtoverlay=netprobe-leds in config.txt?)",
        );
      }
    }
  }
  const leds = new KernelLeds(root, o);
  leds.show(Object.fromEntries(PANEL.map((l) => [l, OFF])) as PanelLooks);
  return leds;
}

/** The LED class driver; create it with {@link openKernelLeds}. */
export class KernelLeds implements LedSink {
  readonly #root: string;
  readonly #blink: BlinkTiming;
  readonly #log: Logger;
  readonly #modes = new Map<string, DieMode>();
  readonly #max = new Map<string, string>();
  #stopped = false;

  constructor(root: string, o: KernelLedsOptions) {
    this.#root = root;
    this.#blink = o.blink;
    this.#log = o.log;
  }

  show(leds: PanelLooks): void {
    if (this.#stopped) return;
    for (const led of PANEL) {
      const look = leds[led] ?? OFF;
      const on = channelsOf(look.colour);
      const half = blinkHalfPeriod(look, this.#blink);
      for (const colour of ["red", "green"] as const) {
        let mode: DieMode;
        if (!on[colour]) mode = { trigger: "none", on: false };
        else if (look.pattern === "heartbeat") mode = { trigger: "heartbeat" };
        else if (half !== undefined) mode = { trigger: "timer", onMs: half, offMs: half };
        else mode = { trigger: "none", on: true };
        this.#set(kernelLedName(led, colour), mode);
      }
    }
  }

  describe(): { backend: string; problem: string | null } {
    return { backend: "kernel", problem: null };
  }

  /** Clean shutdown: no trigger, brightness 0 on every die (the "service stopped" look). */
  stop(): void {
    for (const led of PANEL) {
      for (const colour of ["red", "green"] as const)
        this.#set(kernelLedName(led, colour), { trigger: "none", on: false });
    }
    this.#stopped = true;
  }

  #set(name: string, mode: DieMode): void {
    const was = this.#modes.get(name);
    if (was && JSON.stringify(was) === JSON.stringify(mode)) return;
    const dir = join(this.#root, name);
    try {
      switch (mode.trigger) {
        case "none":
          // Writing the trigger first stops a running timer; brightness then holds.
          writeFileSync(join(dir, "trigger"), "none");
          writeFileSync(join(dir, "brightness"), mode.on ? this.#maxBrightness(name) : "0");
          break;
        case "timer":
          // The kernel creates delay_on/delay_off when the timer trigger is set (500 ms each).
          writeFileSync(join(dir, "trigger"), "timer");
          writeFileSync(join(dir, "delay_on"), String(mode.onMs));
          writeFileSync(join(dir, "delay_off"), String(mode.offMs));
          break;
        case "heartbeat":
          writeFileSync(join(dir, "trigger"), "heartbeat");
          break;
      }
      this.#modes.set(name, mode);
    } catch (err) {
      this.#modes.delete(name);
      this.#log.warn({ led: name, err: String(err) }, "led class write failed");
    }
  }

  #maxBrightness(name: string): string {
    let max = this.#max.get(name);
    if (max === undefined) {
      try {
        max = readFileSync(join(this.#root, name, "max_brightness"), "utf8").trim() || "1";
      } catch {
        max = "1";
      }
      this.#max.set(name, max);
    }
    return max;
  }
}
