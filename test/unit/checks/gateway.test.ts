// Gateway ARP on an in-memory LAN: the gateway's MAC learned, a change or a second MAC fails, the
// ARP watch between runs (spoofers, malformed claims, trigger gap, bounds, the kernel's cache), and
// 100,000 mutated real ARP replies through the check without an exception.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { createGatewayCheck, type GatewayOptions } from "../../../services/probe/src/checks/gateway.ts";
import { ARP_OP, decodeArp, encodeArp } from "../../../services/probe/src/net/arp-packet.ts";
import { parseProcNetArp, readArpClaim } from "../../../services/probe/src/net/arp-watch.ts";
import { decodeEthernet, encodeEthernet, ETHERTYPE } from "../../../services/probe/src/net/ethernet.ts";
import { FakeFrameIo } from "../../doubles/fake-frame-io.ts";
import { silentLogger } from "../../../services/contract/src/log.ts";
import { answering } from "../../doubles/arp-hosts.ts";
import { mutate, prng } from "../../fixtures/frame-mutations.ts";

const FRAMES = JSON.parse(
  readFileSync(new URL("../../fixtures/lan-frames.json", import.meta.url), "utf8"),
) as Record<string, string>;
const PROBE_MAC = "02:00:00:00:00:10";
const GW = "192.0.2.1";
const ctx = { log: silentLogger() };
const signal = (): AbortSignal => new AbortController().signal;

const gwOpts: GatewayOptions = {
  interface: "eth0",
  count: 2,
  interval_ms: 10,
  wait_ms: 50,
  settle_ms: 30,
  expected_mac: "",
  accept_new_mac_after_s: 3600,
  min_trigger_gap_s: 10,
  check_kernel_cache: true,
};

describe("gateway check", () => {
  it("learns the gateway's MAC, then a different MAC fails gateway_mac_changed until the old one is back", async () => {
    let now = 0;
    const io = new FakeFrameIo(PROBE_MAC, answering(GW, "02:00:00:00:00:01"));
    const check = createGatewayCheck({
      io,
      ownIpv4: () => "192.0.2.10",
      defaultRoute: () => undefined,
      now: () => now,
    });
    const first = await check.run(GW, gwOpts, ctx, signal());
    expect(first.status).toBe("ok");
    expect(first.detail?.mac).toBe("02:00:00:00:00:01");
    expect(first.metrics.reply_time_ms).toBeGreaterThan(0);
    io.responder = answering(GW, "02:00:00:00:00:02");
    const changed = await check.run(GW, gwOpts, ctx, signal());
    expect(changed.error?.code).toBe("gateway_mac_changed");
    expect(changed.error?.message).toContain("now answers from MAC 02:00:00:00:00:02, was 02:00:00:00:00:01");
    io.responder = answering(GW, "02:00:00:00:00:01");
    expect((await check.run(GW, gwOpts, ctx, signal())).status).toBe("ok");
    // A replaced router: the new MAC becomes the known one after accept_new_mac_after_s.
    io.responder = answering(GW, "02:00:00:00:00:03");
    expect((await check.run(GW, gwOpts, ctx, signal())).status).toBe("fail");
    now += 3_600_000;
    const accepted = await check.run(GW, gwOpts, ctx, signal());
    expect(accepted.status).toBe("ok");
    expect(accepted.detail?.accepted_new_mac).toBe(true);
  });

  it("two MACs answering for the gateway → fail gateway_mac_conflict (ARP spoofing)", async () => {
    const io = new FakeFrameIo(PROBE_MAC, answering(GW, "02:00:00:00:00:01", "02:00:00:00:00:bd"));
    const check = createGatewayCheck({
      io,
      ownIpv4: () => "192.0.2.10",
      defaultRoute: () => undefined,
      now: () => 0,
    });
    const r = await check.run(GW, gwOpts, ctx, signal());
    expect(r.error?.code).toBe("gateway_mac_conflict");
    expect(r.error?.message).toMatch(/02:00:00:00:00:01, 02:00:00:00:00:bd/);
  });

  it("no answer → fail no_arp_reply; target auto uses the default route", async () => {
    const io = new FakeFrameIo(PROBE_MAC);
    const check = createGatewayCheck({
      io,
      ownIpv4: () => undefined,
      defaultRoute: () => ({ gateway: GW, iface: "eth0" }),
      now: () => 0,
    });
    const r = await check.run("auto", { ...gwOpts, interface: "" }, ctx, signal());
    expect(r.error?.code).toBe("no_arp_reply");
    // Without an address of its own the probe asks with an RFC 5227 probe (sender 0.0.0.0).
    expect(decodeArp(decodeEthernet(io.injected[0]!)!.payload)?.senderIp).toBe("0.0.0.0");
  });
});

describe("fuzz: mutated real ARP frames", () => {
  it("100,000 mutated ARP replies through the gateway check: no exception, malformed ones counted", async () => {
    const rnd = prng(11);
    const frame = Buffer.from(FRAMES.arp_reply!, "hex");
    let malformedExpected = 0;
    const io = new FakeFrameIo(PROBE_MAC);
    const check = createGatewayCheck({
      io,
      ownIpv4: () => "192.0.2.10",
      defaultRoute: () => undefined,
      now: () => 0,
    });
    const ac = new AbortController();
    const run = check.run(GW, { ...gwOpts, wait_ms: 10_000, count: 1 }, ctx, ac.signal);
    for (let i = 0; i < 100_000; i++) {
      const m = mutate(frame, rnd);
      if (decodeEthernet(m)?.etherType !== ETHERTYPE.arp) continue;
      if (decodeArp(m.subarray(14)) === undefined) malformedExpected++;
      io.deliver(m);
    }
    ac.abort();
    const r = await run;
    expect(io.consumerErrors).toBe(0);
    expect(r.metrics.malformed_frames).toBe(malformedExpected);
    expect(malformedExpected).toBeGreaterThan(10_000);
  }, 60_000);
});

/** An unsolicited ARP reply from `mac` saying it is `ip` (what arpspoof sends), htype as given. */
function spoofReply(mac: string, ip: string, htype = 1): Buffer {
  const arp = encodeArp({
    op: ARP_OP.reply,
    senderMac: mac,
    senderIp: ip,
    targetMac: PROBE_MAC,
    targetIp: "192.0.2.10",
  });
  arp.writeUInt16BE(htype, 0);
  return encodeEthernet(PROBE_MAC, mac, ETHERTYPE.arp, arp);
}

describe("ARP watch between runs", () => {
  const SPOOFER = "02:00:00:00:00:bd";
  const make = (kernel?: () => string | undefined, clock = { now: 0 }) => {
    const io = new FakeFrameIo(PROBE_MAC, answering(GW, "02:00:00:00:00:01"));
    const check = createGatewayCheck({
      io,
      ownIpv4: () => "192.0.2.10",
      defaultRoute: () => undefined,
      now: () => clock.now,
      ...(kernel ? { kernelNeighbour: kernel } : {}),
    });
    return { io, check };
  };

  it("a spoofer that answers only between runs fails the next run with arp_spoof naming its MAC, then clears", async () => {
    const { io, check } = make();
    expect((await check.run(GW, gwOpts, ctx, signal())).status).toBe("ok");
    io.deliver(spoofReply(SPOOFER, GW));
    io.deliver(spoofReply(SPOOFER, GW));
    // The real gateway's own gratuitous ARP is not news.
    io.deliver(spoofReply("02:00:00:00:00:01", GW));
    const r = await check.run(GW, gwOpts, ctx, signal());
    expect(r.status).toBe("fail");
    expect(r.error?.code).toBe("arp_spoof");
    expect(r.error?.message).toContain(`${SPOOFER} claimed gateway ${GW} in 2 ARP frame(s)`);
    expect(r.metrics).toMatchObject({ spoof_frames: 2, spoof_macs: 1, malformed_claims: 0 });
    expect((r.detail?.spoofers as { mac: string }[])[0]?.mac).toBe(SPOOFER);
    // Nothing heard since: green again.
    expect((await check.run(GW, gwOpts, ctx, signal())).status).toBe("ok");
  });

  it("a malformed claim (hardware type 6, IEEE 802) of the gateway counts as an attack, even from its own MAC", async () => {
    const { io, check } = make();
    await check.run(GW, gwOpts, ctx, signal());
    io.deliver(spoofReply(SPOOFER, GW, 6));
    const r = await check.run(GW, gwOpts, ctx, signal());
    expect(r.error?.code).toBe("arp_spoof");
    expect(r.error?.message).toContain("1 malformed ARP frame(s) (hardware type 6)");
    expect(r.metrics.malformed_claims).toBe(1);
  });

  it("the watch asks for a run at once, at most once per min_trigger_gap_s, and counts the rest", async () => {
    const clock = { now: 0 };
    const { io, check } = make(undefined, clock);
    await check.run(GW, gwOpts, ctx, signal());
    const ac = new AbortController();
    let triggered = 0;
    check.watch!(GW, gwOpts, ctx, ac.signal, () => triggered++);
    for (let i = 0; i < 5; i++) io.deliver(spoofReply(SPOOFER, GW));
    expect(triggered).toBe(1);
    clock.now += 10_000;
    io.deliver(spoofReply(SPOOFER, GW));
    expect(triggered).toBe(2);
    const r = await check.run(GW, gwOpts, ctx, signal());
    expect(r.metrics).toMatchObject({ spoof_frames: 6, suppressed_triggers: 4 });
    ac.abort();
    io.deliver(spoofReply(SPOOFER, GW));
    expect(triggered).toBe(2);
  });

  it("a flood of forged senders is bounded: 32 claimants kept, the rest counted as dropped", async () => {
    const { io, check } = make();
    await check.run(GW, gwOpts, ctx, signal());
    for (let i = 0; i < 1000; i++)
      io.deliver(
        spoofReply(
          `02:aa:00:00:${((i >> 8) & 0xff).toString(16).padStart(2, "0")}:${(i & 0xff).toString(16).padStart(2, "0")}`,
          GW,
        ),
      );
    const r = await check.run(GW, gwOpts, ctx, signal());
    expect(r.metrics).toMatchObject({ spoof_macs: 32, dropped_claimants: 968 });
  });

  it("the kernel's ARP cache mapping the gateway to another MAC fails arp_cache_poisoned", async () => {
    let kernel: string | undefined = "02:00:00:00:00:01";
    const { check } = make(() => kernel);
    expect((await check.run(GW, gwOpts, ctx, signal())).status).toBe("ok");
    kernel = SPOOFER;
    const r = await check.run(GW, gwOpts, ctx, signal());
    expect(r.error?.code).toBe("arp_cache_poisoned");
    expect(r.error?.message).toContain(`maps gateway ${GW} to ${SPOOFER}`);
    expect(r.detail?.kernel_mac).toBe(SPOOFER);
    expect((await check.run(GW, { ...gwOpts, check_kernel_cache: false }, ctx, signal())).status).toBe("ok");
  });
});

describe("readArpClaim and /proc/net/arp", () => {
  it("reads the sender wherever the length fields put it; nothing without an IPv4 sender", () => {
    const ok = readArpClaim(decodeEthernet(spoofReply("02:00:00:00:00:bd", GW))!.payload);
    expect(ok).toEqual({ senderMac: "02:00:00:00:00:bd", senderIp: GW, wellFormed: true, htype: 1 });
    expect(readArpClaim(decodeEthernet(spoofReply("02:00:00:00:00:bd", GW, 6))!.payload)?.wellFormed).toBe(
      false,
    );
    expect(readArpClaim(Buffer.alloc(7))).toBeUndefined();
    const ipv6ish = Buffer.from(decodeEthernet(spoofReply("02:00:00:00:00:bd", GW))!.payload);
    ipv6ish[5] = 16;
    expect(readArpClaim(ipv6ish)).toBeUndefined();
  });

  it("parses the kernel's table: complete entries only, by address and device", () => {
    const table = [
      "IP address       HW type     Flags       HW address            Mask     Device",
      "192.0.2.1        0x1         0x2         02:00:00:00:00:BD     *        eth0",
      "192.0.2.7        0x1         0x0         00:00:00:00:00:00     *        eth0",
      "192.0.2.1        0x1         0x2         02:00:00:00:00:01     *        eth1",
    ].join("\n");
    expect(parseProcNetArp(table, GW, "eth0")).toBe("02:00:00:00:00:bd");
    expect(parseProcNetArp(table, GW, "eth1")).toBe("02:00:00:00:00:01");
    expect(parseProcNetArp(table, "192.0.2.7", "eth0")).toBeUndefined();
    expect(parseProcNetArp(table, "192.0.2.9", "eth0")).toBeUndefined();
  });
});
