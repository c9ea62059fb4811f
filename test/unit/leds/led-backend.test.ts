// The LED drivers against sysfs-shaped trees: the GPIO chip base for each kernel numbering, the
// real onoff code in a private mount namespace (values written over time, blink timing, release
// on stop, the button), the kernel LED class files, and the fallback when GPIO is missing.
import { createInterface } from "node:readline";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { validateConfig } from "../../../services/probe/src/config/validate.ts";
import { silentLogger } from "../../../services/contract/src/log.ts";
import { DEFAULT_PINS } from "../../../services/probe/src/leds/board-profiles.ts";
import { resolveGpioChip } from "../../../services/probe/src/leds/gpio-chip.ts";
import { openKernelLeds } from "../../../services/probe/src/leds/kernel-leds.ts";
import { openLedBackend } from "../../../services/probe/src/leds/led-backend.ts";
import { OFF, PANEL, uniformPanel, type PanelLooks } from "../../../services/contract/src/led-table.ts";
import {
  FakeGpioSysfs,
  FakeLedClass,
  KERNELS,
  spawnWithFakeSysfs,
  tempDir,
  type Write,
} from "../../doubles/led-sysfs.ts";

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});
function tree(prefix: string): string {
  const t = tempDir(prefix);
  cleanups.push(() => t.rm());
  return t.dir;
}

describe("GPIO chip base", () => {
  it.each([
    ["pi4", "Pi 4, kernel ≥ 6.6", 512, "pinctrl-bcm2711"],
    ["pi5", "Pi 5, kernel ≥ 6.6", 571, "pinctrl-rp1"],
    ["old", "Pi 4, kernel < 6.6", 0, "pinctrl-bcm2711"],
  ] as const)(
    "%s (%s): the header controller is found by its label at base %d",
    (kernel, _what, base, label) => {
      const root = join(tree("np-chip-"), "gpio");
      new FakeGpioSysfs(root, KERNELS[kernel]).close();
      const r = resolveGpioChip("auto", root);
      expect(r.chip).toMatchObject({ base, label });
      expect(r.board.id).toBe(kernel === "pi5" ? "pi5" : "pi4");
    },
  );

  it("the wrong board, or no GPIO at all, is refused with what was found", () => {
    const root = join(tree("np-chip-"), "gpio");
    new FakeGpioSysfs(root, KERNELS.pi5).close();
    expect(() => resolveGpioChip("pi4", root)).toThrow(
      /no gpiochip labelled pinctrl-bcm2711 or pinctrl-bcm2835 for leds.board pi4 under .*; found: .*gpiochip571 "pinctrl-rp1" \(54 lines\)/,
    );
    expect(() => resolveGpioChip("auto", join(root, "nope"))).toThrow(/no GPIO sysfs at .*nope/);
  });
});

interface ChildEvent {
  event: string;
  backend?: string;
  problem?: string | null;
  i?: number;
}

/** Runs the gpio backend with real onoff in a mount namespace over `gpio`; returns its events. */
async function runGpioChild(
  gpio: FakeGpioSysfs,
  script: unknown,
  onEvent: (e: ChildEvent) => void = () => undefined,
): Promise<ChildEvent[]> {
  const child = spawnWithFakeSysfs({ gpio: gpio.root }, [
    process.execPath,
    join(import.meta.dirname, "led-gpio-child.ts"),
    JSON.stringify(script),
  ]);
  const events: ChildEvent[] = [];
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  createInterface({ input: child.stdout! }).on("line", (line) => {
    const e = JSON.parse(line) as ChildEvent;
    events.push(e);
    onEvent(e);
  });
  const code = await new Promise<number | null>((r) => child.on("exit", r));
  if (code !== 0) throw new Error(`gpio child exited ${code}: ${stderr}`);
  await new Promise((r) => setTimeout(r, 50)); // let the last inotify events arrive
  return events;
}

/** Times at which a line turned on and off, from its recorded writes within [from, to). */
function toggles(writes: Write[], from: number, to: number): number[] {
  return writes.filter((w) => w.t >= from && w.t < to).map((w) => w.t);
}

describe("gpio backend: the real onoff code on a sysfs-shaped tree", () => {
  it.each([
    ["pi4", 512],
    ["pi5", 571],
    ["old", 0],
  ] as const)(
    "%s numbering (base %d): lines exported, panel written, WAN red blinks at its period, all off and released on stop",
    async (kernel, base) => {
      const gpio = new FakeGpioSysfs(join(tree("np-gpio-"), "gpio"), KERNELS[kernel]);
      cleanups.push(() => gpio.close());
      const stepAt: number[] = [];
      const t0 = Date.now();
      const events = await runGpioChild(
        gpio,
        {
          leds: { backend: "gpio", blink: { normal: "100ms", fast: "50ms" } },
          steps: [
            { ms: 300, looks: Object.fromEntries(PANEL.map((l) => [l, "green"])) },
            {
              ms: 1000,
              looks: { link: "green", lan: "green", wan: "red-blink", status: "amber-fast-blink" },
            },
          ],
        },
        (e) => {
          if (e.event === "step") stepAt.push(Date.now() - t0);
        },
      );
      expect(events[0]).toMatchObject({ event: "ready", backend: "gpio", problem: null });
      const n = (bcm: number) => base + bcm;
      const allPins = PANEL.flatMap((l) => [n(DEFAULT_PINS[l].red), n(DEFAULT_PINS[l].green)]);
      expect([...gpio.exported].sort()).toEqual([...allPins].sort());

      // Step 0: every green die written 1, no red die ever lit.
      for (const l of PANEL) expect(gpio.valuesOf(n(DEFAULT_PINS[l].green))[0]?.value).toBe("1");
      expect(gpio.valuesOf(n(DEFAULT_PINS.dns.red)).map((w) => w.value)).not.toContain("1");

      // Step 1: WAN red blinks on/off every 100 ms; STATUS amber = both dies at 50 ms, in phase.
      const wanRed = gpio.valuesOf(n(DEFAULT_PINS.wan.red));
      const from = (stepAt[1] ?? 0) + 150;
      const to = from + 600;
      const times = toggles(wanRed, from, to);
      const gaps = times.slice(1).map((t, i) => t - times[i]!);
      console.log(`${kernel}: WAN red toggles every ${gaps.join(", ")} ms (nominal 100)`);
      expect(times.length).toBeGreaterThanOrEqual(4);
      for (const g of gaps) {
        expect(g).toBeGreaterThanOrEqual(60);
        expect(g).toBeLessThanOrEqual(140);
      }
      const stRed = toggles(gpio.valuesOf(n(DEFAULT_PINS.status.red)), from, to);
      const stGreen = toggles(gpio.valuesOf(n(DEFAULT_PINS.status.green)), from, to);
      expect(stRed.length).toBeGreaterThanOrEqual(8);
      expect(Math.abs(stRed.length - stGreen.length)).toBeLessThanOrEqual(1);
      expect(gpio.valuesOf(n(DEFAULT_PINS.wan.green)).at(-1)?.value).toBe("0");

      // Stop: every line dark and unexported (the "service stopped" look).
      for (const g of allPins) expect(gpio.value(g)).toBe("0");
      expect(gpio.unexportLog).toBe(allPins.join(""));
    },
    20_000,
  );

  it("the button: short press runs the checks, a long press the lamp test (polled: a file has no interrupt)", async () => {
    const gpio = new FakeGpioSysfs(join(tree("np-btn-"), "gpio"), KERNELS.pi5);
    cleanups.push(() => gpio.close());
    const button = 571 + 26;
    const events = await runGpioChild(
      gpio,
      {
        leds: { backend: "gpio", button: { pin: 26, long_press: "500ms" } },
        steps: [{ ms: 1800, looks: {} }],
      },
      (e) => {
        if (e.event !== "step") return;
        // pressed reads 1: onoff opened it active-low, which the kernel would apply for us
        const at = (ms: number, v: 0 | 1) => setTimeout(() => gpio.setInput(button, v), ms);
        at(100, 1);
        at(250, 0);
        at(500, 1);
        at(1300, 0);
      },
    );
    expect(events.map((e) => e.event)).toEqual(["ready", "step", "short", "long", "stopped"]);
    // the button is released first, then every LED line
    expect(gpio.unexportLog.startsWith(String(button))).toBe(true);
  }, 20_000);
});

describe("kernel LED class backend", () => {
  it("solid looks set brightness, blinking hands over to the timer trigger, heartbeat to the kernel's", () => {
    const leds = new FakeLedClass(join(tree("np-leds-"), "leds"));
    cleanups.push(() => leds.close());
    const driver = openKernelLeds({
      blink: { slow: 1000, normal: 500, fast: 125 },
      root: leds.root,
      log: silentLogger(),
    });
    const panel: PanelLooks = {
      ...uniformPanel(OFF),
      link: { colour: "green", pattern: "solid" },
      lan: { colour: "amber", pattern: "solid" },
      dns: { colour: "green", pattern: "slow-blink" },
      wan: { colour: "red", pattern: "blink" },
      status: { colour: "amber", pattern: "fast-blink" },
    };
    driver.show(panel);
    expect([leds.die("link", "green"), leds.die("link", "red")]).toEqual(["on", "off"]);
    expect([leds.die("lan", "green"), leds.die("lan", "red")]).toEqual(["on", "on"]);
    expect(leds.die("dns", "green")).toBe("timer 1000/1000");
    expect([leds.die("wan", "red"), leds.die("wan", "green")]).toEqual(["timer 500/500", "off"]);
    expect([leds.die("status", "red"), leds.die("status", "green")]).toEqual([
      "timer 125/125",
      "timer 125/125",
    ]);
    expect(leds.die("phone", "red")).toBe("off");

    driver.show({
      ...panel,
      wan: { colour: "red", pattern: "solid" },
      status: { colour: "green", pattern: "heartbeat" },
    });
    expect(leds.die("wan", "red")).toBe("on");
    expect(leds.read("wan", "red", "trigger")).toBe("none");
    expect([leds.die("status", "green"), leds.die("status", "red")]).toEqual(["heartbeat", "off"]);

    driver.stop();
    for (const l of PANEL) for (const c of ["red", "green"] as const) expect(leds.die(l, c)).toBe("off");
  });

  it("a missing LED class device is refused naming the LED (no overlay loaded)", () => {
    const root = tree("np-leds-");
    expect(() =>
      openKernelLeds({ blink: { slow: 1000, normal: 500, fast: 125 }, root, log: silentLogger() }),
    ).toThrow(
      /no LED class device .*netprobe:red:link for the red die of LINK \(is dtoverlay=netprobe-leds in config.txt\?\)/,
    );
  });
});

describe("fallback", () => {
  it("gpio configured but no gpiochip: the terminal panel takes over and health says why", async () => {
    const checked = validateConfig({
      site: "t",
      probe: "t",
      broker: { url: "mqtt://x" },
      leds: { backend: "gpio", board: "pi4" },
    });
    if (!checked.ok) throw new Error(checked.problems.join("\n"));
    let out = "";
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        out += chunk.toString();
        cb();
      },
    });
    const backend = await openLedBackend(checked.config.leds, silentLogger(), {
      gpioRoot: join(tree("np-none-"), "gpio"),
      out: sink as unknown as NodeJS.WriteStream,
    });
    expect(backend.describe()).toEqual({
      backend: "terminal",
      problem: expect.stringMatching(
        /^gpio LEDs unavailable, showing the panel on the terminal: no GPIO sysfs at /,
      ) as string,
    });
    backend.show({ ...uniformPanel(OFF), wan: { colour: "red", pattern: "solid" } });
    backend.stop();
    expect(out).toContain("● WAN(red)");
  });
});
