/**
 * GPIO lines through `onoff` (legacy sysfs). onoff hard-codes /sys/class/gpio and, when it exports
 * a line itself, spins synchronously (up to 10,000 open() attempts) waiting for udev to fix the
 * permissions (raspberrypi/linux#553). So the export is done here first, asynchronously, under an
 * injectable sysfs root; onoff then finds the line already exported and only configures it.
 */
import { accessSync, constants, existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type * as Onoff from "onoff";
import { GPIO_SYSFS, GpioUnavailableError } from "./gpio-chip.ts";

/** The part of onoff's `Gpio` the LED and button drivers use (tests may pass a double). */
export interface GpioLine {
  readSync(): 0 | 1;
  writeSync(value: 0 | 1): void;
  watch(callback: (err: Error | null | undefined, value: 0 | 1) => void): void;
  unwatchAll(): void;
  unexport(): void;
}

/** How to open one line: onoff in production. */
export type GpioOpener = (
  gpio: number,
  direction: "low" | "in",
  edge: "none" | "both",
  options: { activeLow: boolean; debounceTimeout?: number },
) => GpioLine;

/** Opens lines with onoff (loaded on first use, so a probe without GPIO never loads its native part). */
export async function onoffOpener(): Promise<GpioOpener> {
  let mod: typeof Onoff;
  try {
    mod = await import("onoff");
  } catch (err) {
    throw new GpioUnavailableError(`cannot load onoff: ${err instanceof Error ? err.message : String(err)}`);
  }
  return (gpio, direction, edge, options) =>
    new mod.Gpio(gpio, direction, edge, { ...options, reconfigureDirection: true });
}

/**
 * Exports a sysfs GPIO (unless it already is) and waits until its value file can be opened for
 * writing: udev sets the permissions a moment after the kernel creates the files.
 */
export async function exportGpio(gpio: number, root: string = GPIO_SYSFS, timeoutMs = 3000): Promise<void> {
  const dir = join(root, `gpio${gpio}`);
  if (!existsSync(dir)) {
    try {
      writeFileSync(join(root, "export"), String(gpio));
    } catch (err) {
      // EBUSY: the line is claimed by a kernel driver (e.g. the gpio-leds overlay is loaded).
      const code = (err as NodeJS.ErrnoException).code;
      const why =
        code === "EBUSY"
          ? "it is in use by a kernel driver (is the netprobe-leds overlay loaded?)"
          : String(err);
      throw new GpioUnavailableError(`cannot export GPIO ${gpio} through ${root}/export: ${why}`);
    }
  }
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      accessSync(join(dir, "value"), constants.R_OK | constants.W_OK);
      return;
    } catch {
      if (Date.now() > until)
        throw new GpioUnavailableError(`${dir}/value did not become writable within ${timeoutMs} ms`);
      await sleep(5);
    }
  }
}
