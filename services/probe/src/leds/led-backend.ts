/**
 * Opens the LED backend the config names, and the push button. Missing hardware never stops the
 * service: when GPIO (or the LED class) is not there, the panel falls back to the terminal, the
 * reason is logged and reported in `health.leds.problem`.
 */
import type { Config } from "../config/schema.ts";
import type { Logger } from "../../../contract/src/log.ts";
import type { LedSink } from "../service.ts";
import { GPIO_SYSFS, resolveGpioChip, sysfsNumber } from "./gpio-chip.ts";
import { openGpioLeds } from "./gpio-leds.ts";
import { exportGpio, onoffOpener, type GpioOpener } from "./gpio-lines.ts";
import { LEDS_SYSFS, openKernelLeds } from "./kernel-leds.ts";
import type { PanelLooks } from "../../../contract/src/led-table.ts";
import { PushButton, type ButtonHandlers } from "./push-button.ts";
import { TerminalPanel } from "./terminal-panel.ts";

/** LED settings as loaded from the config. */
export type LedConfig = Config["leds"];

/** Where the hardware is and how to open GPIO lines; defaults are the real ones. */
export interface LedHardware {
  gpioRoot?: string;
  ledsRoot?: string;
  open?: GpioOpener;
  /** Terminal for the `terminal` backend and the fallback. */
  out?: NodeJS.WriteStream;
}

/** What the service gets: a panel, its health, and the button's hook. */
export interface LedBackend extends LedSink {
  describe(): { backend: string; problem: string | null };
  /** What a button press does; without a configured button this does nothing. */
  onButton(h: ButtonHandlers): void;
}

class NoLeds implements LedSink {
  show(): void {}
  stop(): void {}
  describe() {
    return { backend: "none", problem: null };
  }
}

class Backend implements LedBackend {
  readonly #sink: LedSink;
  readonly #button: PushButton | undefined;
  readonly #problems: string[];
  readonly #backend: string;

  constructor(sink: LedSink, backend: string, button: PushButton | undefined, problems: string[]) {
    this.#sink = sink;
    this.#backend = backend;
    this.#button = button;
    this.#problems = problems;
  }

  show(leds: PanelLooks): void {
    this.#sink.show(leds);
  }

  describe(): { backend: string; problem: string | null } {
    return { backend: this.#backend, problem: this.#problems.length ? this.#problems.join("; ") : null };
  }

  onButton(h: ButtonHandlers): void {
    this.#button?.setHandlers(h);
  }

  stop(): void {
    this.#button?.stop();
    this.#sink.stop();
  }
}

/** Opens the configured backend (falling back to the terminal) and the button, if any. */
export async function openLedBackend(cfg: LedConfig, log: Logger, hw: LedHardware = {}): Promise<LedBackend> {
  const problems: string[] = [];
  const gpioRoot = hw.gpioRoot ?? GPIO_SYSFS;
  let opener = hw.open;
  const getOpener = async (): Promise<GpioOpener> => (opener ??= await onoffOpener());
  const terminal = (): LedSink => new TerminalPanel(hw.out);

  let sink: LedSink;
  let backend: string = cfg.backend;
  try {
    switch (cfg.backend) {
      case "none":
        sink = new NoLeds();
        break;
      case "terminal":
        sink = terminal();
        break;
      case "gpio":
        sink = await openGpioLeds({
          board: cfg.board,
          pins: cfg.pins,
          activeLow: cfg.active_low,
          blink: cfg.blink_ms,
          root: gpioRoot,
          open: await getOpener(),
          log,
        });
        break;
      case "kernel":
        sink = openKernelLeds({ blink: cfg.blink_ms, root: hw.ledsRoot ?? LEDS_SYSFS, log });
        break;
    }
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    problems.push(`${cfg.backend} LEDs unavailable, showing the panel on the terminal: ${message}`);
    log.error(
      { backend: cfg.backend, err: message },
      "LED backend unavailable: falling back to the terminal panel",
    );
    sink = terminal();
    backend = "terminal";
  }

  let button: PushButton | undefined;
  if (cfg.button.pin !== null) {
    const pin = cfg.button.pin;
    try {
      const resolved = resolveGpioChip(cfg.board, gpioRoot);
      const gpio = sysfsNumber(resolved, pin, "leds.button.pin");
      await exportGpio(gpio, gpioRoot);
      const line = (await getOpener())(gpio, "in", "both", {
        activeLow: true,
        debounceTimeout: cfg.button.debounce_ms,
      });
      button = new PushButton(line, { longPressMs: cfg.button.long_press_ms }, log.child({ part: "button" }));
      button.start();
      log.info({ pin, gpio, mode: button.mode }, "push button ready");
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      problems.push(`push button on GPIO ${pin} unavailable: ${message}`);
      log.error({ pin, err: message }, "push button unavailable");
    }
  }
  return new Backend(sink, backend, button, problems);
}
