import type { Area } from "../checks/check.ts";
import type { AreaStateName } from "../contract/payloads.ts";

/** Colours of a bi-colour LED; amber is red and green together. */
export type LedColour = "off" | "green" | "amber" | "red";
/** How an LED is lit. */
export type LedPattern = "solid" | "slow-blink" | "blink" | "fast-blink" | "heartbeat";

/** What one LED shows. */
export interface LedLook {
  colour: LedColour;
  pattern: LedPattern;
}

/** One row of the legend: the single table behind the code, the docs and the printable legend. */
export interface LegendRow {
  look: LedLook;
  meaning: string;
}

/** The panel's LEDs, left to right: one per area, then STATUS. */
export const PANEL: readonly (Area | "status")[] = ["link", "lan", "dhcp", "dns", "wan", "phone", "status"];

/** A failing area blinks for this long after it changed, so a technician sees what is new. */
export const RECENT_CHANGE_MS = 5 * 60_000;

/** Area LED legend (DESIGN.md §6). */
export const AREA_LEGEND: Record<AreaStateName | "failing-recent", LegendRow> = {
  ok: { look: { colour: "green", pattern: "solid" }, meaning: "all checks of the area pass" },
  degraded: {
    look: { colour: "amber", pattern: "solid" },
    meaning: "degraded: a warning threshold is crossed",
  },
  failing: { look: { colour: "red", pattern: "solid" }, meaning: "failing" },
  "failing-recent": {
    look: { colour: "red", pattern: "blink" },
    meaning: "failing, changed in the last 5 minutes",
  },
  unknown: { look: { colour: "green", pattern: "slow-blink" }, meaning: "checking: no verdict yet" },
  off: { look: { colour: "off", pattern: "solid" }, meaning: "no check configured for this area" },
};

/** STATUS LED legend. */
export const STATUS_LEGEND = {
  healthy: {
    look: { colour: "green", pattern: "heartbeat" },
    meaning: "service running, headquarters reachable",
  },
  queuing: {
    look: { colour: "amber", pattern: "fast-blink" },
    meaning: "headquarters unreachable: results are queuing on the probe",
  },
  identify: { look: { colour: "amber", pattern: "blink" }, meaning: "identify requested by headquarters" },
} as const satisfies Record<string, LegendRow>;

/** What an area's LED shows for its state. */
export function areaLook(state: AreaStateName, sinceMs: number, nowMs: number): LedLook {
  if (state === "failing" && nowMs - sinceMs < RECENT_CHANGE_MS) return AREA_LEGEND["failing-recent"].look;
  return AREA_LEGEND[state].look;
}

/** What the STATUS LED shows. */
export function statusLook(uplinkConnected: boolean): LedLook {
  return (uplinkConnected ? STATUS_LEGEND.healthy : STATUS_LEGEND.queuing).look;
}

/** Compact name of a look for `health` and logs, e.g. `red-blink`, `green`. */
export function lookName(look: LedLook): string {
  return look.pattern === "solid" ? look.colour : `${look.colour}-${look.pattern}`;
}
