// LLDP/CDP switch-port discovery (link area): listens passively for LLDPDUs and CDP PDUs on the
// probe's interface and reports which switch and port the probe is plugged into (chassis, system
// name, port id/description, VLAN, voice VLAN, LLDP-MED policy, management address, PoE), with
// every other neighbour on the port (an IP phone beside the switch) listed next to it. Warns when
// nothing is heard in time (the switch speaks neither) or when the switch changes (the probe was
// moved or re-patched).
//
// Switches send LLDP every 30 s by default, longer than a run: one listener per interface keeps
// running between runs (started by the first run or by the scheduler's watch) and keeps a table of
// neighbours keyed by protocol + chassis + port, each aged out after its own TTL (802.1AB-2016
// §9.2.7.7.1). Anything on the LAN can send a frame of type 0x88cc, so only LLDPDUs to the 802.1AB
// group addresses and CDP to Cisco's group address are taken (docs/lan-security.md); tagged
// frames belong to a VLAN, not to the port. The switch is the neighbour the config names, else
// the switch-class one heard first, and it stays the switch while it is fresh: a phone, or a flood
// of new chassis, never makes it "move". The table is bounded (802.1AB's tooManyNeighbors: the
// newcomers are dropped and counted) and the watch asks for at most one run per min_trigger_gap_s.

import { Type, type Static } from "@sinclair/typebox";
import type { CheckKind, Measurement } from "./check.ts";
import { CDP_MULTICAST, decodeCdp, isCdpLlc } from "../net/cdp.ts";
import { ETHERTYPE, type EthernetFrame } from "../net/ethernet.ts";
import { isInterfaceName } from "../net/interfaces.ts";
import { decodeLldp, LLDP_GROUP_ADDRESSES, type LldpNeighbor } from "../net/lldp-tlv.ts";
import { sharedPcap, type FrameConsumer, type FrameIo } from "../net/pcap-session.ts";

const options = Type.Object(
  {
    wait_ms: Type.Integer({
      minimum: 0,
      maximum: 300000,
      default: 5000,
      description:
        "when no current LLDPDU is known, how long a run waits for one (bounded by the run timeout); " +
        "the listener keeps running between runs",
    }),
    expect_system_name: Type.String({
      default: "",
      description: "the switch's system name; empty = not checked",
    }),
    expect_port_id: Type.String({
      default: "",
      description: "the switch port id (e.g. Gi1/0/10); empty = not checked",
    }),
    expect_vlan: Type.Integer({
      minimum: 0,
      maximum: 4094,
      default: 0,
      description: "the port's VLAN id (802.1 PVID); 0 = not checked",
    }),
    min_trigger_gap_s: Type.Integer({
      minimum: 0,
      maximum: 3600,
      default: 10,
      description:
        "between runs, a change of switch asks for an immediate run at most once per this many seconds " +
        "(the rest are counted in suppressed_triggers)",
    }),
    accept_new_neighbor_after_s: Type.Integer({
      minimum: 0,
      default: 3600,
      description:
        "a new switch/port that stays this long becomes the known one (probe moved on purpose); 0 = never",
    }),
  },
  { additionalProperties: false },
);

/** Options of an lldp check, defaults filled in by the config loader. */
export type LldpOptions = Static<typeof options>;

/** The I/O an lldp check uses; tests pass a fake LAN and a clock. */
export interface LldpDependencies {
  io: FrameIo;
  now: () => number;
}

/** Neighbours kept per interface; more are dropped (and counted) until one ages out. */
export const MAX_NEIGHBORS = 32;
/** Neighbours listed in a result's detail (the count is always exact). */
const MAX_LISTED = 16;

interface Heard {
  neighbor: LldpNeighbor;
  from: string;
  /** When the latest PDU of this neighbour arrived (ms, deps.now). */
  at: number;
  /** When this neighbour was first heard: the earliest switch-class one is the port's switch. */
  firstAt: number;
}

interface Listener {
  consumer: FrameConsumer;
  neighbors: Map<string, Heard>;
  frames: number;
  malformed: number;
  /** LLDP/CDP to an address a switch does not send to (unicast from a host on the LAN). */
  notFromSwitch: number;
  /** 802.1Q-tagged PDUs: they belong to a VLAN, not to the untagged port. */
  tagged: number;
  /** New neighbours refused because the table was full. */
  droppedNeighbors: number;
  /** The switch as the watch last saw it. */
  switchKey: string | undefined;
  lastTriggerAt: number | undefined;
  suppressedTriggers: number;
  waiters: Set<() => void>;
  onChange: Set<() => void>;
}

interface Known {
  identity: string;
  candidate?: { identity: string; since: number };
}

/** Stable identity of a neighbour: which protocol, which device, which port. */
function identityOf(n: LldpNeighbor): string {
  return `${n.protocol}|${n.chassisId}|${n.portId}`;
}

const SWITCH_CAPABILITIES = ["bridge", "router", "wlan_access_point", "c_vlan", "s_vlan", "repeater"];

/** A neighbour that forwards frames (switch, router, AP) rather than ends them (phone, PC). */
function isSwitchClass(n: LldpNeighbor): boolean {
  return n.capabilities.some((c) => SWITCH_CAPABILITIES.includes(c)) && !n.capabilities.includes("telephone");
}

function describe(n: LldpNeighbor): string {
  const sw = n.systemName ?? n.chassisId;
  const port = n.portDescription ? `${n.portId} (${n.portDescription})` : n.portId;
  return `${n.protocol === "cdp" ? "CDP " : ""}switch ${sw} port ${port}`;
}

/**
 * The port's switch among the fresh neighbours: the one the options name, else the one chosen
 * before while it is still fresh, else the switch-class one heard first, else the first heard.
 */
function chooseSwitch(
  fresh: Heard[],
  named: { systemName: string; portId: string },
  previous: string | undefined,
): Heard | undefined {
  if (named.systemName !== "" || named.portId !== "") {
    const match = fresh.find(
      (h) =>
        (named.systemName === "" || h.neighbor.systemName === named.systemName) &&
        (named.portId === "" || h.neighbor.portId === named.portId),
    );
    if (match !== undefined) return match;
  }
  const kept = fresh.find((h) => identityOf(h.neighbor) === previous);
  if (kept !== undefined) return kept;
  const byAge = [...fresh].sort((a, b) => a.firstAt - b.firstAt);
  return byAge.find((h) => isSwitchClass(h.neighbor)) ?? byAge[0];
}

/** The lldp kind, plus what it learnt for other checks (the dhcp check's `vlan: auto-voice`). */
export interface LldpCheckKind extends CheckKind<typeof options> {
  /** The voice VLAN the port's neighbours advertise now (CDP VoIP VLAN, LLDP-MED voice policy). */
  voiceVlan(iface: string): number | undefined;
}

/** Builds the lldp check over the given I/O. */
export function createLldpCheck(deps: LldpDependencies): LldpCheckKind {
  const listeners = new Map<string, Listener>();
  const known = new Map<string, Known>();
  const knownText = new Map<string, string>();
  /** The watch's trigger gap per interface (the last watch started wins). */
  const triggerGapMs = new Map<string, number>();

  const isFresh = (h: Heard): boolean => deps.now() - h.at <= h.neighbor.ttlS * 1000;
  const freshOf = (l: Listener): Heard[] => {
    for (const [key, h] of l.neighbors) if (!isFresh(h)) l.neighbors.delete(key);
    return [...l.neighbors.values()];
  };

  const onPdu = (iface: string, l: Listener, neighbor: LldpNeighbor, from: string): void => {
    const key = identityOf(neighbor);
    const fresh = freshOf(l);
    // One source MAC is one sending port: a PDU of the same protocol from it with another chassis/port replaces what
    // that port said before (the switch re-numbered the port, or the probe was re-patched).
    const replaced = fresh.find(
      (h) => h.from === from && h.neighbor.protocol === neighbor.protocol && identityOf(h.neighbor) !== key,
    );
    if (replaced !== undefined) l.neighbors.delete(identityOf(replaced.neighbor));
    const before = l.neighbors.get(key);
    // TTL 0 is a shutdown PDU (802.1AB §9.2.7.7.2): the neighbour info is to be removed at once.
    if (neighbor.ttlS === 0) l.neighbors.delete(key);
    else if (before === undefined && l.neighbors.size >= MAX_NEIGHBORS) {
      l.droppedNeighbors++;
      return;
    } else {
      const now = deps.now();
      const firstAt = before?.firstAt ?? replaced?.firstAt ?? now;
      l.neighbors.set(key, { neighbor, from, at: now, firstAt });
    }
    for (const w of l.waiters) w();
    const sw = chooseSwitch(freshOf(l), { systemName: "", portId: "" }, l.switchKey);
    const after = sw === undefined ? undefined : identityOf(sw.neighbor);
    if (after === l.switchKey) return;
    l.switchKey = after;
    if (l.onChange.size === 0) return;
    const now = deps.now();
    const gap = triggerGapMs.get(iface) ?? 0;
    if (l.lastTriggerAt !== undefined && now - l.lastTriggerAt < gap) {
      l.suppressedTriggers++;
      return;
    }
    l.lastTriggerAt = now;
    for (const c of l.onChange) c();
  };

  const listen = (iface: string): Listener | { code: string; message: string } => {
    const existing = listeners.get(iface);
    const l: Listener = existing ?? {
      neighbors: new Map(),
      frames: 0,
      malformed: 0,
      notFromSwitch: 0,
      tagged: 0,
      droppedNeighbors: 0,
      switchKey: undefined,
      lastTriggerAt: undefined,
      suppressedTriggers: 0,
      waiters: new Set(),
      onChange: new Set(),
      consumer: {
        etherTypes: [ETHERTYPE.lldp, ETHERTYPE.llc],
        onFrame: (_frame, eth: EthernetFrame) => {
          const cdp = eth.etherType === ETHERTYPE.llc;
          if (cdp && !isCdpLlc(eth.payload)) return; // other LLC traffic (STP…)
          l.frames++;
          if (eth.vlan !== undefined) {
            l.tagged++;
            return;
          }
          if (cdp ? eth.dst !== CDP_MULTICAST : !LLDP_GROUP_ADDRESSES.includes(eth.dst)) {
            l.notFromSwitch++;
            return;
          }
          const neighbor = cdp ? decodeCdp(eth.payload) : decodeLldp(eth.payload);
          if (neighbor === undefined) {
            l.malformed++;
            return;
          }
          onPdu(iface, l, neighbor, eth.src);
        },
      },
    };
    // Opened again on every run with the same consumer (a no-op while the capture is healthy): after
    // a link bounce or a re-created interface the shared capture is a new one, and the listener must
    // move to it (pcap-session.ts). The listener stays for the life of the process: LLDP arrives
    // every ~30 s, between runs.
    const tap = deps.io.open(iface, l.consumer);
    if ("code" in tap) return tap;
    listeners.set(iface, l);
    return l;
  };

  return {
    voiceVlan: (iface) => {
      const l = listeners.get(iface);
      if (l === undefined) return undefined;
      const fresh = freshOf(l);
      const sw = chooseSwitch(fresh, { systemName: "", portId: "" }, known.get(iface)?.identity);
      return sw === undefined ? undefined : voiceVlanOf(fresh, sw);
    },
    kind: "lldp",
    needs: ["net_raw"],
    defaultArea: "link",
    options,
    watch: (target, opts, _ctx, signal, onChange) => {
      const iface = target.trim();
      triggerGapMs.set(iface, opts.min_trigger_gap_s * 1000);
      const l = listen(iface);
      if ("code" in l) return;
      l.onChange.add(onChange);
      signal.addEventListener("abort", () => l.onChange.delete(onChange), { once: true });
    },
    run: async (rawTarget, opts, _ctx, signal) => {
      const iface = rawTarget.trim();
      if (!isInterfaceName(iface)) {
        return error("invalid_target", `target must be an interface name such as eth0, got "${iface}"`);
      }
      const l = listen(iface);
      if ("code" in l) return error(l.code, l.message);
      const named = { systemName: opts.expect_system_name, portId: opts.expect_port_id };
      const pick = (): Heard | undefined => chooseSwitch(freshOf(l), named, known.get(iface)?.identity);
      if (pick() === undefined && opts.wait_ms > 0 && !signal.aborted) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            clearTimeout(timer);
            l.waiters.delete(check);
            signal.removeEventListener("abort", done);
            resolve();
          };
          const check = (): void => {
            if (pick() !== undefined) done();
          };
          const timer = setTimeout(done, opts.wait_ms);
          l.waiters.add(check);
          signal.addEventListener("abort", done, { once: true });
        });
      }
      const heard = pick();
      const fresh = freshOf(l);
      const metrics: Record<string, number> = {
        lldp_frames: l.frames,
        malformed_frames: l.malformed,
        neighbors: fresh.length,
        lldp_neighbors: fresh.filter((h) => h.neighbor.protocol === "lldp").length,
        cdp_neighbors: fresh.filter((h) => h.neighbor.protocol === "cdp").length,
        not_from_switch_frames: l.notFromSwitch,
        tagged_frames: l.tagged,
        dropped_neighbors: l.droppedNeighbors,
        suppressed_triggers: l.suppressedTriggers,
      };
      if (heard === undefined) {
        return {
          status: "warn",
          metrics,
          detail: { interface: iface },
          error: {
            code: "no_lldp",
            message: `no LLDP or CDP from the switch on ${iface} within ${Math.round(opts.wait_ms / 1000)} s: the switch is unmanaged or has LLDP/CDP off on this port`,
          },
        };
      }
      const n = heard.neighbor;
      metrics.age_s = Math.round((deps.now() - heard.at) / 100) / 10;
      if (n.portVlanId !== undefined) metrics.vlan_id = n.portVlanId;
      const voiceVlan = voiceVlanOf(fresh, heard);
      if (voiceVlan !== undefined) metrics.voice_vlan_id = voiceVlan;
      if (n.poe?.allocatedW !== undefined) metrics.poe_allocated_w = n.poe.allocatedW;
      const detail: Record<string, unknown> = {
        interface: iface,
        ...neighborDetail(heard, deps.now()),
        neighbors: fresh
          .sort((a, b) => a.firstAt - b.firstAt)
          .slice(0, MAX_LISTED)
          .map((h) => summary(h, deps.now())),
      };
      const unexpected: string[] = [];
      if (opts.expect_system_name !== "" && n.systemName !== opts.expect_system_name)
        unexpected.push(`switch is ${n.systemName ?? n.chassisId}, expected ${opts.expect_system_name}`);
      if (opts.expect_port_id !== "" && n.portId !== opts.expect_port_id)
        unexpected.push(`port is ${n.portId}, expected ${opts.expect_port_id}`);
      if (opts.expect_vlan !== 0 && n.portVlanId !== opts.expect_vlan)
        unexpected.push(`VLAN is ${n.portVlanId ?? "not advertised"}, expected ${opts.expect_vlan}`);
      if (unexpected.length > 0) {
        return {
          status: "warn",
          metrics,
          detail,
          error: {
            code: "lldp_unexpected_neighbor",
            message: `the probe is on ${describe(n)}: ${unexpected.join("; ")}`,
          },
        };
      }
      const identity = identityOf(n);
      const k = known.get(iface);
      if (k === undefined || k.identity === identity) {
        known.set(iface, { identity });
        knownText.set(iface, describe(n));
        return { status: "ok", metrics, detail };
      }
      const now = deps.now();
      const since = k.candidate?.identity === identity ? k.candidate.since : now;
      const acceptMs = opts.accept_new_neighbor_after_s * 1000;
      if (acceptMs > 0 && now - since >= acceptMs) {
        known.set(iface, { identity });
        knownText.set(iface, describe(n));
        detail.accepted_new_neighbor = true;
        return { status: "ok", metrics, detail };
      }
      known.set(iface, { identity: k.identity, candidate: { identity, since } });
      detail.previous = knownText.get(iface) ?? k.identity;
      return {
        status: "warn",
        metrics,
        detail,
        error: {
          code: "lldp_neighbor_changed",
          message: `the probe is now on ${describe(n)}, was ${knownText.get(iface) ?? k.identity}: it was moved or re-patched`,
        },
      };
    },
  };
}

/** The voice VLAN the port offers: the switch's CDP/LLDP-MED advertisement, else any neighbour's. */
function voiceVlanOf(fresh: Heard[], sw: Heard): number | undefined {
  return (
    sw.neighbor.voiceVlanId ?? fresh.find((h) => h.neighbor.voiceVlanId !== undefined)?.neighbor.voiceVlanId
  );
}

function summary(h: Heard, now: number): Record<string, unknown> {
  const n = h.neighbor;
  return {
    protocol: n.protocol,
    source_mac: h.from,
    chassis_id: n.chassisId,
    port_id: n.portId,
    system_name: n.systemName ?? null,
    platform: n.platform ?? null,
    capabilities: n.capabilities,
    voice_vlan_id: n.voiceVlanId ?? null,
    ttl_s: n.ttlS,
    age_s: Math.round((now - h.at) / 100) / 10,
  };
}

function neighborDetail(h: Heard, now: number): Record<string, unknown> {
  const n = h.neighbor;
  return {
    ...summary(h, now),
    ...(n.cdpVersion === undefined ? {} : { cdp_version: n.cdpVersion }),
    port_description: n.portDescription ?? null,
    system_description: n.systemDescription ?? null,
    management_addresses: n.managementAddresses,
    vlan_id: n.portVlanId ?? null,
    vlans: n.vlans,
    duplex: n.duplex ?? null,
    autoneg:
      n.autoneg === undefined
        ? null
        : { supported: n.autoneg.supported, enabled: n.autoneg.enabled, mau_type: n.autoneg.mauType },
    poe:
      n.poe === undefined
        ? null
        : {
            port_class: n.poe.portClass,
            supported: n.poe.supported,
            enabled: n.poe.enabled,
            power_class: n.poe.powerClass,
            requested_w: n.poe.requestedW ?? null,
            allocated_w: n.poe.allocatedW ?? null,
          },
    med:
      n.med === undefined
        ? null
        : {
            device_type: n.med.deviceType ?? null,
            network_policies: n.med.policies.map((p) => ({
              application: p.application,
              unknown: p.unknown,
              tagged: p.tagged,
              vlan_id: p.vlanId,
              priority: p.priority,
              dscp: p.dscp,
            })),
            power:
              n.med.power === undefined
                ? null
                : {
                    type: n.med.power.type,
                    source: n.med.power.source,
                    priority: n.med.power.priority,
                    watts: n.med.power.watts,
                  },
            inventory: n.med.inventory,
          },
  };
}

/** LLDP/CDP listener over the process-wide pcap session. */
export const lldp: LldpCheckKind = createLldpCheck({
  io: sharedPcap,
  now: () => performance.now(),
});

function error(code: string, message: string): Measurement {
  return { status: "error", metrics: {}, error: { code, message } };
}
