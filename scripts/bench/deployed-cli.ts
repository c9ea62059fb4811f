// How benchmarks start netprobe: as a device does (services/probe/bin/netprobe: the compiled
// service in dist/ with the service's V8 flags; firmware/netprobe.service and the container run
// the same), on this process's Node — not the TypeScript sources the tests run. dist/ is built
// (incrementally) first, so a benchmark never measures a stale tree.
import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";

const ROOT = new URL("../../", import.meta.url).pathname;

/** Builds dist/ and returns the argv prefix that runs netprobe (append the command). */
export function deployedCli(): string[] {
  execFileSync("npm", ["run", "--silent", "build"], {
    cwd: ROOT,
    stdio: ["ignore", "ignore", "inherit"],
    env: { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ""}` },
  });
  process.env.NETPROBE_NODE ??= process.execPath;
  return [join(ROOT, "services/probe/bin/netprobe")];
}
