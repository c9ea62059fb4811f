import type { PanelLooks } from "../../../contract/src/led-table.ts";

/** Something that shows the panel: the terminal panel, onoff GPIO or kernel LEDs. */
export interface LedSink {
  show(leds: PanelLooks): void;
  /** Clean shutdown: every LED off (the "service stopped" look), GPIOs released. */
  stop(): void;
  /** Backend in use and why it is not the configured one, for `health.leds`. */
  describe?(): { backend: string; problem: string | null };
}
