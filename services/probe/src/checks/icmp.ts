// ICMP / ICMPv6 echo series (wan area): loss, RTT distribution and jitter to one target.
//
// Each run gets its own echo identifier from the shared raw socket of its family
// (net/icmp-socket.ts), a random starting sequence number and a random 8-byte payload cookie;
// a reply counts only when identifier, sequence and cookie all match, so other pingers on the
// host, concurrent runs and stale replies from earlier runs are ignored.
//
// RTTs come from kernel capture timestamps when it can (net/echo-wire-stamps.ts): a frame tap on
// the shared pcap session of the egress interface sees each request leave and each reply arrive,
// without the event loop's wake-up latency that user-space stamps carry (it put the probe ~0.3 ms
// above ping through the lab WAN, scripts/bench/wan-accuracy.ts). The raw socket still decides
// what was received, lost, late or an error; where a frame was not captured (no pcap permission,
// a non-Ethernet or unknown egress interface, a capture drop) that echo keeps its user-space RTT.

import { Type, type Static } from "@sinclair/typebox";
import type { CheckContext, CheckKind, Measurement } from "./check.ts";
import {
  addressFamilyOption,
  resolveDestination,
  systemLookup,
  type LookupHost,
} from "./common/resolve-host.ts";
import type { WireTimestampSource } from "./common/wire-timing.ts";
import { EchoSeries } from "./echo-series.ts";
import { sharedIcmpSockets, type IcmpSocketPool } from "../net/icmp-socket.ts";
import { sharedPcap } from "../net/pcap-session.ts";
import { ethernetEgress } from "../net/wire-stamps.ts";

const options = Type.Object(
  {
    count: Type.Integer({ minimum: 1, maximum: 10000, default: 5, description: "echo requests per run" }),
    interval_ms: Type.Integer({
      minimum: 1,
      maximum: 60000,
      default: 200,
      description: "gap between the starts of consecutive requests",
    }),
    size: Type.Integer({
      minimum: 16,
      maximum: 65000,
      default: 56,
      description: "ICMP payload bytes (as ping -s); the first 8 are the run's cookie",
    }),
    wait_ms: Type.Integer({
      minimum: 1,
      maximum: 60000,
      default: 1000,
      description:
        "how long to wait for each reply; a later reply counts as lost (detail.late), and the run " +
        "ends this long after the last request at the latest",
    }),
    address_family: addressFamilyOption,
    ttl: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 255,
        description:
          "IPv4 TTL / IPv6 hop limit of the requests (as ping -t); absent = the system default (64)",
      }),
    ),
    dont_fragment: Type.Optional(
      Type.Boolean({
        description:
          "true: set DF and never fragment (as ping -M do): a size above the path MTU fails with " +
          "`unreachable` (fragmentation needed / message too long); absent or false: the system default (DF set, fragmented locally above the path MTU)",
      }),
    ),
    dscp: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 63,
        description: "DSCP of the requests (46 = EF, voice), as ping -Q (DSCP << 2); absent = 0",
      }),
    ),
    mos: Type.Optional(
      Type.Boolean({
        description:
          "also report `mos` (1–4.5): voice readiness from RTT, jitter and loss by " +
          "check_icmp's simplified E-model (checks/mos.ts)",
      }),
    ),
  },
  { additionalProperties: false },
);

/** Options of an icmp check, defaults filled in by the config loader. */
export type IcmpOptions = Static<typeof options>;

/** The I/O an icmp check uses; tests pass an IcmpSocketPool over a fake transport and a fake resolver. */
export interface IcmpDependencies {
  sockets: Pick<IcmpSocketPool, "open">;
  resolve: LookupHost;
  /** Absent: RTTs from user-space timestamps only. */
  wire?: WireTimestampSource;
}

/** Builds the icmp check over the given I/O (docs/architecture.md, "Conventions"). */
export function createIcmpCheck(deps: IcmpDependencies): CheckKind<typeof options> {
  return {
    kind: "icmp",
    needs: ["net_raw"],
    defaultArea: "wan",
    options,
    run: (target, opts, ctx, signal) => runEchoSeries(deps, target, opts, ctx, signal),
  };
}

/** ICMP/ICMPv6 echo series over the process-wide shared raw sockets, timed by the shared pcap sessions. */
export const icmp: CheckKind<typeof options> = createIcmpCheck({
  sockets: sharedIcmpSockets,
  resolve: systemLookup,
  wire: { io: sharedPcap, captureInterface: ethernetEgress },
});

async function runEchoSeries(
  deps: IcmpDependencies,
  target: string,
  opts: IcmpOptions,
  ctx: CheckContext,
  signal: AbortSignal,
): Promise<Measurement> {
  const destination = await resolveDestination(deps.resolve, target, opts.address_family, signal);
  if ("failure" in destination) return destination.failure;
  return new EchoSeries(deps, destination.address, destination.family, opts, ctx, signal).run();
}
