/**
 * Board profiles: which GPIOs an LED board may use on each supported Raspberry Pi, how the kernel
 * labels the GPIO controller of the 40-pin header (to find its sysfs number base), and the default
 * pin map. hw/pin-maps.md is generated from this file (scripts/gen/legend.ts).
 */
import { PANEL, type PanelLed } from "../../../contract/src/led-table.ts";

/** Boards with a profile; `auto` picks pi4/cm4 or pi5 from the GPIO controller found at start-up. */
export const BOARD_IDS = ["auto", "pi4", "pi5", "cm4"] as const;
/** One board id from the config. */
export type BoardId = (typeof BOARD_IDS)[number];

/** The two GPIOs of one bi-colour LED (BCM numbers). */
export interface LedPins {
  red: number;
  green: number;
}

/** BCM pin per LED die. */
export type PinMap = Record<PanelLed, LedPins>;

/** What a board offers an LED board. */
export interface BoardProfile {
  id: Exclude<BoardId, "auto">;
  name: string;
  /** Kernel labels of the header's GPIO controller (`/sys/class/gpio/gpiochip*∕label`), newest first. */
  chipLabels: readonly string[];
  /** Where the LED board plugs in. */
  connector: string;
  /** BCM GPIOs an LED or the button may use. */
  usable: readonly number[];
  /** GPIOs on the header that must not be used, and why. */
  reserved: Readonly<Record<number, string>>;
}

const range = (from: number, to: number): number[] =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

// GPIO 0/1 carry the HAT ID EEPROM (the firmware probes them at boot); 2/3 have 1.8 kΩ pull-ups to
// 3.3 V on every one of these boards, so an LED there would glow or invert. Same on all three.
const HEADER_RESERVED: Record<number, string> = {
  0: "ID_SD: the HAT ID EEPROM, read by the firmware at boot",
  1: "ID_SC: the HAT ID EEPROM, read by the firmware at boot",
  2: "SDA1: it has a 1.8 kΩ pull-up to 3.3 V on the board",
  3: "SCL1: it has a 1.8 kΩ pull-up to 3.3 V on the board",
};

/** The supported boards. */
export const BOARDS: Record<BoardProfile["id"], BoardProfile> = {
  pi4: {
    id: "pi4",
    name: "Raspberry Pi 4 Model B",
    chipLabels: ["pinctrl-bcm2711", "pinctrl-bcm2835"],
    connector: "40-pin header J8",
    usable: range(4, 27),
    reserved: HEADER_RESERVED,
  },
  pi5: {
    id: "pi5",
    name: "Raspberry Pi 5",
    // The header is on the RP1 south bridge; the SoC's own controllers (gpio-brcmstb) come first.
    chipLabels: ["pinctrl-rp1"],
    connector: "40-pin header J8",
    usable: range(4, 27),
    reserved: HEADER_RESERVED,
  },
  cm4: {
    id: "cm4",
    name: "Compute Module 4 (on the CM4 IO Board)",
    chipLabels: ["pinctrl-bcm2711"],
    connector: "40-pin header J8 of the IO board (GPIO0-27 of the module connector)",
    usable: range(4, 27),
    reserved: HEADER_RESERVED,
  },
};

/**
 * The default LED board wiring, the same on every board: no I2C, SPI0 or UART pins, so a HAT with
 * those can share the header. GPIO 26 is left for the button.
 */
export const DEFAULT_PINS: PinMap = {
  link: { red: 17, green: 27 },
  lan: { red: 22, green: 23 },
  dhcp: { red: 24, green: 25 },
  dns: { red: 5, green: 6 },
  wan: { red: 12, green: 13 },
  phone: { red: 16, green: 19 },
  status: { red: 20, green: 21 },
};

/** The usual push-button GPIO (to ground, with the pull-up set in config.txt); off unless configured. */
export const DEFAULT_BUTTON_PIN = 26;

/** BCM GPIO → physical pin of the 40-pin header (Pi 4, Pi 5, CM4 IO board: the same layout). */
export const HEADER_PIN_OF_GPIO: Readonly<Record<number, number>> = {
  2: 3,
  3: 5,
  4: 7,
  17: 11,
  27: 13,
  22: 15,
  10: 19,
  9: 21,
  11: 23,
  0: 27,
  5: 29,
  6: 31,
  13: 33,
  19: 35,
  26: 37,
  14: 8,
  15: 10,
  18: 12,
  23: 16,
  24: 18,
  25: 22,
  8: 24,
  7: 26,
  1: 28,
  12: 32,
  16: 36,
  20: 38,
  21: 40,
};

/** Ground pins of the 40-pin header. */
export const HEADER_GROUND_PINS = [6, 9, 14, 20, 25, 30, 34, 39] as const;

/** The profile a board id names; `auto` validates against what every board offers. */
export function profileOf(id: BoardId): BoardProfile {
  if (id !== "auto") return BOARDS[id];
  const all = Object.values(BOARDS);
  return {
    id: "pi4",
    name: "any supported board",
    chipLabels: all.flatMap((b) => b.chipLabels),
    connector: "40-pin header",
    usable: BOARDS.pi4.usable.filter((p) => all.every((b) => b.usable.includes(p))),
    reserved: HEADER_RESERVED,
  };
}

/** One problem with a pin map: the config path (under `leds`) and the message. */
export interface PinProblem {
  path: string[];
  message: string;
}

/**
 * Every problem with a pin map on a board: a pin used twice, a pin the board does not have, a
 * reserved pin. Messages name the LED and the pin, e.g.
 * `GPIO 12 is also used by leds.pins.wan.red`.
 */
export function pinProblems(board: BoardId, pins: PinMap, buttonPin: number | null): PinProblem[] {
  const profile = profileOf(board);
  const problems: PinProblem[] = [];
  const users = new Map<number, string>();
  const claim = (path: string[], gpio: number, what: string): void => {
    const where = `leds.${path.join(".")}`;
    const reserved = profile.reserved[gpio];
    if (reserved !== undefined) {
      problems.push({ path, message: `GPIO ${gpio} cannot be used for ${what}: ${reserved}` });
      return;
    }
    if (!profile.usable.includes(gpio)) {
      const first = profile.usable[0];
      const last = profile.usable.at(-1);
      problems.push({
        path,
        message: `GPIO ${gpio} (${what}) is not on the ${profile.name}'s ${profile.connector} (usable: GPIO ${first}-${last})`,
      });
      return;
    }
    const other = users.get(gpio);
    if (other !== undefined) {
      problems.push({ path, message: `GPIO ${gpio} (${what}) is also used by ${other}` });
      return;
    }
    users.set(gpio, where);
  };
  for (const led of PANEL) {
    claim(["pins", led, "red"], pins[led].red, `the red die of the ${led.toUpperCase()} LED`);
    claim(["pins", led, "green"], pins[led].green, `the green die of the ${led.toUpperCase()} LED`);
  }
  if (buttonPin !== null) claim(["button", "pin"], buttonPin, "the push button");
  return problems;
}
