import { LAN } from "./lan-hosts.ts";
import { ADDR } from "./topology.ts";
import { CERT_DAYS, DNS_SLOW_MS, WAN } from "./wan-servers.ts";

// Faults switched by name. Each one breaks exactly one thing, is idempotent in both directions and
// knows how to undo itself. Packet-dropping faults are rules in the lab's own nftables table inside
// the gw namespace (never the root namespace); the table is re-rendered from the set of faults that
// are on, so switching is one atomic `nft -f` and on/off twice is harmless.

/** Name of a fault the lab can switch on and off. */
export type FaultName =
  | "link-down"
  | "rogue-dhcp"
  | "dhcp-pool-exhausted"
  | "dup-ip"
  | "gateway-mac-change"
  | "lldp-port-change"
  | "gateway-down"
  | "broker-down"
  | "wan-down"
  | "dns-down"
  | "dhcp-down"
  | "mtu-small"
  | "wan-loss"
  | "wan-latency"
  | "wan-jitter"
  | "wan-hop-loss"
  | "pbx-down"
  | "sip-auth-fail"
  | "rtp-loss"
  | "rtp-jitter"
  | "one-way-audio"
  | "dns-slow"
  | "dns-servfail"
  | "dns-hijack"
  | "dns-spoof"
  | "cert-expiring"
  | "lease-lost"
  | "adapter-unplugged"
  | "address-changed"
  | "resolv-empty"
  | "mtu-changed"
  | "ra-gone";

/** What a fault may act on; the Lab implements it. */
export interface FaultActions {
  /** Renders the LAN extras (lan-hosts.ts) from the LAN faults as they are after this switch. */
  applyLan(): Promise<void>;
  /** Runs `ip -n <gw namespace> ...args`. */
  gwIp(...args: string[]): Promise<void>;
  /** Loads the gateway's nft table rendered from the faults that are on after this switch. */
  applyFirewall(): Promise<void>;
  /** SIGTERMs mosquitto and waits for it to exit (so its persistence file is written). */
  stopBroker(): Promise<void>;
  /** Starts mosquitto with the same config and persistence and waits until it accepts clients. */
  startBroker(): Promise<void>;
  /** Applies the internet path's faults (wan-path.ts) as they are after this switch, values included. */
  applyWanPath(): Promise<void>;
  /** Applies the PBX faults (pbx.ts) as they are after this switch, values included. */
  applyPbx(): Promise<void>;
  /** Switches the WAN services (wan-servers.ts) to the DNS/TLS faults as they are after this switch. */
  applyWanServers(): Promise<void>;
  /** Brings the probe (probe-host.ts: address, routes, MTU, adapter, resolver) to the faults after this switch. */
  applyProbe(): Promise<void>;
}

/** A fault that takes a number (`netprobe lab fault wan-loss on 5`): its unit, default and range. */
export interface FaultValueSpec {
  unit: "%" | "ms" | "bytes";
  default: number;
  /** Smallest value (default 0). */
  min?: number;
  max: number;
}

/** The faults that take a value. */
export const FAULT_VALUES: Readonly<Partial<Record<FaultName, FaultValueSpec>>> = {
  "wan-loss": { unit: "%", default: 5, max: 100 },
  "wan-latency": { unit: "ms", default: 100, max: 10_000 },
  "wan-jitter": { unit: "ms", default: 10, max: 1_000 },
  "wan-hop-loss": { unit: "%", default: 50, max: 100 },
  "rtp-loss": { unit: "%", default: 5, max: 100 },
  "rtp-jitter": { unit: "ms", default: 30, max: 1_000 },
  // 1280: the IPv6 minimum (RFC 8200 §5); 576: the IPv4 minimum datagram a host must accept
  // (RFC 791), where the kernel takes IPv6 off the link.
  "mtu-changed": { unit: "bytes", default: 1280, min: 576, max: 1500 },
};

/** The nft chains of the lab's table that faults add rules to. */
type FaultChain = "input" | "forward";

interface FaultSpec {
  description: string;
  /** nft rules this fault adds while it is on. */
  nft?: Partial<Record<FaultChain, string[]>>;
  /** Switches the fault (idempotent); faults with only `nft` rules just reload the table. */
  apply?: (actions: FaultActions, on: boolean) => Promise<void>;
}

const lan = `iifname "${ADDR.gwLanIf}"`;

const SPECS = {
  "gateway-down": {
    description: `the gateway is dead on the LAN: its ${ADDR.gwLanIf} is down (no ARP, ICMP, DHCP, DNS or routing); the probe's own link stays up`,
    // Taking the link down (rather than dropping IP) also silences ARP and neighbour discovery, as a
    // crashed router would. keep_addr_on_down (topology.ts) keeps the IPv6 addresses for dnsmasq.
    apply: (a, on) => a.gwIp("link", "set", ADDR.gwLanIf, on ? "down" : "up"),
  },
  "broker-down": {
    description:
      "mosquitto in hq is stopped (SIGTERM, persistence saved); off starts it again with the same sessions",
    apply: (a, on) => (on ? a.stopBroker() : a.startBroker()),
  },
  "wan-down": {
    description: "the gateway forwards nothing to or from the WAN (nft drop in its forward chain)",
    nft: { forward: [`oifname "${ADDR.gwWanIf}" drop`, `iifname "${ADDR.gwWanIf}" drop`] },
  },
  "dns-down": {
    description: "the gateway's DNS does not answer (nft drop of UDP and TCP port 53 arriving on the LAN)",
    nft: { input: [`${lan} meta l4proto { tcp, udp } th dport 53 drop`] },
  },
  "dhcp-down": {
    description: "the gateway's DHCP server does not answer (nft drop of UDP port 67 arriving on the LAN)",
    nft: { input: [`${lan} udp dport 67 drop`] },
  },
  "link-down": {
    description: "the switch port of the probe (sw probe0) is down: the probe loses carrier",
    apply: (a) => a.applyLan(),
  },
  "rogue-dhcp": {
    description: `a second DHCP server (dnsmasq on the lan host, ${LAN.host4}, MAC ${LAN.hostMac}) answers on the LAN`,
    apply: (a) => a.applyLan(),
  },
  "dhcp-pool-exhausted": {
    description:
      "every address of the gateway's DHCP pool is reserved for other clients: no offer for the probe",
    apply: (a) => a.applyLan(),
  },
  "dup-ip": {
    description: `the lan host (MAC ${LAN.hostMac}) also takes the probe's address ${ADDR.probe4}`,
    apply: (a) => a.applyLan(),
  },
  "gateway-mac-change": {
    description: `the gateway's LAN MAC changes from ${ADDR.gwLanMac} to ${LAN.gwAltMac}`,
    apply: (a) => a.applyLan(),
  },
  "lldp-port-change": {
    description: `the switch advertises port ${LAN.movedPort} instead of ${LAN.probePort} to the probe (it "moved")`,
    apply: (a) => a.applyLan(),
  },
  "mtu-small": {
    description: `the r1–r2 link of the internet path has an MTU of 1400 (path MTU to ${ADDR.farTarget4} drops from 1500)`,
    apply: (a) => a.applyWanPath(),
  },
  "wan-loss": {
    description: `the far target ${ADDR.farTarget4} leaves exactly PCT % of echo requests unanswered (default 5)`,
    apply: (a) => a.applyWanPath(),
  },
  "wan-latency": {
    description: `the far target ${ADDR.farTarget4} holds every echo reply MS ms (default 100)`,
    apply: (a) => a.applyWanPath(),
  },
  "wan-jitter": {
    description: `the far target ${ADDR.farTarget4} adds a random hold of 0–3×MS ms per reply: RFC 3550 jitter of MS (default 10)`,
    apply: (a) => a.applyWanPath(),
  },
  "wan-hop-loss": {
    description:
      "router r1 (hop 3 of the internet path) drops PCT % of its ICMP time-exceeded replies (default 50)",
    apply: (a) => a.applyWanPath(),
  },
  "pbx-down": {
    description: "kamailio on the PBX (203.0.113.60) is stopped: SIP gets ICMP port unreachable",
    apply: (a) => a.applyPbx(),
  },
  "sip-auth-fail": {
    description: "the test account's password is changed on the PBX: REGISTER and INVITE get 401/407 again",
    apply: (a) => a.applyPbx(),
  },
  "rtp-loss": {
    description: "the PBX's echo drops PCT % of the audio it returns (default 5)",
    apply: (a) => a.applyPbx(),
  },
  "rtp-jitter": {
    description: "the PBX's echo holds each packet 0–3×MS ms at random: RFC 3550 jitter of MS (default 30)",
    apply: (a) => a.applyPbx(),
  },
  "one-way-audio": {
    description: "the PBX's echo answers but returns no audio (its RTCP reports still arrive)",
    apply: (a) => a.applyPbx(),
  },
  "dns-slow": {
    description: `the provider's resolver ${WAN.dnsResolver4} (and so the gateway's forwarded names) answers ${DNS_SLOW_MS} ms late`,
    apply: (a) => a.applyWanServers(),
  },
  "dns-servfail": {
    description: `the provider's resolver ${WAN.dnsResolver4} answers every query SERVFAIL`,
    apply: (a) => a.applyWanServers(),
  },
  "dns-hijack": {
    description: `the provider's resolver ${WAN.dnsResolver4} answers names that do not exist with ${WAN.hijack4} (NXDOMAIN hijacking)`,
    apply: (a) => a.applyWanServers(),
  },
  "dns-spoof": {
    description: `the provider's resolver ${WAN.dnsResolver4} answers existing names with the wrong address ${WAN.hijack4}`,
    apply: (a) => a.applyWanServers(),
  },
  "cert-expiring": {
    description: `the HTTPS server ${WAN.web4}:443 presents a certificate that expires in ${CERT_DAYS.expiring} days`,
    apply: (a) => a.applyWanServers(),
  },
  "lease-lost": {
    description:
      "the gateway's DHCP server stops answering (nft drop of UDP port 67) and the probe's lease ends: its IPv4 address, default route and nameservers are removed, as dhcpcd does at expiry; off: the lease comes back",
    nft: { input: [`${lan} udp dport 67 drop`] },
    apply: async (a) => {
      await a.applyFirewall();
      await a.applyProbe();
    },
  },
  "adapter-unplugged": {
    description: `the probe's network adapter is unplugged: ${ADDR.probeIf} and its switch port are gone; off plugs a new one in (same MAC) and it is configured again`,
    apply: (a) => a.applyProbe(),
  },
  "address-changed": {
    description: `the probe's IPv4 address changes under the running service, ${ADDR.probe4} → ${ADDR.probeAlt4} (DHCP addressing: the server reserves ${ADDR.probeAlt4} and NAKs the renewal)`,
    apply: (a) => a.applyProbe(),
  },
  "resolv-empty": {
    description: "the probe namespace's resolv.conf is empty (no nameserver), rewritten in place",
    apply: (a) => a.applyProbe(),
  },
  "mtu-changed": {
    description: `the probe's ${ADDR.probeIf} MTU drops to BYTES (default 1280; below 1280 the kernel takes IPv6 off the link)`,
    apply: (a) => a.applyProbe(),
  },
  "ra-gone": {
    description:
      "router advertisements are gone: the probe's default IPv6 route is removed (its address stays, as a SLAAC address outlives the router lifetime)",
    apply: (a) => a.applyProbe(),
  },
} satisfies Record<FaultName, FaultSpec>;

/** Every fault with a one-line description of what it breaks. */
export const FAULTS: Readonly<Record<FaultName, { readonly description: string }>> = SPECS;

/** All fault names, in a stable order. */
export const FAULT_NAMES = Object.keys(SPECS) as FaultName[];

/** Narrows a string (e.g. from the CLI) to a fault name. */
export function isFaultName(name: string): name is FaultName {
  return Object.hasOwn(SPECS, name);
}

/** A fault map with every fault off. */
export function noFaults(): Record<FaultName, boolean> {
  return Object.fromEntries(FAULT_NAMES.map((f) => [f, false])) as Record<FaultName, boolean>;
}

/** Switches one fault; `actions.applyFirewall` must already see the new fault map. */
export async function switchFault(name: FaultName, on: boolean, actions: FaultActions): Promise<void> {
  const spec: FaultSpec = SPECS[name];
  if (spec.apply) await spec.apply(actions, on);
  else await actions.applyFirewall();
}

/** Name of the lab's nft table in the gw namespace. */
export const NFT_TABLE = "netprobe_lab";

/**
 * The gateway's whole nft ruleset for a set of faults: IPv4 masquerade out of the WAN plus the drop
 * rules of every fault that is on. Declaring, deleting and redeclaring the table in one file makes
 * the load atomic and idempotent.
 */
export function nftRuleset(faults: Readonly<Record<FaultName, boolean>>): string {
  const rules = (chain: FaultChain): string[] =>
    FAULT_NAMES.filter((f) => faults[f]).flatMap((f) =>
      ((SPECS[f] as FaultSpec).nft?.[chain] ?? []).map((r) => `\t\t${r} comment "${f}"`),
    );
  return [
    `table inet ${NFT_TABLE}`,
    `delete table inet ${NFT_TABLE}`,
    `table inet ${NFT_TABLE} {`,
    `\tchain postrouting {`,
    `\t\ttype nat hook postrouting priority srcnat; policy accept;`,
    `\t\tmeta nfproto ipv4 oifname "${ADDR.gwWanIf}" masquerade`,
    `\t}`,
    `\tchain input {`,
    `\t\ttype filter hook input priority filter; policy accept;`,
    ...rules("input"),
    `\t}`,
    `\tchain forward {`,
    `\t\ttype filter hook forward priority filter; policy accept;`,
    ...rules("forward"),
    `\t}`,
    `}`,
    ``,
  ].join("\n");
}
