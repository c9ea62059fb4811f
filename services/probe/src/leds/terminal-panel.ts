import type { Area } from "../checks/check.ts";
import type { LedSink } from "../service.ts";
import { litAt } from "./led-pattern.ts";
import { PANEL, type LedColour, type LedLook } from "./led-table.ts";

const ANSI: Record<LedColour, string> = {
  off: "\x1b[90m",
  green: "\x1b[32m",
  amber: "\x1b[33m",
  red: "\x1b[31m",
};
const RESET = "\x1b[0m";
/** One line of the panel, e.g. `● LINK  ● LAN ...`, coloured when `colour` is set. */
export function renderPanel(
  leds: Partial<Record<Area | "status", LedLook>>,
  nowMs: number,
  colour = true,
): string {
  return PANEL.map((name) => {
    const look = leds[name] ?? { colour: "off", pattern: "solid" };
    const lit = litAt(look, nowMs);
    const dot = lit ? "●" : "○";
    const label = `${dot} ${name.toUpperCase()}`;
    const tag = look.pattern === "solid" ? look.colour : `${look.colour} ${look.pattern}`;
    return colour ? `${lit ? ANSI[look.colour] : ANSI.off}${label}${RESET}` : `${label}(${tag})`;
  }).join("  ");
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
      const line = renderPanel(leds, 0, false);
      if (line !== this.#last) this.#out.write(line + "\n");
      this.#last = line;
      return;
    }
    this.#out.write(`\r${renderPanel(leds, Date.now())}\x1b[K`);
  }

  describe(): { backend: string; problem: string | null } {
    return { backend: "terminal", problem: null };
  }

  /** Clean shutdown: the documented "service stopped" look (every LED dark), then a new line. */
  stop(): void {
    const dark = Object.fromEntries(PANEL.map((led) => [led, { colour: "off", pattern: "solid" }]));
    if (this.#out.isTTY) this.#out.write(`\r${renderPanel(dark, 0)}\x1b[K\n`);
    else this.#out.write(renderPanel(dark, 0, false) + "\n");
  }
}
