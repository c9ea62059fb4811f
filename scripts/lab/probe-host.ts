import { chmodSync, existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startDaemon } from "./peers.ts";
import { isAlive, run, runOk, signal, sleep } from "./run.ts";
import { ADDR, veth, type LabNamespaces, type ProbeAddressing } from "./topology.ts";

// The probe itself as a Raspberry Pi in an office sees it: its address, routes, MTU, resolver and
// the adapter, and how they go away. In `dhcp` addressing a real DHCP client (busybox udhcpc, a
// Debian package) runs in the probe namespace with a hook that does what dhcpcd does on Raspberry
// Pi OS: the address, the default route and the nameservers are removed when the lease ends, is
// NAKed or the carrier drops, and put back on bound/renew. A carrier watcher (`ip monitor link`)
// stands in for dhcpcd's netlink listener, which udhcpc lacks: carrier lost → release (deconfig)
// and the IPv6 address and route dropped; carrier back → renew, IPv6 back. The probe faults are
// rendered from the set of faults that are on, like the gateway's nft table: applyProbeFaults is
// idempotent and brings the probe to exactly the state those faults describe.

/** The faults this module renders. */
export const PROBE_FAULTS = [
  "lease-lost",
  "adapter-unplugged",
  "address-changed",
  "resolv-empty",
  "mtu-changed",
  "ra-gone",
] as const;
/** One of the probe faults. */
export type ProbeFault = (typeof PROBE_FAULTS)[number];

/** The probe's interface MTU when no fault is on. */
export const PROBE_MTU = 1500;

/** Faults that keep the probe's DHCP client from getting a lease (no wait for one while they are on). */
const DHCP_BLOCKED_BY = [
  "link-down",
  "gateway-down",
  "dhcp-down",
  "dhcp-pool-exhausted",
  "rogue-dhcp",
  "lease-lost",
  "adapter-unplugged",
] as const;

/**
 * How long a switch waits for the DHCP client to reach the state the faults describe. udhcpc gets
 * a lease in 1-4 s (3 DISCOVERs 1 s apart, then 1 s before retrying); the margin is for a CI
 * machine running several labs at once (5 s was missed there). The wait ends as soon as it holds.
 */
const DHCP_SETTLE_MS = 15_000;

/** The state of the probe faults (and the others that matter to them) after a switch. */
export interface ProbeFaultState {
  faults: Readonly<Partial<Record<string, boolean>>>;
  /** mtu-changed's value (bytes). */
  mtu: number;
}

/** The probe namespace's resolv.conf (bind-mounted over /etc/resolv.conf by `ip netns exec`). */
export function probeResolvConf(ns: LabNamespaces): string {
  return `/etc/netns/${ns.probe}/resolv.conf`;
}

/** What the probe's resolv.conf holds with a lease (DHCP's DNS option, as dhcpcd writes it). */
export const PROBE_RESOLV = `nameserver ${ADDR.gwLan4}\noptions timeout:1 attempts:1\n`;

/** The file of dnsmasq's reservations for the probe's client (peers.ts: dhcp-hostsfile). */
export function probeHostsFile(dir: string): string {
  return join(dir, "dhcp-probe-host");
}

/** The dnsmasq dhcp-host line for the probe's client: its short lease, and the address-changed reservation. */
function probeHostsLine(addressChanged: boolean): string {
  const address = addressChanged ? `,${ADDR.probeAlt4}` : "";
  return `id:${ADDR.probeClientId}${address},${ADDR.probeLeaseS}\n`;
}

/** Writes the probe's reservation file before dnsmasq first reads it (every fault off). */
export function initProbeHostsFile(dir: string): void {
  writeFileSync(probeHostsFile(dir), probeHostsLine(false));
}

const pidFile = (dir: string, what: "udhcpc" | "carrier") => join(dir, `probe-${what}.pid`);
const resolvEmptyFlag = (dir: string) => join(dir, "probe-resolv-empty");
const raGoneFlag = (dir: string) => join(dir, "probe-ra-gone");
/** One line per DHCP client event (time, event, address, lease), for tests and debugging. */
export const dhcpEventsLog = (dir: string) => join(dir, "probe-dhcp-events.log");

/** The hook udhcpc runs at each event: dhcpcd's behaviour (see the top of this file). */
function hookScript(ns: LabNamespaces, dir: string): string {
  const dev = ADDR.probeIf;
  return `#!/bin/sh
# netprobe lab: the probe's DHCP hook, doing what dhcpcd does on Raspberry Pi OS (probe-host.ts).
resolv=${probeResolvConf(ns)}
echo "$(date +%s.%N) $1 ip=$ip router=$router dns=$dns lease=$lease" >> ${dhcpEventsLog(dir)}
case "$1" in
  deconfig|leasefail|nak)
    ip -4 addr flush dev ${dev} scope global
    ip -4 route flush dev ${dev}
    : > "$resolv"
    ;;
  bound|renew)
    new="$ip/\${mask:-24}"
    old=$(ip -4 -o addr show dev ${dev} scope global | awk '{print $4}')
    [ -n "$old" ] && [ "$old" != "$new" ] && ip -4 addr flush dev ${dev} scope global
    ip -4 addr replace "$new" dev ${dev}
    for r in $router; do ip -4 route replace default via "$r" dev ${dev}; break; done
    if [ -e ${resolvEmptyFlag(dir)} ]; then : > "$resolv"; else
      { for d in $dns; do echo "nameserver $d"; done; echo "options timeout:1 attempts:1"; } > "$resolv"
    fi
    ;;
esac
exit 0
`;
}

/** The carrier watcher: dhcpcd's reaction to carrier changes, which udhcpc does not have. */
function carrierScript(dir: string): string {
  const dev = ADDR.probeIf;
  return `#!/bin/sh
# netprobe lab: carrier lost → release the lease and drop IPv6; carrier back → renew (probe-host.ts).
last=""
ip -o monitor link | while read -r line; do
  case "$line" in Deleted*) continue ;; *" ${dev}:"*|*" ${dev}@"*) ;; *) continue ;; esac
  case "$line" in *LOWER_UP*) now=up ;; *) now=down ;; esac
  [ "$now" = "$last" ] && continue
  last=$now
  pid=$(cat ${pidFile(dir, "udhcpc")} 2>/dev/null)
  if [ "$now" = down ]; then
    [ -n "$pid" ] && kill -USR2 "$pid"
    ip -6 addr flush dev ${dev} scope global
    ip -6 route del default dev ${dev} 2>/dev/null
  else
    ip -6 addr replace ${ADDR.probe6}/64 dev ${dev} nodad
    [ -e ${raGoneFlag(dir)} ] || ip -6 route replace default via ${ADDR.gwLan6} dev ${dev}
    [ -n "$pid" ] && kill -USR1 "$pid"
  fi
done
`;
}

function readPid(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, "utf8").trim());
    return Number.isInteger(pid) && pid > 0 && isAlive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

async function stopPid(file: string): Promise<void> {
  const pid = readPid(file);
  if (pid !== undefined) {
    signal(pid, "SIGTERM");
    for (const until = Date.now() + 2000; isAlive(pid) && Date.now() < until;) await sleep(10);
    if (isAlive(pid)) signal(pid, "SIGKILL");
  }
  rmSync(file, { force: true });
}

/** Starts the probe's DHCP client (and its carrier watcher) unless they run; `wait`: until bound. */
export async function startDhcpClient(ns: LabNamespaces, dir: string, wait: boolean): Promise<void> {
  const hook = join(dir, "probe-dhcp-hook.sh");
  const watcher = join(dir, "probe-carrier.sh");
  writeFileSync(hook, hookScript(ns, dir));
  writeFileSync(watcher, carrierScript(dir));
  chmodSync(hook, 0o755);
  chmodSync(watcher, 0o755);
  if (readPid(pidFile(dir, "carrier")) === undefined) {
    const pid = startDaemon(ns.probe, {
      host: "probe",
      configPath: join(dir, "probe-carrier.args"),
      config: "",
      logPath: join(dir, "probe-carrier.log"),
      argv: ["sh", watcher],
      dirs: [],
    });
    writeFileSync(pidFile(dir, "carrier"), `${pid}\n`);
  }
  if (readPid(pidFile(dir, "udhcpc")) === undefined) {
    // -t 3 -T 1 -A 1: three DISCOVERs a second apart, then a 1 s pause (dhcpcd retries about as
    // often); the client id (ADDR.probeClientId) gives this client alone the short lease.
    const argv = ["udhcpc", "-f", "-i", ADDR.probeIf, "-s", hook, "-t", "3", "-T", "1", "-A", "1"];
    argv.push("-x", `0x3d:${ADDR.probeClientId.replaceAll(":", "")}`, "-x", "hostname:probe-1");
    const pid = startDaemon(ns.probe, {
      host: "probe",
      configPath: join(dir, "probe-udhcpc.args"),
      config: `${argv.join(" ")}\n`,
      logPath: join(dir, "probe-udhcpc.log"),
      argv,
      dirs: [],
    });
    writeFileSync(pidFile(dir, "udhcpc"), `${pid}\n`);
  }
  if (wait) await waitForLease(ns, (a) => a !== undefined, "a DHCP lease");
}

/** Stops the DHCP client and the carrier watcher (no RELEASE: as an unplugged adapter or a crash). */
export async function stopDhcpClient(dir: string): Promise<void> {
  await stopPid(pidFile(dir, "carrier"));
  await stopPid(pidFile(dir, "udhcpc"));
}

/** The probe's global IPv4 address, or undefined. */
export async function probeAddress4(ns: LabNamespaces): Promise<string | undefined> {
  const r = await run([
    "ip",
    "-n",
    ns.probe,
    "-4",
    "-o",
    "addr",
    "show",
    "dev",
    ADDR.probeIf,
    "scope",
    "global",
  ]);
  return /inet (\S+)\//.exec(r.stdout)?.[1];
}

async function waitForLease(
  ns: LabNamespaces,
  ok: (address: string | undefined) => boolean,
  what: string,
): Promise<void> {
  let address: string | undefined;
  for (const until = Date.now() + DHCP_SETTLE_MS; Date.now() < until; await sleep(20)) {
    address = await probeAddress4(ns);
    if (ok(address) && (address === undefined || (await hasDefault(ns, "-4")))) return;
  }
  throw new Error(
    `the probe's DHCP client did not reach ${what} within ${DHCP_SETTLE_MS} ms (address ${address ?? "none"})`,
  );
}

async function hasDefault(ns: LabNamespaces, family: "-4" | "-6"): Promise<boolean> {
  const r = await run(["ip", "-n", ns.probe, family, "route", "show", "default", "dev", ADDR.probeIf]);
  return r.stdout.trim() !== "";
}

async function linkExists(ns: string, dev: string): Promise<boolean> {
  return (await run(["ip", "-n", ns, "link", "show", "dev", dev])).code === 0;
}

function ip(ns: string, ...args: string[]): Promise<string> {
  return runOk(["ip", "-n", ns, ...args]);
}

function writeInPlace(path: string, text: string): void {
  // Truncate and write the same inode: `ip netns exec` bind-mounted this file into every running
  // process of the namespace, and a rename would leave them the old one.
  if (existsSync(path) && readFileSync(path, "utf8") === text) return;
  writeFileSync(path, text);
}

/**
 * Brings the probe to the state its faults describe (idempotent). `reattach` is called after the
 * adapter is plugged back in, to re-attach its switch port (bridge, LLDP, link-down).
 */
export async function applyProbeFaults(
  ns: LabNamespaces,
  dir: string,
  addressing: ProbeAddressing,
  state: ProbeFaultState,
  reattach: () => Promise<void>,
): Promise<void> {
  const on = (f: string): boolean => state.faults[f] === true;
  const dev = ADDR.probeIf;
  const dhcp = addressing === "dhcp";
  if (on("resolv-empty")) writeFileSync(resolvEmptyFlag(dir), "");
  else rmSync(resolvEmptyFlag(dir), { force: true });
  if (on("ra-gone")) writeFileSync(raGoneFlag(dir), "");
  else rmSync(raGoneFlag(dir), { force: true });

  // The adapter: a USB Ethernet dongle pulled out (the whole interface goes, and its switch port).
  if (on("adapter-unplugged")) {
    if (dhcp) await stopDhcpClient(dir);
    if (await linkExists(ns.probe, dev)) await ip(ns.probe, "link", "del", dev);
    writeInPlace(probeResolvConf(ns), addressing === "none" ? PROBE_RESOLV : "");
    return;
  }
  const replugged = !(await linkExists(ns.probe, dev));
  if (replugged) {
    await veth(ns.probe, dev, ns.sw, "probe0");
    await ip(ns.probe, "link", "set", dev, "address", ADDR.probeMac);
    await reattach();
  }
  await ip(ns.probe, "link", "set", dev, "mtu", String(on("mtu-changed") ? state.mtu : PROBE_MTU), "up");

  // IPv6 as router advertisements leave it: below 1280 bytes the kernel drops IPv6 from the link,
  // so the address is put back whenever the MTU allows (RFC 8200 §5); ra-gone: no default router.
  // In dhcp addressing the carrier watcher owns IPv6 while the carrier is down.
  const carrier = (await run(["ip", "-n", ns.probe, "link", "show", "dev", dev])).stdout.includes("LOWER_UP");
  if (!(on("mtu-changed") && state.mtu < 1280) && (carrier || !dhcp)) {
    await ip(ns.probe, "addr", "replace", `${ADDR.probe6}/64`, "dev", dev, "nodad");
    if (on("ra-gone")) await run(["ip", "-n", ns.probe, "-6", "route", "del", "default", "dev", dev]);
    else await ip(ns.probe, "-6", "route", "replace", "default", "via", ADDR.gwLan6, "dev", dev);
  }

  if (addressing === "static") {
    const want = on("lease-lost") ? undefined : on("address-changed") ? ADDR.probeAlt4 : ADDR.probe4;
    const have = await probeAddress4(ns);
    if (have !== want) {
      await ip(ns.probe, "-4", "addr", "flush", "dev", dev, "scope", "global");
      if (want) await ip(ns.probe, "addr", "add", `${want}/24`, "dev", dev);
    }
    if (want && !(await hasDefault(ns, "-4")))
      await ip(ns.probe, "-4", "route", "replace", "default", "via", ADDR.gwLan4, "dev", dev);
    writeInPlace(probeResolvConf(ns), want && !on("resolv-empty") ? PROBE_RESOLV : "");
    return;
  }
  if (!dhcp) {
    writeInPlace(probeResolvConf(ns), on("resolv-empty") ? "" : PROBE_RESOLV);
    return;
  }

  // DHCP: the server decides, the client follows. address-changed is a reservation for another
  // address, which dnsmasq enforces by NAKing the renewal of the old one (RFC 2131 §4.3.2).
  const hostsLine = probeHostsLine(on("address-changed"));
  if (readFileSync(probeHostsFile(dir), "utf8") !== hostsLine) {
    writeFileSync(probeHostsFile(dir), hostsLine);
    const dnsmasq = readPid(join(dir, "dnsmasq.pid"));
    if (dnsmasq !== undefined) signal(dnsmasq, "SIGHUP");
    await sleep(50); // dnsmasq re-reads its hosts files on SIGHUP, asynchronously
  }
  await startDhcpClient(ns, dir, false);
  const client = readPid(pidFile(dir, "udhcpc"));
  const have = await probeAddress4(ns);
  const blocked = DHCP_BLOCKED_BY.some(on);
  if (on("lease-lost")) {
    // The lease ends now, as at its expiry with the server silent (the gateway drops port 67):
    // the client deconfigures and goes back to DISCOVERs nobody answers.
    if (have !== undefined && client !== undefined) {
      signal(client, "SIGUSR2");
      await waitForLease(ns, (a) => a === undefined, "no lease");
      signal(client, "SIGUSR1");
    }
  } else {
    const want = (a: string | undefined): boolean =>
      a !== undefined && (on("address-changed") ? a === ADDR.probeAlt4 : a !== ADDR.probeAlt4);
    if (!want(have) && client !== undefined && !blocked) {
      signal(client, "SIGUSR1"); // renew now: dhcpcd's rebind when the cause is gone
      await waitForLease(ns, want, on("address-changed") ? ADDR.probeAlt4 : "a pool address");
    }
  }
  if (on("resolv-empty")) writeInPlace(probeResolvConf(ns), "");
  else if ((await probeAddress4(ns)) !== undefined) writeInPlace(probeResolvConf(ns), PROBE_RESOLV);
}
