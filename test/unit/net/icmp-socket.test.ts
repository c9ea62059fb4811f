import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { encodeEchoRequest, type EchoError } from "../../../services/probe/src/net/icmp-packet.ts";
import {
  IcmpSocketPool,
  type EchoListener,
  type EchoSession,
} from "../../../services/probe/src/net/icmp-socket.ts";
import {
  FakeIcmpNetwork,
  echoReplyFor,
  icmpErrorFor,
  type SentEcho,
} from "../../doubles/fake-icmp-network.ts";

interface Heard {
  replies: { sequence: number; payload: string; source: string }[];
  errors: { error: EchoError; source: string }[];
  failures: Error[];
}

function listener(): EchoListener & { heard: Heard } {
  const heard: Heard = { replies: [], errors: [], failures: [] };
  return {
    heard,
    reply: (sequence, payload, source) =>
      heard.replies.push({ sequence, payload: payload.toString(), source }),
    icmpError: (error, source) => heard.errors.push({ error, source }),
    socketFailed: (error) => heard.failures.push(error),
  };
}

function opened(result: EchoSession | { code: string; message: string }): EchoSession {
  if ("code" in result) throw new Error(`expected a session, got ${result.code}: ${result.message}`);
  return result;
}

async function sendAndFlush(
  session: EchoSession,
  sequence: number,
  payload: string,
  address: string,
): Promise<void> {
  session.send(sequence, Buffer.from(payload), address, () => {});
  await vi.advanceTimersByTimeAsync(0);
}

let network: FakeIcmpNetwork;
let pool: IcmpSocketPool;

beforeEach(() => {
  vi.useFakeTimers();
  network = new FakeIcmpNetwork();
  pool = new IcmpSocketPool(network.open);
});

afterEach(() => {
  vi.useRealTimers();
});

describe("one shared raw socket per family", () => {
  test("concurrent sessions share one socket with distinct identifiers; it closes with the last one", () => {
    const sessions = Array.from({ length: 50 }, () => opened(pool.open(4, listener())));
    expect(network.opened[4]).toBe(1);
    expect(new Set(sessions.map((s) => s.identifier)).size).toBe(50);
    expect(pool.isOpen(4)).toBe(true);

    for (const session of sessions.slice(1)) session.close();
    expect(network.openCount(4)).toBe(1);
    sessions[0]?.close();
    expect(network.openCount(4)).toBe(0);
    expect(pool.isOpen(4)).toBe(false);

    // Idle means closed: nothing keeps the event loop alive. The next run opens a fresh socket.
    opened(pool.open(4, listener())).close();
    expect(network.opened[4]).toBe(2);
  });

  test("IPv4 and IPv6 get separate sockets", () => {
    const v4 = opened(pool.open(4, listener()));
    const v6 = opened(pool.open(6, listener()));
    expect(network.openCount(4)).toBe(1);
    expect(network.openCount(6)).toBe(1);
    v4.close();
    expect(network.openCount(6)).toBe(1);
    v6.close();
    v6.close(); // idempotent
    expect(network.openCount(6)).toBe(0);
  });

  test("replies and errors go to the session whose identifier they carry", async () => {
    const first = listener();
    const second = listener();
    const a = opened(pool.open(4, first));
    const b = opened(pool.open(4, second));
    network.onSend = (echo) => network.replyAfter(echo, 1);
    await sendAndFlush(a, 1, "for-a-----------", "192.0.2.2");
    await sendAndFlush(b, 1, "for-b-----------", "192.0.2.3");
    await vi.advanceTimersByTimeAsync(5);
    expect(first.heard.replies).toEqual([{ sequence: 1, payload: "for-a-----------", source: "192.0.2.2" }]);
    expect(second.heard.replies).toEqual([{ sequence: 1, payload: "for-b-----------", source: "192.0.2.3" }]);

    const [sentToA] = network.sent;
    if (sentToA === undefined) throw new Error("nothing sent");
    network.deliver(4, icmpErrorFor(sentToA, 11, 0, "198.51.100.7"), "198.51.100.7");
    expect(first.heard.errors).toMatchObject([{ source: "198.51.100.7", error: { error: "time_exceeded" } }]);
    expect(second.heard.errors).toEqual([]);
  });

  test("foreign, malformed and unmatched datagrams are counted and dropped", () => {
    const heard = listener();
    const session = opened(pool.open(4, heard));
    const foreign: SentEcho = {
      family: 4,
      address: "192.0.2.9",
      message: encodeEchoRequest(4, (session.identifier + 1) & 0xffff, 1, Buffer.alloc(16)),
      identifier: (session.identifier + 1) & 0xffff,
      sequence: 1,
      payload: Buffer.alloc(16),
      sentAt: 0n,
    };
    network.deliver(4, echoReplyFor(foreign), "192.0.2.9");
    network.deliver(4, Buffer.from([0x45, 0x00]), "192.0.2.9");
    network.deliver(4, Buffer.alloc(0), "192.0.2.9");
    expect(heard.heard.replies).toEqual([]);
    expect(pool.stats(4)).toEqual({ opened: 1, datagrams: 3, malformed: 2, unmatched: 1 });
  });

  test("a listener that throws does not take the socket down", () => {
    const session = opened(
      pool.open(4, {
        reply: () => {
          throw new Error("bug");
        },
        icmpError: () => {},
        socketFailed: () => {},
      }),
    );
    const echo: SentEcho = {
      family: 4,
      address: "192.0.2.2",
      message: encodeEchoRequest(4, session.identifier, 1, Buffer.alloc(16)),
      identifier: session.identifier,
      sequence: 1,
      payload: Buffer.alloc(16),
      sentAt: 0n,
    };
    expect(() => network.deliver(4, echoReplyFor(echo), "192.0.2.2")).not.toThrow();
    expect(pool.isOpen(4)).toBe(true);
  });
});

describe("socket failures", () => {
  test("a dying socket fails its sessions, and the next session gets a new socket", async () => {
    const heard = listener();
    const session = opened(pool.open(4, heard));
    network.fail(4, new Error("poll error -9"));
    expect(heard.heard.failures.map((e) => e.message)).toEqual(["poll error -9"]);
    expect(pool.isOpen(4)).toBe(false);

    const outcome: (Error | undefined)[] = [];
    session.send(1, Buffer.alloc(16), "192.0.2.2", (error) => outcome.push(error));
    await vi.advanceTimersByTimeAsync(0);
    expect(outcome[0]?.message).toMatch(/closed/);
    expect(network.sent).toEqual([]);
    session.close();

    opened(pool.open(4, listener()));
    expect(network.opened[4]).toBe(2);
    expect(network.openCount(4)).toBe(1);
  });

  test.each([
    ["Operation not permitted", undefined],
    ["Permission denied", undefined],
    ["socket: whatever", "EPERM"],
  ])("%s (%s) maps to no_permission naming CAP_NET_RAW", (message, code) => {
    network.openError = Object.assign(new Error(message), code === undefined ? {} : { code });
    const result = pool.open(6, listener());
    expect(result).toMatchObject({ code: "no_permission" });
    expect("message" in result && result.message).toMatch(/CAP_NET_RAW/);
    expect("message" in result && result.message).toMatch(/ICMPv6/);
    expect(pool.isOpen(6)).toBe(false);
  });

  test("other open errors map to socket_error with the system message", () => {
    network.openError = new Error("Address family not supported by protocol");
    expect(pool.open(6, listener())).toEqual({
      code: "socket_error",
      message: "cannot open a raw ICMPv6 socket: Address family not supported by protocol",
    });
  });
});
