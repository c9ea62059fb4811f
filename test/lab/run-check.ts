// Runs one check once inside a lab namespace the way `netprobe check` runs it: options as in a
// config file (JSON, defaults filled in), its measurement back as JSON.
import { join } from "node:path";
import type { Lab } from "../../scripts/lab/lab.ts";
import type { LabHost } from "../../scripts/lab/topology.ts";
import type { Measurement } from "../../services/probe/src/checks/check.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** A check run first in the same process (one that another check reads, as dhcp reads lldp's voice VLAN). */
export interface PriorRun {
  kind: string;
  target: string;
  options?: Record<string, unknown>;
  /** Then wait this long (a listener the prior run started keeps hearing meanwhile). */
  thenMs?: number;
}

/** One run of check `kind` against `target` from `host` (the probe by default). */
export async function runCheckIn(
  lab: Lab,
  kind: string,
  target: string,
  options: Record<string, unknown> = {},
  {
    host = "probe",
    timeoutMs = 15_000,
    before = [],
  }: { host?: LabHost; timeoutMs?: number; before?: PriorRun[] } = {},
): Promise<Measurement> {
  const code = `
    const { checkKind } = await import(${JSON.stringify(join(ROOT, "services/probe/src/checks/registry.ts"))});
    const { Value } = await import("@sinclair/typebox/value");
    const { silentLogger } = await import(${JSON.stringify(join(ROOT, "services/contract/src/log.ts"))});
    for (const p of ${JSON.stringify(before)}) {
      const pk = checkKind(p.kind);
      await pk.run(p.target, Value.Default(pk.options, p.options ?? {}), { log: silentLogger() }, AbortSignal.timeout(${timeoutMs}));
      await new Promise((r) => setTimeout(r, p.thenMs ?? 0));
    }
    const k = checkKind(${JSON.stringify(kind)});
    const opts = Value.Default(k.options, ${JSON.stringify(options)});
    const m = await k.run(${JSON.stringify(target)}, opts, { log: silentLogger() }, AbortSignal.timeout(${timeoutMs}));
    console.log(JSON.stringify(m));
    process.exit(0); // a pcap-based kind keeps its capture (and the event loop) open`;
  const r = await lab.exec(host, [process.execPath, "--input-type=module", "-e", code], {
    timeoutMs: timeoutMs + 15_000,
  });
  if (r.code !== 0) throw new Error(`check ${kind} ${target} failed to run: ${r.stderr}`);
  return JSON.parse(r.stdout) as Measurement;
}
