// The internet path of the lab (issue 4): beyond the provider router `wan`, two routers and a far
// host, so traceroute has hops to list, a link whose MTU can shrink, and a target whose echo
// replies come from a userspace responder with known impairment (icmp-responder.ts).
//
//   wan(r10) ─ 203.0.113.128/30 ─ (wan0)r1(r20) ─ .132/30 ─ (r10)r2(far0) ─ .136/30 ─ (eth0)far
//                                                  mtu-small                      lo: 203.0.113.200
//
// IPv6 alike on 2001:db8:11::/64, :12::/64, :13::/64, target 2001:db8:14::200. The office's IPv4 is
// masqueraded by gw, so the routers only need routes back to 198.51.100.0/24 (their default
// route, toward wan); IPv6 is routed end to end.

import { spawn } from "node:child_process";
import { closeSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { run, runOk, signal, sleep } from "./run.ts";
import { ADDR, type LabHost } from "./topology.ts";

/** Namespace names of the lab's hosts. */
type Namespaces = Record<LabHost, string>;

/** MTU of the r1–r2 link while `mtu-small` is on (a typical VPN tunnel). */
export const SMALL_MTU = 1400;
/** The hop that `wan-hop-loss` silences (hop 3 from the probe: gw, wan, r1). */
export const LOSSY_HOP: LabHost = "r1";
const R1_R2_IF = "r20";
const HOP_TABLE = "netprobe_hop";

/** Impairment of the far target's echo replies and of the lossy hop, from the faults that are on. */
export interface WanPathState {
  loss_pct: number;
  latency_ms: number;
  jitter_ms: number;
  /** Share of r1's ICMP time-exceeded messages that are dropped. */
  hop_loss_pct: number;
  mtu_small: boolean;
}

/** Path of the responder's control socket in a lab directory. */
export function responderSocket(dir: string): string {
  return join(dir, "icmp-responder.sock");
}

/** Builds (or repairs) the path and (re)starts the responder with no impairment; idempotent. */
export async function buildWanPath(ns: Namespaces, dir: string): Promise<void> {
  // The responder needs no addresses to start; Node's start-up overlaps the rest of the build.
  await restartResponder(ns.far, dir);
  await Promise.all([
    veth(ns.wan, "r10", ns.r1, "wan0"),
    veth(ns.r1, R1_R2_IF, ns.r2, "r10"),
    veth(ns.r2, "far0", ns.far, "eth0"),
  ]);
  const A = ADDR;
  // Everything past wan lives in 203.0.113.128/25 and 2001:db8:10::/44.
  const beyond4 = "203.0.113.128/25";
  const beyond6 = "2001:db8:10::/44";
  // One `ip -batch` per namespace (process spawns are what makes a lab build slow); `replace` keeps
  // every line idempotent. Route families follow from the `via` address.
  const batches: [string, string[]][] = [
    [
      ns.wan,
      [
        ...link("r10", `${A.pathWanR1_4}/30`, `${A.pathWanR1_6}/64`),
        `route replace ${beyond4} via ${A.pathR1Wan4}`,
        `route replace ${beyond6} via ${A.pathR1Wan6}`,
      ],
    ],
    [
      ns.r1,
      [
        ...link("wan0", `${A.pathR1Wan4}/30`, `${A.pathR1Wan6}/64`),
        ...link(R1_R2_IF, `${A.pathR1R2_4}/30`, `${A.pathR1R2_6}/64`),
        `route replace default via ${A.pathWanR1_4}`,
        `route replace default via ${A.pathWanR1_6}`,
        `route replace ${beyond4} via ${A.pathR2R1_4}`,
        `route replace ${beyond6} via ${A.pathR2R1_6}`,
      ],
    ],
    [
      ns.r2,
      [
        ...link("r10", `${A.pathR2R1_4}/30`, `${A.pathR2R1_6}/64`),
        ...link("far0", `${A.pathR2Far4}/30`, `${A.pathR2Far6}/64`),
        `route replace default via ${A.pathR1R2_4}`,
        `route replace default via ${A.pathR1R2_6}`,
        `route replace ${beyond4} via ${A.pathFarR2_4}`,
        `route replace ${beyond6} via ${A.pathFarR2_6}`,
      ],
    ],
    [
      ns.far,
      [
        ...link("eth0", `${A.pathFarR2_4}/30`, `${A.pathFarR2_6}/64`),
        `addr replace ${A.farTarget4}/32 dev lo`,
        `addr replace ${A.farTarget6}/128 dev lo nodad`,
        // `src`: what far sends (the responder's echo replies, port unreachables) comes from the target.
        `route replace default via ${A.pathR2Far4} src ${A.farTarget4}`,
        `route replace default via ${A.pathR2Far6} src ${A.farTarget6}`,
      ],
    ],
  ];
  await Promise.all(
    batches.map(([n, lines]) => runOk(["ip", "-n", n, "-batch", "-"], { input: `${lines.join("\n")}\n` })),
  );

  // Routers answer every traceroute probe: real ones rate-limit ICMP errors (1/s per destination
  // by default), which would show up as loss the lab did not inject.
  const noRateLimit = { "net.ipv4.icmp_ratelimit": 0, "net.ipv6.icmp.ratelimit": 0 };
  const forwarding = { "net.ipv4.ip_forward": 1, "net.ipv6.conf.all.forwarding": 1 };
  await Promise.all([
    sysctl(ns.gw, noRateLimit),
    sysctl(ns.wan, noRateLimit),
    sysctl(ns.r1, { ...noRateLimit, ...forwarding }),
    sysctl(ns.r2, { ...noRateLimit, ...forwarding }),
    // far's kernel ignores echo requests; icmp-responder.ts answers them.
    sysctl(ns.far, {
      ...noRateLimit,
      "net.ipv4.icmp_echo_ignore_all": 1,
      "net.ipv6.icmp.echo_ignore_all": 1,
    }),
  ]);
  // The fresh responder starts unimpaired; labUp's reachability check waits for its first reply.
  await applyPathNetwork(ns, { hop_loss_pct: 0, mtu_small: false });
}

/** Applies the impairment faults: the r1–r2 MTU, r1's ICMP drops, the responder's config. */
export async function applyWanPath(ns: Namespaces, dir: string, state: WanPathState): Promise<void> {
  await applyPathNetwork(ns, state);
  await responderCommand(dir, {
    set: { loss_pct: state.loss_pct, latency_ms: state.latency_ms, jitter_ms: state.jitter_ms },
  });
}

async function applyPathNetwork(
  ns: Namespaces,
  state: Pick<WanPathState, "hop_loss_pct" | "mtu_small">,
): Promise<void> {
  const mtu = String(state.mtu_small ? SMALL_MTU : 1500);
  await ipq(ns.r1, "link", "set", R1_R2_IF, "mtu", mtu);
  await ipq(ns.r2, "link", "set", "r10", "mtu", mtu);
  // Drops a share of the hop's own "time exceeded" messages: traceroute sees loss at that hop
  // while every packet it forwards still gets through.
  const share = Math.round(state.hop_loss_pct);
  const rules =
    share <= 0
      ? []
      : share >= 100
        ? [`icmp type time-exceeded drop`, `icmpv6 type time-exceeded drop`]
        : [
            `icmp type time-exceeded numgen random mod 100 < ${share} drop`,
            `icmpv6 type time-exceeded numgen random mod 100 < ${share} drop`,
          ];
  const ruleset = [
    `table inet ${HOP_TABLE}`,
    `delete table inet ${HOP_TABLE}`,
    `table inet ${HOP_TABLE} {`,
    `\tchain output {`,
    `\t\ttype filter hook output priority filter; policy accept;`,
    ...rules.map((r) => `\t\t${r} comment "wan-hop-loss"`),
    `\t}`,
    `}`,
    ``,
  ].join("\n");
  await runOk(["ip", "netns", "exec", ns[LOSSY_HOP], "nft", "-f", "-"], { input: ruleset });
}

/** Sends one command to the responder and returns its reply (throws when it does not answer). */
export async function responderCommand(
  dir: string,
  request: Record<string, unknown>,
  timeoutMs = 5_000,
): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  let lastError = "not tried";
  while (Date.now() < deadline) {
    try {
      return await ask(responderSocket(dir), request, deadline - Date.now());
    } catch (error) {
      lastError = error instanceof Error ? error.message : String(error);
      await sleep(50);
    }
  }
  throw new Error(`icmp-responder (${responderSocket(dir)}) did not answer: ${lastError}`);
}

/** One request on a responder's control socket (newline-delimited JSON); rejects unless `ok`. */
export function ask(
  path: string,
  request: Record<string, unknown>,
  timeoutMs: number,
): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    let buffered = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error("timeout"));
    }, timeoutMs);
    socket.setEncoding("utf8");
    socket.on("connect", () => socket.write(`${JSON.stringify(request)}\n`));
    socket.on("data", (chunk: string) => {
      buffered += chunk;
      const newline = buffered.indexOf("\n");
      if (newline < 0) return;
      clearTimeout(timer);
      socket.end();
      try {
        const reply = JSON.parse(buffered.slice(0, newline)) as Record<string, unknown>;
        if (reply.ok === true) resolve(reply);
        else reject(new Error(`icmp-responder refused ${JSON.stringify(request)}: ${String(reply.error)}`));
      } catch (error) {
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    });
    socket.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** Stops a responder left by an earlier build of this lab and starts a fresh one in `far`. */
async function restartResponder(farNs: string, dir: string): Promise<void> {
  const pidFile = join(dir, "icmp-responder.pid");
  try {
    const pid = Number(readFileSync(pidFile, "utf8"));
    const comm = readFileSync(`/proc/${pid}/comm`, "utf8").trim();
    if (comm === "icmp-responder") {
      signal(pid, "SIGTERM");
      for (let i = 0; i < 100 && existsProc(pid); i++) await sleep(20);
    }
  } catch {
    // none running
  }
  const script = fileURLToPath(new URL("./icmp-responder.ts", import.meta.url));
  const log = openSync(join(dir, "icmp-responder.log"), "a");
  try {
    const child = spawn(
      "ip",
      [
        "netns",
        "exec",
        farNs,
        process.execPath,
        script,
        "--control",
        responderSocket(dir),
        "--address4",
        ADDR.farTarget4,
      ],
      // NODE_OPTIONS cleared: a test runner's loaders must not follow the responder.
      { detached: true, stdio: ["ignore", log, log], env: { ...process.env, NODE_OPTIONS: "" } },
    );
    child.on("error", () => undefined);
    child.unref();
    if (child.pid !== undefined) writeFileSync(pidFile, String(child.pid));
  } finally {
    closeSync(log);
  }
}

function existsProc(pid: number): boolean {
  try {
    readFileSync(`/proc/${pid}/comm`);
    return true;
  } catch {
    return false;
  }
}

function ipq(ns: string, ...args: string[]): Promise<string> {
  return runOk(["ip", "-n", ns, ...args]);
}

async function veth(nsA: string, ifA: string, nsB: string, ifB: string): Promise<void> {
  const exists = async (ns: string, dev: string) =>
    (await run(["ip", "-n", ns, "link", "show", "dev", dev])).code === 0;
  const [a, b] = [await exists(nsA, ifA), await exists(nsB, ifB)];
  if (a && b) return;
  if (a) await ipq(nsA, "link", "del", ifA);
  if (b) await ipq(nsB, "link", "del", ifB);
  // Created from inside nsA, peer placed straight into nsB: never in the root namespace.
  await ipq(nsA, "link", "add", ifA, "type", "veth", "peer", "name", ifB, "netns", nsB);
}

/** `ip -batch` lines bringing a link up with one IPv4 and one IPv6 address (no DAD: usable at once). */
function link(dev: string, v4: string, v6: string): string[] {
  return [`link set ${dev} up`, `addr replace ${v4} dev ${dev}`, `addr replace ${v6} dev ${dev} nodad`];
}

async function sysctl(ns: string, values: Record<string, number>): Promise<void> {
  const argv = Object.entries(values).map(([k, v]) => `${k}=${v}`);
  await runOk(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", ...argv]);
}
