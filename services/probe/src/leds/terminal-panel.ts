import type { Area } from "../checks/check.ts";
import type { LedSink } from "../service.ts";
import { PANEL, type LedColour, type LedLook, type LedPattern } from "../../../contract/src/led-table.ts";

const ANSI: Record<LedColour, string> = {
  off: "\x1b[90m",
  green: "\x1b[32m",
  amber: "\x1b[33m",
  red: "\x1b[31m",
};
const RESET = "\x1b[0m";

/**
 * A look drawn as what it is, never as the phase a blink happens to be in at the moment of drawing
 * (a screen redrawn twice a second would show a blinking red LED as off every other time, and a
 * snapshot of `netprobe status` could catch it dark): one glyph per pattern, and the pattern named.
 */
const GLYPH: Record<LedPattern, string> = {
  solid: "●",
  heartbeat: "♥",
  "slow-blink": "◐",
  blink: "◐",
  "fast-blink": "◐",
};
const PATTERN_LABEL: Record<LedPattern, string> = {
  solid: "",
  heartbeat: " heartbeat",
  "slow-blink": " slow blink",
  blink: " blinking",
  "fast-blink": " fast blink",
};

/** One LED as text, e.g. `● LINK`, `◐ DNS(red blinking)`; ANSI-coloured when `colour` is set. */
export function renderLed(name: string, look: LedLook, colour = true): string {
  if (look.colour === "off")
    return colour ? `${ANSI.off}○ ${name.toUpperCase()}${RESET}` : `○ ${name.toUpperCase()}(off)`;
  const label = `${GLYPH[look.pattern]} ${name.toUpperCase()}`;
  const how = `${look.colour}${PATTERN_LABEL[look.pattern]}`;
  if (!colour) return `${label}(${how})`;
  return look.pattern === "solid"
    ? `${ANSI[look.colour]}${label}${RESET}`
    : `${ANSI[look.colour]}${label}${RESET}${ANSI.off}${PATTERN_LABEL[look.pattern]}${RESET}`;
}

/** One line of the panel, e.g. `● LINK  ◐ LAN blinking ...`, coloured when `colour` is set. */
export function renderPanel(leds: Partial<Record<Area | "status", LedLook>>, colour = true): string {
  return PANEL.map((name) => renderLed(name, leds[name] ?? { colour: "off", pattern: "solid" }, colour)).join(
    "  ",
  );
}

/** LED backend that redraws the panel on one terminal line (lab and console technicians). */
export class TerminalPanel implements LedSink {
  readonly #out: NodeJS.WriteStream;
  #last = "";

  constructor(out: NodeJS.WriteStream = process.stdout) {
    this.#out = out;
  }

  show(leds: Record<Area | "status", LedLook>): void {
    if (!this.#out.isTTY) {
      // Not a terminal (journal, pipe): print only changes, without escape codes.
      const line = renderPanel(leds, false);
      if (line !== this.#last) this.#out.write(line + "\n");
      this.#last = line;
      return;
    }
    this.#out.write(`\r${renderPanel(leds)}\x1b[K`);
  }

  describe(): { backend: string; problem: string | null } {
    return { backend: "terminal", problem: null };
  }

  /** Clean shutdown: the documented "service stopped" look (every LED dark), then a new line. */
  stop(): void {
    const dark = Object.fromEntries(PANEL.map((led) => [led, { colour: "off", pattern: "solid" }]));
    if (this.#out.isTTY) this.#out.write(`\r${renderPanel(dark)}\x1b[K\n`);
    else this.#out.write(renderPanel(dark, false) + "\n");
  }
}
