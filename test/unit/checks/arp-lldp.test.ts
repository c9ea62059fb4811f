// Gateway ARP (MAC change, two MACs), RFC 5227 duplicate detection, LLDP decoding and the lldp
// check on an in-memory LAN, plus fuzzing of the ARP and LLDP parsers with mutated real frames.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { createArpCheck, type ArpOptions } from "../../../services/probe/src/checks/arp.ts";
import { createGatewayCheck, type GatewayOptions } from "../../../services/probe/src/checks/gateway.ts";
import { createLldpCheck, type LldpOptions } from "../../../services/probe/src/checks/lldp.ts";
import { ARP_OP, decodeArp, encodeArp } from "../../../services/probe/src/net/arp-packet.ts";
import { decodeEthernet, encodeEthernet, ETHERTYPE } from "../../../services/probe/src/net/ethernet.ts";
import { FakeFrameIo, type Responder } from "../../doubles/fake-frame-io.ts";
import { decodeLldp } from "../../../services/probe/src/net/lldp-tlv.ts";
import { silentLogger } from "../../../services/contract/src/log.ts";
import { mutate, prng } from "../../fixtures/frame-mutations.ts";

const FRAMES = JSON.parse(
  readFileSync(new URL("../../fixtures/lan-frames.json", import.meta.url), "utf8"),
) as Record<string, string>;
const PROBE_MAC = "02:00:00:00:00:10";
const GW = "192.0.2.1";
const ctx = { log: silentLogger() };
const signal = (): AbortSignal => new AbortController().signal;

/** Hosts that answer ARP for `ip` (requests and RFC 5227 probes alike). */
function answering(ip: string, ...macs: string[]): Responder {
  return (frame) => {
    const eth = decodeEthernet(frame);
    const arp = eth && decodeArp(eth.payload);
    if (!arp || arp.op !== ARP_OP.request || arp.targetIp !== ip) return [];
    return macs.map((mac) => ({
      frame: encodeEthernet(
        arp.senderMac,
        mac,
        ETHERTYPE.arp,
        encodeArp({
          op: ARP_OP.reply,
          senderMac: mac,
          senderIp: ip,
          targetMac: arp.senderMac,
          targetIp: arp.senderIp,
        }),
      ),
      delayMs: 1,
    }));
  };
}

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

describe("arp check (RFC 5227 duplicate address detection)", () => {
  const opts: ArpOptions = { interface: "eth0", count: 2, interval_ms: 10, wait_ms: 50, expect: "free" };
  const deps = (io: FakeFrameIo) => ({ io, ownIpv4: () => "192.0.2.10", defaultInterface: () => "eth0" });

  it("self without an address: no_address while the interface exists, interface_missing once it is gone", async () => {
    const io = new FakeFrameIo(PROBE_MAC);
    const noAddress = { io, ownIpv4: () => undefined, defaultInterface: () => "eth0" };
    const present = await createArpCheck({ ...noAddress, interfaceExists: () => true }).run(
      "self",
      opts,
      ctx,
      signal(),
    );
    expect(present.error?.code).toBe("no_address");
    const gone = await createArpCheck({ ...noAddress, interfaceExists: () => false }).run(
      "self",
      opts,
      ctx,
      signal(),
    );
    expect(gone).toMatchObject({ status: "error", error: { code: "interface_missing" } });
    expect(io.injected).toHaveLength(0);
  });

  it("self: probes with sender 0.0.0.0; another MAC answering is duplicate_ip naming it", async () => {
    const io = new FakeFrameIo(PROBE_MAC, answering("192.0.2.10", "02:00:00:00:00:66"));
    const r = await createArpCheck(deps(io)).run("self", opts, ctx, signal());
    expect(r.error?.code).toBe("duplicate_ip");
    expect(r.error?.message).toContain("02:00:00:00:00:66");
    const probe = decodeArp(decodeEthernet(io.injected[0]!)!.payload)!;
    expect(probe).toMatchObject({
      senderIp: "0.0.0.0",
      targetIp: "192.0.2.10",
      targetMac: "00:00:00:00:00:00",
    });
  });

  it("self with nobody else → ok; on request for another address: in use or not", async () => {
    expect(
      (await createArpCheck(deps(new FakeFrameIo(PROBE_MAC))).run("self", opts, ctx, signal())).status,
    ).toBe("ok");
    const io = new FakeFrameIo(PROBE_MAC, answering("192.0.2.50", "02:00:00:00:00:50"));
    const inUse = await createArpCheck(deps(io)).run("192.0.2.50", { ...opts, expect: "any" }, ctx, signal());
    expect(inUse.status).toBe("ok");
    expect(inUse.detail?.claimed_by).toMatchObject([{ mac: "02:00:00:00:00:50", probing: false }]);
  });

  it("another host probing for our address at the same time counts as a conflict (RFC 5227 §2.1.1)", async () => {
    const io = new FakeFrameIo(PROBE_MAC, () => [
      {
        frame: encodeEthernet(
          "ff:ff:ff:ff:ff:ff",
          "02:00:00:00:00:77",
          ETHERTYPE.arp,
          encodeArp({
            op: ARP_OP.request,
            senderMac: "02:00:00:00:00:77",
            senderIp: "0.0.0.0",
            targetMac: "00:00:00:00:00:00",
            targetIp: "192.0.2.10",
          }),
        ),
      },
    ]);
    const r = await createArpCheck(deps(io)).run("self", opts, ctx, signal());
    expect(r.error?.code).toBe("duplicate_ip");
  });
});

describe("lldp", () => {
  const lldpFrame = Buffer.from(FRAMES.lldp!, "hex");

  it("decodes the LLDPDU captured from the lab switch: chassis, system name, port id/description, PoE", () => {
    const n = decodeLldp(decodeEthernet(lldpFrame)!.payload)!;
    expect(n).toMatchObject({
      systemName: "sw-branch-1",
      portId: "Gi1/0/10",
      portDescription: "office desk 10",
      poe: { portClass: "pse", supported: true, enabled: true, powerClass: 3 },
    });
    expect(n.capabilities).toContain("bridge");
    expect(n.chassisId).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
  });

  it("decodes 802.1 VLAN TLVs and a management address; rejects a PDU not starting with chassis/port/TTL", () => {
    const tlv = (type: number, v: number[]): number[] => [
      (type << 1) | (v.length >> 8),
      v.length & 0xff,
      ...v,
    ];
    const pdu = Buffer.from([
      ...tlv(1, [4, 2, 0, 0, 0, 0, 1]),
      ...tlv(2, [5, ...Buffer.from("ge-0/0/3")]),
      ...tlv(3, [0, 120]),
      ...tlv(127, [0x00, 0x80, 0xc2, 1, 0, 20]),
      ...tlv(127, [0x00, 0x80, 0xc2, 3, 0, 20, 5, ...Buffer.from("voice")]),
      ...tlv(8, [5, 1, 192, 0, 2, 2, 2, 0, 0, 0, 1, 0]),
      ...tlv(0, []),
    ]);
    expect(decodeLldp(pdu)).toMatchObject({
      chassisId: "02:00:00:00:00:01",
      portId: "ge-0/0/3",
      ttlS: 120,
      portVlanId: 20,
      vlans: [{ id: 20, name: "voice" }],
      managementAddresses: ["192.0.2.2"],
    });
    expect(
      decodeLldp(Buffer.from([...tlv(2, [5, 65]), ...tlv(1, [4, 1, 2, 3, 4, 5, 6]), ...tlv(3, [0, 1])])),
    ).toBeUndefined();
  });

  it("check: warns no_lldp when nothing is heard, ok once the switch speaks, lldp_neighbor_changed when the port changes", async () => {
    let now = 0;
    const io = new FakeFrameIo(PROBE_MAC);
    const check = createLldpCheck({ io, now: () => now });
    const opts: LldpOptions = {
      wait_ms: 20,
      expect_system_name: "",
      expect_port_id: "",
      expect_vlan: 0,
      accept_new_neighbor_after_s: 3600,
    };
    const none = await check.run("eth0", opts, ctx, signal());
    expect(none.error?.code).toBe("no_lldp");
    io.deliver(lldpFrame);
    const ok = await check.run("eth0", opts, ctx, signal());
    expect(ok.status).toBe("ok");
    expect(ok.detail).toMatchObject({ port_id: "Gi1/0/10", system_name: "sw-branch-1" });
    // Same switch, another port (the frame's port id TLV rewritten: "Gi1/0/10" → "Gi1/0/24").
    const moved = Buffer.from(lldpFrame.toString("latin1").replace("Gi1/0/10", "Gi1/0/24"), "latin1");
    io.deliver(moved);
    const changed = await check.run("eth0", opts, ctx, signal());
    expect(changed.status).toBe("warn");
    expect(changed.error?.code).toBe("lldp_neighbor_changed");
    expect(changed.error?.message).toMatch(
      /now on switch sw-branch-1 port Gi1\/0\/24.*was switch sw-branch-1 port Gi1\/0\/10/,
    );
    // The information expires with its TTL: silence after that is no_lldp again.
    now += 10 * 60_000;
    expect((await check.run("eth0", opts, ctx, signal())).error?.code).toBe("no_lldp");
  });
});

describe("fuzz: mutated real ARP and LLDP frames", () => {
  it("100,000 mutated LLDPDUs through the lldp listener: no exception, every bad one counted", async () => {
    const rnd = prng(7);
    const frame = Buffer.from(FRAMES.lldp!, "hex");
    const io = new FakeFrameIo(PROBE_MAC);
    const check = createLldpCheck({ io, now: () => 0 });
    await check.run(
      "eth0",
      {
        wait_ms: 0,
        expect_system_name: "",
        expect_port_id: "",
        expect_vlan: 0,
        accept_new_neighbor_after_s: 0,
      },
      ctx,
      signal(),
    );
    let delivered = 0;
    let direct = 0;
    for (let i = 0; i < 100_000; i++) {
      const m = mutate(frame, rnd);
      if (decodeEthernet(m)?.etherType !== ETHERTYPE.lldp) continue; // truncated into the header
      io.deliver(m);
      delivered++;
      if (decodeLldp(m.subarray(14)) === undefined) direct++;
    }
    const r = await check.run(
      "eth0",
      {
        wait_ms: 0,
        expect_system_name: "",
        expect_port_id: "",
        expect_vlan: 0,
        accept_new_neighbor_after_s: 0,
      },
      ctx,
      signal(),
    );
    expect(io.consumerErrors).toBe(0);
    expect(r.metrics.lldp_frames).toBe(delivered);
    expect(r.metrics.malformed_frames).toBe(direct);
    expect(direct).toBeGreaterThan(10_000);
  }, 60_000);

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
