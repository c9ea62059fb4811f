import { Value } from "@sinclair/typebox/value";
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import type { Measurement } from "../../../services/probe/src/checks/check.ts";
import {
  MAX_DETAIL_RTTS,
  createIcmpCheck,
  icmp,
  type IcmpOptions,
  type ResolveHost,
} from "../../../services/probe/src/checks/icmp.ts";
import { silentLogger } from "../../../services/contract/src/log.ts";
import { IcmpSocketPool } from "../../../services/probe/src/net/icmp-socket.ts";
import {
  FakeIcmpNetwork,
  echoReplyFor,
  icmpErrorFor,
  ipv4Datagram,
  withChecksum,
} from "../../doubles/fake-icmp-network.ts";

const ctx = { log: silentLogger() };
const DEFAULTS = Value.Default(icmp.options, {}) as IcmpOptions;

let network: FakeIcmpNetwork;
let pool: IcmpSocketPool;
let resolve: ReturnType<typeof vi.fn<ResolveHost>>;
let check: ReturnType<typeof createIcmpCheck>;

beforeEach(() => {
  vi.useFakeTimers();
  network = new FakeIcmpNetwork();
  pool = new IcmpSocketPool(network.open);
  resolve = vi.fn<ResolveHost>((host, family) =>
    host === "target.example" && family !== 4
      ? Promise.resolve({ address: "2001:db8::2", family: 6 })
      : host === "target.example"
        ? Promise.resolve({ address: "192.0.2.2", family: 4 })
        : Promise.reject(Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: "ENOTFOUND" })),
  );
  check = createIcmpCheck({ sockets: pool, resolve });
});

afterEach(() => {
  vi.useRealTimers();
});

function options(overrides: Partial<IcmpOptions> = {}): IcmpOptions {
  return { ...DEFAULTS, ...overrides };
}

/** Starts a run and drives the fake clock until it resolves. */
async function run(
  target: string,
  overrides: Partial<IcmpOptions> = {},
  signal = new AbortController().signal,
): Promise<Measurement> {
  const pending = check.run(target, options(overrides), ctx, signal);
  await vi.runAllTimersAsync();
  return pending;
}

/** The far side answers request i after rtts[i] ms, or never when rtts[i] is null. */
function answerWith(rtts: readonly (number | null)[]): void {
  network.onSend = (echo) => {
    const index = network.sent.indexOf(echo);
    const rtt = rtts[index];
    if (rtt !== null && rtt !== undefined) network.replyAfter(echo, rtt);
  };
}

describe("options schema", () => {
  test("has every default and rejects unknown keys", () => {
    expect(DEFAULTS).toEqual({ count: 5, interval_ms: 200, size: 56, wait_ms: 1000, address_family: "auto" });
    expect(Value.Check(icmp.options, { ...DEFAULTS, ttl: 0 })).toBe(false);
    expect(Value.Check(icmp.options, { ...DEFAULTS, hops: 3 })).toBe(false);
    expect(Value.Check(icmp.options, { ...DEFAULTS, address_family: "ipx" })).toBe(false);
    expect(icmp.kind).toBe("icmp");
    expect(icmp.defaultArea).toBe("wan");
  });
});

describe("a series with every reply", () => {
  test("metrics from scripted RTTs: min/avg/max, type-7 percentiles, mean |ΔRTT| jitter", async () => {
    answerWith([10, 12, 11, 15, 13]);
    const result = await run("192.0.2.2");
    expect(result).toEqual({
      status: "ok",
      metrics: {
        sent: 5,
        received: 5,
        loss_pct: 0,
        rtt_min_ms: 10,
        rtt_avg_ms: 12.2,
        rtt_max_ms: 15,
        rtt_p50_ms: 12,
        rtt_p95_ms: 14.6,
        jitter_ms: 2.25,
      },
      detail: {
        address: "192.0.2.2",
        family: "ipv4",
        identifier: network.sent[0]?.identifier,
        payload_bytes: 56,
        rtts_ms: [10, 12, 11, 15, 13],
        duplicates: 0,
        late: 0,
        corrupted: 0,
        timestamps: "process",
        wire_rtts: 0,
      },
    });
  });

  test("requests go out every interval_ms with consecutive sequence numbers and one cookie", async () => {
    answerWith([1, 1, 1, 1, 1]);
    const started = process.hrtime.bigint();
    await run("192.0.2.2", { interval_ms: 250, size: 32 });
    expect(network.sent.map((echo) => Number(echo.sentAt - started) / 1e6)).toEqual([0, 250, 500, 750, 1000]);
    const first = network.sent[0]?.sequence ?? 0;
    expect(network.sent.map((echo) => echo.sequence)).toEqual(
      [0, 1, 2, 3, 4].map((i) => (first + i) & 0xffff),
    );
    expect(new Set(network.sent.map((echo) => echo.payload.toString("hex"))).size).toBe(1);
    expect(network.sent[0]?.payload.length).toBe(32);
  });

  test("ends as soon as the last reply is in, not wait_ms later", async () => {
    answerWith([3, 3, 3, 3, 3]);
    const started = Date.now();
    const pending = check.run("192.0.2.2", options(), ctx, new AbortController().signal);
    await vi.advanceTimersByTimeAsync(4 * 200 + 3);
    await expect(pending).resolves.toMatchObject({ status: "ok" });
    expect(Date.now() - started).toBe(803);
  });

  test("the shared socket is closed once the run is over", async () => {
    answerWith([1, 1, 1, 1, 1]);
    await run("192.0.2.2");
    expect(network.opened[4]).toBe(1);
    expect(network.openCount(4)).toBe(0);
  });

  test("the IPv6 path: host name resolved as IPv6, ICMPv6 requests, no IP header on replies", async () => {
    answerWith([2, 4, 2, 4, 2]);
    const result = await run("target.example", { address_family: "ipv6" });
    expect(resolve).toHaveBeenCalledWith("target.example", 6);
    expect(network.sent.every((echo) => echo.family === 6 && echo.address === "2001:db8::2")).toBe(true);
    expect(network.sent[0]?.message[0]).toBe(128);
    expect(result).toMatchObject({
      status: "ok",
      metrics: { sent: 5, received: 5, rtt_p50_ms: 2, jitter_ms: 2 },
      detail: { address: "2001:db8::2", family: "ipv6" },
    });
  });

  test("a host name with address_family ipv4 is resolved as IPv4", async () => {
    answerWith([1, 1, 1, 1, 1]);
    const result = await run("target.example", { address_family: "ipv4" });
    expect(resolve).toHaveBeenCalledWith("target.example", 4);
    expect(result).toMatchObject({ status: "ok", detail: { address: "192.0.2.2", family: "ipv4" } });
  });

  test("the per-request RTT list is capped", async () => {
    network.onSend = (echo) => network.replyAfter(echo, 1);
    const result = await run("192.0.2.2", { count: MAX_DETAIL_RTTS + 20, interval_ms: 1 });
    expect(result.metrics.received).toBe(MAX_DETAIL_RTTS + 20);
    expect(result.detail?.rtts_ms).toHaveLength(MAX_DETAIL_RTTS);
    expect(result.detail?.rtts_truncated).toBe(true);
  });
});

describe("loss, duplicates and late replies", () => {
  test("lost requests count in loss_pct and show as null; stats cover the replies", async () => {
    answerWith([10, null, 14, null, 11]);
    const result = await run("192.0.2.2");
    expect(result.status).toBe("ok");
    expect(result.metrics).toEqual({
      sent: 5,
      received: 3,
      loss_pct: 40,
      rtt_min_ms: 10,
      rtt_avg_ms: 11.667,
      rtt_max_ms: 14,
      rtt_p50_ms: 11,
      rtt_p95_ms: 13.7,
      jitter_ms: 3.5,
    });
    expect(result.detail?.rtts_ms).toEqual([10, null, 14, null, 11]);
  });

  test("a reply slower than wait_ms is lost, even when it would still arrive", async () => {
    answerWith([5, 1500, 5]);
    const result = await run("192.0.2.2", { count: 3, interval_ms: 100, wait_ms: 1000 });
    expect(result.metrics).toMatchObject({ sent: 3, received: 2, loss_pct: 33.333 });
    expect(result.detail).toMatchObject({ late: 0, rtts_ms: [5, null, 5] });
  });

  test("a late reply that arrives while the run still sends is counted as late", async () => {
    network.onSend = (echo) => {
      if (network.sent.indexOf(echo) === 0) network.replyAfter(echo, 150);
      else network.replyAfter(echo, 2);
    };
    const result = await run("192.0.2.2", { count: 3, interval_ms: 100, wait_ms: 50 });
    expect(result.metrics).toMatchObject({ sent: 3, received: 2, loss_pct: 33.333 });
    expect(result.detail).toMatchObject({ late: 1, rtts_ms: [null, 2, 2] });
  });

  test("duplicate replies are counted once and reported (the last one's ends with the run)", async () => {
    network.onSend = (echo) => {
      network.replyAfter(echo, 3);
      network.replyAfter(echo, 4);
    };
    const result = await run("192.0.2.2", { count: 3 });
    expect(result.metrics).toMatchObject({ sent: 3, received: 3, loss_pct: 0, rtt_max_ms: 3 });
    // The run ends on the last request's first reply, so only the first two duplicates are seen.
    expect(result.detail).toMatchObject({ duplicates: 2 });
  });

  test("a reply with our cookie but damaged data counts, and is reported as corrupted", async () => {
    network.onSend = (echo) => {
      const payload = Buffer.from(echo.payload);
      payload[payload.length - 1] = (payload[payload.length - 1] ?? 0) ^ 0xff;
      network.deliverAfter(echo, 2, echoReplyFor(echo, { payload }));
    };
    const result = await run("192.0.2.2", { count: 2 });
    expect(result.metrics).toMatchObject({ received: 2 });
    expect(result.detail).toMatchObject({ corrupted: 2 });
  });
});

describe("traffic that is not ours is ignored", () => {
  test("foreign replies, forged cookies, junk, echo requests and others' errors change nothing", async () => {
    network.onSend = (echo) => {
      const foreignId = (echo.identifier + 1) & 0xffff;
      const wrongCookie = Buffer.from(echo.payload);
      wrongCookie[0] = (wrongCookie[0] ?? 0) ^ 0x01;
      // Another pinger on the host, same sequence number, other identifier.
      network.deliverAfter(echo, 1, echoReplyFor(echo, { identifier: foreignId }));
      // Same identifier and sequence, other cookie (a stale run or a collision).
      network.deliverAfter(echo, 1, echoReplyFor(echo, { payload: wrongCookie }));
      // Truncated reply: cookie cut off.
      network.deliverAfter(echo, 1, echoReplyFor(echo, { payload: echo.payload.subarray(0, 4) }));
      // Our identifier, a sequence number we never sent.
      network.deliverAfter(echo, 1, echoReplyFor(echo, { sequence: (echo.sequence + 1000) & 0xffff }));
      // Truncated and malformed datagrams.
      network.deliverAfter(echo, 1, echoReplyFor(echo).subarray(0, 25));
      network.deliverAfter(echo, 1, Buffer.from("4f00ffff", "hex"));
      // Someone pinging us: an echo request on the raw socket.
      network.deliverAfter(
        echo,
        1,
        ipv4Datagram("192.0.2.77", "192.0.2.1", withChecksum(Buffer.from(echo.message))),
      );
      // An error quoting another pinger's request, and one quoting ours but for another destination.
      network.deliverAfter(
        echo,
        1,
        icmpErrorFor(
          { ...echo, identifier: foreignId, message: patchIdentifier(echo.message, foreignId) },
          3,
          1,
          "198.51.100.1",
        ),
      );
      network.deliverAfter(echo, 1, icmpErrorFor({ ...echo, address: "192.0.2.99" }, 3, 1, "198.51.100.1"));
      network.replyAfter(echo, 7);
    };
    const result = await run("192.0.2.2", { count: 3 });
    expect(result).toMatchObject({
      status: "ok",
      metrics: { sent: 3, received: 3, loss_pct: 0, rtt_min_ms: 7, rtt_max_ms: 7 },
      detail: { duplicates: 0, late: 0, corrupted: 0, rtts_ms: [7, 7, 7] },
    });
    expect(result.detail).not.toHaveProperty("icmp_errors");
    expect(pool.stats(4)).toMatchObject({ malformed: 6, unmatched: 9 });
  });

  test("two concurrent runs share one socket and each sees only its own replies", async () => {
    network.onSend = (echo) => network.replyAfter(echo, echo.address === "192.0.2.2" ? 5 : 9);
    const signal = new AbortController().signal;
    const a = check.run("192.0.2.2", options(), ctx, signal);
    const b = check.run("192.0.2.3", options({ count: 3, interval_ms: 70 }), ctx, signal);
    await vi.runAllTimersAsync();
    const [first, second] = await Promise.all([a, b]);
    expect(network.opened[4]).toBe(1);
    expect(network.openCount(4)).toBe(0);
    expect(first.metrics).toMatchObject({ sent: 5, received: 5, rtt_p50_ms: 5 });
    expect(second.metrics).toMatchObject({ sent: 3, received: 3, rtt_p50_ms: 9 });
    expect(first.detail?.identifier).not.toBe(second.detail?.identifier);
  });
});

describe("failures are data", () => {
  test("no reply at all: fail/timeout after wait_ms past the last request", async () => {
    const started = Date.now();
    const result = await run("192.0.2.2", { count: 3, interval_ms: 100, wait_ms: 500 });
    expect(Date.now() - started).toBe(700);
    expect(result).toMatchObject({
      status: "fail",
      metrics: { sent: 3, received: 0, loss_pct: 100 },
      error: { code: "timeout", message: "no reply to 3 echo requests to 192.0.2.2 within 500 ms each" },
    });
    expect(result.metrics).not.toHaveProperty("rtt_avg_ms");
  });

  test("destination unreachable from a router: fail/unreachable naming the router, without waiting", async () => {
    network.onSend = (echo) =>
      network.deliverAfter(echo, 2, icmpErrorFor(echo, 3, 1, "198.51.100.1"), "198.51.100.1");
    const started = Date.now();
    const result = await run("192.0.2.2", { count: 2, interval_ms: 100 });
    expect(Date.now() - started).toBe(102);
    expect(result).toMatchObject({
      status: "fail",
      metrics: { sent: 2, received: 0, loss_pct: 100 },
      error: {
        code: "unreachable",
        message: "destination unreachable (host unreachable) for 192.0.2.2, reported by 198.51.100.1",
      },
      detail: {
        icmp_error_count: 2,
        icmp_errors: [
          { request: 0, from: "198.51.100.1", error: "unreachable", type: 3, code: 1 },
          { request: 1, from: "198.51.100.1", error: "unreachable", type: 3, code: 1 },
        ],
      },
    });
  });

  test("an IPv6 unreachable quoting the target in another spelling still matches", async () => {
    network.onSend = (echo) =>
      network.deliverAfter(echo, 2, icmpErrorFor(echo, 1, 3, "2001:db8:ff::1"), "2001:db8:ff::1");
    const result = await run("2001:DB8:0::2", { count: 1 });
    expect(result.error).toEqual({
      code: "unreachable",
      message: "destination unreachable (address unreachable) for 2001:DB8:0::2, reported by 2001:db8:ff::1",
    });
  });

  test("errors for some requests while others are answered: ok, errors listed", async () => {
    network.onSend = (echo) => {
      if (network.sent.indexOf(echo) === 1)
        network.deliverAfter(echo, 2, icmpErrorFor(echo, 11, 0, "198.51.100.1", 16));
      else network.replyAfter(echo, 4);
    };
    const result = await run("192.0.2.2", { count: 3 });
    expect(result).toMatchObject({
      status: "ok",
      metrics: { sent: 3, received: 2, loss_pct: 33.333 },
      detail: { icmp_errors: [{ request: 1, error: "time_exceeded" }] },
    });
  });

  test("send errors (no route): fail/no_route saying why, with the system message", async () => {
    network.sendError = () => new Error("Network is unreachable");
    const result = await run("198.51.100.1", { count: 2, interval_ms: 10 });
    expect(result).toMatchObject({
      status: "fail",
      metrics: { sent: 2, received: 0, loss_pct: 100 },
      error: {
        code: "no_route",
        message:
          "no route to 198.51.100.1: the probe has no address or default route for it (Network is unreachable)",
      },
      detail: { send_errors: 2, send_error: "Network is unreachable" },
    });
  });

  test("no CAP_NET_RAW: error/no_permission naming the capability", async () => {
    network.openError = new Error("Operation not permitted");
    const result = await run("192.0.2.2");
    expect(result.status).toBe("error");
    expect(result.error?.code).toBe("no_permission");
    expect(result.error?.message).toMatch(/CAP_NET_RAW/);
    expect(network.sent).toEqual([]);
  });

  test("a name that does not resolve: error/resolve_failed", async () => {
    const result = await run("nowhere.invalid", { address_family: "ipv6" });
    expect(result).toEqual({
      status: "error",
      metrics: {},
      error: { code: "resolve_failed", message: "cannot resolve nowhere.invalid (ipv6): ENOTFOUND" },
    });
  });

  test("an IP literal of the other family than address_family: error/invalid_target", async () => {
    const result = await run("192.0.2.2", { address_family: "ipv6" });
    expect(result.status).toBe("error");
    expect(result.error?.code).toBe("invalid_target");
    expect(resolve).not.toHaveBeenCalled();
  });

  test("the shared socket dying mid-run: error/socket_error with what was measured", async () => {
    answerWith([3, 3, 3, 3, 3]);
    const pending = check.run("192.0.2.2", options(), ctx, new AbortController().signal);
    await vi.advanceTimersByTimeAsync(450);
    network.fail(4, new Error("poll error -9"));
    const result = await pending;
    expect(result).toMatchObject({
      status: "error",
      metrics: { sent: 3, received: 3, loss_pct: 0 },
      error: { code: "socket_error" },
    });
    // A later run opens a fresh socket.
    await run("192.0.2.2", { count: 1 });
    expect(network.opened[4]).toBe(2);
  });
});

describe("abort", () => {
  test("stops sending and resolves at once with what was measured; in-flight requests are not loss", async () => {
    answerWith([5, 5, 5, 5, 5, 5, 5, 5, 5, 5]);
    const controller = new AbortController();
    const pending = check.run("192.0.2.2", options({ count: 10, interval_ms: 100 }), ctx, controller.signal);
    await vi.advanceTimersByTimeAsync(302); // requests 0..3 sent, replies 0..2 in, 3 in flight
    controller.abort();
    const result = await pending;
    expect(result).toMatchObject({
      status: "ok",
      metrics: { sent: 4, received: 3, loss_pct: 0, rtt_p50_ms: 5 },
      detail: { aborted: true, in_flight: 1, rtts_ms: [5, 5, 5, null] },
    });
    await vi.runAllTimersAsync();
    expect(network.sent).toHaveLength(4);
    expect(network.openCount(4)).toBe(0);
  });

  test("aborted with nothing back: fail/timeout", async () => {
    const controller = new AbortController();
    const pending = check.run("192.0.2.2", options(), ctx, controller.signal);
    await vi.advanceTimersByTimeAsync(250);
    controller.abort();
    const result = await pending;
    expect(result).toMatchObject({
      status: "fail",
      metrics: { sent: 2, received: 0 },
      error: { code: "timeout" },
      detail: { aborted: true, in_flight: 2 },
    });
    expect(result.metrics).not.toHaveProperty("loss_pct");
  });

  test("a signal aborted before the run: nothing sent, no socket opened", async () => {
    const result = await check.run("192.0.2.2", options(), ctx, AbortSignal.abort());
    expect(result).toMatchObject({
      status: "fail",
      metrics: { sent: 0, received: 0 },
      error: { code: "timeout" },
    });
    expect(network.opened[4]).toBe(0);
  });

  test("abort while the name is still resolving", async () => {
    resolve.mockImplementation(() => new Promise(() => {}));
    const controller = new AbortController();
    const pending = check.run("slow.example", options(), ctx, controller.signal);
    await vi.advanceTimersByTimeAsync(10);
    controller.abort();
    await expect(pending).resolves.toMatchObject({
      status: "fail",
      error: { code: "timeout", message: "aborted while resolving slow.example" },
    });
  });
});

function patchIdentifier(message: Buffer, identifier: number): Buffer {
  const copy = Buffer.from(message);
  copy.writeUInt16BE(identifier, 4);
  return copy;
}
