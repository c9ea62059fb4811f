import { spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { anonAclFile, tlsListenerConfig } from "./broker-tls.ts";
import { ADDR, DNS_RECORDS } from "./topology.ts";
import { WAN } from "./wan-servers.ts";
import type { LabHost } from "./topology.ts";

// The real peers of the lab: long-running daemons started inside a namespace, detached from the
// process that started them (a CLI `lab up` exits; the lab stays), with every file in the lab dir.

/** The daemons the lab runs. */
export type DaemonName = "dnsmasq" | "mosquitto";

/** How to run one daemon: where, with which config, logging where. */
export interface DaemonSpec {
  host: LabHost;
  /** Config file written before each start. */
  configPath: string;
  config: string;
  /** The daemon's own log; its stdout/stderr (early config errors) are appended to the same file. */
  logPath: string;
  argv: string[];
  /** Directories the daemon needs to exist. */
  dirs: string[];
}

/** Every daemon of a lab whose files live in `dir`. */
export function daemonSpecs(dir: string): Record<DaemonName, DaemonSpec> {
  return { dnsmasq: dnsmasqSpec(dir), mosquitto: mosquittoSpec(dir) };
}

function dnsmasqSpec(dir: string): DaemonSpec {
  const configPath = join(dir, "dnsmasq.conf");
  const logPath = join(dir, "dnsmasq.log");
  const records = Object.entries(DNS_RECORDS).map(([name, r]) => `host-record=${name},${r.a},${r.aaaa}`);
  const config = [
    `# netprobe lab gateway: DHCP + DNS for the office LAN, nothing else.`,
    `interface=${ADDR.gwLanIf}`,
    `bind-interfaces`,
    // No upstream and no /etc/hosts: the host's resolver and hosts file must never leak into the lab.
    `no-resolv`,
    `no-hosts`,
    `no-poll`,
    `domain-needed`,
    `local=/lab.example/`,
    `local=/${ADDR.domain}/`,
    // Every other name goes to the provider's resolver on the WAN (wan-servers.ts), uncached so the
    // dns-* faults show through the gateway at once (as they would once a TTL ran out).
    `server=${WAN.dnsResolver4}`,
    `cache-size=0`,
    `domain=${ADDR.domain}`,
    ...records,
    `dhcp-range=${ADDR.dhcpPoolStart},${ADDR.dhcpPoolEnd},255.255.255.0,${ADDR.dhcpLeaseS}`,
    `dhcp-option=option:router,${ADDR.gwLan4}`,
    `dhcp-option=option:dns-server,${ADDR.gwLan4}`,
    `dhcp-authoritative`,
    // dnsmasq pings an address before offering it, which delays the first OFFER by ~3 s: longer
    // than a DHCP check's timeout. Duplicate addresses are the probe's job (RFC 5227), not the lab's.
    `no-ping`,
    `dhcp-leasefile=${join(dir, "dnsmasq.leases")}`,
    // Reservations the dhcp-pool-exhausted fault fills (lan-hosts.ts); re-read on SIGHUP.
    `dhcp-hostsfile=${join(dir, "dhcp-hosts")}`,
    // The probe's own DHCP client: its short lease and, under address-changed, its reservation
    // (probe-host.ts writes it before dnsmasq starts and on every switch).
    `dhcp-hostsfile=${join(dir, "dhcp-probe-host")}`,
    `pid-file=${join(dir, "dnsmasq.pid")}`,
    `log-facility=${logPath}`,
    `log-queries`,
    `log-dhcp`,
    // Stay root: the lease, pid and log files are in the root-owned lab dir.
    `user=root`,
    `group=root`,
    ``,
  ].join("\n");
  return {
    host: "gw",
    configPath,
    config,
    logPath,
    argv: ["dnsmasq", "--keep-in-foreground", `--conf-file=${configPath}`],
    dirs: [],
  };
}

function mosquittoSpec(dir: string): DaemonSpec {
  const configPath = join(dir, "mosquitto.conf");
  const logPath = join(dir, "mosquitto.log");
  const config = [
    `# netprobe lab headquarters broker.`,
    // Persistence survives the broker-down fault: sessions of clean=false clients and their queued
    // QoS 1 messages are written on SIGTERM and read back on start.
    `persistence true`,
    `persistence_location ${join(dir, "mosquitto")}/`,
    `user root`,
    `log_dest file ${logPath}`,
    `log_type error`,
    `log_type warning`,
    `log_type notice`,
    `log_type information`,
    `connection_messages true`,
    `log_timestamp_format %Y-%m-%dT%H:%M:%S`,
    // The fleet's TLS listener exactly as deploy/mosquitto/netprobe.conf (mutual TLS, passwords,
    // ACL; files from broker-tls.ts), then a plain anonymous listener confined to netprobe-lab/#.
    tlsListenerConfig(dir),
    `listener ${ADDR.brokerPort}`,
    `allow_anonymous true`,
    `acl_file ${anonAclFile(dir)}`,
    ``,
  ].join("\n");
  return {
    host: "hq",
    configPath,
    config,
    logPath,
    argv: ["mosquitto", "-c", configPath],
    dirs: [join(dir, "mosquitto")],
  };
}

/**
 * Starts a daemon in namespace `ns`, detached (own process group, not waited for), and returns its
 * pid. `ip netns exec` execs the command in place, so the pid is the daemon's own.
 */
export function startDaemon(ns: string, spec: DaemonSpec): number {
  writeFileSync(spec.configPath, spec.config);
  for (const d of spec.dirs) mkdirSync(d, { recursive: true });
  const fd = openSync(spec.logPath, "a");
  try {
    const child = spawn("ip", ["netns", "exec", ns, ...spec.argv], {
      detached: true,
      stdio: ["ignore", fd, fd],
    });
    child.on("error", () => undefined); // reported below as a missing pid, or later by readiness
    child.unref();
    if (child.pid === undefined) throw new Error(`could not start ${spec.argv.join(" ")} in ${ns}`);
    return child.pid;
  } finally {
    closeSync(fd);
  }
}
