// Runs the real probe service and a headquarters subscriber inside a lab, for the lab tests.
import type { ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { join } from "node:path";
import type { Lab } from "../../scripts/lab/lab.ts";
import { credentialsFile, labCredentials, probeBrokerEnv } from "../../scripts/lab/broker-tls.ts";
import { LAB_PROBE_CONFIG } from "../../scripts/lab/lab-command.ts";
import { readStatus, type StatusReport } from "../../services/probe/src/cli/status-command.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const CLI = join(ROOT, "services/probe/src/cli.ts");

/** One message as headquarters received it. */
export interface Received {
  topic: string;
  retain: boolean;
  qos: number;
  payload: Record<string, unknown>;
  /** ms since the subscriber started */
  at: number;
}

/** Path of the probe's database in a lab. */
export function probeDb(lab: Lab): string {
  return join(lab.info.dir, "probe.db");
}

/** Starts `netprobe run` in the lab's probe namespace with the lab config (TLS + probe-1's credentials). */
export function startProbe(
  lab: Lab,
  env: Record<string, string> = {},
  configFile: string = LAB_PROBE_CONFIG,
): ChildProcess & { log: string[] } {
  const child = lab.spawn("probe", [process.execPath, CLI, "run", "--config", configFile], {
    env: { ...process.env, NETPROBE_STORE_PATH: probeDb(lab), ...probeBrokerEnv(lab.info.dir), ...env },
    stdio: ["ignore", "ignore", "pipe"],
  }) as ChildProcess & { log: string[] };
  child.log = [];
  createInterface({ input: child.stderr! }).on("line", (l) => child.log.push(l));
  return child;
}

/** Waits for a child to exit; returns its exit code (or signal name) and how long it took. */
export async function exited(child: ChildProcess): Promise<{ code: number | string; ms: number }> {
  const t0 = Date.now();
  if (child.exitCode !== null || child.signalCode !== null)
    return { code: child.exitCode ?? child.signalCode!, ms: 0 };
  return new Promise((resolve) =>
    child.once("exit", (code, sig) => resolve({ code: code ?? sig ?? -1, ms: Date.now() - t0 })),
  );
}

/** A subscriber in the hq namespace (TLS, HQ's credentials); `persistent` keeps its QoS 1 queue across restarts of either side. */
export function startHq(lab: Lab, clientId: string, persistent: boolean) {
  const t0 = Date.now();
  const messages: Received[] = [];
  let connected = false;
  const child = lab.spawn(
    "hq",
    [
      process.execPath,
      join(ROOT, "scripts/lab/hq-subscriber.ts"),
      labCredentials(lab.info.dir, "hq").url,
      clientId,
      persistent ? "1" : "0",
      credentialsFile(lab.info.dir, "hq"),
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  createInterface({ input: child.stdout! }).on("line", (line) => {
    const m = JSON.parse(line) as Omit<Received, "at"> & { connected?: boolean };
    if (m.connected) {
      connected = true;
      return;
    }
    messages.push({ ...m, at: Date.now() - t0 });
  });
  return {
    child,
    messages,
    connected: () => connected,
    /** Messages on a topic suffix (`state`, `health`, `events`, `results/`). */
    on: (suffix: string) => messages.filter((m) => m.topic.split("/").slice(4).join("/").startsWith(suffix)),
    stop: async () => {
      child.kill("SIGTERM");
      await exited(child);
    },
  };
}

/** Polls until `fn` returns a truthy value or the time is up; returns the value or throws with `what`. */
export async function waitFor<T>(
  what: string | (() => string),
  timeoutMs: number,
  fn: () => T | undefined | false,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    let v: T | undefined | false;
    try {
      v = fn();
    } catch {
      v = undefined;
    }
    if (v) return v;
    if (Date.now() > until)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${typeof what === "string" ? what : what()}`,
      );
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The probe's own view (what `netprobe status --json` prints). */
export function probeStatus(lab: Lab): StatusReport {
  return readStatus(probeDb(lab));
}

/** Result messages deduplicated by id, in arrival order. */
export function uniqueResults(
  messages: readonly Received[],
): Array<Record<string, unknown> & { seq: number; check: string; id: string }> {
  const seen = new Set<string>();
  const out = [];
  for (const m of messages) {
    if (!m.topic.includes("/results/")) continue;
    const p = m.payload as Record<string, unknown> & { seq: number; check: string; id: string };
    if (seen.has(p.id)) continue;
    seen.add(p.id);
    out.push(p);
  }
  return out;
}
