import { spawn } from "node:child_process";
import type { ChildProcess, SpawnOptions } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  accessSync,
  constants as fsConstants,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
} from "node:fs";
import { renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";
import { FAULT_NAMES, FAULT_VALUES, isFaultName, nftRuleset, noFaults, switchFault } from "./faults.ts";
import type { FaultActions, FaultName } from "./faults.ts";
import { ensureBrokerTls } from "./broker-tls.ts";
import { daemonSpecs, startDaemon } from "./peers.ts";
import { startStampTarget, stampResponderCommand } from "./stamp-target.ts";
import { applyWanPath, buildWanPath } from "./wan-path.ts";
import { applyLanFaults, buildLanHosts, reattachProbePort } from "./lan-hosts.ts";
import { applyPbx, buildPbx } from "./pbx.ts";
import { ensureWanServers, setWanServers, wanModeFor } from "./wan-servers.ts";
import { ensureIperf3Server } from "./iperf3-server.ts";
import { applyProbeFaults, initProbeHostsFile, startDhcpClient, stopDhcpClient } from "./probe-host.ts";
import type { DaemonName } from "./peers.ts";
import { isAlive, processStartTime, run, runOk, runSync, signal, sleep, sleepSync, tail } from "./run.ts";
import type { RunResult } from "./run.ts";
import { ADDR, DNS_RECORDS, HOSTS, buildTopology } from "./topology.ts";
import type { LabAddresses, LabHost, ProbeAddressing } from "./topology.ts";

// The simulated branch office (docs/architecture.md, "The lab") as a library: labUp builds it, Lab drives it, labDown
// removes it. State lives in /run/netprobe-lab/<name>/ so a second process (the CLI) can load a lab
// built by the first. The lead wires `netprobe lab up|down|status|fault|exec` onto these exports.

export { ADDR, DNS_RECORDS, HOSTS, listNamespaces } from "./topology.ts";
export type { LabAddresses, LabHost, ProbeAddressing } from "./topology.ts";
export { FAULTS, FAULT_NAMES, FAULT_VALUES, isFaultName } from "./faults.ts";
export type { FaultName } from "./faults.ts";
export type { DaemonName } from "./peers.ts";
export type { RunResult } from "./run.ts";

/** Directory holding one sub-directory (state, configs, logs) per lab. */
export const LAB_ROOT = "/run/netprobe-lab";

/** Everything a test or the CLI needs to know about a running lab. */
export interface LabInfo {
  name: string;
  /** The lab's directory: state.json, daemon configs, logs, leases, broker persistence. */
  dir: string;
  /** Namespace name of each host (`<name>-<host>`). */
  ns: Record<LabHost, string>;
  addr: LabAddresses;
  /** Names the gateway's DNS answers for. */
  dns: Readonly<Record<string, { a: string; aaaa: string }>>;
  brokerUrl: string;
  /** Whether the probe has its static addresses (false: DHCP or link only). */
  probeStatic: boolean;
  /** How the probe gets its addresses (absent in state written before DHCP addressing: static/none). */
  probeAddressing?: ProbeAddressing;
  /** Faults currently on (as of load or the last fault() through this object). */
  faults: Record<FaultName, boolean>;
  /** The value of each value-taking fault that is on (`wan-loss` 5 …); see FAULT_VALUES. */
  faultValues?: Partial<Record<FaultName, number>>;
}

/** Options of {@link labUp}. */
export interface LabUpOptions {
  /** Lab name (default `np` + 4 random hex digits); an existing lab of that name is repaired. */
  name?: string;
  /** Give the probe 192.0.2.10 / 2001:db8:1::10 and default routes (default true); false = `none`. */
  probeStatic?: boolean;
  /**
   * How the probe gets its addresses (default `static`, or `none` when probeStatic is false):
   * `dhcp` runs a DHCP client in the probe namespace that behaves as dhcpcd on Raspberry Pi OS
   * (probe-host.ts), with a 120 s lease, so the lease-lost / link-down faults take address and
   * routes away as in a real office.
   */
  probeAddressing?: ProbeAddressing;
  /**
   * Tie the lab to the calling process: a detached guardian removes it as soon as that process is
   * gone, however it went (SIGKILL too). Without this the lab lives until `labDown` (the CLI's case).
   */
  ephemeral?: boolean;
}

/** What {@link Lab.status} reports. */
export interface LabStatus {
  name: string;
  /** Whether each host's namespace exists. */
  hosts: Record<LabHost, boolean>;
  /** The lab's daemons; a daemon stopped by a fault is expected to be down. */
  daemons: Record<DaemonName, { pid: number | null; alive: boolean }>;
  /** Pids of still-running processes started through this Lab object's spawn()/exec(). */
  spawned: number[];
  faults: Record<FaultName, boolean>;
  /** Every namespace present and every daemon that no fault stops is running. */
  healthy: boolean;
}

/** Options of {@link Lab.exec}. */
export interface ExecOptions {
  /** Kill the command after this long (default 30 s); the result then has code 124. */
  timeoutMs?: number;
  /** Written to the command's stdin. */
  input?: string;
}

/** The state file's content. */
interface LabState {
  version: 1;
  info: LabInfo;
  pids: Record<DaemonName, number | null>;
  /** The process the lab belongs to (null: kept until labDown). Set while building, too. */
  owner: { pid: number; start: string } | null;
  /** guardian.ts process watching the owner. */
  guardian_pid: number | null;
  created_at: string;
}

const READY_TIMEOUT_MS = 15_000;

/** A built lab; get one from {@link labUp} or {@link Lab.load}. */
export class Lab {
  /** Name, namespaces, addresses, broker URL and fault state of the lab. */
  readonly info: LabInfo;
  readonly #children = new Set<ChildProcess>();

  /** Wraps existing lab info; use labUp() or Lab.load() rather than calling this directly. */
  constructor(info: LabInfo) {
    this.info = info;
  }

  /** Loads a lab built by this or another process, from its state file. */
  static load(name: string): Lab {
    return new Lab(readState(name).info);
  }

  /** Runs argv inside a host's namespace to completion; never throws for a failing command. */
  exec(host: LabHost, argv: readonly string[], opts: ExecOptions = {}): Promise<RunResult> {
    return run(["ip", "netns", "exec", this.info.ns[host], ...argv], {
      ...opts,
      onSpawn: (child) => this.#track(child),
    });
  }

  /** Starts argv inside a host's namespace (`ip netns exec`, which execs in place); down() kills it. */
  spawn(host: LabHost, argv: readonly string[], opts: SpawnOptions = {}): ChildProcess {
    const child = spawn("ip", ["netns", "exec", this.info.ns[host], ...argv], opts);
    this.#track(child);
    return child;
  }

  /**
   * Switches a fault on or off (idempotent); see FAULTS for what each one breaks. `value` is for
   * the faults in FAULT_VALUES (default: theirs); others reject it.
   */
  async fault(name: FaultName, on: boolean, value?: number): Promise<void> {
    if (!isFaultName(name))
      throw new Error(`unknown lab fault "${String(name)}"; known: ${FAULT_NAMES.join(", ")}`);
    const valueSpec = FAULT_VALUES[name];
    if (value !== undefined && valueSpec === undefined) throw new Error(`lab fault ${name} takes no value`);
    const min = valueSpec?.min ?? 0;
    if (value !== undefined && valueSpec && !(value >= min && value <= valueSpec.max))
      throw new Error(`lab fault ${name}: value must be in [${min}, ${valueSpec.max}] ${valueSpec.unit}`);
    const current = readState(this.info.name).info;
    const next = { ...current.faults, [name]: on };
    const values = { ...current.faultValues };
    if (valueSpec && on) values[name] = value ?? valueSpec.default;
    else delete values[name];
    await switchFault(name, on, faultActions(this.info, next, values));
    // Re-read: stopping or starting the broker updated the pids in the meantime.
    const state = readState(this.info.name);
    state.info.faults = next;
    state.info.faultValues = values;
    writeState(state);
    this.info.faults = next;
    this.info.faultValues = values;
  }

  /** Hosts present, daemons alive, faults on. */
  status(): Promise<LabStatus> {
    const state = readState(this.info.name);
    const hosts = Object.fromEntries(HOSTS.map((h) => [h, namespaceExists(this.info.ns[h])])) as Record<
      LabHost,
      boolean
    >;
    const specs = daemonSpecs(this.info.dir);
    const daemons = Object.fromEntries(
      (Object.keys(specs) as DaemonName[]).map((d) => {
        const pid = state.pids[d];
        return [d, { pid, alive: pid !== null && daemonAlive(pid, d, this.info.ns[specs[d].host]) }];
      }),
    ) as LabStatus["daemons"];
    const expectedDown: Partial<Record<DaemonName, boolean>> = {
      mosquitto: state.info.faults["broker-down"],
    };
    const healthy =
      Object.values(hosts).every(Boolean) &&
      (Object.keys(daemons) as DaemonName[]).every((d) => daemons[d].alive || expectedDown[d] === true);
    const spawned = [...this.#children].flatMap((c) =>
      c.pid !== undefined && isAlive(c.pid) ? [c.pid] : [],
    );
    return Promise.resolve({
      name: this.info.name,
      hosts,
      daemons,
      spawned,
      faults: state.info.faults,
      healthy,
    });
  }

  /** Kills everything the lab runs, deletes its namespaces and directory; harmless when already gone. */
  down(): Promise<void> {
    // Most are inside the namespaces and get the sweep's SIGTERM-then-SIGKILL anyway; this reaches
    // one that is still `ip netns exec` in the root namespace, about to switch.
    for (const child of this.#children) if (child.pid !== undefined) signal(child.pid, "SIGTERM");
    this.#children.clear();
    return labDown(this.info.name);
  }

  #track(child: ChildProcess): void {
    this.#children.add(child);
    child.once("exit", () => this.#children.delete(child));
  }
}

/** Builds a lab (or repairs the existing lab of that name, switching every fault off) and waits until it works. */
export async function labUp(opts: LabUpOptions = {}): Promise<Lab> {
  preflight();
  const name = opts.name ?? newLabName();
  checkName(name);
  const dir = join(LAB_ROOT, name);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const previous = tryReadState(name);
  const addressing = opts.probeAddressing ?? (opts.probeStatic === false ? "none" : "static");
  const info: LabInfo = {
    name,
    dir,
    ns: namespacesOf(name),
    addr: ADDR,
    dns: DNS_RECORDS,
    brokerUrl: `mqtt://${ADDR.hq4}:${ADDR.brokerPort}`,
    probeStatic: addressing === "static",
    probeAddressing: addressing,
    faults: noFaults(),
  };
  // Written before anything is built and owned by this process until done, with a guardian that
  // removes the lab if this process dies first (even by SIGKILL) and, for an ephemeral lab, later.
  const owner = ownerOf(process.pid);
  const guardian = previous?.guardian_pid ?? null;
  const sameOwner = previous?.owner?.pid === owner.pid && previous.owner.start === owner.start;
  writeState({
    version: 1,
    info,
    pids: previous?.pids ?? { dnsmasq: null, mosquitto: null },
    owner,
    guardian_pid: sameOwner && guardian !== null && isAlive(guardian) ? guardian : startGuardian(name, owner),
    created_at: previous?.created_at ?? new Date().toISOString(),
  });
  const lab = new Lab(info);
  try {
    await stopDhcpClient(dir); // a repair starts it again once the gateway answers
    await buildTopology(info.ns, { probeAddressing: addressing });
    await buildWanPath(info.ns, dir);
    await startStampTarget(info.ns.far, dir);
    await buildLanHosts(info.ns, dir);
    await buildPbx(info.ns, dir);
    await loadFirewall(info, info.faults);
    await verifyReachable(lab);
    initProbeHostsFile(dir);
    ensureDaemon(info, "dnsmasq");
    await waitDnsmasq(lab);
    if (addressing === "dhcp") {
      await startDhcpClient(info.ns, dir, true);
      await verifyReachable(lab, true);
    }
    await applyProbeFaults(info.ns, dir, addressing, { faults: info.faults, mtu: 0 }, () =>
      Promise.resolve(),
    );
    ensureBrokerTls(dir); // CA, certificates, passwords and ACL the broker's config points at
    ensureDaemon(info, "mosquitto");
    await waitBroker(lab);
    await ensureWanServers(info); // DNS, HTTP(S), echo and SNTP on wan, reset to no faults
    await ensureIperf3Server(info); // iperf3 -s at hq, for the throughput check
  } catch (err) {
    // Clean up what was built; the error already carries the log tails that are about to go.
    await lab.down();
    throw new Error(`lab ${name} could not be built: ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
    });
  }
  const state = readState(name);
  if (!opts.ephemeral) state.owner = null; // the guardian sees this and leaves
  writeState(state);
  return lab;
}

/** Starts guardian.ts, detached, to remove the lab once `owner` has exited; returns its pid. */
function startGuardian(name: string, owner: NonNullable<LabState["owner"]>): number | null {
  const script = fileURLToPath(new URL("./guardian.ts", import.meta.url));
  // NODE_OPTIONS cleared: a test runner's loaders must not follow the guardian.
  const child = spawn(process.execPath, [script, name, String(owner.pid), owner.start], {
    detached: true,
    stdio: "ignore",
    env: { ...process.env, NODE_OPTIONS: "" },
  });
  child.on("error", () => undefined);
  child.unref();
  return child.pid ?? null;
}

/** Removes a lab: kills every process in its namespaces, deletes them and its directory; never throws if gone. */
export function labDown(name: string): Promise<void> {
  try {
    labDownSync(name);
    return Promise.resolve();
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
}

/**
 * labDown without the event loop, for process `exit` hooks. Blocks up to ~5 s while processes exit;
 * teardown is sequential so it is the same code on both paths.
 */
export function labDownSync(name: string): void {
  checkName(name);
  const namespaces = HOSTS.map((h) => `${name}-${h}`).filter(namespaceExists);
  const state = tryReadState(name);
  const daemonPids = (): number[] => {
    if (!state) return [];
    // A daemon whose namespace file vanished would not show up in `ip netns pids`.
    return (Object.keys(state.pids) as DaemonName[]).flatMap((d) => {
      const pid = state.pids[d];
      return pid !== null && isAlive(pid) && commOf(pid) === d ? [pid] : [];
    });
  };
  const victims = (): number[] => [...new Set([...namespaces.flatMap(namespacePids), ...daemonPids()])];
  const deadline = Date.now() + 5_000;
  let killAt = Date.now() + 2_000; // SIGTERM first (mosquitto saves persistence), then SIGKILL
  for (let pids = victims(); pids.length > 0 && Date.now() < deadline; pids = victims()) {
    const sig = Date.now() < killAt ? "SIGTERM" : "SIGKILL";
    for (const pid of pids) signal(pid, sig);
    if (sig === "SIGKILL") killAt = Infinity;
    sleepSync(50);
  }
  for (const ns of namespaces) {
    rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
    const r = runSync(["ip", "netns", "del", ns]);
    if (r.code !== 0 && namespaceExists(ns))
      throw new Error(`could not delete namespace ${ns}: ${r.stderr.trim()}`);
  }
  rmSync(join(LAB_ROOT, name), { recursive: true, force: true });
}

/** Names of every lab on this machine (state directories, plus namespace sets whose directory is gone). */
export function listLabs(): string[] {
  const names = new Set<string>();
  try {
    for (const e of readdirSync(LAB_ROOT, { withFileTypes: true }))
      if (e.isDirectory() && validName(e.name)) names.add(e.name);
  } catch {
    // no lab root yet
  }
  let namespaces: string[] = [];
  try {
    namespaces = readdirSync("/run/netns");
  } catch {
    // no namespaces at all
  }
  const set = new Set(namespaces);
  for (const ns of namespaces) {
    const m = /^(.+)-sw$/.exec(ns);
    if (m?.[1] && validName(m[1]) && set.has(`${m[1]}-gw`)) names.add(m[1]);
  }
  return [...names].sort();
}

/**
 * Removes every lab whose name starts with `prefix` (returns their names). With `orphanedOnly`, only
 * labs whose owning process is gone (a crashed or killed test run), never a CLI lab or a live run's.
 */
export function labDownAll(opts: { prefix?: string; orphanedOnly?: boolean } = {}): Promise<string[]> {
  const removed: string[] = [];
  for (const name of listLabs()) {
    if (!name.startsWith(opts.prefix ?? "")) continue;
    if (opts.orphanedOnly && !isOrphaned(name)) continue;
    labDownSync(name);
    removed.push(name);
  }
  return Promise.resolve(removed);
}

/** A fresh lab name: `prefix` + 4 random hex digits, not used by any lab on this machine. */
export function newLabName(prefix = "np"): string {
  const taken = new Set(listLabs());
  for (;;) {
    const name = `${prefix}${randomBytes(2).toString("hex")}`;
    if (!taken.has(name)) return name;
  }
}

// ---- daemons ----------------------------------------------------------------------------------

function daemonAlive(pid: number, daemon: DaemonName, ns: string): boolean {
  if (!isAlive(pid) || commOf(pid) !== daemon) return false;
  try {
    return statSync(`/proc/${pid}/ns/net`).ino === statSync(`/run/netns/${ns}`).ino;
  } catch {
    return false;
  }
}

/** Starts a daemon unless it already runs in its namespace (repair keeps a healthy one). */
function ensureDaemon(info: LabInfo, daemon: DaemonName): void {
  const spec = daemonSpecs(info.dir)[daemon];
  const state = readState(info.name);
  const pid = state.pids[daemon];
  if (pid !== null && daemonAlive(pid, daemon, info.ns[spec.host])) return;
  state.pids[daemon] = startDaemon(info.ns[spec.host], spec);
  writeState(state);
}

/** SIGTERMs a daemon and waits for it to exit (SIGKILL after 10 s). */
async function stopDaemon(info: LabInfo, daemon: DaemonName): Promise<void> {
  const state = readState(info.name);
  const pid = state.pids[daemon];
  const ns = info.ns[daemonSpecs(info.dir)[daemon].host];
  if (pid !== null && daemonAlive(pid, daemon, ns)) {
    signal(pid, "SIGTERM");
    const deadline = Date.now() + 10_000;
    while (isAlive(pid) && Date.now() < deadline) await sleep(20);
    if (isAlive(pid)) signal(pid, "SIGKILL");
    while (isAlive(pid)) await sleep(20);
  }
  state.pids[daemon] = null;
  writeState(state);
}

/** The host readiness checks run from: the probe when it has addresses (proves the path too). */
function checkHost(info: LabInfo, fallback: LabHost): LabHost {
  return info.probeStatic ? "probe" : fallback;
}

async function waitDnsmasq(lab: Lab): Promise<void> {
  const { info } = lab;
  const name = `gw.${ADDR.domain}`;
  await waitFor(info, "dnsmasq", `DNS answer for ${name} from ${ADDR.gwLan4}`, async () => {
    const argv = ["dig", "+short", "+time=1", "+tries=1", `@${ADDR.gwLan4}`, name, "A"];
    const r = await lab.exec(checkHost(info, "gw"), argv, { timeoutMs: 3_000 });
    return r.stdout.trim() === ADDR.gwLan4
      ? undefined
      : `dig: ${(r.stdout + r.stderr).trim() || `exit ${r.code}`}`;
  });
}

async function waitBroker(lab: Lab): Promise<void> {
  const { info } = lab;
  await waitFor(info, "mosquitto", `MQTT SUBACK from ${ADDR.hq4}:${ADDR.brokerPort}`, async () => {
    // -E: exit as soon as the subscription is acknowledged; no message and no retained state needed.
    const argv = [
      "mosquitto_sub",
      "-h",
      ADDR.hq4,
      "-p",
      `${ADDR.brokerPort}`,
      "-t",
      "netprobe-lab/ready",
      "-E",
    ];
    const r = await lab.exec(checkHost(info, "hq"), [...argv, "-i", `${info.name}-ready`], {
      timeoutMs: 3_000,
    });
    return r.code === 0 ? undefined : `mosquitto_sub: ${r.stderr.trim() || `exit ${r.code}`}`;
  });
}

/** Polls `check` (undefined = ready) until it passes, the daemon dies, or the timeout. */
async function waitFor(
  info: LabInfo,
  daemon: DaemonName,
  what: string,
  check: () => Promise<string | undefined>,
): Promise<void> {
  const spec = daemonSpecs(info.dir)[daemon];
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last = "not checked";
  for (;;) {
    const pid = readState(info.name).pids[daemon];
    // Right after the spawn the pid is still `ip netns exec`, about to exec the daemon.
    const starting = pid !== null && isAlive(pid) && commOf(pid) === "ip";
    const alive = starting || (pid !== null && daemonAlive(pid, daemon, info.ns[spec.host]));
    const problem = !alive
      ? `${daemon} is not running (pid ${pid}) in ${info.ns[spec.host]}`
      : starting
        ? "starting"
        : await check();
    if (problem === undefined) return;
    last = problem;
    if (!alive || Date.now() > deadline) {
      const waited = alive ? ` within ${READY_TIMEOUT_MS / 1000} s` : "";
      throw new Error(
        `${daemon} did not come up${waited} (waiting for ${what}): ${last}\n` +
          `--- last lines of ${spec.logPath} ---\n${tail(spec.logPath)}`,
      );
    }
    await sleep(100);
  }
}

/** Pings every address the office must reach (v4 and v6) until each answers once. */
async function verifyReachable(lab: Lab, fromProbe = lab.info.probeStatic): Promise<void> {
  const from: LabHost = fromProbe ? "probe" : "gw";
  const targets: string[] = fromProbe
    ? [ADDR.gwLan4, ADDR.wanTarget4, ADDR.hq4, ADDR.gwLan6, ADDR.wanTarget6, ADDR.hq6]
    : [ADDR.wanTarget4, ADDR.hq4, ADDR.wanTarget6, ADDR.hq6];
  // The far target answers through icmp-responder.ts, which may still be starting.
  targets.push(ADDR.farTarget4, ADDR.farTarget6);
  const deadline = Date.now() + READY_TIMEOUT_MS;
  const failures = await Promise.all(
    targets.map(async (target) => {
      for (;;) {
        const r = await lab.exec(from, ["ping", "-n", "-q", "-c", "1", "-W", "1", target], {
          timeoutMs: 3_000,
        });
        if (r.code === 0) return undefined;
        if (Date.now() > deadline)
          return `${target} (${(r.stderr.trim() || r.stdout.trim()).split("\n").pop()})`;
        await sleep(100);
      }
    }),
  );
  const unreachable = failures.filter((f) => f !== undefined);
  if (unreachable.length > 0) throw new Error(`${from} cannot reach ${unreachable.join(", ")}`);
}

// ---- faults -----------------------------------------------------------------------------------

async function loadFirewall(info: LabInfo, faults: Record<FaultName, boolean>): Promise<void> {
  await runOk(["ip", "netns", "exec", info.ns.gw, "nft", "-f", "-"], { input: nftRuleset(faults) });
}

function faultActions(
  info: LabInfo,
  next: Record<FaultName, boolean>,
  values: Partial<Record<FaultName, number>>,
): FaultActions {
  const lab = new Lab(info);
  const valueOf = (f: FaultName): number => (next[f] ? (values[f] ?? FAULT_VALUES[f]?.default ?? 0) : 0);
  return {
    applyLan: () => applyLanFaults(info.ns, info.dir, next),
    applyWanPath: async () => {
      const impairment = {
        loss_pct: valueOf("wan-loss"),
        latency_ms: valueOf("wan-latency"),
        jitter_ms: valueOf("wan-jitter"),
      };
      await applyWanPath(info.ns, info.dir, {
        ...impairment,
        hop_loss_pct: valueOf("wan-hop-loss"),
        mtu_small: next["mtu-small"],
      });
      await stampResponderCommand(info.dir, { set: impairment });
    },
    applyPbx: () =>
      applyPbx(info.ns, info.dir, {
        down: next["pbx-down"],
        authFail: next["sip-auth-fail"],
        loss_pct: valueOf("rtp-loss"),
        jitter_ms: valueOf("rtp-jitter"),
        delay_ms: 0,
        oneWay: next["one-way-audio"],
      }),
    applyWanServers: async () => void (await setWanServers(info.dir, wanModeFor(next))),
    applyProbe: () =>
      applyProbeFaults(
        info.ns,
        info.dir,
        info.probeAddressing ?? (info.probeStatic ? "static" : "none"),
        { faults: next, mtu: valueOf("mtu-changed") },
        () => reattachProbePort(info.ns, info.dir, next),
      ),
    gwIp: async (...args) => void (await runOk(["ip", "-n", info.ns.gw, ...args])),
    applyFirewall: () => loadFirewall(info, next),
    stopBroker: () => stopDaemon(info, "mosquitto"),
    startBroker: async () => {
      ensureDaemon(info, "mosquitto");
      await waitBroker(lab);
    },
  };
}

// ---- state, names, environment ----------------------------------------------------------------

function namespacesOf(name: string): Record<LabHost, string> {
  return Object.fromEntries(HOSTS.map((h) => [h, `${name}-${h}`])) as Record<LabHost, string>;
}

function namespaceExists(ns: string): boolean {
  return existsSync(`/run/netns/${ns}`);
}

function namespacePids(ns: string): number[] {
  const r = runSync(["ip", "netns", "pids", ns]);
  return r.stdout
    .split("\n")
    .map(Number)
    .filter((p) => Number.isInteger(p) && p > 0 && p !== process.pid);
}

function commOf(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return undefined;
  }
}

function validName(name: string): boolean {
  // Lower-case, short: it prefixes namespace names and must never escape LAB_ROOT.
  return /^[a-z][a-z0-9-]{0,15}$/.test(name) && !name.endsWith("-");
}

function checkName(name: string): void {
  if (!validName(name))
    throw new Error(`invalid lab name "${name}": use 1-16 of [a-z0-9-], starting with a letter`);
}

function statePath(name: string): string {
  return join(LAB_ROOT, name, "state.json");
}

function readState(name: string): LabState {
  checkName(name);
  const state = tryReadState(name);
  if (!state) {
    const known = listLabs();
    throw new Error(
      `no lab named "${name}" (${known.length ? `labs: ${known.join(", ")}` : "no labs are up"})`,
    );
  }
  return state;
}

function tryReadState(name: string): LabState | undefined {
  try {
    const state = JSON.parse(readFileSync(statePath(name), "utf8")) as LabState;
    return state.version === 1 ? state : undefined;
  } catch {
    return undefined;
  }
}

function writeState(state: LabState): void {
  const path = statePath(state.info.name);
  // Atomic replace: a second process never reads a half-written file.
  writeFileSync(`${path}.${process.pid}.tmp`, `${JSON.stringify(state, null, 2)}\n`);
  renameSync(`${path}.${process.pid}.tmp`, path);
}

function ownerOf(pid: number): NonNullable<LabState["owner"]> {
  return { pid, start: processStartTime(pid) ?? "" };
}

function isOrphaned(name: string): boolean {
  const state = tryReadState(name);
  if (!state) {
    // No state: a crashed teardown, or a build that has just created its directory.
    try {
      return Date.now() - statSync(join(LAB_ROOT, name)).mtimeMs > 60_000;
    } catch {
      return true; // namespaces without a directory
    }
  }
  if (state.owner === null) return false;
  return processStartTime(state.owner.pid) !== state.owner.start;
}

/** Debian package of each command the lab runs. */
const REQUIRED_COMMANDS: Record<string, string> = {
  ip: "iproute2",
  nft: "nftables",
  sysctl: "procps",
  dnsmasq: "dnsmasq-base",
  lldpd: "lldpd",
  lldpcli: "lldpd",
  mosquitto: "mosquitto",
  mosquitto_sub: "mosquitto-clients",
  mosquitto_passwd: "mosquitto",
  openssl: "openssl",
  ping: "iputils-ping",
  udhcpc: "udhcpc",
  dig: "dnsutils",
};

/** Fails fast, naming every problem at once, when the machine cannot host a lab. */
function preflight(): void {
  const problems: string[] = [];
  const uid = process.getuid?.();
  if (uid !== 0) problems.push(`not root (uid ${uid}): the lab creates network namespaces`);
  // Root shells under sudo or CI runners sometimes lack the sbin directories where ip, nft,
  // sysctl and dnsmasq live.
  const path = (process.env.PATH ?? "").split(delimiter).filter(Boolean);
  const sbin = ["/usr/local/sbin", "/usr/sbin", "/sbin"].filter((d) => !path.includes(d));
  if (sbin.length) process.env.PATH = [...path, ...sbin].join(delimiter);
  const missing = Object.entries(REQUIRED_COMMANDS).filter(([cmd]) => !onPath(cmd));
  if (missing.length) {
    problems.push(
      `missing commands: ${missing.map(([c, pkg]) => `${c} (Debian package ${pkg})`).join(", ")}`,
    );
  }
  if (problems.length) {
    throw new Error(
      `netprobe lab cannot be built here: ${problems.join("; ")} — run scripts/setup.sh as root`,
    );
  }
}

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? "").split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, cmd), fsConstants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}
