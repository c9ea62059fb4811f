// The LED state machine with fake timers: what the panel shows at start-up, on identify, on a
// button press, and how blinking looks map to on/off over time.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { silentLogger } from "../../../services/contract/src/log.ts";
import { LedController } from "../../../services/probe/src/leds/led-controller.ts";
import type { GpioLine } from "../../../services/probe/src/leds/gpio-lines.ts";
import { litAt, nextChangeAt, DEFAULT_BLINK } from "../../../services/probe/src/leds/led-pattern.ts";
import {
  areaLook,
  lookName,
  OFF,
  PANEL,
  uniformPanel,
  type LedLook,
  type PanelLooks,
} from "../../../services/contract/src/led-table.ts";
import { PushButton } from "../../../services/probe/src/leds/push-button.ts";

/** A backend that remembers every panel it was asked to draw, and when. */
function recordingSink() {
  const shown: Array<{ t: number; panel: PanelLooks }> = [];
  let stopped = false;
  return {
    shown,
    stopped: () => stopped,
    last: () => shown.at(-1)?.panel,
    show: (panel: PanelLooks) => shown.push({ t: Date.now(), panel }),
    stop: () => {
      stopped = true;
    },
  };
}

const green: LedLook = { colour: "green", pattern: "solid" };
const allGreen = (): PanelLooks => ({
  ...uniformPanel(green),
  status: { colour: "green", pattern: "heartbeat" },
});
const names = (p: PanelLooks | undefined) => PANEL.map((l) => (p ? lookName(p[l]) : "-")).join(" ");

describe("LED controller", () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 1_000_000 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("power-on lamp test shows every LED red, green, then amber, then the areas' panel", () => {
    const sink = recordingSink();
    const leds = new LedController(sink, { lampTestMs: 3000 });
    leds.lampTest();
    leds.show(allGreen()); // a verdict arriving during the lamp test waits for its end
    expect(names(sink.last())).toBe("red red red red red red red");
    vi.advanceTimersByTime(1000);
    expect(names(sink.last())).toBe("green green green green green green green");
    vi.advanceTimersByTime(1000);
    expect(names(sink.last())).toBe("amber amber amber amber amber amber amber");
    expect(leds.mode).toBe("lamp-test");
    vi.advanceTimersByTime(1000);
    expect(leds.mode).toBe("normal");
    expect(names(sink.last())).toBe("green green green green green green green-heartbeat");
    expect(sink.shown.map((s) => s.t - 1_000_000)).toEqual([0, 1000, 2000, 3000]);
  });

  it("identify blinks every LED amber for the requested time, then restores the latest panel", () => {
    const sink = recordingSink();
    const leds = new LedController(sink, { lampTestMs: 0 });
    leds.show(allGreen());
    leds.identify(10_000);
    expect(names(sink.last())).toBe(Array(7).fill("amber-blink").join(" "));
    const failing = { ...allGreen(), wan: { colour: "red", pattern: "blink" } as const };
    leds.show(failing);
    vi.advanceTimersByTime(9_999);
    expect(leds.mode).toBe("identify");
    vi.advanceTimersByTime(1);
    expect(leds.mode).toBe("normal");
    expect(sink.last()?.wan).toEqual({ colour: "red", pattern: "blink" });
  });

  it("a second identify restarts the time; stop ends it and turns the backend off", () => {
    const sink = recordingSink();
    const leds = new LedController(sink, { lampTestMs: 0 });
    leds.show(allGreen());
    leds.identify(5000);
    vi.advanceTimersByTime(4000);
    leds.identify(5000);
    vi.advanceTimersByTime(4000);
    expect(leds.mode).toBe("identify");
    leds.stop();
    expect(sink.stopped()).toBe(true);
    const count = sink.shown.length;
    vi.advanceTimersByTime(10_000);
    leds.show(allGreen());
    expect(sink.shown.length).toBe(count); // nothing drawn after stop
  });

  it("a failing area blinks red for the configured window, then is solid red", () => {
    const since = Date.now();
    expect(lookName(areaLook("failing", since, since + 5_999, 6000))).toBe("red-blink");
    expect(lookName(areaLook("failing", since, since + 6000, 6000))).toBe("red");
    expect(lookName(areaLook("failing", since, since + 299_999))).toBe("red-blink"); // default 5 min
    expect(lookName(areaLook("unknown", since, since))).toBe("green-slow-blink");
    expect(lookName(areaLook("off", since, since))).toBe("off");
  });

  it("blink patterns: on and off for their half period, heartbeat like the kernel's, edges predicted", () => {
    const blink: LedLook = { colour: "red", pattern: "blink" };
    expect([0, 499, 500, 999, 1000].map((t) => litAt(blink, t))).toEqual([true, true, false, false, true]);
    expect(nextChangeAt(blink, 120)).toBe(500);
    const fast: LedLook = { colour: "amber", pattern: "fast-blink" };
    expect(litAt(fast, 124, { ...DEFAULT_BLINK, fast: 125 })).toBe(true);
    expect(litAt(fast, 125, { ...DEFAULT_BLINK, fast: 125 })).toBe(false);
    const hb: LedLook = { colour: "green", pattern: "heartbeat" };
    expect([0, 69, 70, 314, 315, 384, 385, 1259, 1260].map((t) => litAt(hb, t))).toEqual([
      true,
      true,
      false,
      false,
      true,
      true,
      false,
      false,
      true,
    ]);
    expect(nextChangeAt(hb, 400)).toBe(1260);
    expect(nextChangeAt(OFF, 400)).toBeUndefined();
    expect(litAt(OFF, 0)).toBe(false);
  });
});

/** An input line whose level the test sets; `watch` delivers edges like onoff does. */
function fakeButtonLine(edges: boolean) {
  let level: 0 | 1 = 0;
  let cb: ((err: Error | null | undefined, v: 0 | 1) => void) | undefined;
  const line: GpioLine & { press(v: 0 | 1): void; released: boolean } = {
    released: false,
    readSync: () => level,
    writeSync: () => undefined,
    watch: (c) => {
      if (!edges) throw new Error("EPERM: operation not permitted"); // epoll on a file without interrupts
      cb = c;
    },
    unwatchAll: () => {
      cb = undefined;
    },
    unexport: () => {
      line.released = true;
    },
    press: (v) => {
      level = v;
      cb?.(null, v);
    },
  };
  return line;
}

describe("push button", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("short press runs every check; holding it 3 s starts the lamp test while still held", () => {
    const line = fakeButtonLine(true);
    const button = new PushButton(line, { longPressMs: 3000 }, silentLogger());
    const got: string[] = [];
    button.setHandlers({ short: () => got.push("short"), long: () => got.push("long") });
    button.start();
    expect(button.mode).toBe("edge");
    line.press(1);
    vi.advanceTimersByTime(200);
    line.press(0);
    expect(got).toEqual(["short"]);
    line.press(1);
    vi.advanceTimersByTime(2999);
    expect(got).toEqual(["short"]);
    vi.advanceTimersByTime(1);
    expect(got).toEqual(["short", "long"]);
    line.press(0); // releasing after a long press is not also a short press
    expect(got).toEqual(["short", "long"]);
    button.stop();
    expect(line.released).toBe(true);
  });

  it("without edge interrupts it polls, and a one-sample glitch is not a press", () => {
    const line = fakeButtonLine(false);
    const button = new PushButton(line, { longPressMs: 3000, pollMs: 20 }, silentLogger());
    const got: string[] = [];
    button.setHandlers({ short: () => got.push("short"), long: () => got.push("long") });
    button.start();
    expect(button.mode).toBe("poll");
    line.press(1);
    vi.advanceTimersByTime(20); // one sample: not yet
    line.press(0);
    vi.advanceTimersByTime(100);
    expect(got).toEqual([]);
    line.press(1);
    vi.advanceTimersByTime(100);
    line.press(0);
    vi.advanceTimersByTime(100);
    expect(got).toEqual(["short"]);
    button.stop();
    expect(line.released).toBe(true);
  });
});
