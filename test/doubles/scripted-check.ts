// A check kind whose runs return what the test scripted, in order (the last repeats), and a panel
// that records what the service shows. For unit tests of the service's logic, never of a check.
import { Type } from "@sinclair/typebox";
import type { CheckKind, Measurement } from "../../services/probe/src/checks/check.ts";
import type { LedSink } from "../../services/probe/src/leds/led-sink.ts";
import type { PanelLooks } from "../../services/contract/src/led-table.ts";

/** The scripted kind, how many runs it has started, and a gate to hold the next run open. */
export function scriptedKind(kind: string, script: Measurement[]) {
  let runs = 0;
  let gate: Promise<void> | undefined;
  const k: CheckKind = {
    kind,
    defaultArea: "wan",
    options: Type.Object({}),
    run: async () => {
      const m = script[Math.min(runs, script.length - 1)]!;
      runs += 1;
      if (gate) await gate;
      return m;
    },
  };
  return {
    kind: k,
    runs: () => runs,
    /** Holds every run until the returned function is called. */
    hold(): () => void {
      let release = () => undefined as void;
      gate = new Promise<void>((r) => (release = r));
      return () => {
        gate = undefined;
        release();
      };
    },
  };
}

/** A LedSink that keeps every panel shown, latest last. */
export class RecordingLeds implements LedSink {
  readonly shown: PanelLooks[] = [];
  show(leds: PanelLooks): void {
    this.shown.push(leds);
  }
  stop(): void {}
  describe() {
    return { backend: "recording", problem: null };
  }
  get last(): PanelLooks | undefined {
    return this.shown.at(-1);
  }
}
