/**
 * Writes the files of hw/ generated from the LED and board tables the code uses:
 *
 *   hw/legend/netprobe-led-legend.svg   the printable legend (100 mm wide)
 *   hw/pin-maps.md                      the pin map of each board
 *
 *   node scripts/gen/legend.ts            rewrite what is stale
 *   node scripts/gen/legend.ts --check    write nothing; exit 1 naming each stale file
 *   node scripts/gen/legend.ts --render   also render the legend to PNG (300 dpi) and PDF with
 *                                         rsvg-convert (librsvg2-bin): build artifacts to look at
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import * as prettier from "prettier";
import { legendSvg, pinMapsMarkdown } from "./legend-render.ts";

const REPO = resolve(import.meta.dirname, "../..");
/** Generated files, relative to the repository, with their renderers. */
export const GENERATED_HW = {
  "hw/legend/netprobe-led-legend.svg": legendSvg,
  "hw/pin-maps.md": pinMapsMarkdown,
} as const;

const { values } = parseArgs({
  options: { check: { type: "boolean", default: false }, render: { type: "boolean", default: false } },
});
const stale: string[] = [];
for (const [file, render] of Object.entries(GENERATED_HW)) {
  const path = join(REPO, file);
  let current: string | undefined;
  try {
    current = readFileSync(path, "utf8");
  } catch {
    current = undefined;
  }
  // Markdown goes through prettier with the repository's settings, so `prettier --check` agrees.
  const wanted = file.endsWith(".md")
    ? await prettier.format(render(), { ...(await prettier.resolveConfig(path)), filepath: path })
    : render();
  if (current === wanted) continue;
  stale.push(file);
  if (!values.check) {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, wanted);
    console.log(`wrote ${file}`);
  }
}
if (values.check && stale.length) {
  for (const f of stale) console.error(`${f} is stale: run node scripts/gen/legend.ts`);
  process.exit(1);
}
if (values.render) {
  const svg = join(REPO, "hw/legend/netprobe-led-legend.svg");
  for (const [format, out, extra] of [
    ["png", "netprobe-led-legend.png", ["--dpi-x", "300", "--dpi-y", "300"]],
    ["pdf", "netprobe-led-legend.pdf", []],
  ] as const) {
    execFileSync("rsvg-convert", ["-f", format, ...extra, "-o", join(REPO, "hw/legend", out), svg]);
    console.log(`rendered hw/legend/${out}`);
  }
}
