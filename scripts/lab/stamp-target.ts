// The lab's STAMP target: stamp-responder.ts in the far namespace, on the far target's addresses
// (203.0.113.200 and 2001:db8:14::200, UDP 862), impaired by the same wan-loss / wan-latency /
// wan-jitter faults as the ICMP responder (lab.ts applies both together).

import { spawn } from "node:child_process";
import { closeSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { signal, sleep } from "./run.ts";
import { ADDR } from "./topology.ts";
import { ask } from "./wan-path.ts";

/** Path of the STAMP responder's control socket in a lab directory. */
export function stampResponderSocket(dir: string): string {
  return join(dir, "stamp-responder.sock");
}

/** Sends one command to the STAMP responder, retrying while it starts (throws when it never answers). */
export async function stampResponderCommand(
  dir: string,
  request: Record<string, unknown>,
  timeoutMs = 5_000,
): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  let lastError = "not tried";
  while (Date.now() < deadline) {
    try {
      return await ask(stampResponderSocket(dir), request, deadline - Date.now());
    } catch (error) {
      lastError = error instanceof Error ? error.message : String(error);
      await sleep(50);
    }
  }
  throw new Error(`stamp-responder (${stampResponderSocket(dir)}) did not answer: ${lastError}`);
}

/** Stops a STAMP responder left by an earlier build and starts a fresh, unimpaired one in `farNs`. */
export async function startStampTarget(farNs: string, dir: string): Promise<void> {
  const pidFile = join(dir, "stamp-responder.pid");
  try {
    const pid = Number(readFileSync(pidFile, "utf8"));
    if (readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "stamp-responder") {
      signal(pid, "SIGTERM");
      await sleep(200);
    }
  } catch {
    // none running
  }
  const script = fileURLToPath(new URL("./stamp-responder.ts", import.meta.url));
  const log = openSync(join(dir, "stamp-responder.log"), "a");
  try {
    const argv = ["netns", "exec", farNs, process.execPath, script, "--control", stampResponderSocket(dir)];
    argv.push("--address4", ADDR.farTarget4, "--address6", ADDR.farTarget6);
    const child = spawn("ip", argv, {
      detached: true,
      stdio: ["ignore", log, log],
      env: { ...process.env, NODE_OPTIONS: "" },
    });
    child.on("error", () => undefined);
    child.unref();
    if (child.pid !== undefined) writeFileSync(pidFile, String(child.pid));
  } finally {
    closeSync(log);
  }
}
