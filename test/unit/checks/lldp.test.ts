// LLDP/CDP decoding and the lldp check on an in-memory LAN, plus fuzzing of the listener with
// mutated real LLDPDUs.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { createLldpCheck, MAX_NEIGHBORS, type LldpOptions } from "../../../services/probe/src/checks/lldp.ts";
import { decodeCdp } from "../../../services/probe/src/net/cdp.ts";
import { decodeEthernet, ETHERTYPE } from "../../../services/probe/src/net/ethernet.ts";
import { FakeFrameIo } from "../../doubles/fake-frame-io.ts";
import { decodeLldp, LLDP_GROUP_ADDRESSES } from "../../../services/probe/src/net/lldp-tlv.ts";
import { silentLogger } from "../../../services/contract/src/log.ts";
import { mutate, prng } from "../../fixtures/frame-mutations.ts";

const FRAMES = JSON.parse(
  readFileSync(new URL("../../fixtures/lan-frames.json", import.meta.url), "utf8"),
) as Record<string, string>;
const PROBE_MAC = "02:00:00:00:00:10";
const ctx = { log: silentLogger() };
const signal = (): AbortSignal => new AbortController().signal;
const OPTS: LldpOptions = {
  wait_ms: 20,
  expect_system_name: "",
  expect_port_id: "",
  expect_vlan: 0,
  min_trigger_gap_s: 10,
  accept_new_neighbor_after_s: 3600,
};
const SWITCH_MAC = "02:00:00:00:00:0b";
const PHONE_MAC = "02:00:00:00:00:50";

/** One LLDP TLV (7-bit type, 9-bit length). */
const tlv = (type: number, v: number[]): number[] => [(type << 1) | (v.length >> 8), v.length & 0xff, ...v];
const str = (t: string): number[] => [...Buffer.from(t)];

/** An LLDPDU frame: chassis (MAC subtype), port (interface name), TTL, system name, capabilities, extras. */
function lldpFrame(o: {
  src: string;
  chassis: string;
  port: string;
  name?: string;
  ttl?: number;
  caps?: number;
  dst?: string;
  extra?: number[];
  vlanTag?: number;
}): Buffer {
  const mac = (m: string): number[] => m.split(":").map((h) => parseInt(h, 16));
  const pdu = [
    ...tlv(1, [4, ...mac(o.chassis)]),
    ...tlv(2, [5, ...str(o.port)]),
    ...tlv(3, [0, o.ttl ?? 120]),
    ...(o.name === undefined ? [] : tlv(5, str(o.name))),
    ...tlv(7, [0, o.caps ?? 0x04, 0, o.caps ?? 0x04]),
    ...(o.extra ?? []),
    ...tlv(0, []),
  ];
  const tag = o.vlanTag === undefined ? [] : [0x81, 0x00, 0, o.vlanTag];
  return Buffer.from([...mac(o.dst ?? "01:80:c2:00:00:0e"), ...mac(o.src), ...tag, 0x88, 0xcc, ...pdu]);
}

/** A CDP TLV (type, length including the 4-byte header). */
const cdpTlv = (type: number, v: number[]): number[] => [
  type >> 8,
  type & 0xff,
  (v.length + 4) >> 8,
  (v.length + 4) & 0xff,
  ...v,
];

/** A CDP frame (802.3 + LLC/SNAP) as a Cisco switch sends it. */
function cdpFrame(version: number, tlvs: number[], dst = "01:00:0c:cc:cc:cc"): Buffer {
  const mac = (m: string): number[] => m.split(":").map((h) => parseInt(h, 16));
  const llc = [0xaa, 0xaa, 0x03, 0x00, 0x00, 0x0c, 0x20, 0x00, version, 180, 0, 0, ...tlvs];
  return Buffer.from([...mac(dst), ...mac(SWITCH_MAC), llc.length >> 8, llc.length & 0xff, ...llc]);
}

const CDP_SWITCH = [
  ...cdpTlv(0x0001, str("cat9300-floor2")),
  ...cdpTlv(0x0002, [0, 0, 0, 1, 1, 1, 0xcc, 0, 4, 192, 0, 2, 3]),
  ...cdpTlv(0x0003, str("GigabitEthernet1/0/7")),
  ...cdpTlv(0x0004, [0, 0, 0, 0x28]),
  ...cdpTlv(0x0005, str("Cisco IOS XE 17.9")),
  ...cdpTlv(0x0006, str("cisco C9300-48P")),
  ...cdpTlv(0x000a, [0, 10]),
  ...cdpTlv(0x000b, [1]),
  ...cdpTlv(0x000e, [1, 0, 20]),
];

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
    const opts = OPTS;
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

describe("CDP and LLDP-MED decoding", () => {
  it("CDPv2 from a Cisco switch: device id, port, platform, native and voice VLAN, management address, capabilities", () => {
    const eth = decodeEthernet(cdpFrame(2, CDP_SWITCH))!;
    expect(eth.etherType).toBe(ETHERTYPE.llc);
    expect(decodeCdp(eth.payload)).toMatchObject({
      protocol: "cdp",
      cdpVersion: 2,
      chassisId: "cat9300-floor2",
      systemName: "cat9300-floor2",
      portId: "GigabitEthernet1/0/7",
      platform: "cisco C9300-48P",
      systemDescription: "Cisco IOS XE 17.9",
      portVlanId: 10,
      voiceVlanId: 20,
      duplex: "full",
      ttlS: 180,
      managementAddresses: ["192.0.2.3"],
      capabilities: ["bridge"],
    });
  });

  it("CDPv1 decodes too; a TLV running past the PDU, version 3 or a missing device id is undefined", () => {
    const v1 = decodeEthernet(cdpFrame(1, CDP_SWITCH.slice(0, 4 + 14 + 17 + 24)))!;
    expect(decodeCdp(v1.payload)).toMatchObject({ cdpVersion: 1, portId: "GigabitEthernet1/0/7" });
    const cut = decodeEthernet(cdpFrame(2, [...CDP_SWITCH, 0, 6, 0, 40, 1]))!;
    expect(decodeCdp(cut.payload)).toBeUndefined();
    expect(decodeCdp(decodeEthernet(cdpFrame(3, CDP_SWITCH))!.payload)).toBeUndefined();
    expect(decodeCdp(decodeEthernet(cdpFrame(2, cdpTlv(3, str("Gi1"))))!.payload)).toBeUndefined();
  });

  it("LLDP-MED: voice network policy (VLAN, priority, DSCP), extended power, inventory", () => {
    const med = (subtype: number, v: number[]): number[] => tlv(127, [0x00, 0x12, 0xbb, subtype, ...v]);
    // voice, T=1, VLAN 20, priority 5, DSCP 46: 0 1 0 | 000000010100 | 101 | 101110
    const policyBits = (1 << 22) | (20 << 9) | (5 << 6) | 46;
    const frame = lldpFrame({
      src: PHONE_MAC,
      chassis: PHONE_MAC,
      port: "phone-port",
      caps: 0x20,
      extra: [
        ...med(1, [0, 0x33, 3]),
        ...med(2, [1, (policyBits >> 16) & 0xff, (policyBits >> 8) & 0xff, policyBits & 0xff]),
        ...med(4, [0x51, 0, 38]),
        ...med(10, str("CP-8841")),
        ...med(8, str("FCH1234ABCD")),
      ],
    });
    const n = decodeLldp(decodeEthernet(frame)!.payload)!;
    expect(n.capabilities).toEqual(["telephone"]);
    expect(n.voiceVlanId).toBe(20);
    expect(n.med).toEqual({
      deviceType: 3,
      policies: [{ application: "voice", unknown: false, tagged: true, vlanId: 20, priority: 5, dscp: 46 }],
      power: { type: 1, source: 1, priority: 1, watts: 3.8 },
      inventory: { model: "CP-8841", serial_number: "FCH1234ABCD" },
    });
  });
});

describe("lldp check: every neighbour, only from the switch's addresses", () => {
  it("a CDP-only switch is named (no_lldp is not reported): device, port, platform, voice VLAN", async () => {
    const io = new FakeFrameIo(PROBE_MAC);
    const check = createLldpCheck({ io, now: () => 0 });
    await check.run("eth0", { ...OPTS, wait_ms: 0 }, ctx, signal());
    io.deliver(cdpFrame(2, CDP_SWITCH));
    const r = await check.run("eth0", OPTS, ctx, signal());
    expect(r.status).toBe("ok");
    expect(r.metrics).toMatchObject({ neighbors: 1, cdp_neighbors: 1, vlan_id: 10, voice_vlan_id: 20 });
    expect(r.detail).toMatchObject({
      protocol: "cdp",
      system_name: "cat9300-floor2",
      port_id: "GigabitEthernet1/0/7",
      platform: "cisco C9300-48P",
    });
  });

  it("switch and phone on the port: neighbors 2, the switch stays the switch, no move over 100 alternating PDUs", async () => {
    let now = 0;
    const io = new FakeFrameIo(PROBE_MAC);
    const check = createLldpCheck({ io, now: () => now });
    const sw = lldpFrame({ src: SWITCH_MAC, chassis: SWITCH_MAC, port: "Gi1/0/10", name: "sw-1", ttl: 4 });
    const phone = lldpFrame({
      src: PHONE_MAC,
      chassis: PHONE_MAC,
      port: "lan",
      name: "phone",
      ttl: 4,
      caps: 0x24,
    });
    await check.run("eth0", { ...OPTS, wait_ms: 0 }, ctx, signal());
    for (let i = 0; i < 100; i++) {
      // The phone first now and then: the order of arrival must not decide which one is the switch.
      io.deliver(i % 2 === 0 ? phone : sw);
      io.deliver(i % 2 === 0 ? sw : phone);
      now += 1000;
      const r = await check.run("eth0", OPTS, ctx, signal());
      expect(r.status, JSON.stringify(r.error)).toBe("ok");
      expect(r.metrics.neighbors).toBe(2);
      expect(r.detail?.system_name).toBe("sw-1");
    }
    // Each neighbour ages out after its own TTL: the phone unplugged, the switch still speaking.
    now += 3000;
    io.deliver(sw);
    now += 2000;
    const alone = await check.run("eth0", OPTS, ctx, signal());
    expect(alone.metrics.neighbors).toBe(1);
    expect(alone.status).toBe("ok");
  });

  it("the neighbour the config names is the switch, whichever came first", async () => {
    const io = new FakeFrameIo(PROBE_MAC);
    const check = createLldpCheck({ io, now: () => 0 });
    await check.run("eth0", { ...OPTS, wait_ms: 0 }, ctx, signal());
    io.deliver(
      lldpFrame({ src: "02:00:00:00:00:0c", chassis: "02:00:00:00:00:0c", port: "x", name: "other-sw" }),
    );
    io.deliver(lldpFrame({ src: SWITCH_MAC, chassis: SWITCH_MAC, port: "Gi1/0/10", name: "sw-1" }));
    const r = await check.run("eth0", { ...OPTS, expect_system_name: "sw-1" }, ctx, signal());
    expect(r.status).toBe("ok");
    expect(r.metrics.neighbors).toBe(2);
    expect(r.detail?.system_name).toBe("sw-1");
  });

  it("unicast LLDP from a desk PC, LLDP/CDP to another group, and tagged LLDPDUs are not the port's switch", async () => {
    const io = new FakeFrameIo(PROBE_MAC);
    const check = createLldpCheck({ io, now: () => 0 });
    await check.run("eth0", { ...OPTS, wait_ms: 0 }, ctx, signal());
    io.deliver(lldpFrame({ src: PHONE_MAC, chassis: PHONE_MAC, port: "p", name: "pc", dst: PROBE_MAC }));
    io.deliver(
      lldpFrame({ src: PHONE_MAC, chassis: PHONE_MAC, port: "p", name: "pc", dst: "ff:ff:ff:ff:ff:ff" }),
    );
    io.deliver(cdpFrame(2, CDP_SWITCH, "01:00:0c:cc:cc:cd"));
    io.deliver(
      lldpFrame({ src: SWITCH_MAC, chassis: SWITCH_MAC, port: "Gi1/0/10", name: "sw-vlan20", vlanTag: 20 }),
    );
    const r = await check.run("eth0", OPTS, ctx, signal());
    expect(r.error?.code).toBe("no_lldp");
    expect(r.metrics).toMatchObject({ neighbors: 0, not_from_switch_frames: 3, tagged_frames: 1 });
  });

  it("5,000 new chassis: the table stays bounded, the switch is kept, the watch asks for no run", async () => {
    let now = 0;
    const io = new FakeFrameIo(PROBE_MAC);
    const check = createLldpCheck({ io, now: () => now });
    let triggers = 0;
    const ac = new AbortController();
    check.watch!("eth0", OPTS, ctx, ac.signal, () => triggers++);
    io.deliver(lldpFrame({ src: SWITCH_MAC, chassis: SWITCH_MAC, port: "Gi1/0/10", name: "sw-1" }));
    expect(triggers).toBe(1); // the switch appeared
    for (let i = 0; i < 5000; i++) {
      const mac = `02:aa:00:00:${((i >> 8) & 0xff).toString(16).padStart(2, "0")}:${(i & 0xff).toString(16).padStart(2, "0")}`;
      io.deliver(lldpFrame({ src: mac, chassis: mac, port: `p${i}`, name: `flood-${i}` }));
      now += 2;
    }
    const r = await check.run("eth0", OPTS, ctx, signal());
    ac.abort();
    expect(triggers).toBe(1);
    expect(r.status).toBe("ok");
    expect(r.detail?.system_name).toBe("sw-1");
    expect(r.metrics.neighbors).toBe(MAX_NEIGHBORS);
    expect(r.metrics.dropped_neighbors).toBe(5000 - (MAX_NEIGHBORS - 1));
  });

  it("the watch asks for at most one run per min_trigger_gap_s when the switch keeps changing", () => {
    let now = 0;
    const io = new FakeFrameIo(PROBE_MAC);
    const check = createLldpCheck({ io, now: () => now });
    let triggers = 0;
    check.watch!("eth0", OPTS, ctx, new AbortController().signal, () => triggers++);
    // One port whose switch re-numbers it every 100 ms for 30 s (or a spoofer using the switch's MAC).
    for (let i = 0; i < 300; i++) {
      io.deliver(lldpFrame({ src: SWITCH_MAC, chassis: SWITCH_MAC, port: `Gi1/0/${i}`, name: "sw-1" }));
      now += 100;
    }
    expect(triggers).toBe(3);
  });
});

describe("fuzz: mutated real LLDP frames", () => {
  it("100,000 mutated LLDPDUs through the lldp listener: no exception, every bad one counted", async () => {
    const rnd = prng(7);
    const frame = Buffer.from(FRAMES.lldp!, "hex");
    const io = new FakeFrameIo(PROBE_MAC);
    const check = createLldpCheck({ io, now: () => 0 });
    await check.run("eth0", { ...OPTS, wait_ms: 0, accept_new_neighbor_after_s: 0 }, ctx, signal());
    let delivered = 0;
    let direct = 0;
    let elsewhere = 0;
    for (let i = 0; i < 100_000; i++) {
      const m = mutate(frame, rnd);
      const eth = decodeEthernet(m);
      if (eth?.etherType !== ETHERTYPE.lldp) continue; // truncated into the header
      io.deliver(m);
      delivered++;
      // A mutated destination or a tag takes the frame out of the switch's LLDP before decoding.
      if (eth.vlan !== undefined || !LLDP_GROUP_ADDRESSES.includes(eth.dst)) elsewhere++;
      else if (decodeLldp(eth.payload) === undefined) direct++;
    }
    const r = await check.run("eth0", { ...OPTS, wait_ms: 0, accept_new_neighbor_after_s: 0 }, ctx, signal());
    expect(io.consumerErrors).toBe(0);
    expect(r.metrics.lldp_frames).toBe(delivered);
    expect(r.metrics.malformed_frames).toBe(direct);
    expect(r.metrics.not_from_switch_frames! + r.metrics.tagged_frames!).toBe(elsewhere);
    expect(direct).toBeGreaterThan(10_000);
  }, 60_000);
});
