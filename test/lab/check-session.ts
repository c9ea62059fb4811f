// One check kind kept alive in a lab namespace between runs, as the service keeps it: its watch
// started once, then runs on demand. For the checks whose state between runs matters (the gateway
// check's ARP watch). Lines in: "run"; lines out: a Measurement per run, "trigger" per watch call.
import type { ChildProcess } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { Lab } from "../../scripts/lab/lab.ts";
import type { LabHost } from "../../scripts/lab/topology.ts";
import type { Measurement } from "../../services/probe/src/checks/check.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** A started session: `run()` runs the check once more; `triggers` counts the watch's calls. */
export interface CheckSession {
  run(): Promise<Measurement>;
  readonly triggers: number;
  close(): Promise<void>;
}

/** Starts check `kind` on `target` in `host` (the probe by default), its watch running. */
export function checkSession(
  lab: Lab,
  kind: string,
  target: string,
  options: Record<string, unknown> = {},
  host: LabHost = "probe",
): CheckSession {
  const code = `
    const { checkKind } = await import(${JSON.stringify(join(ROOT, "services/probe/src/checks/registry.ts"))});
    const { Value } = await import("@sinclair/typebox/value");
    const { silentLogger } = await import(${JSON.stringify(join(ROOT, "services/contract/src/log.ts"))});
    const { createInterface } = await import("node:readline");
    const k = checkKind(${JSON.stringify(kind)});
    const opts = Value.Default(k.options, ${JSON.stringify(options)});
    const ctx = { log: silentLogger() };
    const watching = new AbortController();
    k.watch?.(${JSON.stringify(target)}, opts, ctx, watching.signal, () => console.log("trigger"));
    for await (const line of createInterface({ input: process.stdin })) {
      if (line !== "run") continue;
      const m = await k.run(${JSON.stringify(target)}, opts, ctx, AbortSignal.timeout(15000));
      console.log(JSON.stringify(m));
    }
    watching.abort();
    process.exit(0);`;
  const child: ChildProcess = lab.spawn(host, [process.execPath, "--input-type=module", "-e", code], {
    stdio: ["pipe", "pipe", "inherit"],
    cwd: ROOT,
  });
  let triggers = 0;
  const waiting: Array<(m: Measurement) => void> = [];
  createInterface({ input: child.stdout! }).on("line", (line) => {
    if (line === "trigger") triggers++;
    else waiting.shift()?.(JSON.parse(line) as Measurement);
  });
  return {
    run: () =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${kind} session: no result in 30 s`)), 30_000);
        waiting.push((m) => {
          clearTimeout(timer);
          resolve(m);
        });
        child.stdin!.write("run\n");
      }),
    get triggers() {
      return triggers;
    },
    close: async () => {
      child.stdin!.end();
      if (child.exitCode === null) await new Promise((r) => child.once("exit", r));
    },
  };
}
