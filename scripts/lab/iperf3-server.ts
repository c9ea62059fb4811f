// The lab's iperf3 server, at headquarters (`hq`, 203.0.113.50:5201): a stock Debian `iperf3 -s`
// for the throughput check, reached through the office's access link gw(wan0) ── (gw0)wan. That
// link can be shaped to a known rate with a token bucket (tc tbf; the kernel here has no netem,
// but sch_tbf is built in) on the egress of both ends, so upload and download have ground truth.
// Both ends forward the test's packets (the server is one hop further, on hq), so an overloaded
// bucket drops them as a real access link would: UDP loss shows, TCP backs off. A shaper on the
// sending host's own egress would instead block the sender's socket and hide the loss.
//
// lab.ts starts it from labUp; tests stop/start it and switch the shaping themselves.

import { spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { isAlive, run, runOk, signal, sleep, tail } from "./run.ts";
import { ADDR, type LabHost } from "./topology.ts";

/** Where the lab's iperf3 server listens. */
export const IPERF3_SERVER = { host: "hq", address: ADDR.hq4, port: 5201 } as const satisfies {
  host: LabHost;
  address: string;
  port: number;
};

/** What the server functions need of a lab (LabInfo has it). */
interface LabRef {
  ns: Record<LabHost, string>;
  dir: string;
}

const pidFile = (lab: LabRef): string => join(lab.dir, "iperf3.pid");
const logFile = (lab: LabRef): string => join(lab.dir, "iperf3.log");

/** The server's pid when it runs, else null. */
export function iperf3ServerPid(lab: LabRef): number | null {
  if (!existsSync(pidFile(lab))) return null;
  const pid = Number(readFileSync(pidFile(lab), "utf8").trim());
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return null;
  // A stale pid file may name a pid the kernel has since given to another process.
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "iperf3" ? pid : null;
  } catch {
    return null;
  }
}

/** Starts the server unless it runs, and waits until it listens; idempotent. */
export async function ensureIperf3Server(lab: LabRef): Promise<void> {
  if (iperf3ServerPid(lab) !== null) return;
  const fd = openSync(logFile(lab), "a");
  try {
    // Foreground (no -D) with ip netns exec execing in place: the pid is iperf3's own, and labDown
    // finds it among the namespace's processes.
    const child = spawn(
      "ip",
      [
        "netns",
        "exec",
        lab.ns[IPERF3_SERVER.host],
        "iperf3",
        "-s",
        "-p",
        String(IPERF3_SERVER.port),
        "-I",
        pidFile(lab),
      ],
      { detached: true, stdio: ["ignore", fd, fd] },
    );
    child.on("error", () => undefined); // reported below by the readiness wait
    child.unref();
  } finally {
    closeSync(fd);
  }
  // Readiness from the listening socket table, not a test connection: a connection without a
  // test would show up in the server's log as an error.
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    const r = await run(
      ["ip", "netns", "exec", lab.ns[IPERF3_SERVER.host], "ss", "-Hltn", `sport = :${IPERF3_SERVER.port}`],
      { timeoutMs: 2000 },
    );
    if (r.stdout.trim() !== "" && iperf3ServerPid(lab) !== null) return;
    await sleep(50);
  }
  throw new Error(`iperf3 -s did not start in ${lab.ns[IPERF3_SERVER.host]}:\n${tail(logFile(lab))}`);
}

/** Stops the server (SIGKILL: a server that dies, not one that says goodbye) and waits for it to go. */
export async function stopIperf3Server(lab: LabRef): Promise<void> {
  const pid = iperf3ServerPid(lab);
  if (pid === null) return;
  signal(pid, "SIGKILL");
  for (let i = 0; i < 100 && isAlive(pid); i++) await sleep(20);
  rmSync(pidFile(lab), { force: true });
}

/** Token-bucket burst: enough for one 1 ms of line rate at 50 Mbit/s times a few, small enough to keep TCP honest. */
const BURST = "32kb";

/**
 * Shapes the access link gw ── wan to `mbit` Mbit/s in both directions (null: unshaped). The rate
 * is the ground truth: tbf counts whole IP packets, so TCP goodput over it is ~95 % of the rate
 * (headers: 1448 payload bytes per 1514-byte frame).
 */
export async function shapeAccessLink(lab: LabRef, mbit: number | null): Promise<void> {
  const ends: [string, string][] = [
    [lab.ns.gw, ADDR.gwWanIf], // upload: the office's traffic leaving the gateway
    [lab.ns.wan, "gw0"], // download: the provider's side toward the office
  ];
  for (const [ns, dev] of ends) {
    if (mbit === null) {
      // Deleting a root qdisc that is the default one fails; that is the state we want.
      await run(["tc", "-n", ns, "qdisc", "del", "dev", dev, "root"]);
    } else {
      await runOk([
        "tc",
        "-n",
        ns,
        "qdisc",
        "replace",
        "dev",
        dev,
        "root",
        "tbf",
        "rate",
        `${mbit}mbit`,
        "burst",
        BURST,
        "latency",
        "50ms",
      ]);
    }
  }
}
