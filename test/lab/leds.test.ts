// The LEDs in the branch office: three real probes in the lab's probe namespace, each in its own
// mount namespace with a fake sysfs — the gpio backend (real onoff) on Pi 4 numbering (base 512)
// and on Pi 5 numbering (base 571), and the kernel LED class backend. One scenario: boot (lamp
// test) → all green → wan-down (WAN red blinking, then solid after leds.recent_change; HQ is behind
// the WAN, so the uplink is lost too: STATUS fast amber blink) → recovery → clean stop (all off,
// lines released), with `identify` from HQ over MQTT before the stop. Asserted on the files the
// drivers write.
import type { ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parse, stringify } from "yaml";
import { afterAll, describe, expect, it } from "vitest";
import { LAB_PROBE_CONFIG } from "../../scripts/lab/lab-command.ts";
import { readStatus } from "../../services/probe/src/cli/status-command.ts";
import { DEFAULT_PINS } from "../../services/probe/src/leds/board-profiles.ts";
import { PANEL } from "../../services/contract/src/led-table.ts";
import {
  FakeGpioSysfs,
  FakeLedClass,
  KERNELS,
  tempDir,
  withFakeSysfs,
  type Write,
} from "../doubles/led-sysfs.ts";
import { probeBrokerEnv } from "../../scripts/lab/broker-tls.ts";
import { useLab } from "./lab-fixture.ts";
import { startClient } from "./mqtt-driver.ts";
import { exited, waitFor } from "./probe-harness.ts";

const CLI = join(import.meta.dirname, "../../services/probe/src/cli.ts");
const RECENT_MS = 8000; // leds.recent_change, short so the scenario is too
const LAMP_TEST_MS = 1500;

interface Probe {
  name: string;
  child: ChildProcess;
  log: string[];
  db: string;
  /** What one die does over the last `windowMs`: "on", "off" or "blink <median gap> ms". */
  die(led: keyof typeof DEFAULT_PINS, colour: "red" | "green", windowMs?: number): string;
  /** Every value the die was set to, oldest first ("1"/"0"). */
  history(led: keyof typeof DEFAULT_PINS, colour: "red" | "green"): string[];
}

function gpioLook(writes: Write[], now: number, windowMs: number, current: string | undefined): string {
  const recent = writes.filter((w) => w.t >= now - windowMs);
  if (recent.length >= 3) {
    const gaps = recent
      .slice(1)
      .map((w, i) => w.t - recent[i]!.t)
      .sort((a, b) => a - b);
    return `blink ${Math.round(gaps[Math.floor(gaps.length / 2)]! / 25) * 25} ms`;
  }
  return current === "1" ? "on" : "off";
}

/** "1 0 1" appears in order (not necessarily adjacent) in `values`. */
function inOrder(values: string[], wanted: string[]): boolean {
  let i = 0;
  for (const v of values) if (v === wanted[i]) i++;
  return i === wanted.length;
}

describe("status LEDs in the branch office (gpio on Pi 4 and Pi 5 numbering, kernel LED class)", () => {
  const lab = useLab();
  const dir = tempDir("np-leds-lab-");
  const fakes: Array<{ close(): void }> = [];
  const probes: Probe[] = [];

  afterAll(() => {
    for (const p of probes) if (p.child.exitCode === null) p.child.kill("SIGKILL");
    for (const f of fakes) f.close();
    dir.rm();
  });

  function start(
    name: string,
    leds: Record<string, unknown>,
    mounts: { gpio?: string; leds?: string },
  ): Probe {
    const base = parse(readFileSync(LAB_PROBE_CONFIG, "utf8")) as Record<string, unknown>;
    const config = join(dir.dir, `${name}.yaml`);
    const db = join(lab().info.dir, `leds-${name}.db`);
    writeFileSync(
      config,
      stringify({
        ...base,
        // The same probe id (the broker's ACL confines each probe user to its own prefix), its
        // own client id; and two plain checks, so this test follows only the LEDs' own behaviour.
        broker: { ...(base.broker as object), client_id: `netprobe-lab-${name}` },
        store: { path: db },
        checks: [
          {
            name: "gateway-icmp",
            kind: "icmp",
            target: "192.0.2.1",
            area: "lan",
            options: { count: 3, interval_ms: 20, wait_ms: 500 },
          },
          {
            name: "wan-icmp",
            kind: "icmp",
            target: "203.0.113.10",
            area: "wan",
            options: { count: 3, interval_ms: 20, wait_ms: 500 },
          },
        ],
        leds: { ...leds, recent_change: `${RECENT_MS}ms`, lamp_test: `${LAMP_TEST_MS}ms` },
      }),
    );
    const child = lab().spawn(
      "probe",
      withFakeSysfs(mounts, [process.execPath, CLI, "run", "--config", config]),
      {
        env: { ...process.env, ...probeBrokerEnv(lab().info.dir) },
        stdio: ["ignore", "ignore", "pipe"],
      },
    );
    const log: string[] = [];
    createInterface({ input: child.stderr! }).on("line", (l) => log.push(l));
    return { name, child, log, db, die: () => "", history: () => [] };
  }

  it("boot: each probe runs its lamp test, then shows LAN and WAN green with a STATUS heartbeat", async () => {
    for (const [kernel, base] of [
      ["pi4", 512],
      ["pi5", 571],
    ] as const) {
      const gpio = new FakeGpioSysfs(join(dir.dir, `gpio-${kernel}`), KERNELS[kernel]);
      fakes.push(gpio);
      const p = start(`leds-${kernel}`, { backend: "gpio", board: "auto" }, { gpio: gpio.root });
      const n = (led: keyof typeof DEFAULT_PINS, c: "red" | "green") => base + DEFAULT_PINS[led][c];
      p.die = (led, c, windowMs = 1500) =>
        gpioLook(gpio.valuesOf(n(led, c)), gpio.elapsed(), windowMs, gpio.value(n(led, c)));
      p.history = (led, c) => gpio.valuesOf(n(led, c)).map((w) => w.value);
      Object.assign(p, { gpio, n });
      probes.push(p);
    }
    const ledClass = new FakeLedClass(join(dir.dir, "leds"));
    fakes.push(ledClass);
    const k = start("leds-kernel", { backend: "kernel" }, { leds: ledClass.root });
    k.die = (led, c) => {
      const d = ledClass.die(led, c);
      return d.startsWith("timer ") ? `blink ${d.slice(6).split("/")[0]} ms` : d;
    };
    k.history = (led, c) =>
      ledClass.writes.filter((w) => w.file === `netprobe:${c}:${led}/brightness`).map((w) => w.value);
    probes.push(k);

    for (const p of probes) {
      // the lamp test: every die on (red phase / green phase), then both (amber)
      await waitFor(`${p.name}: lamp test on every LED`, 20_000, () =>
        PANEL.every(
          (l) => inOrder(p.history(l, "red"), ["1", "0", "1"]) && inOrder(p.history(l, "green"), ["1"]),
        ),
      );
    }
    for (const p of probes) {
      await waitFor(`${p.name}: LAN and WAN green, STATUS heartbeat`, 30_000, () => {
        const want = ["on", "off", "on", "off"];
        const got = [p.die("lan", "green"), p.die("lan", "red"), p.die("wan", "green"), p.die("wan", "red")];
        const status = p.die("status", "green", 3000);
        return (
          want.every((w, i) => got[i] === w) &&
          (status === "heartbeat" || status.startsWith("blink")) &&
          p.die("status", "red") === "off"
        );
      });
      // nothing configured for DHCP, DNS, PHONE: dark
      for (const l of ["dhcp", "dns", "phone"] as const)
        expect([p.die(l, "red"), p.die(l, "green")]).toEqual(["off", "off"]);
      const health = readStatus(p.db).health;
      expect(health?.leds).toEqual({
        requested: p.name === "leds-kernel" ? "kernel" : "gpio",
        backend: p.name === "leds-kernel" ? "kernel" : "gpio",
        problem: null,
      });
    }
  });

  it("wan-down: WAN red blinking, STATUS fast amber blink (HQ is behind the WAN), WAN solid red after leds.recent_change", async () => {
    await lab().fault("wan-down", true);
    const t0 = Date.now();
    for (const p of probes) {
      await waitFor(
        `${p.name}: WAN red blinking`,
        20_000,
        () => p.die("wan", "red").startsWith("blink") && p.die("wan", "green") === "off",
      );
      expect(p.die("wan", "red")).toMatch(/^blink (450|500|550) ms$/);
      expect(p.die("lan", "green")).toBe("on"); // the LAN is fine
    }
    const redAt = Date.now();
    console.log(`wan-down → WAN red blinking on every probe after ${redAt - t0} ms`);
    for (const p of probes) {
      // A probe that died would leave its LEDs frozen: say so rather than time out on a look.
      expect(p.child.exitCode, `${p.name} exited:\n${p.log.slice(-12).join("\n")}`).toBeNull();
      await waitFor(`${p.name}: STATUS amber fast blink`, 25_000, () => {
        const r = p.die("status", "red", 1000);
        const g = p.die("status", "green", 1000);
        return /^blink (100|125|150) ms$/.test(r) && /^blink (100|125|150) ms$/.test(g);
      });
    }
    for (const p of probes) {
      await waitFor(
        `${p.name}: WAN solid red after ${RECENT_MS} ms`,
        RECENT_MS + 10_000,
        () => p.die("wan", "red", 1500) === "on",
      );
      expect(p.die("wan", "green")).toBe("off");
    }
    console.log(
      `WAN went from blinking to solid red ${Date.now() - redAt} ms after it started blinking (recent_change ${RECENT_MS} ms)`,
    );
  });

  it("recovery: WAN green again, STATUS back to the heartbeat", async () => {
    await lab().fault("wan-down", false);
    for (const p of probes) {
      await waitFor(
        `${p.name}: WAN green`,
        30_000,
        () => p.die("wan", "green") === "on" && p.die("wan", "red") === "off",
      );
      await waitFor(`${p.name}: STATUS heartbeat`, 30_000, () => {
        const g = p.die("status", "green", 3000);
        return p.die("status", "red", 1500) === "off" && (g === "heartbeat" || g.startsWith("blink"));
      });
    }
  });

  it("identify from HQ over MQTT: every LED blinks amber for the requested time, then the panel is back", async () => {
    const hq = startClient(lab(), "hq", "hq");
    try {
      await hq.connected();
      expect(await hq.subscribe("netprobe/v1/lab/probe-1/reply/#")).toEqual([1]);
      // All three probes share the probe id, so the one command reaches each of them.
      const reply = await hq.command("identify", { request_id: "leds-identify-1", duration_s: 4 });
      expect(reply).toMatchObject({ ok: true, result: { duration_s: 4 } });
      for (const p of probes) {
        await waitFor(`${p.name}: every LED blinking amber`, 5000, () =>
          PANEL.every((l) => p.die(l, "red").startsWith("blink") && p.die(l, "green").startsWith("blink")),
        );
      }
      for (const p of probes) {
        await waitFor(`${p.name}: panel restored after identify`, 10_000, () => {
          const dark = (["dhcp", "dns", "phone"] as const).every(
            (l) => p.die(l, "red") === "off" && p.die(l, "green") === "off",
          );
          return (
            dark &&
            p.die("lan", "green") === "on" &&
            p.die("wan", "green") === "on" &&
            p.die("wan", "red") === "off"
          );
        });
      }
    } finally {
      hq.child.kill("SIGTERM");
    }
  });

  it("clean stop: every LED off, every GPIO released", async () => {
    for (const p of probes) p.child.kill("SIGTERM");
    for (const p of probes) expect((await exited(p.child)).code, p.log.slice(-5).join("\n")).toBe(0);
    await new Promise((r) => setTimeout(r, 100));
    for (const p of probes) {
      for (const l of PANEL)
        expect([p.die(l, "red", 0), p.die(l, "green", 0)], `${p.name} ${l}`).toEqual(["off", "off"]);
      const extra = p as Probe & {
        gpio?: FakeGpioSysfs;
        n?: (l: keyof typeof DEFAULT_PINS, c: "red" | "green") => number;
      };
      if (extra.gpio && extra.n) {
        const all = PANEL.flatMap((l) => [extra.n!(l, "red"), extra.n!(l, "green")]);
        expect(extra.gpio.unexportLog).toBe(all.join(""));
      }
    }
  });
});
