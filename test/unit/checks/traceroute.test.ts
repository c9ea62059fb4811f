import { Value } from "@sinclair/typebox/value";
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import type { Measurement } from "../../../services/probe/src/checks/check.ts";
import type { ResolveHost } from "../../../services/probe/src/checks/icmp.ts";
import {
  createTracerouteCheck,
  traceroute,
  type HopReport,
  type TracerouteOptions,
} from "../../../services/probe/src/checks/traceroute.ts";
import { silentLogger } from "../../../services/contract/src/log.ts";
import { IcmpSocketPool } from "../../../services/probe/src/net/icmp-socket.ts";
import {
  FakeIcmpNetwork,
  icmpErrorFor,
  udpErrorFor,
  type SentEcho,
} from "../../doubles/fake-icmp-network.ts";

const ctx = { log: silentLogger() };
const DEFAULTS = Value.Default(traceroute.options, {}) as TracerouteOptions;
const TARGET = "203.0.113.200";
const ROUTERS = ["192.0.2.1", "198.51.100.2", "203.0.113.130", "203.0.113.134"];

let network: FakeIcmpNetwork;
let check: ReturnType<typeof createTracerouteCheck>;
/** Per TTL: the router answering (undefined = silent), or "target". */
let path: (string | undefined)[];
/** Probes a hop leaves unanswered: (ttl, nth probe at that ttl) → true to drop. */
let drop: (ttl: number, nth: number) => boolean;

beforeEach(() => {
  vi.useFakeTimers();
  network = new FakeIcmpNetwork();
  const resolve: ResolveHost = () => Promise.reject(new Error("no DNS in this test"));
  check = createTracerouteCheck({ sockets: new IcmpSocketPool(network.open, network.openUdp), resolve });
  path = [...ROUTERS, TARGET];
  drop = () => false;
  const seen = new Map<number, number>();
  const nth = (ttl: number): number => {
    const n = seen.get(ttl) ?? 0;
    seen.set(ttl, n + 1);
    return n;
  };
  network.onSend = (echo: SentEcho) => {
    const ttl = echo.options?.ttl ?? 64;
    if (drop(ttl, nth(ttl))) return;
    const hop = ttl <= path.length ? path[ttl - 1] : TARGET;
    if (hop === undefined) return;
    // Each hop is 1 ms further away.
    if (hop === TARGET) network.replyAfter(echo, ttl);
    else network.deliverAfter(echo, ttl, icmpErrorFor(echo, 11, 0, hop, 16), hop);
  };
  network.onSendUdp = (udp) => {
    const ttl = udp.options?.ttl ?? 64;
    if (drop(ttl, nth(ttl))) return;
    const hop = ttl <= path.length ? path[ttl - 1] : TARGET;
    if (hop === undefined) return;
    const type = hop === TARGET ? 3 : 11;
    const code = hop === TARGET ? 3 : 0;
    const datagram = udpErrorFor(udp, type, code, hop);
    setTimeout(() => network.deliver(4, datagram, hop, udp.sentAt + BigInt(ttl * 1e6)), ttl);
  };
});

afterEach(() => {
  vi.useRealTimers();
});

async function run(
  overrides: Partial<TracerouteOptions> = {},
  signal = new AbortController().signal,
): Promise<Measurement> {
  const pending = check.run(TARGET, { ...DEFAULTS, ...overrides }, ctx, signal);
  await vi.runAllTimersAsync();
  return pending;
}

function hops(result: Measurement): HopReport[] {
  return result.detail?.hops as HopReport[];
}

describe("options schema", () => {
  test("defaults and rejection of unknown keys", () => {
    expect(DEFAULTS).toMatchObject({ protocol: "icmp", max_hops: 30, probes_per_hop: 3, wait_ms: 1000 });
    expect(Value.Check(traceroute.options, { ...DEFAULTS, max_hops: 0 })).toBe(false);
    expect(Value.Check(traceroute.options, { ...DEFAULTS, hops: 3 })).toBe(false);
    expect(traceroute.kind).toBe("traceroute");
  });
});

describe("a five-hop path", () => {
  test("lists every hop in order with its RTTs, stops at the target, and sets per-packet TTLs", async () => {
    const result = await run();
    expect(result.status).toBe("ok");
    expect(result.metrics).toMatchObject({
      hop_count: 5,
      destination_reached: 1,
      loss_pct: 0,
      rtt_avg_ms: 5,
    });
    expect(hops(result).map((h) => h.addresses)).toEqual([...ROUTERS, TARGET].map((a) => [a]));
    expect(hops(result)[2]).toMatchObject({
      ttl: 3,
      sent: 3,
      received: 3,
      loss_pct: 0,
      rtt_min_ms: 3,
      rtt_max_ms: 3,
    });
    // One window of 8 TTLs, 3 probes each; nothing past it.
    expect(network.sent.map((e) => e.options?.ttl).sort((a, b) => (a ?? 0) - (b ?? 0))).toEqual(
      [1, 2, 3, 4, 5, 6, 7, 8].flatMap((t) => [t, t, t]),
    );
  });

  test("a hop dropping some replies shows loss there while the path stays complete", async () => {
    drop = (ttl, nth) => ttl === 3 && nth !== 1;
    const result = await run();
    expect(result.status).toBe("ok");
    expect(result.metrics).toMatchObject({ destination_reached: 1, hops_with_loss: 1, loss_pct: 0 });
    expect(hops(result)[2]).toMatchObject({
      addresses: [ROUTERS[2]],
      sent: 3,
      received: 1,
      loss_pct: 66.667,
    });
  });

  test("a hop that never answers is listed without an address; the target is still reached", async () => {
    path[1] = undefined;
    const result = await run();
    expect(result.status).toBe("ok");
    expect(hops(result)[1]).toMatchObject({ ttl: 2, addresses: [], received: 0, loss_pct: 100 });
    expect(hops(result)).toHaveLength(5);
  });

  test("UDP probes go to rising ports and the target's port unreachable ends the path", async () => {
    const result = await run({ protocol: "udp" });
    expect(result.status).toBe("ok");
    expect(hops(result).map((h) => h.addresses[0])).toEqual([...ROUTERS, TARGET]);
    const ports = network.sentUdp.map((u) => u.destinationPort);
    expect(new Set(ports).size).toBe(ports.length);
    expect(Math.min(...ports)).toBe(33434);
  });
});

describe("path change", () => {
  test("a different router at a hop since the previous run sets path_changed and says where", async () => {
    const first = await run();
    expect(first.metrics).not.toHaveProperty("path_changed");
    const same = await run();
    expect(same.metrics.path_changed).toBe(0);
    path[2] = "203.0.113.250";
    const changed = await run();
    expect(changed.metrics.path_changed).toBe(1);
    expect(changed.detail?.path_change).toEqual({ at_ttl: 3, previous: [...ROUTERS, TARGET] });
  });

  test("a hop that is silent this time is not a change", async () => {
    await run();
    path[1] = undefined;
    expect((await run()).metrics.path_changed).toBe(0);
  });
});

describe("failures are data", () => {
  test("nothing answers: fail/timeout after one wait per window of hops", async () => {
    path = [undefined, undefined];
    network.onSend = () => {};
    const started = Date.now();
    const result = await run({ max_hops: 16, parallel_hops: 8, wait_ms: 500, send_interval_ms: 0 });
    expect(Date.now() - started).toBe(1000);
    expect(result).toMatchObject({ status: "fail", metrics: { destination_reached: 0, hop_count: 16 } });
    expect(result.error?.code).toBe("timeout");
  });

  test("routers answer but the target never does within max_hops: max_hops_exceeded", async () => {
    path = [...ROUTERS, ...ROUTERS.map((r) => r.replace(/\d+$/, "99"))];
    const result = await run({ max_hops: 6 });
    expect(result.status).toBe("fail");
    expect(result.error?.code).toBe("max_hops_exceeded");
  });

  test("an unreachable from a router ends the path there", async () => {
    network.onSend = (echo) => {
      const ttl = echo.options?.ttl ?? 64;
      if (ttl === 1)
        network.deliverAfter(echo, 1, icmpErrorFor(echo, 11, 0, ROUTERS[0] ?? "", 16), ROUTERS[0]);
      else network.deliverAfter(echo, 2, icmpErrorFor(echo, 3, 1, ROUTERS[1] ?? "", 16), ROUTERS[1]);
    };
    const result = await run();
    expect(result.status).toBe("fail");
    expect(result.error?.code).toBe("unreachable");
    expect(result.metrics.hop_count).toBe(2);
    expect(hops(result)[1]?.unreachable).toBe("!H host unreachable");
  });

  test("no CAP_NET_RAW: error/no_permission", async () => {
    network.openError = new Error("Operation not permitted");
    const result = await run();
    expect(result).toMatchObject({ status: "error", error: { code: "no_permission" } });
  });

  test("aborted mid-run: reports the hops so far, fail/timeout", async () => {
    network.onSend = () => {};
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const result = await run({ wait_ms: 5000 }, controller.signal);
    expect(result).toMatchObject({ status: "fail", error: { code: "timeout" }, detail: { aborted: true } });
  });
});
