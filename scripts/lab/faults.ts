import { ADDR } from "./topology.ts";

// Faults switched by name. Each one breaks exactly one thing, is idempotent in both directions and
// knows how to undo itself. Packet-dropping faults are rules in the lab's own nftables table inside
// the gw namespace (never the root namespace); the table is re-rendered from the set of faults that
// are on, so switching is one atomic `nft -f` and on/off twice is harmless.

/** Name of a fault the lab can switch on and off. */
export type FaultName = "gateway-down" | "broker-down" | "wan-down" | "dns-down" | "dhcp-down";

/** What a fault may act on; the Lab implements it. */
export interface FaultActions {
  /** Runs `ip -n <gw namespace> ...args`. */
  gwIp(...args: string[]): Promise<void>;
  /** Loads the gateway's nft table rendered from the faults that are on after this switch. */
  applyFirewall(): Promise<void>;
  /** SIGTERMs mosquitto and waits for it to exit (so its persistence file is written). */
  stopBroker(): Promise<void>;
  /** Starts mosquitto with the same config and persistence and waits until it accepts clients. */
  startBroker(): Promise<void>;
}

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
