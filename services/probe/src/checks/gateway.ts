// Gateway ARP (lan area): ARP the default router through the shared pcap session, report its MAC
// and reply time, and alert when the MAC changes or two MACs answer (ARP spoofing or an address
// conflict on the router's address). The gateway's MAC is learned on the first good run (or set
// with expected_mac); a different MAC fails until it returns, or until it has been stable for
// accept_new_mac_after_s (a router that was really replaced).
//
// Between runs an ARP watch (net/arp-watch.ts) looks at every ARP frame claiming the gateway's
// address, so a spoofer is caught in the next run whatever its period, and asks for a run at once
// (at most once per min_trigger_gap_s). A run also reads the kernel's own ARP cache entry for the
// gateway: when a spoofer got there first, the probe's own traffic already goes to it.

import { Type, type Static } from "@sinclair/typebox";
import type { CheckKind, Measurement } from "./check.ts";
import { readFileSync } from "node:fs";
import { arpExchange, type ArpClaim } from "../net/arp-exchange.ts";
import { ArpWatch, parseProcNetArp, type ArpClaimant } from "../net/arp-watch.ts";
import { normalizeMac } from "../net/ethernet.ts";
import { defaultRoute4, interfaceIpv4, isInterfaceName } from "../net/interfaces.ts";
import { sharedPcap, type FrameIo } from "../net/pcap-session.ts";
import { round } from "./common/round.ts";

const options = Type.Object(
  {
    interface: Type.String({
      default: "",
      description: "interface to ARP on; empty = the interface of the IPv4 default route",
    }),
    count: Type.Integer({ minimum: 1, maximum: 20, default: 3, description: "ARP requests per run at most" }),
    interval_ms: Type.Integer({
      minimum: 10,
      maximum: 5000,
      default: 200,
      description: "gap between requests",
    }),
    wait_ms: Type.Integer({
      minimum: 50,
      maximum: 10000,
      default: 1000,
      description: "how long to wait for a reply after the last request",
    }),
    settle_ms: Type.Integer({
      minimum: 0,
      maximum: 5000,
      default: 300,
      description: "after the first reply, keep listening this long for a second MAC answering",
    }),
    expected_mac: Type.String({
      default: "",
      pattern: "^(([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2})?$",
      description: "the gateway's MAC; empty = learned from the first run",
    }),
    accept_new_mac_after_s: Type.Integer({
      minimum: 0,
      default: 3600,
      description:
        "a new learned MAC that stays this long becomes the gateway's MAC (a replaced router); 0 = never",
    }),
    min_trigger_gap_s: Type.Integer({
      minimum: 0,
      maximum: 3600,
      default: 10,
      description:
        "between runs, an ARP frame claiming the gateway from another MAC asks for an immediate run at most once per this many seconds",
    }),
    check_kernel_cache: Type.Boolean({
      default: true,
      description: "fail when the kernel's ARP cache maps the gateway to another MAC (already poisoned)",
    }),
  },
  { additionalProperties: false },
);

/** Options of a gateway check, defaults filled in by the config loader. */
export type GatewayOptions = Static<typeof options>;

/** The I/O a gateway check uses; tests pass a fake LAN, an own address and a clock. */
export interface GatewayDependencies {
  io: FrameIo;
  ownIpv4: (iface: string) => string | undefined;
  defaultRoute: () => { gateway: string; iface: string } | undefined;
  now: () => number;
  /** The kernel's complete ARP cache entry for an address on an interface (/proc/net/arp). */
  kernelNeighbour?: (ip: string, iface: string) => string | undefined;
}

interface Baseline {
  mac: string;
  /** A different MAC seen since (ms), while it stays the same. */
  candidate?: { mac: string; since: number };
}

/** Builds the gateway check over the given I/O. */
export function createGatewayCheck(deps: GatewayDependencies): CheckKind<typeof options> {
  const baselines = new Map<string, Baseline>();
  const watches = new Map<string, ArpWatch>();
  const triggers = new Map<string, { at: number; suppressed: number }>();
  const resolve = (rawTarget: string, opts: GatewayOptions) => {
    const route = rawTarget.trim() === "auto" || opts.interface === "" ? deps.defaultRoute() : undefined;
    const target = rawTarget.trim() === "auto" ? route?.gateway : rawTarget.trim();
    const iface = opts.interface !== "" ? opts.interface : route?.iface;
    return { target, iface };
  };
  const knownMac = (key: string, opts: GatewayOptions): string | undefined =>
    normalizeMac(opts.expected_mac) ?? baselines.get(key)?.mac;
  /** The interface's watch, opened again on every use (a no-op while the capture is healthy). */
  const watchOn = (iface: string): ArpWatch | { code: string; message: string } => {
    const w = watches.get(iface) ?? new ArpWatch(deps.now);
    const error = w.open(deps.io, iface);
    if (error !== undefined) return error;
    watches.set(iface, w);
    return w;
  };
  return {
    kind: "gateway",
    needs: ["net_raw"],
    defaultArea: "lan",
    options,
    watch: (rawTarget, opts, _ctx, signal, onChange) => {
      const { target, iface } = resolve(rawTarget, opts);
      if (target === undefined || iface === undefined || !isInterfaceName(iface)) return;
      const w = watchOn(iface);
      if ("code" in w) return;
      const key = `${iface}/${target}`;
      w.watch(target, knownMac(key, opts));
      const stop = w.onForeign((ip) => {
        if (ip !== target) return;
        const t = triggers.get(key) ?? { at: -Infinity, suppressed: 0 };
        triggers.set(key, t);
        const now = deps.now();
        if (now - t.at < opts.min_trigger_gap_s * 1000) {
          t.suppressed++;
          return;
        }
        t.at = now;
        onChange();
      });
      signal.addEventListener("abort", stop, { once: true });
    },
    run: async (rawTarget, opts, ctx, signal) => {
      const { target, iface } = resolve(rawTarget, opts);
      if (target === undefined || iface === undefined) {
        return fail(
          "error",
          "no_default_route",
          "no IPv4 default route: set the gateway address and interface",
        );
      }
      if (!/^(\d{1,3}\.){3}\d{1,3}$/.test(target)) {
        return fail("error", "invalid_target", `target must be an IPv4 address or "auto", got "${target}"`);
      }
      if (!isInterfaceName(iface)) return fail("error", "invalid_target", `bad interface name "${iface}"`);
      const key = `${iface}/${target}`;
      const w = watchOn(iface);
      if (!("code" in w)) w.watch(target, knownMac(key, opts));
      // Read before our own ARP request: the gateway's reply to it repairs a poisoned entry.
      const kernel = opts.check_kernel_cache ? deps.kernelNeighbour?.(target, iface) : undefined;
      const verdict = await judge(target, iface, key, opts, signal);
      if ("code" in w) {
        ctx.log.warn({ iface, error: w.message }, "gateway: no ARP watch between runs");
        return verdict;
      }
      const mac = knownMac(key, opts);
      w.watch(target, mac);
      return watchVerdict(verdict, w, { target, iface, mac, key, kernel });
    },
  };

  async function judge(
    target: string,
    iface: string,
    key: string,
    opts: GatewayOptions,
    signal: AbortSignal,
  ): Promise<Measurement> {
    const outcome = await arpExchange(
      deps.io,
      {
        iface,
        targetIp: target,
        senderIp: deps.ownIpv4(iface) ?? "0.0.0.0",
        count: opts.count,
        intervalMs: opts.interval_ms,
        waitMs: opts.wait_ms,
        stopOnClaim: true,
        settleMs: opts.settle_ms,
      },
      signal,
    );
    if ("code" in outcome) return fail("error", outcome.code, outcome.message);
    const answering = outcome.claims.filter((c) => c.replies > 0);
    const metrics: Record<string, number> = {
      requests: outcome.sent,
      replies: answering.reduce((n, c) => n + c.replies, 0),
      macs: answering.length,
      malformed_frames: outcome.malformed,
    };
    const times = answering.flatMap((c) => c.replyTimesMs);
    if (times.length > 0) {
      metrics.reply_time_ms = round(Math.min(...times));
      metrics.reply_time_avg_ms = round(times.reduce((a, b) => a + b, 0) / times.length);
    }
    const expected = normalizeMac(opts.expected_mac);
    const baseline = expected !== undefined ? { mac: expected } : baselines.get(key);
    const detail: Record<string, unknown> = {
      interface: iface,
      gateway: target,
      macs: answering.map(describeClaim),
      known_mac: baseline?.mac ?? null,
    };
    if (outcome.aborted) detail.aborted = true;
    const first = answering[0];
    if (first === undefined) {
      return {
        status: "fail",
        metrics,
        detail,
        error: {
          code: "no_arp_reply",
          message: `gateway ${target} does not answer ARP on ${iface}: it is down, unplugged, or on another VLAN/subnet`,
        },
      };
    }
    detail.mac = first.mac;
    if (answering.length > 1) {
      return {
        status: "fail",
        metrics,
        detail,
        error: {
          code: "gateway_mac_conflict",
          message: `${answering.length} devices answer ARP for gateway ${target}: ${answering.map((c) => c.mac).join(", ")} — ARP spoofing or an address conflict`,
        },
      };
    }
    if (baseline === undefined) {
      baselines.set(key, { mac: first.mac });
      detail.known_mac = first.mac;
      return { status: "ok", metrics, detail };
    }
    if (first.mac === baseline.mac) {
      if (expected === undefined) baselines.set(key, { mac: baseline.mac });
      return { status: "ok", metrics, detail };
    }
    const now = deps.now();
    if (expected === undefined) {
      const stored = baselines.get(key) ?? { mac: baseline.mac };
      const since = stored.candidate?.mac === first.mac ? stored.candidate.since : now;
      const acceptAfterMs = opts.accept_new_mac_after_s * 1000;
      if (acceptAfterMs > 0 && now - since >= acceptAfterMs) {
        baselines.set(key, { mac: first.mac });
        detail.accepted_new_mac = true;
        detail.known_mac = first.mac;
        return { status: "ok", metrics, detail };
      }
      baselines.set(key, { mac: stored.mac, candidate: { mac: first.mac, since } });
      detail.changed_since = new Date(Date.now() - (now - since)).toISOString();
    }
    return {
      status: "fail",
      metrics,
      detail,
      error: {
        code: "gateway_mac_changed",
        message: `gateway ${target} now answers from MAC ${first.mac}, was ${baseline.mac}: ARP spoofing, or the router was replaced`,
      },
    };
  }

  /** Adds what the watch heard since the last run, and the kernel's cache entry, to a verdict. */
  function watchVerdict(
    verdict: Measurement,
    w: ArpWatch,
    at: { target: string; iface: string; mac: string | undefined; key: string; kernel: string | undefined },
  ): Measurement {
    const { target, iface, mac, key, kernel } = at;
    const heard = w.take(target);
    const foreign = heard.filter((c) => c.mac !== mac || c.malformed > 0);
    const t = triggers.get(key);
    const metrics: Record<string, number> = {
      ...verdict.metrics,
      watched_arp_frames: w.frames,
      spoof_frames: foreign.reduce((n, c) => n + c.frames, 0),
      spoof_macs: foreign.length,
      malformed_claims: foreign.reduce((n, c) => n + c.malformed, 0),
      dropped_claimants: w.dropped,
      suppressed_triggers: t?.suppressed ?? 0,
    };
    const detail: Record<string, unknown> = { ...verdict.detail };
    if (foreign.length > 0) detail.spoofers = foreign.map((c) => describeClaimant(c, deps.now()));
    if (kernel !== undefined) detail.kernel_mac = kernel;
    const out: Measurement = { ...verdict, metrics, detail };
    if (verdict.status !== "ok" || mac === undefined) return out;
    if (foreign.length > 0) {
      const c = foreign[0]!;
      const how =
        c.malformed > 0
          ? ` in ${c.malformed} malformed ARP frame(s) (hardware type ${c.htype ?? "?"})`
          : ` in ${c.frames} ARP frame(s)`;
      return {
        ...out,
        status: "fail",
        error: {
          code: "arp_spoof",
          message: `since the last run, ${foreign.map((f) => f.mac).join(", ")} claimed gateway ${target}${how}; the gateway is ${mac}: ARP spoofing on the LAN`,
        },
      };
    }
    if (kernel !== undefined && kernel !== mac) {
      return {
        ...out,
        status: "fail",
        error: {
          code: "arp_cache_poisoned",
          message: `the kernel's ARP cache maps gateway ${target} to ${kernel} on ${iface}, but the gateway is ${mac}: this host's traffic goes to a spoofer`,
        },
      };
    }
    return out;
  }
}

/** ARP to the default gateway over the process-wide pcap session. */
export const gateway: CheckKind<typeof options> = createGatewayCheck({
  io: sharedPcap,
  ownIpv4: (iface) => interfaceIpv4(iface)?.address,
  defaultRoute: defaultRoute4,
  now: () => performance.now(),
  kernelNeighbour: (ip, iface) => {
    try {
      return parseProcNetArp(readFileSync("/proc/net/arp", "utf8"), ip, iface);
    } catch {
      return undefined;
    }
  },
});

function describeClaimant(c: ArpClaimant, now: number): Record<string, unknown> {
  return {
    mac: c.mac,
    frames: c.frames,
    malformed: c.malformed,
    ...(c.htype !== undefined ? { htype: c.htype } : {}),
    ...(c.ethernetSource !== undefined ? { ethernet_source: c.ethernetSource } : {}),
    first_seen_s_ago: round((now - c.firstAt) / 1000, 1),
    last_seen_s_ago: round((now - c.lastAt) / 1000, 1),
  };
}

function describeClaim(c: ArpClaim): Record<string, unknown> {
  return {
    mac: c.mac,
    replies: c.replies,
    reply_time_ms: c.firstReplyMs === undefined ? null : round(c.firstReplyMs),
  };
}

function fail(status: "fail" | "error", code: string, message: string): Measurement {
  return { status, metrics: {}, error: { code, message } };
}
