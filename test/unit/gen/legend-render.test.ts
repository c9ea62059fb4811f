// The printable legend and the pin maps in hw/ are generated from the tables the code uses; this
// fails as soon as a meaning, a colour, a blink timing or a pin changes without regenerating them.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as prettier from "prettier";
import { describe, expect, it } from "vitest";
import { DEFAULT_PINS } from "../../../services/probe/src/leds/board-profiles.ts";
import { kernelLedName } from "../../../services/probe/src/leds/kernel-leds.ts";
import { AREA_LEGEND, PANEL, STATUS_LEGEND } from "../../../services/contract/src/led-table.ts";
import { legendSvg, pinMapsMarkdown } from "../../../scripts/gen/legend-render.ts";

const REPO = join(import.meta.dirname, "../../..");
const read = (f: string) => readFileSync(join(REPO, f), "utf8");

describe("hw/ legend and pin maps", () => {
  it("hw/legend/netprobe-led-legend.svg is what scripts/gen/legend.ts makes from the LED table", () => {
    expect(read("hw/legend/netprobe-led-legend.svg"), "stale: run node scripts/gen/legend.ts").toBe(
      legendSvg(),
    );
  });

  it("hw/pin-maps.md is what scripts/gen/legend.ts makes from the board profiles", async () => {
    const path = join(REPO, "hw/pin-maps.md");
    const wanted = await prettier.format(pinMapsMarkdown(), {
      ...(await prettier.resolveConfig(path)),
      filepath: path,
    });
    expect(read("hw/pin-maps.md"), "stale: run node scripts/gen/legend.ts").toBe(wanted);
  });

  it("the legend carries every meaning of the table, and --check agrees", () => {
    const svg = legendSvg();
    for (const r of [...Object.values(AREA_LEGEND), ...Object.values(STATUS_LEGEND)].filter(
      (r) => r !== STATUS_LEGEND.identify,
    ))
      expect(svg).toContain(r.meaning);
    expect(() =>
      execFileSync(process.execPath, [join(REPO, "scripts/gen/legend.ts"), "--check"]),
    ).not.toThrow();
  });
});

describe("firmware/overlays/netprobe-leds.dts", () => {
  it("compiles with dtc and declares every die on the default pin map, named as the kernel backend expects", () => {
    const dts = join(REPO, "firmware/overlays/netprobe-leds.dts");
    // dtc -@ keeps the labels the __overrides__ need; -O dts shows what the firmware would load.
    const out = execFileSync("dtc", ["-@", "-q", "-I", "dts", "-O", "dts", dts], { encoding: "utf8" });
    for (const led of PANEL) {
      for (const colour of ["red", "green"] as const) {
        const label = kernelLedName(led, colour);
        const node = new RegExp(`label = "${label}";\\s*gpios = <0x[0-9a-f]+ (0x[0-9a-f]+) 0x00>;`).exec(out);
        expect(node, label).not.toBeNull();
        expect(Number(node![1]), label).toBe(DEFAULT_PINS[led][colour]);
      }
    }
  });
});
