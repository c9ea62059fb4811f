import type { Area } from "./vocabulary.ts";
import type { AreaStateName } from "./payloads.ts";

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

/** One LED of the panel: an area's, or STATUS. */
export type LedName = Area | "status";

/** What every LED of the panel shows. */
export type PanelLooks = Record<LedName, LedLook>;

/** The panel's LEDs, left to right: one per area, then STATUS (the uplink area shows on STATUS). */
export const PANEL = [
  "link",
  "lan",
  "dhcp",
  "dns",
  "wan",
  "phone",
  "status",
] as const satisfies readonly LedName[];
/** One LED that exists on the panel. */
export type PanelLed = (typeof PANEL)[number];

/** A failing area blinks for this long after it changed, so a technician sees what is new. */
export const RECENT_CHANGE_MS = 5 * 60_000;

/** An unlit LED. */
export const OFF: LedLook = { colour: "off", pattern: "solid" };

/** Area LED legend (docs/architecture.md, "LEDs"). */
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
  // Red means trouble on every LED of the panel; the heartbeat says the service itself still runs.
  "store-trouble": {
    look: { colour: "red", pattern: "heartbeat" },
    meaning: "probing, but the probe's storage is in trouble (disk full, or in memory only)",
  },
  "store-trouble-queuing": {
    look: { colour: "red", pattern: "fast-blink" },
    meaning: "storage in trouble and headquarters unreachable: results are being lost",
  },
} as const satisfies Record<string, LegendRow>;

/**
 * Whole-panel patterns: they override what the areas show for a while. The lamp test lights every
 * LED in every colour (power-on, or a long press of the button) so a dead LED or a swapped wire is
 * seen at once; the service shows it before the first verdict, when nothing else is known yet.
 */
export const PANEL_LEGEND = {
  "lamp-test": {
    looks: [
      { colour: "red", pattern: "solid" },
      { colour: "green", pattern: "solid" },
      { colour: "amber", pattern: "solid" },
    ],
    meaning: "lamp test: at power-on, or the button held 3 s",
  },
  identify: {
    looks: [STATUS_LEGEND.identify.look],
    meaning: "identify: headquarters asks which probe this is",
  },
  stopped: {
    looks: [OFF],
    meaning: "the service is stopped, or the probe has no power",
  },
} as const satisfies Record<string, { looks: readonly LedLook[]; meaning: string }>;

/** What an area's LED shows for its state; a failure is "recent" for `recentMs` after it began. */
export function areaLook(
  state: AreaStateName,
  sinceMs: number,
  nowMs: number,
  recentMs: number = RECENT_CHANGE_MS,
): LedLook {
  if (state === "failing" && nowMs - sinceMs < recentMs) return AREA_LEGEND["failing-recent"].look;
  return AREA_LEGEND[state].look;
}

/** What the STATUS LED shows; `storeTrouble`: disk full, writes failing or a buffer in memory (health.store). */
export function statusLook(uplinkConnected: boolean, storeTrouble = false): LedLook {
  if (storeTrouble)
    return (uplinkConnected ? STATUS_LEGEND["store-trouble"] : STATUS_LEGEND["store-trouble-queuing"]).look;
  return (uplinkConnected ? STATUS_LEGEND.healthy : STATUS_LEGEND.queuing).look;
}

/** Compact name of a look for `health` and logs, e.g. `red-blink`, `green`. */
export function lookName(look: LedLook): string {
  return look.pattern === "solid" ? look.colour : `${look.colour}-${look.pattern}`;
}

/** Every LED of the panel showing the same look. */
export function uniformPanel(look: LedLook): PanelLooks {
  const out: Partial<PanelLooks> = {};
  for (const led of PANEL) out[led] = look;
  return { ...(out as PanelLooks), uplink: look };
}

const COLOURS: readonly LedColour[] = ["off", "green", "amber", "red"];
const PATTERNS: readonly LedPattern[] = ["solid", "slow-blink", "blink", "fast-blink", "heartbeat"];

/** The look a {@link lookName} names (`red-blink` → red, blink); undefined for anything else. */
export function parseLookName(name: string): LedLook | undefined {
  const dash = name.indexOf("-");
  const colour = (dash < 0 ? name : name.slice(0, dash)) as LedColour;
  const pattern = (dash < 0 ? "solid" : name.slice(dash + 1)) as LedPattern;
  return COLOURS.includes(colour) && PATTERNS.includes(pattern) ? { colour, pattern } : undefined;
}

/** How a look reads in words: `red, blinking`, `green`, `off`. */
export function describeLook(look: LedLook): string {
  const how: Record<LedPattern, string> = {
    solid: "",
    "slow-blink": ", slow blink",
    blink: ", blinking",
    "fast-blink": ", fast blink",
    heartbeat: ", heartbeat",
  };
  return look.colour === "off" ? "off" : `${look.colour}${how[look.pattern]}`;
}
