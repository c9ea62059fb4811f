import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { LAB_ROOT, labDownSync } from "./lab.ts";
import { processStartTime } from "./run.ts";

// Watches the process that owns a lab and removes the lab once that process is gone, however it
// went. labUp starts one of these, detached, for every build. It exists because no hook inside the
// owner survives SIGKILL, and vitest's watchdog SIGKILLs a test worker as soon as the main process
// dies (Ctrl-C): a teardown running in the worker's exit or signal hook is cut off halfway.
//
// Usage (by lab.ts only): node guardian.ts <lab name> <owner pid> <owner start time>

const [name, pidArg, start] = process.argv.slice(2);
const ownerPid = Number(pidArg);
if (!name || !Number.isInteger(ownerPid) || !start) {
  console.error("usage: guardian.ts <lab name> <owner pid> <owner start time>");
  process.exit(2);
}
const dir = join(LAB_ROOT, name);

/** The lab's current owner as recorded in its state file; null = kept until labDown. */
function recordedOwner(): { pid: number; start: string } | null | undefined {
  try {
    return (
      JSON.parse(readFileSync(join(dir, "state.json"), "utf8")) as {
        owner: { pid: number; start: string } | null;
      }
    ).owner;
  } catch {
    return undefined; // being rewritten, or gone
  }
}

const timer = setInterval(() => {
  if (!existsSync(dir)) return stop(); // the lab is down already
  const owner = recordedOwner();
  // Someone else is responsible now: the lab became persistent (CLI) or another process owns it.
  if (owner === null || (owner && (owner.pid !== ownerPid || owner.start !== start))) return stop();
  if (processStartTime(ownerPid) === start) return;
  try {
    labDownSync(name);
  } finally {
    stop();
  }
}, 250);

function stop(): void {
  clearInterval(timer);
}
