import { Value } from "@sinclair/typebox/value";
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import type { Measurement } from "../../../services/probe/src/checks/check.ts";
import type { ResolveHost } from "../../../services/probe/src/checks/icmp.ts";
import {
  createPathMtuCheck,
  pathMtu,
  type PathMtuOptions,
} from "../../../services/probe/src/checks/path-mtu.ts";
import { silentLogger } from "../../../services/contract/src/log.ts";
import { IcmpSocketPool } from "../../../services/probe/src/net/icmp-socket.ts";
import {
  FakeIcmpNetwork,
  icmpErrorFor,
  withChecksum,
  type SentEcho,
} from "../../doubles/fake-icmp-network.ts";

const ctx = { log: silentLogger() };
const DEFAULTS = Value.Default(pathMtu.options, {}) as PathMtuOptions;
const TARGET = "203.0.113.200";
const ROUTER = "203.0.113.130";

let network: FakeIcmpNetwork;
let check: ReturnType<typeof createPathMtuCheck>;
/** The narrowest link of the scripted path, and how its router reacts to bigger packets. */
let linkMtu: number;
let tooBig: "icmp" | "icmp_no_hint" | "silent";

/** IPv4 "fragmentation needed" with the next-hop MTU in bytes 6–7 of the ICMP header (RFC 1191 §4). */
function fragNeeded(echo: SentEcho, mtu: number): Buffer {
  const datagram = icmpErrorFor(echo, 3, 4, ROUTER, 16);
  datagram.writeUInt16BE(mtu, 20 + 6);
  withChecksum(datagram.subarray(20));
  return datagram;
}

beforeEach(() => {
  vi.useFakeTimers();
  network = new FakeIcmpNetwork();
  const resolve: ResolveHost = () => Promise.reject(new Error("no DNS in this test"));
  check = createPathMtuCheck({ sockets: new IcmpSocketPool(network.open), resolve });
  linkMtu = 1500;
  tooBig = "icmp";
  network.onSend = (echo) => {
    const size = 20 + echo.message.length;
    if (size <= linkMtu) network.replyAfter(echo, 2);
    else if (tooBig === "icmp") network.deliverAfter(echo, 1, fragNeeded(echo, linkMtu), ROUTER);
    else if (tooBig === "icmp_no_hint") network.deliverAfter(echo, 1, fragNeeded(echo, 0), ROUTER);
  };
});

afterEach(() => {
  vi.useRealTimers();
});

async function run(overrides: Partial<PathMtuOptions> = {}): Promise<Measurement> {
  const pending = check.run(TARGET, { ...DEFAULTS, ...overrides }, ctx, new AbortController().signal);
  await vi.runAllTimersAsync();
  return pending;
}

describe("path MTU search", () => {
  test("defaults; probes carry DF in probe mode", async () => {
    expect(DEFAULTS).toMatchObject({ max_bytes: 1500, min_bytes: 576, warn_below_bytes: 1500, tries: 2 });
    const result = await run();
    expect(result).toMatchObject({ status: "ok", metrics: { path_mtu_bytes: 1500, probes: 1 } });
    expect(network.sent[0]?.options).toEqual({ dontFragment: "probe" });
    expect(20 + (network.sent[0]?.message.length ?? 0)).toBe(1500);
  });

  test("a 1400-byte link: found from the router's next-hop MTU, warn below the threshold", async () => {
    linkMtu = 1400;
    const result = await run();
    expect(result).toMatchObject({
      status: "warn",
      metrics: { path_mtu_bytes: 1400 },
      detail: { reported_by: ROUTER, next_hop_mtu: 1400, black_hole: false },
      error: { code: "mtu_low" },
    });
    expect(result.error?.message).toContain("1400 bytes, below 1500");
    // 1500 fails with the hint, 1400 passes at once.
    expect(network.sent.slice(0, 2).map((e) => 20 + e.message.length)).toEqual([1500, 1400]);
  });

  test("routers that give no hint: plain bisection still lands on the exact size", async () => {
    linkMtu = 1492;
    tooBig = "icmp_no_hint";
    const result = await run({ warn_below_bytes: 1400 });
    expect(result).toMatchObject({ status: "ok", metrics: { path_mtu_bytes: 1492 } });
  });

  test("big packets vanish without an ICMP error: a PMTU black hole", async () => {
    linkMtu = 1420;
    tooBig = "silent";
    const result = await run({ wait_ms: 100, tries: 1 });
    expect(result).toMatchObject({
      status: "warn",
      metrics: { path_mtu_bytes: 1420 },
      detail: { black_hole: true },
      error: { code: "pmtu_black_hole" },
    });
  });

  test("the target does not answer even small packets: fail/timeout", async () => {
    network.onSend = () => {};
    const result = await run({ wait_ms: 100 });
    expect(result).toMatchObject({ status: "fail", error: { code: "timeout" } });
  });

  test("IPv6 never searches below 1280 bytes", async () => {
    network.onSend = (echo) => {
      if (40 + echo.message.length <= 1280) network.replyAfter(echo, 1);
    };
    const pending = check.run(
      "2001:db8:14::200",
      { ...DEFAULTS, wait_ms: 50, tries: 1 },
      ctx,
      new AbortController().signal,
    );
    await vi.runAllTimersAsync();
    const result = await pending;
    expect(result.metrics.path_mtu_bytes).toBe(1280);
    expect(Math.min(...network.sent.map((e) => 40 + e.message.length))).toBe(1280);
  });
});
