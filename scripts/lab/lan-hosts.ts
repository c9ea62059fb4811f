import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startDaemon, type DaemonSpec } from "./peers.ts";
import { isAlive, run, runOk, signal, sleep } from "./run.ts";
import { ADDR, type LabNamespaces } from "./topology.ts";

// The office LAN beyond the probe and the gateway, for the link/LAN/DHCP checks (issue 3):
//
// - the switch (`sw`) runs lldpd on the probe's port only (a bridge does not forward LLDP, so it
//   must come from the switch itself) and has a management address;
// - `lan` is one more box on the switch: it can turn into a rogue DHCP server (its own dnsmasq)
//   and can claim the probe's address (duplicate IP);
// - the gateway's MAC can be changed, the probe's switch port taken down, the gateway's DHCP pool
//   filled with reservations (dnsmasq re-reads its dhcp-hostsfile on SIGHUP), and the switch can
//   advertise another port (the probe "moved").
//
// Every switch is idempotent and applyLanFaults renders the whole LAN from the set of faults that
// are on, like the gateway's nft table.

/** Addresses and names of the LAN extras (documentation ranges only). */
export const LAN = {
  /** The extra box on the switch. */
  hostIf: "eth0",
  hostSwPort: "lan0",
  hostMac: "02:00:00:00:00:66",
  host4: "192.0.2.66",
  /** What the rogue DHCP server hands out. */
  roguePoolStart: "192.0.2.200",
  roguePoolEnd: "192.0.2.220",
  /** The switch's management address (advertised in LLDP). */
  switchMgmt4: "192.0.2.2",
  switchName: "sw-branch-1",
  switchDescription: "netprobe lab access switch",
  /** The switch port the probe is plugged into, and the one it "moves" to. */
  probePort: "Gi1/0/10",
  probePortDescription: "office desk 10",
  movedPort: "Gi1/0/24",
  movedPortDescription: "meeting room 2",
  /** LLDP transmit interval (s); TTL is 4× this. */
  lldpTxIntervalS: 1,
  /** The gateway's MAC while gateway-mac-change is on. */
  gwAltMac: "02:00:00:00:00:02",
} as const;

/** The faults this module renders. */
export const LAN_FAULTS = [
  "link-down",
  "rogue-dhcp",
  "dhcp-pool-exhausted",
  "dup-ip",
  "gateway-mac-change",
  "lldp-port-change",
] as const;
/** One of the LAN faults. */
export type LanFault = (typeof LAN_FAULTS)[number];

/** File the gateway's dnsmasq reads reservations from (peers.ts points dhcp-hostsfile at it). */
export function dhcpHostsFile(dir: string): string {
  return join(dir, "dhcp-hosts");
}

/** Builds (or repairs, with every LAN fault off) the LAN extras; called after the topology. */
export async function buildLanHosts(ns: LabNamespaces, dir: string): Promise<void> {
  await sysctl(ns.lan, { "net.ipv6.conf.all.disable_ipv6": 1, "net.ipv6.conf.default.disable_ipv6": 1 });
  if ((await run(["ip", "-n", ns.lan, "link", "show", "dev", LAN.hostIf])).code !== 0) {
    await run(["ip", "-n", ns.sw, "link", "del", LAN.hostSwPort]);
    // Created inside `lan`, peer placed straight into `sw`: never in the root namespace.
    await ip(
      ns.lan,
      "link",
      "add",
      LAN.hostIf,
      "type",
      "veth",
      "peer",
      "name",
      LAN.hostSwPort,
      "netns",
      ns.sw,
    );
  }
  await ip(ns.sw, "link", "set", LAN.hostSwPort, "master", "br0", "up");
  await ip(ns.lan, "link", "set", LAN.hostIf, "address", LAN.hostMac, "up");
  await ip(ns.lan, "addr", "flush", "dev", LAN.hostIf);
  await ip(ns.lan, "addr", "add", `${LAN.host4}/24`, "dev", LAN.hostIf);
  await ip(ns.sw, "addr", "replace", `${LAN.switchMgmt4}/24`, "dev", "br0");
  writeFileSync(dhcpHostsFile(dir), "");
  await stopPidFile(join(dir, "rogue-dnsmasq.pid"), "dnsmasq");
  await restartLldpd(ns, dir);
  await applyLanFaults(ns, dir, {});
}

/** Applies the LAN faults as they are after a switch (absent = off). */
export async function applyLanFaults(
  ns: LabNamespaces,
  dir: string,
  faults: Readonly<Partial<Record<string, boolean>>>,
): Promise<void> {
  const on = (f: LanFault): boolean => faults[f] === true;
  await ip(ns.sw, "link", "set", "probe0", on("link-down") ? "down" : "up");
  await ip(
    ns.gw,
    "link",
    "set",
    ADDR.gwLanIf,
    "address",
    on("gateway-mac-change") ? LAN.gwAltMac : ADDR.gwLanMac,
  );
  // The duplicate takes whatever address the probe has now (static, or its DHCP lease).
  const claimed = (await addresses4(ns.lan, LAN.hostIf)).filter((a) => a !== LAN.host4);
  const probe4 = (await addresses4(ns.probe, ADDR.probeIf))[0] ?? ADDR.probe4;
  const wanted = on("dup-ip") ? [probe4] : [];
  for (const a of claimed.filter((c) => !wanted.includes(c))) {
    await ip(ns.lan, "addr", "del", `${a}/24`, "dev", LAN.hostIf);
    // The duplicate is unplugged: the router forgets whichever MAC it had learned for the address.
    await run(["ip", "-n", ns.gw, "neigh", "del", a, "dev", ADDR.gwLanIf]);
  }
  for (const a of wanted) await ip(ns.lan, "addr", "replace", `${a}/24`, "dev", LAN.hostIf);
  await setPoolExhausted(dir, on("dhcp-pool-exhausted"));
  if (on("rogue-dhcp")) await startRogueDhcp(ns, dir);
  else await stopPidFile(join(dir, "rogue-dnsmasq.pid"), "dnsmasq");
  await lldpPort(dir, on("lldp-port-change"));
}

/**
 * Re-attaches the probe's switch port after the probe's adapter was plugged back in (a new veth):
 * into the bridge, then the LAN faults and lldpd's per-port settings, which went with the old port.
 */
export async function reattachProbePort(
  ns: LabNamespaces,
  dir: string,
  faults: Readonly<Partial<Record<string, boolean>>>,
): Promise<void> {
  await ip(ns.sw, "link", "set", "probe0", "address", ADDR.swProbePortMac);
  await ip(ns.sw, "link", "set", "probe0", "master", "br0", "up");
  // lldpd learns of the new port from netlink, a moment later; until then it rejects its settings.
  const socket = join(dir, "lldpd.socket");
  const power = ["dot3", "power", "pse", "supported", "enabled", "paircontrol", "powerpairs", "signal"];
  const argv = ["lldpcli", "-u", socket, "configure", "ports", "probe0", ...power, "class", "class-3"];
  for (const until = Date.now() + 3000; ; await sleep(50)) {
    const shown = await run(["lldpcli", "-u", socket, "show", "interfaces", "ports", "probe0"]);
    if (shown.stdout.includes("probe0") && (await run(argv)).code === 0) break;
    if (Date.now() > until) throw new Error(`lldpd did not pick up the re-created probe0: ${shown.stderr}`);
  }
  await applyLanFaults(ns, dir, faults);
}

/** Fills (or empties) the gateway's reservations so that no pool address is left for a new client. */
async function setPoolExhausted(dir: string, exhausted: boolean): Promise<void> {
  const lines: string[] = [];
  if (exhausted) {
    const [a, b, c, first] = ADDR.dhcpPoolStart.split(".").map(Number) as [number, number, number, number];
    const last = Number(ADDR.dhcpPoolEnd.split(".")[3]);
    for (let host = first; host <= last; host++) {
      lines.push(`02:00:00:00:01:${host.toString(16).padStart(2, "0")},${a}.${b}.${c}.${host}`);
    }
  }
  const file = dhcpHostsFile(dir);
  const text = lines.map((l) => `${l}\n`).join("");
  if (existsSync(file) && readFileSync(file, "utf8") === text) return;
  writeFileSync(file, text);
  // dnsmasq re-reads dhcp-hostsfile on SIGHUP; give it a moment before the next DISCOVER.
  const pid = readPid(join(dir, "dnsmasq.pid"));
  if (pid !== undefined && commOf(pid) === "dnsmasq") {
    signal(pid, "SIGHUP");
    await sleep(200);
  }
}

function rogueSpec(dir: string): DaemonSpec {
  const configPath = join(dir, "rogue-dnsmasq.conf");
  const logPath = join(dir, "rogue-dnsmasq.log");
  return {
    host: "lan",
    configPath,
    config: [
      `# netprobe lab: a rogue DHCP server (a home router plugged into the office LAN).`,
      `interface=${LAN.hostIf}`,
      `bind-interfaces`,
      `port=0`,
      `no-resolv`,
      `no-hosts`,
      `dhcp-range=${LAN.roguePoolStart},${LAN.roguePoolEnd},255.255.255.0,600`,
      `dhcp-option=option:router,${LAN.host4}`,
      `dhcp-option=option:dns-server,${LAN.host4}`,
      `dhcp-authoritative`,
      `no-ping`,
      `dhcp-leasefile=${join(dir, "rogue-dnsmasq.leases")}`,
      `pid-file=${join(dir, "rogue-dnsmasq.pid")}`,
      `log-facility=${logPath}`,
      `log-dhcp`,
      `user=root`,
      `group=root`,
      ``,
    ].join("\n"),
    logPath,
    argv: ["dnsmasq", "--keep-in-foreground", `--conf-file=${configPath}`],
    dirs: [],
  };
}

async function startRogueDhcp(ns: LabNamespaces, dir: string): Promise<void> {
  const pidFile = join(dir, "rogue-dnsmasq.pid");
  const running = readPid(pidFile);
  if (running !== undefined && commOf(running) === "dnsmasq") return;
  const pid = startDaemon(ns.lan, rogueSpec(dir));
  writeFileSync(pidFile, `${pid}\n`);
  // Ready once it has bound port 67 in its namespace.
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    const r = await run(["ip", "netns", "exec", ns.lan, "ss", "-Hlun", "sport", "=", ":67"]);
    if (r.stdout.trim() !== "") return;
    if (!isAlive(pid)) break;
    await sleep(50);
  }
  throw new Error(`the rogue dnsmasq did not start in ${ns.lan}: see ${rogueSpec(dir).logPath}`);
}

function lldpdConfig(dir: string): string {
  const path = join(dir, "lldpd.conf");
  writeFileSync(
    path,
    [
      `configure system hostname ${LAN.switchName}`,
      `configure system description "${LAN.switchDescription}"`,
      `configure system ip management pattern ${LAN.switchMgmt4}`,
      `configure lldp tx-interval ${LAN.lldpTxIntervalS}`,
      `configure ports probe0 lldp portidsubtype local ${LAN.probePort} description "${LAN.probePortDescription}"`,
      `configure ports probe0 dot3 power pse supported enabled paircontrol powerpairs signal class class-3`,
      ``,
    ].join("\n"),
  );
  return path;
}

async function restartLldpd(ns: LabNamespaces, dir: string): Promise<void> {
  const pidFile = join(dir, "lldpd.pid");
  await stopPidFile(pidFile, "lldpd");
  const socket = join(dir, "lldpd.socket");
  // -I probe0: only the probe's port (as a switch advertises each port to its own neighbour);
  // -k -i: no kernel version or inventory of the host leaks into the lab's frames.
  const pid = startDaemon(ns.sw, {
    host: "sw",
    configPath: join(dir, "lldpd.args"),
    config: "",
    logPath: join(dir, "lldpd.log"),
    argv: [
      "lldpd",
      "-d",
      "-k",
      "-i",
      "-u",
      socket,
      "-I",
      "probe0",
      "-O",
      lldpdConfig(dir),
      "-L",
      "/usr/sbin/lldpcli",
    ],
    dirs: [],
  });
  writeFileSync(pidFile, `${pid}\n`);
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    if ((await run(["lldpcli", "-u", socket, "show", "configuration"], { timeoutMs: 2000 })).code === 0)
      return;
    if (!isAlive(pid)) break;
    await sleep(50);
  }
  throw new Error(`lldpd did not start in ${ns.sw}: see ${join(dir, "lldpd.log")}`);
}

async function lldpPort(dir: string, moved: boolean): Promise<void> {
  const [port, description] = moved
    ? [LAN.movedPort, LAN.movedPortDescription]
    : [LAN.probePort, LAN.probePortDescription];
  const socket = join(dir, "lldpd.socket");
  // lldpcli talks to lldpd over its Unix socket (a file), so it runs from anywhere, no namespace.
  await runOk([
    "lldpcli",
    "-u",
    socket,
    "configure",
    "ports",
    "probe0",
    "lldp",
    "portidsubtype",
    "local",
    port,
    "description",
    description,
  ]);
}

function readPid(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, "utf8").trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function commOf(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return undefined;
  }
}

/** SIGTERMs the process in a pid file if it is still `comm` (never a reused pid) and waits for it. */
async function stopPidFile(file: string, comm: string): Promise<void> {
  const pid = readPid(file);
  if (pid !== undefined && (commOf(pid) === comm || commOf(pid) === "ip")) {
    signal(pid, "SIGTERM");
    const deadline = Date.now() + 3000;
    while (isAlive(pid) && Date.now() < deadline) await sleep(20);
    if (isAlive(pid)) signal(pid, "SIGKILL");
  }
  if (existsSync(file)) writeFileSync(file, "");
}

/** The global IPv4 addresses of an interface (none when it is absent). */
async function addresses4(ns: string, dev: string): Promise<string[]> {
  const r = await run(["ip", "-n", ns, "-4", "-o", "addr", "show", "dev", dev, "scope", "global"]);
  return [...r.stdout.matchAll(/inet (\S+)\//g)].map((m) => m[1]!);
}

function ip(ns: string, ...args: string[]): Promise<string> {
  return runOk(["ip", "-n", ns, ...args]);
}

async function sysctl(ns: string, values: Record<string, number>): Promise<void> {
  const argv = Object.entries(values).map(([k, v]) => `${k}=${v}`);
  await runOk(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", ...argv]);
}
