// Sysfs-shaped directory trees for the LED drivers, and a stand-in for the kernel's side of them:
// it exports lines when `export` is written (as the kernel would create gpioN/), and records every
// value the drivers write, with the time, so tests can assert patterns and blink timing.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { constants, openSync } from "node:fs";
import { Socket } from "node:net";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  watch,
  writeFileSync,
  type FSWatcher,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { kernelLedName } from "../../services/probe/src/leds/kernel-leds.ts";
import { PANEL } from "../../services/contract/src/led-table.ts";

/** One GPIO controller to create (`gpiochip<base>`). */
export interface ChipSpec {
  base: number;
  label: string;
  ngpio: number;
}

/** Controllers as the kernels we support show them. */
export const KERNELS = {
  /** Raspberry Pi OS Bookworm, kernel ≥ 6.6, Pi 4: the header controller at 512. */
  pi4: [
    { base: 512, label: "pinctrl-bcm2711", ngpio: 58 },
    { base: 570, label: "raspberrypi-exp-gpio", ngpio: 8 },
  ],
  /** Kernel ≥ 6.6, Pi 5: the SoC's own controllers first, the header (RP1) at 571. */
  pi5: [
    { base: 512, label: "gpio-brcmstb@107d508500", ngpio: 32 },
    { base: 544, label: "gpio-brcmstb@107d508520", ngpio: 4 },
    { base: 548, label: "gpio-brcmstb@107d517c00", ngpio: 17 },
    { base: 565, label: "gpio-brcmstb@107d517c20", ngpio: 6 },
    { base: 571, label: "pinctrl-rp1", ngpio: 54 },
  ],
  /** Older kernels (before 6.6), Pi 4: numbers from 0. */
  old: [
    { base: 0, label: "pinctrl-bcm2711", ngpio: 58 },
    { base: 504, label: "raspberrypi-exp-gpio", ngpio: 8 },
  ],
} satisfies Record<string, ChipSpec[]>;

/** One write seen in the tree. */
export interface Write {
  /** ms since the recorder started */
  t: number;
  file: string;
  value: string;
}

/** A fresh temporary directory, removed by `rm()`. */
export function tempDir(prefix: string): { dir: string; rm(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, rm: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * A /sys/class/gpio look-alike with `chips`, and the kernel's behaviour the drivers rely on:
 * writing N to `export` creates gpioN/{value,direction,edge,active_low}; writing N to `unexport`
 * removes it. Every write of a value file is recorded.
 */
export class FakeGpioSysfs {
  readonly root: string;
  readonly writes: Write[] = [];
  readonly exported: number[] = [];
  /**
   * Everything written to `unexport`, in order. onoff writes bare numbers (no newline) and a pipe
   * joins writes that arrive together, so this is compared as a whole: `"583584…"`.
   */
  unexportLog = "";
  readonly #t0 = Date.now();
  readonly #watchers: FSWatcher[] = [];
  readonly #last = new Map<string, string>();

  constructor(root: string, chips: readonly ChipSpec[]) {
    this.root = root;
    mkdirSync(root, { recursive: true });
    for (const c of chips) {
      const dir = join(root, `gpiochip${c.base}`);
      mkdirSync(dir);
      writeFileSync(join(dir, "base"), `${c.base}\n`);
      writeFileSync(join(dir, "label"), `${c.label}\n`);
      writeFileSync(join(dir, "ngpio"), `${c.ngpio}\n`);
    }
    writeFileSync(join(root, "export"), "");
    this.#watch(join(root, "export"), (v) => this.#export(Number(v)));
    // Lines are unexported in a burst on stop, faster than inotify can tell writes of a regular
    // file apart: `unexport` is a FIFO, so each write arrives on its own (one open/write/close each).
    execFileSync("mkfifo", [join(root, "unexport")]);
    // Held open read-write: writers never block on it, and libuv reads it like a socket (no
    // thread-pool thread parked in a blocking open).
    this.#fifo = new Socket({
      fd: openSync(join(root, "unexport"), constants.O_RDWR | constants.O_NONBLOCK),
      readable: true,
      writable: false,
    });
    this.#fifo.on("data", (d: Buffer) => (this.unexportLog += d.toString()));
  }

  /** ms since the tree was made (the clock of `writes`). */
  elapsed(): number {
    return Date.now() - this.#t0;
  }

  /** Values written to one line's value file, in order (consecutive duplicates dropped). */
  valuesOf(gpio: number): Write[] {
    return this.writes.filter((w) => w.file === `gpio${gpio}/value`);
  }

  /** The value file's current content, or undefined when the line is not exported. */
  value(gpio: number): string | undefined {
    const f = join(this.root, `gpio${gpio}`, "value");
    return existsSync(f) ? readFileSync(f, "utf8").trim() : undefined;
  }

  /** Writes a value as the hardware would present it (button input). */
  setInput(gpio: number, value: 0 | 1): void {
    writeFileSync(join(this.root, `gpio${gpio}`, "value"), String(value));
  }

  close(): void {
    for (const w of this.#watchers) w.close();
    this.#fifo.destroy();
  }

  readonly #fifo: Socket;

  #export(gpio: number): void {
    const dir = join(this.root, `gpio${gpio}`);
    if (!Number.isInteger(gpio) || existsSync(dir)) return;
    mkdirSync(dir);
    for (const [f, v] of [
      ["direction", "in"],
      ["edge", "none"],
      ["active_low", "0"],
      ["value", "0"],
    ] as const)
      writeFileSync(join(dir, f), v);
    this.exported.push(gpio);
    this.#watch(join(dir, "value"), (v) => this.#record(`gpio${gpio}/value`, v));
  }

  #record(file: string, value: string): void {
    if (this.#last.get(file) === value) return;
    this.#last.set(file, value);
    this.writes.push({ t: Date.now() - this.#t0, file, value });
  }

  #watch(file: string, onValue: (v: string) => void): void {
    // A write is truncate + write: an empty read is the middle of one, the next event has the value.
    const read = () => {
      let v: string;
      try {
        v = readFileSync(file, "utf8").trim();
      } catch {
        return;
      }
      if (v !== "") onValue(v);
    };
    this.#watchers.push(watch(file, read));
  }
}

/** A /sys/class/leds look-alike with every die of the panel, recording every write. */
export class FakeLedClass {
  readonly root: string;
  readonly writes: Write[] = [];
  readonly #t0 = Date.now();
  readonly #watchers: FSWatcher[] = [];

  constructor(root: string) {
    this.root = root;
    for (const led of PANEL) {
      for (const colour of ["red", "green"] as const) {
        const dir = join(root, kernelLedName(led, colour));
        mkdirSync(dir, { recursive: true });
        for (const [f, v] of [
          ["brightness", "0"],
          ["max_brightness", "1"],
          ["trigger", "none"],
          ["delay_on", "500"],
          ["delay_off", "500"],
        ] as const) {
          writeFileSync(join(dir, f), v);
          if (f !== "max_brightness") this.#watch(join(dir, f), `${kernelLedName(led, colour)}/${f}`);
        }
      }
    }
  }

  /** The current content of one die's attribute. */
  read(
    led: string,
    colour: "red" | "green",
    attr: "brightness" | "trigger" | "delay_on" | "delay_off",
  ): string {
    return readFileSync(join(this.root, kernelLedName(led, colour), attr), "utf8").trim();
  }

  /** What one die does now: `off`, `on`, `timer 500/500`, `heartbeat`. */
  die(led: string, colour: "red" | "green"): string {
    const trigger = this.read(led, colour, "trigger");
    if (trigger === "timer")
      return `timer ${this.read(led, colour, "delay_on")}/${this.read(led, colour, "delay_off")}`;
    if (trigger === "heartbeat") return "heartbeat";
    return this.read(led, colour, "brightness") === "0" ? "off" : "on";
  }

  close(): void {
    for (const w of this.#watchers) w.close();
  }

  #watch(file: string, name: string): void {
    this.#watchers.push(
      watch(file, () => {
        try {
          const v = readFileSync(file, "utf8").trim();
          if (v !== "") this.writes.push({ t: Date.now() - this.#t0, file: name, value: v });
        } catch {
          // the directory went away
        }
      }),
    );
  }
}

/**
 * The command line that runs `argv` in a private mount namespace in which /sys/class/gpio and
 * /sys/class/leds are the given directories, so code that hard-codes those paths (onoff) works on
 * the fake trees. Needs root (CAP_SYS_ADMIN), like the lab.
 */
export function withFakeSysfs(mounts: { gpio?: string; leds?: string }, argv: readonly string[]): string[] {
  const q = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
  const script = [
    "set -e",
    "mount -t tmpfs netprobe-test /sys/class",
    ...(mounts.gpio ? [`mkdir /sys/class/gpio`, `mount --bind ${q(mounts.gpio)} /sys/class/gpio`] : []),
    ...(mounts.leds ? [`mkdir /sys/class/leds`, `mount --bind ${q(mounts.leds)} /sys/class/leds`] : []),
    'exec "$@"',
  ].join("\n");
  return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", ...argv];
}

/** Spawns {@link withFakeSysfs}'s command line; stdout and stderr are piped. */
export function spawnWithFakeSysfs(
  mounts: { gpio?: string; leds?: string },
  argv: readonly string[],
): ChildProcess {
  const [cmd, ...args] = withFakeSysfs(mounts, argv);
  return spawn(cmd!, args, { stdio: ["ignore", "pipe", "pipe"] });
}
