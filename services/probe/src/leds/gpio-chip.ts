/**
 * Finds the sysfs number of a BCM GPIO. The legacy sysfs interface numbers lines globally: each
 * controller (`gpiochipN`) owns `ngpio` numbers from its `base`. Raspberry Pi kernels before 6.6
 * gave the header's controller base 0 (Pi 4) or 399 (Pi 5); from 6.6 on, bases are allocated from
 * 512 (Pi 4: 512, Pi 5: 571), so BCM 17 is /sys/class/gpio/gpio529 on a Pi 4 and gpio588 on a
 * Pi 5. The base is therefore read at start-up, by the controller's label, never hard-coded.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { BOARDS, type BoardId, type BoardProfile } from "./board-profiles.ts";

/** Where the kernel's legacy GPIO sysfs interface lives. */
export const GPIO_SYSFS = "/sys/class/gpio";

/** One GPIO controller as sysfs shows it. */
export interface GpioChip {
  /** directory name, e.g. `gpiochip512` */
  name: string;
  base: number;
  label: string;
  ngpio: number;
}

/** The header's GPIO controller and the board it belongs to. */
export interface ResolvedChip {
  chip: GpioChip;
  board: BoardProfile;
}

/** GPIO sysfs is missing or does not match the board; the message says what was found. */
export class GpioUnavailableError extends Error {
  /** Stable code for logs and `health`. */
  readonly code = "gpio_unavailable";

  constructor(message: string) {
    super(message);
    this.name = "GpioUnavailableError";
  }
}

/** Every controller under a GPIO sysfs root, lowest base first; unreadable entries are skipped. */
export function listGpioChips(root: string = GPIO_SYSFS): GpioChip[] {
  let names: string[];
  try {
    names = readdirSync(root).filter((n) => /^gpiochip\d+$/.test(n));
  } catch {
    return [];
  }
  const chips: GpioChip[] = [];
  for (const name of names) {
    try {
      const read = (f: string) => readFileSync(join(root, name, f), "utf8").trim();
      const base = Number(read("base"));
      const ngpio = Number(read("ngpio"));
      if (!Number.isInteger(base) || !Number.isInteger(ngpio)) continue;
      chips.push({ name, base, label: read("label"), ngpio });
    } catch {
      // A chip that disappears while we look (hot-unplugged expander) is simply not ours.
    }
  }
  return chips.sort((a, b) => a.base - b.base);
}

/**
 * The header's GPIO controller for a board (`auto`: whichever supported board's controller is
 * present). Throws GpioUnavailableError naming what is missing and what was found.
 */
export function resolveGpioChip(board: BoardId, root: string = GPIO_SYSFS): ResolvedChip {
  if (!existsSync(root)) {
    throw new GpioUnavailableError(
      `no GPIO sysfs at ${root} (not a Raspberry Pi, or a kernel without CONFIG_GPIO_SYSFS)`,
    );
  }
  const chips = listGpioChips(root);
  const candidates = board === "auto" ? [BOARDS.pi5, BOARDS.pi4] : [BOARDS[board]];
  for (const profile of candidates) {
    for (const label of profile.chipLabels) {
      const chip = chips.find((c) => c.label === label);
      if (chip) return { chip, board: profile };
    }
  }
  const wanted = [...new Set(candidates.flatMap((p) => p.chipLabels))].join(" or ");
  const found = chips.length
    ? chips.map((c) => `${c.name} "${c.label}" (${c.ngpio} lines)`).join(", ")
    : "no gpiochip at all";
  throw new GpioUnavailableError(
    `no gpiochip labelled ${wanted} for leds.board ${board} under ${root}; found: ${found}`,
  );
}

/** The sysfs number of a BCM GPIO on a resolved controller; throws when the chip has no such line. */
export function sysfsNumber(resolved: ResolvedChip, bcm: number, what: string): number {
  if (bcm < 0 || bcm >= resolved.chip.ngpio) {
    throw new GpioUnavailableError(
      `${what}: GPIO ${bcm} does not exist on ${resolved.chip.name} "${resolved.chip.label}" (${resolved.chip.ngpio} lines)`,
    );
  }
  return resolved.chip.base + bcm;
}
