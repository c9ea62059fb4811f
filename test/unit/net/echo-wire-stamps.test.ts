// The icmp check timed by kernel capture timestamps: a fake raw socket answers the echoes (the
// user-space RTTs), a fake capture (FrameIo) shows the same echoes leaving and arriving at the
// device with their own timestamps, and the scenarios check which RTT the user gets.
import { Value } from "@sinclair/typebox/value";
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import type { Measurement } from "../../../services/probe/src/checks/check.ts";
import {
  createDhcpCheck,
  dhcp as dhcpKind,
  type DhcpOptions,
} from "../../../services/probe/src/checks/dhcp.ts";
import { createIcmpCheck, icmp, type IcmpOptions } from "../../../services/probe/src/checks/icmp.ts";
import { silentLogger } from "../../../services/contract/src/log.ts";
import { decodeWireEcho } from "../../../services/probe/src/net/echo-wire-stamps.ts";
import { decodeEthernet, encodeEthernet } from "../../../services/probe/src/net/ethernet.ts";
import { FakeFrameIo } from "../../doubles/fake-frame-io.ts";
import {
  FAKE_LOCAL_ADDRESS,
  FakeIcmpNetwork,
  echoReplyFor,
  ipv4Datagram,
  ipv6Header,
  type SentEcho,
} from "../../doubles/fake-icmp-network.ts";
import { IcmpSocketPool } from "../../../services/probe/src/net/icmp-socket.ts";

const ctx = { log: silentLogger() };
const DEFAULTS = Value.Default(icmp.options, {}) as IcmpOptions;
const PROBE_MAC = "02:00:00:00:00:01";
const ROUTER_MAC = "02:00:00:00:00:fe";
/** The wall clock of the fake capture: any epoch, the check only uses differences. */
const EPOCH_US = 1_800_000_000_000_000;

let network: FakeIcmpNetwork;
let io: FakeFrameIo;
let interfaceAsked: string[];
let check: ReturnType<typeof createIcmpCheck>;

beforeEach(() => {
  vi.useFakeTimers();
  network = new FakeIcmpNetwork();
  io = new FakeFrameIo(PROBE_MAC);
  interfaceAsked = [];
  check = createIcmpCheck({
    sockets: new IcmpSocketPool(network.open),
    resolve: () => Promise.reject(new Error("no names in these tests")),
    wire: {
      io,
      captureInterface: (address) => {
        interfaceAsked.push(address);
        return { iface: "eth0" };
      },
    },
  });
});

afterEach(() => {
  vi.useRealTimers();
});

async function run(target: string, overrides: Partial<IcmpOptions> = {}): Promise<Measurement> {
  const pending = check.run(target, { ...DEFAULTS, ...overrides }, ctx, new AbortController().signal);
  await vi.runAllTimersAsync();
  return pending;
}

/** The Ethernet frame of `ip` (an IPv4 datagram or an IPv6 packet) between the probe and its router. */
function frame(family: 4 | 6, ip: Buffer, outgoing: boolean): Buffer {
  const [dst, src] = outgoing ? [ROUTER_MAC, PROBE_MAC] : [PROBE_MAC, ROUTER_MAC];
  return encodeEthernet(dst, src, family === 4 ? 0x0800 : 0x86dd, ip);
}

/** The request as it left the device (IP header + the ICMP message the check sent). */
function requestFrame(echo: SentEcho, change: { identifier?: number; destination?: string } = {}): Buffer {
  const message = Buffer.from(echo.message);
  if (change.identifier !== undefined) message.writeUInt16BE(change.identifier, 4);
  const destination = change.destination ?? echo.address;
  const ip =
    echo.family === 4
      ? ipv4Datagram(FAKE_LOCAL_ADDRESS[4], destination, message)
      : Buffer.concat([ipv6Header(FAKE_LOCAL_ADDRESS[6], destination, message.length), message]);
  return frame(echo.family, ip, true);
}

/** The reply as it arrived at the device. */
function replyFrame(
  echo: SentEcho,
  change: { identifier?: number; payload?: Buffer; source?: string } = {},
): Buffer {
  const reply = echoReplyFor(echo, change);
  const source = change.source ?? echo.address;
  if (echo.family === 4) {
    const icmpPart = reply.subarray(20);
    return frame(4, ipv4Datagram(source, FAKE_LOCAL_ADDRESS[4], icmpPart), false);
  }
  return frame(6, Buffer.concat([ipv6Header(source, FAKE_LOCAL_ADDRESS[6], reply.length), reply]), false);
}

/** µs on the fake capture clock for a moment on the fake hrtime clock (plus `offsetUs`). */
function wireUs(at: bigint, offsetUs = 0): number {
  return EPOCH_US + Number(at / 1000n) + offsetUs;
}

interface Script {
  /** user-space RTT per request (the fake socket's reply delay) */
  socketMs: number;
  /** RTT at the device; null: that frame is not captured */
  wireMs: number | null;
  /** the request's frame is not captured */
  noRequestFrame?: boolean;
  /** ms after the send that the request frame reaches the tap (default: at once) */
  requestLateMs?: number;
  /** ms after the socket delivered the reply that the reply frame reaches the tap (default: before) */
  frameLateMs?: number;
}

/**
 * The far side: the socket gets each reply after `socketMs`; the capture sees the request leave
 * 20 µs after the user-space send stamp and the reply arrive `wireMs` after that.
 */
function scripted(steps: readonly Script[]): void {
  network.onSend = (echo) => {
    const step = steps[network.sent.indexOf(echo)];
    if (step === undefined) return;
    const outUs = wireUs(echo.sentAt, 20);
    if (step.requestLateMs !== undefined) {
      setTimeout(() => io.deliver(requestFrame(echo), outUs), step.requestLateMs);
    } else if (step.noRequestFrame !== true) io.deliver(requestFrame(echo), outUs);
    if (step.wireMs !== null) {
      const inUs = outUs + Math.round(step.wireMs * 1000);
      const deliverAt = step.frameLateMs === undefined ? step.socketMs - 1 : step.socketMs + step.frameLateMs;
      setTimeout(() => io.deliver(replyFrame(echo), inUs), Math.max(0, Math.floor(deliverAt)));
    }
    network.replyAfter(echo, step.socketMs);
  };
}

describe("RTTs from the wire", () => {
  test.each([
    ["IPv4", "192.0.2.2"],
    ["IPv6", "2001:db8::2"],
  ])("%s: both frames captured → the wire RTT, not the user-space one", async (_, target) => {
    scripted([
      { socketMs: 10, wireMs: 9.5 },
      { socketMs: 12, wireMs: 11.25 },
      { socketMs: 11, wireMs: 10.75 },
      { socketMs: 15, wireMs: 14.5 },
      // the last reply's frame reaches the tap after the socket delivered it (separate fds)
      { socketMs: 13, wireMs: 12.5, frameLateMs: 2 },
    ]);
    const result = await run(target);
    expect(result.status).toBe("ok");
    expect(result.detail).toMatchObject({
      rtts_ms: [9.5, 11.25, 10.75, 14.5, 12.5],
      timestamps: "wire",
      wire_rtts: 5,
    });
    expect(result.metrics).toMatchObject({
      received: 5,
      rtt_min_ms: 9.5,
      rtt_max_ms: 14.5,
      rtt_p50_ms: 11.25,
    });
    expect(result.detail?.wire_unavailable).toBeUndefined();
    expect(interfaceAsked).toEqual([target]);
    expect(io.consumers).toBe(0); // the tap is closed after the run
    expect(io.consumerErrors).toBe(0);
  });

  test("a fast last exchange: the socket has the reply before the capture delivered either frame", async () => {
    scripted([
      { socketMs: 2, wireMs: 1.5 },
      { socketMs: 2, wireMs: 1.25, requestLateMs: 3, frameLateMs: 1 },
    ]);
    const result = await run("192.0.2.2", { count: 2 });
    expect(result.detail).toMatchObject({ rtts_ms: [1.5, 1.25], timestamps: "wire", wire_rtts: 2 });
  });

  test("a request or reply frame missing → that echo keeps its user-space RTT (mixed)", async () => {
    scripted([
      { socketMs: 10, wireMs: 9.5 },
      { socketMs: 12, wireMs: 11.5, noRequestFrame: true },
      { socketMs: 11, wireMs: null },
      { socketMs: 15, wireMs: 14.5 },
      // a reply frame later than the grace wait is not waited for
      { socketMs: 13, wireMs: 12.5, frameLateMs: 50 },
    ]);
    const result = await run("192.0.2.2");
    expect(result.detail).toMatchObject({
      rtts_ms: [9.5, 12, 11, 14.5, 13],
      timestamps: "mixed",
      wire_rtts: 2,
    });
  });

  test("a wall-clock step between the two frames (wire RTT above the user-space one) → user-space RTT", async () => {
    scripted([
      { socketMs: 10, wireMs: 9.5 },
      { socketMs: 10, wireMs: 1010 },
      { socketMs: 10, wireMs: -3 },
    ]);
    const result = await run("192.0.2.2", { count: 3 });
    expect(result.detail).toMatchObject({ rtts_ms: [9.5, 10, 10], wire_rtts: 1 });
  });

  test("lost echoes stay lost even when a reply frame was captured: the socket decides what came back", async () => {
    network.onSend = (echo) => {
      const out = wireUs(echo.sentAt);
      io.deliver(requestFrame(echo), out);
      io.deliver(replyFrame(echo), out + 5000);
      if (echo.sequence % 2 === 0) network.replyAfter(echo, 6);
    };
    const result = await run("192.0.2.2", { count: 4 });
    expect(result.metrics).toMatchObject({ sent: 4, received: 2, loss_pct: 50, rtt_p50_ms: 5 });
    expect(result.detail).toMatchObject({ timestamps: "wire", wire_rtts: 2 });
  });
});

describe("frames that are not this run's", () => {
  test("other identifiers, other peers, other cookies and malformed frames are ignored", async () => {
    scripted([
      { socketMs: 10, wireMs: 9.5 },
      { socketMs: 12, wireMs: 11.5 },
    ]);
    const onSend = network.onSend;
    network.onSend = (echo) => {
      // Foreign frames first, each with a timestamp that would give a different RTT if it were used.
      const early = wireUs(echo.sentAt, 1);
      const foreign = [
        requestFrame(echo, { identifier: echo.identifier ^ 1 }),
        requestFrame(echo, { destination: "192.0.2.99" }),
        replyFrame(echo, { identifier: echo.identifier ^ 1 }),
        replyFrame(echo, { source: "192.0.2.99" }),
        replyFrame(echo, { payload: Buffer.alloc(echo.payload.length, 0xee) }),
      ];
      for (const f of foreign) io.deliver(f, early);
      for (const f of malformed(requestFrame(echo), replyFrame(echo))) io.deliver(f, early);
      onSend(echo);
    };
    const result = await run("192.0.2.2", { count: 2 });
    expect(result.detail).toMatchObject({ rtts_ms: [9.5, 11.5], timestamps: "wire", wire_rtts: 2 });
    expect(io.consumerErrors).toBe(0);
  });

  test("random and truncated frames never throw out of the decoder", () => {
    let seed = 7;
    const next = (): number => (seed = (seed * 1_103_515_245 + 12_345) >>> 0) & 0xff;
    for (let i = 0; i < 20_000; i++) {
      const bytes = Buffer.from(Array.from({ length: 14 + (next() % 90) }, next));
      bytes.writeUInt16BE(i % 2 === 0 ? 0x0800 : 0x86dd, 12);
      const eth = decodeEthernet(bytes);
      expect(() => (eth === undefined ? undefined : decodeWireEcho(eth))).not.toThrow();
    }
  });
});

/** Broken variants of a request and a reply frame: truncated, fragmented, wrong lengths, wrong codes. */
function malformed(request: Buffer, reply: Buffer): Buffer[] {
  const variants: Buffer[] = [];
  for (const cut of [14, 20, 33, 41]) variants.push(reply.subarray(0, cut));
  const fragment = Buffer.from(reply);
  fragment.writeUInt16BE(0x2000, 14 + 6); // more fragments
  const tooLong = Buffer.from(reply);
  tooLong.writeUInt16BE(reply.length, 14 + 2); // total length beyond the frame
  const badCode = Buffer.from(request);
  badCode[14 + 20 + 1] = 1;
  const notIpv4 = Buffer.from(reply);
  notIpv4[14] = 0x65;
  variants.push(fragment, tooLong, badCode, notIpv4);
  return variants;
}

describe("sharing the capture", () => {
  test("a DHCP run on the same interface counts echo frames as ignored, not malformed", async () => {
    const dhcp = createDhcpCheck({ io });
    const ac = new AbortController();
    const pending = dhcp.run(
      "eth0",
      { ...(Value.Default(dhcpKind.options, {}) as DhcpOptions), wait_ms: 100 },
      ctx,
      ac.signal,
    );
    scripted([{ socketMs: 3, wireMs: 2.5 }]);
    const echoRun = check.run("192.0.2.2", { ...DEFAULTS, count: 1 }, ctx, new AbortController().signal);
    await vi.runAllTimersAsync();
    expect((await echoRun).detail).toMatchObject({ timestamps: "wire" });
    const result = await pending;
    expect(result.metrics.malformed_frames).toBe(0);
    expect(result.detail?.ignored_frames).toBe(2);
  });
});

describe("without wire timestamps the check still works", () => {
  test("pcap cannot open (no CAP_NET_RAW) → ok with user-space RTTs and the reason", async () => {
    io.openError = { code: "no_permission", message: "cannot capture on eth0: Operation not permitted" };
    scripted([
      { socketMs: 10, wireMs: 9.5 },
      { socketMs: 12, wireMs: 11.5 },
    ]);
    const result = await run("192.0.2.2", { count: 2 });
    expect(result.status).toBe("ok");
    expect(result.detail).toMatchObject({ rtts_ms: [10, 12], timestamps: "process", wire_rtts: 0 });
    expect(result.detail?.wire_unavailable).toMatch(/^no_permission: /);
  });

  test("no Ethernet egress interface → user-space RTTs, no capture opened", async () => {
    const opened = vi.spyOn(io, "open");
    check = createIcmpCheck({
      sockets: new IcmpSocketPool(network.open),
      resolve: () => Promise.reject(new Error("unused")),
      wire: { io, captureInterface: () => ({ reason: "wg0 is not an Ethernet interface (type 65534)" }) },
    });
    scripted([{ socketMs: 4, wireMs: 3 }]);
    const result = await run("192.0.2.2", { count: 1 });
    expect(result.detail).toMatchObject({
      rtts_ms: [4],
      timestamps: "process",
      wire_unavailable: "wg0 is not an Ethernet interface (type 65534)",
    });
    expect(opened).not.toHaveBeenCalled();
  });

  test("the wait for a late reply frame does not hold an aborted run", async () => {
    scripted([{ socketMs: 5, wireMs: 4, frameLateMs: 500 }]);
    const ac = new AbortController();
    const pending = check.run("192.0.2.2", { ...DEFAULTS, count: 1 }, ctx, ac.signal);
    await vi.advanceTimersByTimeAsync(6);
    ac.abort();
    const result = await pending;
    expect(result.status).toBe("ok");
    expect(result.detail).toMatchObject({ rtts_ms: [5], timestamps: "process" });
    expect(result.detail?.aborted).toBeUndefined();
  });
});
