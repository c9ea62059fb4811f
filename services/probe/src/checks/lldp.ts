// LLDP switch-port discovery (link area): listens passively for the switch's LLDPDUs on the probe's
// interface and reports which switch and port the probe is plugged into (chassis, system name,
// port id/description, VLAN, management address, PoE). Warns when nothing is heard in time (the
// switch sends no LLDP) or when the neighbour changes (the probe was moved or re-patched).
//
// Switches send LLDP every 30 s by default, longer than a run: one listener per interface keeps
// running between runs (started by the first run or by the scheduler's watch) and remembers the
// last LLDPDU; a run reports it while it is within its TTL, else waits for one up to wait_ms.

import { Type, type Static } from "@sinclair/typebox";
import type { CheckKind, Measurement } from "./check.ts";
import { ETHERTYPE, type EthernetFrame } from "../net/ethernet.ts";
import { isInterfaceName } from "../net/interfaces.ts";
import { decodeLldp, type LldpNeighbor } from "../net/lldp-tlv.ts";
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

interface Heard {
  neighbor: LldpNeighbor;
  from: string;
  at: number;
}

interface Listener {
  consumer: FrameConsumer;
  last: Heard | undefined;
  frames: number;
  malformed: number;
  waiters: Set<() => void>;
  onChange: Set<() => void>;
}

interface Known {
  identity: string;
  candidate?: { identity: string; since: number };
}

/** Stable identity of a neighbour: which switch and which port. */
function identityOf(n: LldpNeighbor): string {
  return `${n.chassisId}|${n.portId}`;
}

function describe(n: LldpNeighbor): string {
  const sw = n.systemName ?? n.chassisId;
  const port = n.portDescription ? `${n.portId} (${n.portDescription})` : n.portId;
  return `switch ${sw} port ${port}`;
}

/** Builds the lldp check over the given I/O. */
export function createLldpCheck(deps: LldpDependencies): CheckKind<typeof options> {
  const listeners = new Map<string, Listener>();
  const known = new Map<string, Known>();
  const knownText = new Map<string, string>();

  const listen = (iface: string): Listener | { code: string; message: string } => {
    const existing = listeners.get(iface);
    const l: Listener = existing ?? {
      last: undefined,
      frames: 0,
      malformed: 0,
      waiters: new Set(),
      onChange: new Set(),
      consumer: {
        etherTypes: [ETHERTYPE.lldp],
        onFrame: (_frame, eth: EthernetFrame) => {
          l.frames++;
          const neighbor = decodeLldp(eth.payload);
          if (neighbor === undefined) {
            l.malformed++;
            return;
          }
          const before = l.last === undefined ? undefined : identityOf(l.last.neighbor);
          // TTL 0 is a shutdown LLDPDU (§9.2.7.7.2): the neighbour info is to be removed.
          l.last = neighbor.ttlS === 0 ? undefined : { neighbor, from: eth.src, at: deps.now() };
          for (const w of l.waiters) w();
          const after = l.last === undefined ? undefined : identityOf(l.last.neighbor);
          if (after !== before) for (const c of l.onChange) c();
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
    kind: "lldp",
    needs: ["net_raw"],
    defaultArea: "link",
    options,
    watch: (target, _opts, _ctx, signal, onChange) => {
      const l = listen(target.trim());
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
      const fresh = (): Heard | undefined =>
        l.last !== undefined && deps.now() - l.last.at <= l.last.neighbor.ttlS * 1000 ? l.last : undefined;
      if (fresh() === undefined && opts.wait_ms > 0 && !signal.aborted) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            clearTimeout(timer);
            l.waiters.delete(check);
            signal.removeEventListener("abort", done);
            resolve();
          };
          const check = (): void => {
            if (fresh() !== undefined) done();
          };
          const timer = setTimeout(done, opts.wait_ms);
          l.waiters.add(check);
          signal.addEventListener("abort", done, { once: true });
        });
      }
      const heard = fresh();
      const metrics: Record<string, number> = { lldp_frames: l.frames, malformed_frames: l.malformed };
      if (heard === undefined) {
        return {
          status: "warn",
          metrics: { ...metrics, neighbors: 0 },
          detail: { interface: iface },
          error: {
            code: "no_lldp",
            message: `no LLDP from the switch on ${iface} within ${Math.round(opts.wait_ms / 1000)} s: the switch is unmanaged or has LLDP off on this port`,
          },
        };
      }
      const n = heard.neighbor;
      metrics.neighbors = 1;
      metrics.age_s = Math.round((deps.now() - heard.at) / 100) / 10;
      if (n.portVlanId !== undefined) metrics.vlan_id = n.portVlanId;
      if (n.poe?.allocatedW !== undefined) metrics.poe_allocated_w = n.poe.allocatedW;
      const detail: Record<string, unknown> = {
        interface: iface,
        source_mac: heard.from,
        chassis_id: n.chassisId,
        port_id: n.portId,
        port_description: n.portDescription ?? null,
        system_name: n.systemName ?? null,
        system_description: n.systemDescription ?? null,
        capabilities: n.capabilities,
        management_addresses: n.managementAddresses,
        vlan_id: n.portVlanId ?? null,
        vlans: n.vlans,
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
        ttl_s: n.ttlS,
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

/** LLDP listener over the process-wide pcap session. */
export const lldp: CheckKind<typeof options> = createLldpCheck({
  io: sharedPcap,
  now: () => performance.now(),
});

function error(code: string, message: string): Measurement {
  return { status: "error", metrics: {}, error: { code, message } };
}
