import { mkdirSync, writeFileSync } from "node:fs";
import { runOk, run } from "./run.ts";

// The simulated branch office, wire by wire. Every command here is `ip -n <ns>` or
// `ip netns exec <ns>`: interfaces are created directly inside the lab's namespaces (both veth ends
// at once), so nothing appears in the root namespace even briefly.
//
//   probe(eth0) ──┐
//                 sw(br0)          gw(lan0 | wan0) ── (gw0)wan(hq0) ── (eth0)hq
//   gw(lan0) ─────┘                 dnsmasq, NAT       targets on lo     mosquitto
//                                                        │(r10)
//                                     the internet path: r1 ── r2 ── far (wan-path.ts: traceroute,
//                                                        path MTU, ICMP responder with impairment)

/** The machines of the lab; each one is a network namespace named `<lab>-<host>`. */
export type LabHost = "sw" | "probe" | "gw" | "wan" | "hq" | "r1" | "r2" | "far" | "pbx" | "lan";

/** Every host, in build order. */
export const HOSTS: readonly LabHost[] = ["sw", "probe", "gw", "wan", "hq", "r1", "r2", "far", "pbx", "lan"];

/** Addresses, MACs and interface names of the lab (documentation ranges only: RFC 5737, RFC 3849). */
export const ADDR = {
  /** Office LAN behind the switch. */
  lan4: "192.0.2.0/24",
  lan6: "2001:db8:1::/64",
  /** The probe's static address (absent when the lab is built with `probeStatic: false`). */
  probe4: "192.0.2.10",
  probe6: "2001:db8:1::10",
  /** The probe's address while the `address-changed` fault is on (static, or the DHCP server's reservation). */
  probeAlt4: "192.0.2.11",
  probeIf: "eth0",
  /** Locally administered, fixed so lab tests know the ground truth of ARP answers. */
  probeMac: "02:00:00:00:00:10",
  /** The switch's bridge and the probe's port on it (fixed: lldpd's chassis id comes from them). */
  swMac: "02:00:00:00:00:fe",
  swProbePortMac: "02:00:00:00:01:10",
  /** Gateway, LAN side: default router, DHCP and DNS server of the office. */
  gwLan4: "192.0.2.1",
  gwLan6: "2001:db8:1::1",
  gwLanIf: "lan0",
  gwLanMac: "02:00:00:00:00:01",
  /** Gateway, WAN side (IPv4 is masqueraded out of it; IPv6 is routed). */
  gwWan4: "198.51.100.1",
  gwWan6: "2001:db8:2::1",
  gwWanIf: "wan0",
  /** The provider's router in `wan`, facing the gateway. */
  wanGw4: "198.51.100.2",
  wanGw6: "2001:db8:2::2",
  /** The "internet" target (ICMP and more later), on `wan`'s loopback. */
  wanTarget4: "203.0.113.10",
  wanTarget6: "2001:db8:3::10",
  /** `wan`'s address on the headquarters segment. */
  wanHq4: "203.0.113.1",
  wanHq6: "2001:db8:4::1",
  /** Headquarters: the MQTT broker. The HQ segment is 203.0.113.0/25; the upper half is the internet path. */
  hq4: "203.0.113.50",
  hq6: "2001:db8:4::50",
  /**
   * The internet path beyond `wan` (scripts/lab/wan-path.ts): wan ─ r1 ─ r2 ─ far, one /30 (and
   * one /64) per link. Traceroute from the probe: gw, wan, r1, r2, far. The r1–r2 link is the one
   * `mtu-small` narrows.
   */
  pathWanR1_4: "203.0.113.129",
  pathWanR1_6: "2001:db8:11::1",
  pathR1Wan4: "203.0.113.130",
  pathR1Wan6: "2001:db8:11::2",
  pathR1R2_4: "203.0.113.133",
  pathR1R2_6: "2001:db8:12::1",
  pathR2R1_4: "203.0.113.134",
  pathR2R1_6: "2001:db8:12::2",
  pathR2Far4: "203.0.113.137",
  pathR2Far6: "2001:db8:13::1",
  pathFarR2_4: "203.0.113.138",
  pathFarR2_6: "2001:db8:13::2",
  /** The far target: its echo replies come from a userspace responder with known delay, jitter, loss. */
  farTarget4: "203.0.113.200",
  farTarget6: "2001:db8:14::200",
  /** The hosted PBX / SIP trunk (scripts/lab/pbx.ts): kamailio :5060 and the RTP echo, behind wan. */
  pbx4: "203.0.113.60",
  pbx6: "2001:db8:60::60",
  brokerPort: 1883,
  /** dnsmasq's DHCP pool and options. */
  dhcpPoolStart: "192.0.2.100",
  dhcpPoolEnd: "192.0.2.199",
  dhcpLeaseS: 3600,
  /**
   * The lease of the probe's own DHCP client (`probeAddressing: "dhcp"`), short so that renewal and
   * expiry happen within a test; 120 s is dnsmasq's minimum. The dhcp check (no client id) keeps 3600.
   */
  probeLeaseS: 120,
  /**
   * Client identifier (option 61) the probe's DHCP client sends: RFC 4361's type 255 + IAID 1 +
   * DUID-LL of its MAC, as dhcpcd's `duid` option does. Other DHCP clients on the probe's port (the
   * dhcp check sends none, a test's udhcpc sends type 1 + MAC) keep the pool's normal lease.
   */
  probeClientId: "ff:00:00:00:01:00:03:00:01:02:00:00:00:00:10",
  domain: "branch.example",
} as const;

/** The lab's address plan, as exposed in LabInfo. */
export type LabAddresses = typeof ADDR;

/** Names dnsmasq answers for (A and AAAA); everything else under lab.example is NXDOMAIN. */
export const DNS_RECORDS: Readonly<Record<string, { a: string; aaaa: string }>> = {
  "wan.lab.example": { a: ADDR.wanTarget4, aaaa: ADDR.wanTarget6 },
  "hq.lab.example": { a: ADDR.hq4, aaaa: ADDR.hq6 },
  "pbx.lab.example": { a: ADDR.pbx4, aaaa: ADDR.pbx6 },
  "broker.lab.example": { a: ADDR.hq4, aaaa: ADDR.hq6 },
  [`gw.${ADDR.domain}`]: { a: ADDR.gwLan4, aaaa: ADDR.gwLan6 },
};

/**
 * How the probe gets its addresses: `static` (192.0.2.10, 2001:db8:1::10 and default routes),
 * `dhcp` (IPv4 from a DHCP client in the probe namespace, as dhcpcd on Raspberry Pi OS: see
 * probe-host.ts; IPv6 as SLAAC would leave it) or `none` (link only, e.g. for DHCP check tests).
 */
export type ProbeAddressing = "static" | "dhcp" | "none";

/** Options that change how the topology is built. */
export interface TopologyOptions {
  probeAddressing: ProbeAddressing;
}

/** Namespace names of one lab. */
export type LabNamespaces = Record<LabHost, string>;

/** Builds (or repairs) the whole topology; every step is idempotent. */
export async function buildTopology(ns: LabNamespaces, opts: TopologyOptions): Promise<void> {
  const existing = new Set(await listNamespaces());
  for (const host of HOSTS) {
    if (!existing.has(ns[host])) await runOk(["ip", "netns", "add", ns[host]]);
    // `ip netns exec` bind-mounts /etc/netns/<ns>/resolv.conf over /etc/resolv.conf, so a name
    // lookup inside the lab asks the lab's gateway, never the host's resolver.
    mkdirSync(`/etc/netns/${ns[host]}`, { recursive: true });
    writeFileSync(
      `/etc/netns/${ns[host]}/resolv.conf`,
      `nameserver ${ADDR.gwLan4}\noptions timeout:1 attempts:1\n`,
    );
    await ip(ns[host], "link", "set", "lo", "up");
    // No IPv6 DAD on the lab's links (set before they exist, so new interfaces inherit it): until
    // a link-local address has passed DAD the kernel sends no neighbour solicitation for forwarded
    // packets, which made IPv6 through gw and wan fail for the first ~2 s after every build.
    await sysctl(ns[host], { "net.ipv6.conf.all.accept_dad": 0, "net.ipv6.conf.default.accept_dad": 0 });
  }

  // The switch is a dumb L2 switch: no STP delay, no multicast snooping (so IPv6 neighbour
  // discovery never depends on MLD state), and no IPv6 of its own chattering on the LAN.
  await sysctl(ns.sw, { "net.ipv6.conf.all.disable_ipv6": 1, "net.ipv6.conf.default.disable_ipv6": 1 });
  if (!(await linkExists(ns.sw, "br0"))) {
    await ip(ns.sw, "link", "add", "br0", "type", "bridge", "stp_state", "0", "mcast_snooping", "0");
  }
  // Fixed MACs on the switch: lldpd takes its chassis id from them, and a bridge otherwise takes the
  // lowest of its ports' — both would change when adapter-unplugged re-creates the probe's port.
  await ip(ns.sw, "link", "set", "br0", "address", ADDR.swMac);
  await ip(ns.sw, "link", "set", "br0", "up");

  await veth(ns.probe, ADDR.probeIf, ns.sw, "probe0");
  await veth(ns.gw, ADDR.gwLanIf, ns.sw, "gw0");
  await veth(ns.gw, ADDR.gwWanIf, ns.wan, "gw0");
  await veth(ns.wan, "hq0", ns.hq, "eth0");
  await ip(ns.sw, "link", "set", "probe0", "address", ADDR.swProbePortMac);
  for (const port of ["probe0", "gw0"]) await ip(ns.sw, "link", "set", port, "master", "br0", "up");

  // probe
  await ip(ns.probe, "link", "set", ADDR.probeIf, "address", ADDR.probeMac, "up");
  if (opts.probeAddressing === "static") {
    await addr(ns.probe, ADDR.probeIf, `${ADDR.probe4}/24`, `${ADDR.probe6}/64`);
    await route(ns.probe, "-4", "default", "via", ADDR.gwLan4, "dev", ADDR.probeIf);
    await route(ns.probe, "-6", "default", "via", ADDR.gwLan6, "dev", ADDR.probeIf);
  } else {
    await ip(ns.probe, "addr", "flush", "dev", ADDR.probeIf, "scope", "global");
    await ip(ns.probe, "-4", "route", "flush", "dev", ADDR.probeIf);
    // IPv4 comes from the DHCP client (probe-host.ts); IPv6 stays as router advertisements leave it.
    if (opts.probeAddressing === "dhcp") {
      await ip(ns.probe, "addr", "replace", `${ADDR.probe6}/64`, "dev", ADDR.probeIf, "nodad");
      await route(ns.probe, "-6", "default", "via", ADDR.gwLan6, "dev", ADDR.probeIf);
    }
  }

  // gw: a router with IPv4 NAT (the nft table lives in faults.ts with the fault rules).
  await sysctl(ns.gw, {
    "net.ipv4.ip_forward": 1,
    "net.ipv6.conf.all.forwarding": 1,
    // gateway-down takes lan0 down; its IPv6 addresses must survive that for dnsmasq to keep them.
    [`net.ipv6.conf.${ADDR.gwLanIf}.keep_addr_on_down`]: 1,
  });
  await ip(ns.gw, "link", "set", ADDR.gwLanIf, "address", ADDR.gwLanMac, "up");
  await ip(ns.gw, "link", "set", ADDR.gwWanIf, "up");
  await addr(ns.gw, ADDR.gwLanIf, `${ADDR.gwLan4}/24`, `${ADDR.gwLan6}/64`);
  await addr(ns.gw, ADDR.gwWanIf, `${ADDR.gwWan4}/24`, `${ADDR.gwWan6}/64`);
  await route(ns.gw, "-4", "default", "via", ADDR.wanGw4, "dev", ADDR.gwWanIf);
  await route(ns.gw, "-6", "default", "via", ADDR.wanGw6, "dev", ADDR.gwWanIf);

  // wan: the provider and the internet. There is no dummy link type in this kernel, so the
  // targets live on lo (a /32 on lo wins over the HQ segment's /25 in the local table).
  await sysctl(ns.wan, { "net.ipv4.ip_forward": 1, "net.ipv6.conf.all.forwarding": 1 });
  await ip(ns.wan, "link", "set", "gw0", "up");
  await ip(ns.wan, "link", "set", "hq0", "up");
  await addr(ns.wan, "gw0", `${ADDR.wanGw4}/24`, `${ADDR.wanGw6}/64`);
  await addr(ns.wan, "lo", `${ADDR.wanTarget4}/32`, `${ADDR.wanTarget6}/128`);
  await addr(ns.wan, "hq0", `${ADDR.wanHq4}/25`, `${ADDR.wanHq6}/64`);
  // IPv4 from the office arrives masqueraded as 198.51.100.1; IPv6 is routed, so it needs a way back.
  await route(ns.wan, "-6", ADDR.lan6, "via", ADDR.gwWan6, "dev", "gw0");

  // hq
  await ip(ns.hq, "link", "set", "eth0", "up");
  await addr(ns.hq, "eth0", `${ADDR.hq4}/25`, `${ADDR.hq6}/64`);
  await route(ns.hq, "-4", "default", "via", ADDR.wanHq4, "dev", "eth0");
  await route(ns.hq, "-6", "default", "via", ADDR.wanHq6, "dev", "eth0");
}

/** Names of all network namespaces on the machine. */
export async function listNamespaces(): Promise<string[]> {
  const out = await runOk(["ip", "netns", "list"]);
  return out
    .split("\n")
    .map((l) => l.split(" ")[0] ?? "")
    .filter(Boolean);
}

function ip(ns: string, ...args: string[]): Promise<string> {
  return runOk(["ip", "-n", ns, ...args]);
}

async function linkExists(ns: string, dev: string): Promise<boolean> {
  return (await run(["ip", "-n", ns, "link", "show", "dev", dev])).code === 0;
}

/** A veth pair with one end in each namespace; a half-present pair (repair) is recreated. */
export async function veth(nsA: string, ifA: string, nsB: string, ifB: string): Promise<void> {
  const [a, b] = [await linkExists(nsA, ifA), await linkExists(nsB, ifB)];
  if (a && b) return;
  // Deleting one end of a veth deletes both; a lone leftover end is removed before recreating.
  if (a) await ip(nsA, "link", "del", ifA);
  if (b) await ip(nsB, "link", "del", ifB);
  // Created from inside nsA (`ip -n`), peer placed straight into nsB: never in the root namespace.
  await ip(nsA, "link", "add", ifA, "type", "veth", "peer", "name", ifB, "netns", nsB);
}

/** Adds an IPv4 and an IPv6 address; `nodad` so the lab is usable at once instead of after DAD. */
async function addr(ns: string, dev: string, v4: string, v6: string): Promise<void> {
  await ip(ns, "addr", "replace", v4, "dev", dev);
  await ip(ns, "addr", "replace", v6, "dev", dev, "nodad");
}

async function route(ns: string, family: "-4" | "-6", ...args: string[]): Promise<void> {
  await runOk(["ip", "-n", ns, family, "route", "replace", ...args]);
}

async function sysctl(ns: string, values: Record<string, number>): Promise<void> {
  const argv = Object.entries(values).map(([k, v]) => `${k}=${v}`);
  await runOk(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", ...argv]);
}
