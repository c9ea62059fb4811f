// Gateway ARP on an in-memory LAN: the gateway's MAC learned, a change or a second MAC fails, and
// 100,000 mutated real ARP replies through the check without an exception.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { createGatewayCheck, type GatewayOptions } from "../../../services/probe/src/checks/gateway.ts";
import { decodeArp } from "../../../services/probe/src/net/arp-packet.ts";
import { decodeEthernet, ETHERTYPE } from "../../../services/probe/src/net/ethernet.ts";
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
