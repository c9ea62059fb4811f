// Duplicate address detection (lan area) per RFC 5227: ARP probes (sender address 0.0.0.0, so no
// host's cache is disturbed) for the probe's own address — target "self" — or, on request, for any
// IPv4 address. For the own address, any other host that answers or probes for it is a duplicate
// IP. For another address, the check says whether it is in use and by which MAC(s).

import { Type, type Static } from "@sinclair/typebox";
import type { CheckKind, Measurement } from "./check.ts";
import { arpExchange } from "../net/arp-exchange.ts";
import { defaultInterface, interfaceIpv4, isInterfaceName, readInterfaceMac } from "../net/interfaces.ts";
import { sharedPcap, type FrameIo } from "../net/pcap-session.ts";

const options = Type.Object(
  {
    interface: Type.String({
      default: "",
      description: "interface to probe on; empty = the interface of the IPv4 default route",
    }),
    count: Type.Integer({
      minimum: 1,
      maximum: 10,
      default: 3,
      description: "ARP probes per run (RFC 5227 PROBE_NUM is 3)",
    }),
    interval_ms: Type.Integer({
      minimum: 10,
      maximum: 5000,
      default: 200,
      description: "gap between probes (RFC 5227 uses 1-2 s at boot; a periodic check can be quicker)",
    }),
    wait_ms: Type.Integer({
      minimum: 50,
      maximum: 10000,
      default: 1000,
      description: "how long to listen after the last probe",
    }),
    expect: Type.Union([Type.Literal("free"), Type.Literal("in_use"), Type.Literal("any")], {
      default: "free",
      description:
        "free: another host using the address fails (for self: duplicate IP); in_use: nobody answering " +
        "fails; any: only report who uses it",
    }),
  },
  { additionalProperties: false },
);

/** Options of an arp check, defaults filled in by the config loader. */
export type ArpOptions = Static<typeof options>;

/** The I/O an arp check uses; tests pass a fake LAN. */
export interface ArpDependencies {
  io: FrameIo;
  ownIpv4: (iface: string) => string | undefined;
  defaultInterface: () => string | undefined;
  /** Whether the interface exists (an unplugged USB adapter has no address either, but says more). */
  interfaceExists?: (iface: string) => boolean;
}

/** Builds the arp check over the given I/O. */
export function createArpCheck(deps: ArpDependencies): CheckKind<typeof options> {
  return {
    kind: "arp",
    needs: ["net_raw"],
    defaultArea: "lan",
    options,
    run: async (rawTarget, opts, _ctx, signal) => {
      const iface = opts.interface !== "" ? opts.interface : deps.defaultInterface();
      if (iface === undefined || !isInterfaceName(iface)) {
        return errorResult("no_interface", "no interface to probe on: set options.interface");
      }
      const self = rawTarget.trim() === "self";
      const target = self ? deps.ownIpv4(iface) : rawTarget.trim();
      if (target === undefined) {
        if (deps.interfaceExists?.(iface) === false)
          return errorResult(
            "interface_missing",
            `interface ${iface} does not exist (network adapter missing or renamed)`,
          );
        return errorResult("no_address", `interface ${iface} has no IPv4 address to check for duplicates`);
      }
      if (!/^(\d{1,3}\.){3}\d{1,3}$/.test(target)) {
        return errorResult("invalid_target", `target must be an IPv4 address or "self", got "${target}"`);
      }
      const outcome = await arpExchange(
        deps.io,
        {
          iface,
          targetIp: target,
          senderIp: "0.0.0.0",
          count: opts.count,
          intervalMs: opts.interval_ms,
          waitMs: opts.wait_ms,
          stopOnClaim: true,
          settleMs: Math.min(opts.wait_ms, 300),
        },
        signal,
      );
      if ("code" in outcome) return errorResult(outcome.code, outcome.message);
      const users = outcome.claims;
      const metrics: Record<string, number> = {
        probes: outcome.sent,
        claimants: users.length,
        malformed_frames: outcome.malformed,
      };
      const detail: Record<string, unknown> = {
        interface: iface,
        address: target,
        self,
        own_mac: outcome.ownMac,
        claimed_by: users.map((u) => ({ mac: u.mac, replies: u.replies, probing: u.probing })),
      };
      if (outcome.aborted) detail.aborted = true;
      const macs = users.map((u) => u.mac).join(", ");
      if (users.length > 0 && opts.expect === "free") {
        return {
          status: "fail",
          metrics,
          detail,
          error: self
            ? {
                code: "duplicate_ip",
                message: `another device uses the probe's address ${target} on ${iface}: MAC ${macs} — duplicate IP (static address or DHCP conflict)`,
              }
            : { code: "address_in_use", message: `${target} is in use on ${iface} by MAC ${macs}` },
        };
      }
      if (users.length === 0 && opts.expect === "in_use") {
        return {
          status: "fail",
          metrics,
          detail,
          error: { code: "address_unused", message: `no device answers for ${target} on ${iface}` },
        };
      }
      return { status: "ok", metrics, detail };
    },
  };
}

/** RFC 5227 duplicate-address probe over the process-wide pcap session. */
export const arp: CheckKind<typeof options> = createArpCheck({
  io: sharedPcap,
  ownIpv4: (iface) => interfaceIpv4(iface)?.address,
  defaultInterface,
  interfaceExists: (iface) => readInterfaceMac(iface) !== "",
});

function errorResult(code: string, message: string): Measurement {
  return { status: "error", metrics: {}, error: { code, message } };
}
