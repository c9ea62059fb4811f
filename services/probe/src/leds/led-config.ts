/**
 * Resolves the `leds` section of the config file: the board's default pins under the ones the
 * file sets, durations in ms, and the pin rules (a pin used twice, a pin the board does not have,
 * a reserved pin), each reported at its path naming the LED and the pin.
 */
import { LED_BACKENDS, LIMITS, type Config } from "../config/schema.ts";
import { BOARD_IDS, DEFAULT_PINS, pinProblems, type BoardId, type PinMap } from "./board-profiles.ts";
import { DEFAULT_BLINK } from "./led-pattern.ts";
import { PANEL, RECENT_CHANGE_MS } from "../../../contract/src/led-table.ts";

/** The parts of the config validator's reader this needs (paths are key lists from the root). */
export interface LedConfigReader {
  valid(path: string[]): unknown;
  add(path: string[], message: string): void;
  duration(path: string[], limits?: { min?: number; max?: number }): number | undefined;
}

/** `leds` of the loaded config, from the (defaulted, schema-checked) file. */
export function resolveLedConfig(r: LedConfigReader): Config["leds"] {
  const p = (...keys: string[]): string[] => ["leds", ...keys];
  const backendRaw = r.valid(p("backend"));
  const backend = LED_BACKENDS.find((b) => b === backendRaw) ?? "none";
  const boardRaw = r.valid(p("board"));
  const board: BoardId = BOARD_IDS.find((b) => b === boardRaw) ?? "auto";

  const pins: PinMap = structuredClone(DEFAULT_PINS);
  for (const led of PANEL) {
    for (const colour of ["red", "green"] as const) {
      const v = r.valid(p("pins", led, colour));
      if (typeof v === "number") pins[led][colour] = v;
    }
  }
  const buttonPin = r.valid(p("button", "pin"));
  const button = typeof buttonPin === "number" ? buttonPin : null;
  // Checked whatever the backend, so switching to gpio later cannot surprise anyone.
  for (const problem of pinProblems(board, pins, button)) r.add(p(...problem.path), problem.message);

  const ms = (path: string[], limits: { min: number; max: number }, fallback: number): number =>
    r.duration(p(...path), limits) ?? fallback;
  return {
    backend,
    board,
    pins,
    active_low: r.valid(p("active_low")) === true,
    recent_change_ms: ms(["recent_change"], LIMITS.led_recent_change_ms, RECENT_CHANGE_MS),
    lamp_test_ms: ms(["lamp_test"], LIMITS.led_lamp_test_ms, 3000),
    blink_ms: {
      slow: ms(["blink", "slow"], LIMITS.led_blink_ms, DEFAULT_BLINK.slow),
      normal: ms(["blink", "normal"], LIMITS.led_blink_ms, DEFAULT_BLINK.normal),
      fast: ms(["blink", "fast"], LIMITS.led_blink_ms, DEFAULT_BLINK.fast),
    },
    button: {
      pin: button,
      debounce_ms: ms(["button", "debounce"], LIMITS.button_debounce_ms, 20),
      long_press_ms: ms(["button", "long_press"], LIMITS.button_long_press_ms, 3000),
    },
  };
}
