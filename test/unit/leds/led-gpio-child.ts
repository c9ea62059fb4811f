// Runs the real gpio LED backend (onoff included) inside a private mount namespace whose
// /sys/class/gpio is a fake tree (see led-sysfs-fixture.ts), and plays a script of panels.
// Prints one JSON line per event: ready, step, short, long, stopped.
import { validateConfig } from "../../../services/probe/src/config/validate.ts";
import { silentLogger } from "../../../services/contract/src/log.ts";
import { openLedBackend } from "../../../services/probe/src/leds/led-backend.ts";
import { OFF, PANEL, parseLookName, type PanelLooks } from "../../../services/contract/src/led-table.ts";

interface Script {
  leds: Record<string, unknown>;
  /** each step: hold this panel (LED → look name, others off) for `ms` */
  steps: Array<{ ms: number; looks: Record<string, string> }>;
}

const script = JSON.parse(process.argv[2] ?? "{}") as Script;
const checked = validateConfig({
  site: "t",
  probe: "t",
  broker: { url: "mqtt://localhost" },
  leds: script.leds,
});
if (!checked.ok) throw new Error(checked.problems.join("\n"));
const say = (m: Record<string, unknown>) => process.stdout.write(JSON.stringify(m) + "\n");

const backend = await openLedBackend(checked.config.leds, silentLogger());
backend.onButton({ short: () => say({ event: "short" }), long: () => say({ event: "long" }) });
say({ event: "ready", ...backend.describe() });
for (const [i, step] of script.steps.entries()) {
  const panel = Object.fromEntries(PANEL.map((l) => [l, OFF])) as PanelLooks;
  for (const [led, name] of Object.entries(step.looks)) panel[led as "wan"] = parseLookName(name) ?? OFF;
  backend.show(panel);
  say({ event: "step", i });
  await new Promise((r) => setTimeout(r, step.ms));
}
backend.stop();
say({ event: "stopped" });
