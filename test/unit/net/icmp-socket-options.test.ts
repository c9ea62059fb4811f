import { describe, expect, test } from "vitest";
import { optionApplier } from "../../../services/probe/src/net/icmp-socket.ts";

/**
 * A raw-socket Socket's option calls as the addon behaves: values per (level, option), getOption
 * reading them back, and setOption refusing what is not an unsigned integer (raw-socket 1.8
 * raw.cc: "Value argument must be a unsigned integer").
 */
class FakeRawOptions {
  readonly values = new Map<string, number>();
  readonly calls: string[] = [];
  failNext = false;
  constructor(initial: Record<string, number>) {
    for (const [k, v] of Object.entries(initial)) this.values.set(k, v);
  }
  setOption(level: number, option: number, value: number | Buffer): void {
    if (typeof value !== "number" || value < 0 || !Number.isInteger(value))
      throw new Error("Value argument must be a unsigned integer");
    if (this.failNext) {
      this.failNext = false;
      throw new Error("Invalid argument");
    }
    this.calls.push(`${level}/${option}=${value}`);
    this.values.set(`${level}/${option}`, value);
  }
  getOption(level: number, option: number, buffer: Buffer): number {
    const v = this.values.get(`${level}/${option}`);
    if (v === undefined) throw new Error("Protocol not available");
    buffer.writeInt32LE(v, 0);
    return 4;
  }
}

// <linux/in.h>, <linux/in6.h>
const TTL4 = "0/2";
const TOS4 = "0/1";
const PMTU4 = "0/10";
const HOPS6 = "41/16";
const TCLASS6 = "41/67";
const PMTU6 = "41/23";
const DONTFRAG6 = "41/62";

describe("per-packet IP options on the shared raw socket", () => {
  test("ttl 32 then a packet without options: the TTL goes back to the socket's own 64", () => {
    const socket = new FakeRawOptions({ [TTL4]: 64, [TOS4]: 0, [PMTU4]: 1 });
    const apply = optionApplier(socket, 4);
    apply({ ttl: 32 });
    expect(socket.values.get(TTL4)).toBe(32);
    apply(undefined);
    expect(socket.values.get(TTL4)).toBe(64);
    expect(socket.calls).toEqual(["0/2=32", "0/2=64"]);
  });

  test("the reset uses the value read at open (a sysctl ip_default_ttl of 128 stays 128)", () => {
    const socket = new FakeRawOptions({ [TTL4]: 128, [TOS4]: 0, [PMTU4]: 1 });
    const apply = optionApplier(socket, 4);
    apply({ ttl: 5 });
    apply({});
    expect(socket.values.get(TTL4)).toBe(128);
  });

  test("DSCP and DF are put back too; unchanged settings cost no syscall", () => {
    const socket = new FakeRawOptions({ [TTL4]: 64, [TOS4]: 0, [PMTU4]: 1 });
    const apply = optionApplier(socket, 4);
    apply({ trafficClass: 46 << 2, dontFragment: "do" });
    apply({ trafficClass: 46 << 2, dontFragment: "do" });
    apply(undefined);
    expect(socket.calls).toEqual(["0/1=184", "0/10=2", "0/1=0", "0/10=1"]);
    expect(socket.values.get(TOS4)).toBe(0);
    expect(socket.values.get(PMTU4)).toBe(1);
  });

  test("IPv6: hop limit, traffic class, PMTU and DONTFRAG come back to their defaults", () => {
    const socket = new FakeRawOptions({ [HOPS6]: 64, [TCLASS6]: 0, [PMTU6]: 1, [DONTFRAG6]: 0 });
    const apply = optionApplier(socket, 6);
    apply({ ttl: 3, trafficClass: 0xb8, dontFragment: "probe" });
    expect(socket.values.get(DONTFRAG6)).toBe(1);
    apply(undefined);
    expect(socket.values.get(HOPS6)).toBe(64);
    expect(socket.values.get(TCLASS6)).toBe(0);
    expect(socket.values.get(PMTU6)).toBe(1);
    expect(socket.values.get(DONTFRAG6)).toBe(0);
  });

  test("a hop limit that reads back -1 (never set) resets to 64, never to -1", () => {
    const socket = new FakeRawOptions({ [HOPS6]: -1, [TCLASS6]: 0, [PMTU6]: 1 });
    const apply = optionApplier(socket, 6);
    apply({ ttl: 9 });
    expect(() => apply(undefined)).not.toThrow();
    expect(socket.values.get(HOPS6)).toBe(64);
  });

  test("a refused setsockopt fails that packet only; the next one sets the option again", () => {
    const socket = new FakeRawOptions({ [TTL4]: 64, [TOS4]: 0, [PMTU4]: 1 });
    const apply = optionApplier(socket, 4);
    apply({ ttl: 32 });
    socket.failNext = true;
    expect(() => apply(undefined)).toThrow("Invalid argument");
    apply(undefined);
    expect(socket.values.get(TTL4)).toBe(64);
  });

  test("options unreadable at open: kernel defaults (64, 0, PMTU want)", () => {
    const socket = new FakeRawOptions({});
    const apply = optionApplier(socket, 4);
    apply({ ttl: 2, trafficClass: 4, dontFragment: "probe" });
    apply(undefined);
    expect(socket.values.get(TTL4)).toBe(64);
    expect(socket.values.get(TOS4)).toBe(0);
    expect(socket.values.get(PMTU4)).toBe(1);
  });
});
