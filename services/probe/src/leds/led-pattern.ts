import type { LedColour, LedLook } from "../../../contract/src/led-table.ts";

/** Time on (and then off) of each blink pattern, in ms; `leds.blink` in the config. */
export interface BlinkTiming {
  slow: number;
  normal: number;
  fast: number;
}

/** The default blink timing: 1 s, 500 ms and 125 ms on, as much off. */
export const DEFAULT_BLINK: BlinkTiming = { slow: 1000, normal: 500, fast: 125 };

/**
 * The heartbeat is shaped like the kernel's `heartbeat` LED trigger at idle (two 70 ms beats in a
 * 1260 ms cycle, ledtrig-heartbeat.c), so STATUS looks the same on the GPIO and kernel backends.
 */
export const HEARTBEAT = { periodMs: 1260, edgesMs: [0, 70, 315, 385] } as const;

/** Half-period (time on = time off) of a blinking look, or undefined for solid and heartbeat. */
export function blinkHalfPeriod(look: LedLook, timing: BlinkTiming): number | undefined {
  switch (look.pattern) {
    case "slow-blink":
      return timing.slow;
    case "blink":
      return timing.normal;
    case "fast-blink":
      return timing.fast;
    case "solid":
    case "heartbeat":
      return undefined;
  }
}

/** Whether an LED with this look is lit at `nowMs` (every LED blinks in phase with the clock). */
export function litAt(look: LedLook, nowMs: number, timing: BlinkTiming = DEFAULT_BLINK): boolean {
  if (look.colour === "off") return false;
  if (look.pattern === "solid") return true;
  if (look.pattern === "heartbeat") {
    const t = nowMs % HEARTBEAT.periodMs;
    const [a, b, c, d] = HEARTBEAT.edgesMs;
    return (t >= a && t < b) || (t >= c && t < d);
  }
  const half = blinkHalfPeriod(look, timing) ?? 1;
  return Math.floor(nowMs / half) % 2 === 0;
}

/** When a look next turns on or off after `nowMs`; undefined when it never changes. */
export function nextChangeAt(
  look: LedLook,
  nowMs: number,
  timing: BlinkTiming = DEFAULT_BLINK,
): number | undefined {
  if (look.colour === "off" || look.pattern === "solid") return undefined;
  if (look.pattern === "heartbeat") {
    const cycle = nowMs - (nowMs % HEARTBEAT.periodMs);
    const t = nowMs - cycle;
    const next = HEARTBEAT.edgesMs.find((e) => e > t);
    return next === undefined ? cycle + HEARTBEAT.periodMs : cycle + next;
  }
  const half = blinkHalfPeriod(look, timing) ?? 1;
  return (Math.floor(nowMs / half) + 1) * half;
}

/** Which dies of a red/green LED are lit for a colour. */
export function channelsOf(colour: LedColour): { red: boolean; green: boolean } {
  return { red: colour === "red" || colour === "amber", green: colour === "green" || colour === "amber" };
}

/** Whether two looks are the same. */
export function sameLook(a: LedLook | undefined, b: LedLook | undefined): boolean {
  return a?.colour === b?.colour && a?.pattern === b?.pattern;
}
