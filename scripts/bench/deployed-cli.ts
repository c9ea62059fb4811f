// The netprobe entry benchmarks measure: the compiled service in dist/, as a device runs it
// (firmware/netprobe.service, the container's CMD) — not the TypeScript sources the tests run.
// Built (incrementally) first, so a benchmark never measures a stale tree.
import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";

const ROOT = new URL("../../", import.meta.url).pathname;

/** Runs `npm run build` and returns the compiled CLI's path (run it with process.execPath). */
export function deployedCli(): string {
  execFileSync("npm", ["run", "--silent", "build"], {
    cwd: ROOT,
    stdio: ["ignore", "ignore", "inherit"],
    env: { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ""}` },
  });
  return join(ROOT, "dist/probe/src/cli.js");
}
