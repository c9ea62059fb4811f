// The dhcp check against scripted DHCP servers on an in-memory LAN, the message codec against a
// real captured exchange, and a fuzz of 100,000+ mutated real frames through the check.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { createDhcpCheck, type DhcpOptions } from "../../../services/probe/src/checks/dhcp.ts";
import {
  DHCP_TYPE,
  encodeDhcp,
  parseDhcp,
  walkOptions,
} from "../../../services/probe/src/net/dhcp-message.ts";
import {
  decodeEthernet,
  decodeIpv4Udp,
  encodeEthernet,
  encodeIpv4Udp,
  ETHERTYPE,
} from "../../../services/probe/src/net/ethernet.ts";
import { FakeFrameIo, type Responder } from "../../doubles/fake-frame-io.ts";
import { silentLogger } from "../../../services/contract/src/log.ts";
import { mutate, prng } from "../../fixtures/frame-mutations.ts";

const FRAMES = JSON.parse(
  readFileSync(new URL("../../fixtures/lan-frames.json", import.meta.url), "utf8"),
) as Record<string, string>;
const protocol = createRequire(import.meta.url)("dhcp/lib/protocol.js") as {
  format(d: Record<string, unknown>): { _data: Buffer; _w: number };
};
const PROBE_MAC = "02:00:00:00:00:10";
const ctx = { log: silentLogger() };

const defaults: DhcpOptions = {
  wait_ms: 100,
  client_mac: "",
  request: false,
  release: true,
  broadcast_flag: true,
  allowed_servers: [],
  expect_router: "",
  expect_dns: [],
  expect_domain: "",
  expect_ntp: [],
  expect_subnet_mask: "",
  expect_tftp: "",
  min_lease_s: 0,
  vendor_class: "",
  vlan: 0,
};

interface Server {
  id: string;
  mac: string;
  offer: string;
  router?: string;
  dns?: string[];
  lease?: number;
  ack?: boolean;
  /** Option 54 as sent (a rogue forging the real server's identifier); default `id`. */
  claimId?: string;
  /** Delay of its ACK/NAK (default 1 ms, like its OFFER). */
  ackDelayMs?: number;
  /** 802.1Q tag on every answer (a server on another VLAN of a trunk). */
  vlan?: number;
  /** A server on this VLAN of a trunk: it hears only DISCOVERs tagged with it, and tags its answers. */
  trunkVlan?: number;
}

/** The frame with an 802.1Q tag inserted after the MAC addresses. */
function tagged(frame: Buffer, vlan: number): Buffer {
  return Buffer.concat([
    frame.subarray(0, 12),
    Buffer.from([0x81, 0x00, vlan >> 8, vlan & 0xff]),
    frame.subarray(12),
  ]);
}

/** A scripted DHCP server: OFFERs every DISCOVER, ACKs (or NAKs) every REQUEST addressed to it. */
function server(s: Server): Responder {
  return (frame) => {
    const eth = decodeEthernet(frame);
    if (s.trunkVlan !== undefined && eth?.vlan !== s.trunkVlan) return [];
    const udp = eth && decodeIpv4Udp(eth.payload);
    const m = udp && parseDhcp(udp.payload);
    if (!m || m.op !== 1) return [];
    let type: number;
    if (m.type === DHCP_TYPE.discover) type = DHCP_TYPE.offer;
    else if (m.type === DHCP_TYPE.request && m.serverId === (s.claimId ?? s.id))
      type = s.ack === false ? DHCP_TYPE.nak : DHCP_TYPE.ack;
    else return [];
    const sb = protocol.format({
      op: 2,
      htype: 1,
      hlen: 6,
      hops: 0,
      xid: m.xid,
      secs: 0,
      flags: 0x8000,
      ciaddr: "0.0.0.0",
      yiaddr: type === DHCP_TYPE.nak ? "0.0.0.0" : s.offer,
      siaddr: "0.0.0.0",
      giaddr: "0.0.0.0",
      chaddr: m.chaddr,
      sname: "",
      file: "",
      options: {
        53: type,
        54: s.claimId ?? s.id,
        1: "255.255.255.0",
        3: s.router ?? s.id,
        6: s.dns ?? [s.id],
        15: "branch.example",
        51: s.lease ?? 3600,
      },
    });
    const payload = sb._data.subarray(0, sb._w);
    const ip = encodeIpv4Udp({ srcIp: s.id, dstIp: "255.255.255.255", srcPort: 67, dstPort: 68, payload });
    const answer = encodeEthernet("ff:ff:ff:ff:ff:ff", s.mac, ETHERTYPE.ipv4, ip);
    return [
      {
        frame: (s.vlan ?? s.trunkVlan) === undefined ? answer : tagged(answer, (s.vlan ?? s.trunkVlan)!),
        delayMs: type === DHCP_TYPE.offer ? 1 : (s.ackDelayMs ?? 1),
      },
    ];
  };
}

function lan(...servers: Responder[]): FakeFrameIo {
  return new FakeFrameIo(PROBE_MAC, (frame) => servers.flatMap((s) => s(frame)));
}

/** The voice VLAN's server on a trunk port (it hears only DISCOVERs tagged 20). */
const VOICE: Server = {
  id: "198.51.100.129",
  mac: "02:00:00:00:20:01",
  offer: "198.51.100.140",
  trunkVlan: 20,
};
const GW: Server = { id: "192.0.2.1", mac: "02:00:00:00:00:01", offer: "192.0.2.150" };
const ROGUE: Server = {
  id: "192.0.2.66",
  mac: "02:00:00:00:00:66",
  offer: "192.0.2.200",
  router: "192.0.2.66",
};

describe("dhcp message codec", () => {
  it("parses the OFFER captured from the lab's dnsmasq: server, address, lease, router, DNS, domain", () => {
    const eth = decodeEthernet(Buffer.from(FRAMES.dhcp_offer!, "hex"))!;
    const m = parseDhcp(decodeIpv4Udp(eth.payload)!.payload)!;
    expect(m).toMatchObject({
      op: 2,
      type: DHCP_TYPE.offer,
      serverId: "192.0.2.1",
      chaddr: PROBE_MAC,
      leaseS: 3600,
      router: ["192.0.2.1"],
      dns: ["192.0.2.1"],
      domain: "branch.example",
      subnetMask: "255.255.255.0",
    });
  });

  it("a DISCOVER it encodes decodes back (broadcast flag, parameter request list, 300-byte minimum)", () => {
    const payload = encodeDhcp({
      type: DHCP_TYPE.discover,
      xid: 0xdeadbeef,
      chaddr: PROBE_MAC,
      broadcast: true,
    });
    expect(payload.length).toBeGreaterThanOrEqual(300);
    const m = parseDhcp(payload)!;
    expect(m).toMatchObject({
      op: 1,
      xid: 0xdeadbeef,
      chaddr: PROBE_MAC,
      broadcast: true,
      type: DHCP_TYPE.discover,
    });
    expect([...m.options.get(55)!]).toContain(150);
  });

  it("walks pad options one byte at a time and rejects an option running past the end", () => {
    expect(walkOptions(Buffer.from([0, 0, 53, 1, 2, 255]))?.get(53)).toEqual(Buffer.from([2]));
    expect(walkOptions(Buffer.from([53, 5, 2]))).toBeUndefined();
  });
});

describe("dhcp check", () => {
  it("one server: ok with offer latency, lease, router and DNS listed", async () => {
    const check = createDhcpCheck({ io: lan(server(GW)) });
    const r = await check.run("eth0", defaults, ctx, new AbortController().signal);
    expect(r.status).toBe("ok");
    expect(r.metrics).toMatchObject({ offers: 1, servers: 1, rogue_servers: 0, lease_s: 3600 });
    expect(r.metrics.offer_latency_ms).toBeGreaterThan(0);
    expect((r.detail?.servers as unknown[])[0]).toMatchObject({
      server_id: "192.0.2.1",
      offered_address: "192.0.2.150",
    });
  });

  it("latency comes from the OFFER's capture stamp: a loop that wakes 40 ms late does not count", async () => {
    const slow: Responder = (frame) => server(GW)(frame).map((a) => ({ ...a, delayMs: 2, lateMs: 40 }));
    const r = await createDhcpCheck({ io: lan(slow) }).run(
      "eth0",
      defaults,
      ctx,
      new AbortController().signal,
    );
    expect(r.status).toBe("ok");
    // 2 ms to the capture plus the fake server's own work; user space saw it 40 ms later.
    expect(r.metrics.offer_latency_ms).toBeGreaterThanOrEqual(1.9);
    expect(r.metrics.offer_latency_ms).toBeLessThan(10);
    expect((r.detail?.servers as Array<{ timestamps: string }>)[0]?.timestamps).toBe("wire");
  });

  it("a capture stamp later than its delivery (the wall clock stepped) → the user-space latency instead", async () => {
    const stepped: Responder = (frame) =>
      server(GW)(frame).map((a) => ({ ...a, delayMs: 5, wireUs: Date.now() * 1000 + 3_600_000_000 }));
    const r = await createDhcpCheck({ io: lan(stepped) }).run(
      "eth0",
      defaults,
      ctx,
      new AbortController().signal,
    );
    expect(r.metrics.offer_latency_ms).toBeGreaterThanOrEqual(4);
    expect(r.metrics.offer_latency_ms).toBeLessThan(1000);
    expect((r.detail?.servers as Array<{ timestamps: string }>)[0]?.timestamps).toBe("user");
  });

  it("rogue server outside the allow-list → fail rogue_dhcp naming its IP and MAC; both servers listed", async () => {
    const check = createDhcpCheck({ io: lan(server(GW), server(ROGUE)) });
    const r = await check.run(
      "eth0",
      { ...defaults, allowed_servers: ["192.0.2.1"] },
      ctx,
      new AbortController().signal,
    );
    expect(r.status).toBe("fail");
    expect(r.error?.code).toBe("rogue_dhcp");
    expect(r.error?.message).toContain("192.0.2.66 (MAC 02:00:00:00:00:66)");
    expect(r.metrics).toMatchObject({ servers: 2, rogue_servers: 1 });
  });

  it("a rogue forging option 54 with the real server's address is still a rogue, named by its source IP and MAC", async () => {
    const forger = server({ ...ROGUE, claimId: GW.id });
    for (const allowed of [[GW.id], [GW.mac], [GW.mac.toUpperCase().replaceAll(":", "-")]]) {
      const check = createDhcpCheck({ io: lan(server(GW), forger) });
      const r = await check.run(
        "eth0",
        { ...defaults, allowed_servers: allowed },
        ctx,
        new AbortController().signal,
      );
      expect(r.error?.code, allowed.join()).toBe("rogue_dhcp");
      expect(r.error?.message).toContain("192.0.2.66 (MAC 02:00:00:00:00:66 claiming server id 192.0.2.1)");
      expect(r.metrics).toMatchObject({ servers: 2, rogue_servers: 1 });
      const servers = r.detail?.servers as Array<{
        ip: string;
        server_id: string;
        server_id_mismatch: boolean;
      }>;
      expect(servers.map((x) => [x.ip, x.server_id, x.server_id_mismatch])).toEqual([
        ["192.0.2.1", "192.0.2.1", false],
        ["192.0.2.66", "192.0.2.1", true],
      ]);
    }
  });

  it("request: a forged ACK from another MAC is rejected and reported; the real ACK is used, RELEASE goes to the chosen server", async () => {
    // The forger answers the REQUEST faster than the real server: its ACK used to be taken.
    const io = lan(server({ ...GW, ackDelayMs: 10 }), server({ ...ROGUE, claimId: GW.id, ackDelayMs: 1 }));
    const r = await createDhcpCheck({ io }).run(
      "eth0",
      { ...defaults, request: true },
      ctx,
      new AbortController().signal,
    );
    expect(r.error?.code).toBe("forged_dhcp_reply");
    expect(r.error?.message).toMatch(
      /DHCPACK .* from IP 192\.0\.2\.66 MAC 02:00:00:00:00:66 \(claiming server id 192\.0\.2\.1\)/,
    );
    expect(r.metrics.forged_replies).toBe(1);
    expect(r.detail?.ack).toMatchObject({ address: GW.offer, released: true });
    const release = decodeEthernet(io.injected.at(-1)!)!;
    expect(release.dst).toBe(GW.mac);
    expect(decodeIpv4Udp(release.payload)?.dstIp).toBe(GW.id);
  });

  it("a tagged OFFER on the untagged interface belongs to another VLAN: ignored, not a second server", async () => {
    const check = createDhcpCheck({ io: lan(server(GW), server({ ...ROGUE, vlan: 20 })) });
    const r = await check.run(
      "eth0",
      { ...defaults, allowed_servers: [GW.id] },
      ctx,
      new AbortController().signal,
    );
    expect(r.status).toBe("ok");
    expect(r.metrics).toMatchObject({ servers: 1, rogue_servers: 0 });
  });

  it("vlan: N on a trunk: the DISCOVER goes out tagged, only that VLAN's server counts, a rogue is named with its VLAN", async () => {
    const V30: Server = {
      id: "198.51.100.194",
      mac: "02:00:00:00:30:66",
      offer: "198.51.100.200",
      trunkVlan: 30,
    };
    const io = lan(server(GW), server(VOICE), server(V30));
    const check = createDhcpCheck({ io });
    const voice = await check.run(
      "eth0",
      { ...defaults, vlan: 20, allowed_servers: [VOICE.id], request: true },
      ctx,
      new AbortController().signal,
    );
    expect(voice.status, JSON.stringify(voice.error)).toBe("ok");
    expect(voice.metrics).toMatchObject({ servers: 1, rogue_servers: 0 });
    expect((voice.detail?.servers as { ip: string }[])[0]?.ip).toBe(VOICE.id);
    expect(voice.detail?.vlan).toBe(20);
    // Every frame the check sent (DISCOVER, REQUEST, RELEASE) carried the tag.
    expect(io.injected.map((f) => decodeEthernet(f)?.vlan)).toEqual([20, 20, 20]);
    const rogue = await check.run(
      "eth0",
      { ...defaults, vlan: 30, allowed_servers: ["198.51.100.193"] },
      ctx,
      new AbortController().signal,
    );
    expect(rogue.error?.code).toBe("rogue_dhcp");
    expect(rogue.error?.message).toContain(`rogue DHCP server on VLAN 30: ${V30.id} (MAC ${V30.mac})`);
    // The untagged LAN's check hears neither VLAN's server.
    const native = await check.run(
      "eth0",
      { ...defaults, allowed_servers: [GW.id] },
      ctx,
      new AbortController().signal,
    );
    expect(native.metrics).toMatchObject({ servers: 1, rogue_servers: 0 });
    const silent = await check.run("eth0", { ...defaults, vlan: 40 }, ctx, new AbortController().signal);
    expect(silent.error?.code).toBe("no_offer");
    expect(silent.error?.message).toContain("on eth0 VLAN 40");
  });

  it("vlan: auto-voice tests the voice VLAN the lldp check heard advertised; none advertised → no_voice_vlan", async () => {
    let advertised: number | undefined = 20;
    const check = createDhcpCheck({ io: lan(server(GW), server(VOICE)), voiceVlan: () => advertised });
    const opts = { ...defaults, vlan: "auto-voice" as const, allowed_servers: [VOICE.id] };
    const r = await check.run("eth0", opts, ctx, new AbortController().signal);
    expect(r.status, JSON.stringify(r.error)).toBe("ok");
    expect(r.detail?.vlan).toBe(20);
    advertised = undefined;
    const none = await check.run("eth0", opts, ctx, new AbortController().signal);
    expect(none).toMatchObject({ status: "error", error: { code: "no_voice_vlan" } });
  });

  it("two servers and no allow-list → warn multiple_dhcp_servers", async () => {
    const check = createDhcpCheck({ io: lan(server(GW), server(ROGUE)) });
    const r = await check.run("eth0", defaults, ctx, new AbortController().signal);
    expect(r.status).toBe("warn");
    expect(r.error?.code).toBe("multiple_dhcp_servers");
  });

  it("no server → fail no_offer explaining down/blocked/pool exhausted", async () => {
    const check = createDhcpCheck({ io: lan() });
    const r = await check.run("eth0", defaults, ctx, new AbortController().signal);
    expect(r.status).toBe("fail");
    expect(r.error?.code).toBe("no_offer");
    expect(r.error?.message).toMatch(/pool is exhausted/);
  });

  it("unexpected router, missing DNS, short lease → fail option_mismatch listing each", async () => {
    const check = createDhcpCheck({
      io: lan(server({ ...GW, router: "192.0.2.254", dns: ["192.0.2.53"], lease: 60 })),
    });
    const r = await check.run(
      "eth0",
      { ...defaults, expect_router: "192.0.2.1", expect_dns: ["192.0.2.1"], min_lease_s: 600 },
      ctx,
      new AbortController().signal,
    );
    expect(r.error?.code).toBe("option_mismatch");
    expect(r.detail?.mismatches).toEqual([
      "router is 192.0.2.254, expected 192.0.2.1",
      "DNS servers are 192.0.2.53, missing 192.0.2.1",
      "lease is 60 s, expected at least 600 s",
    ]);
  });

  it("request: REQUEST→ACK then RELEASE unicast from the leased address; NAK → fail nak", async () => {
    const io = lan(server(GW));
    const r = await createDhcpCheck({ io }).run(
      "eth0",
      { ...defaults, request: true },
      ctx,
      new AbortController().signal,
    );
    expect(r.status).toBe("ok");
    expect(r.metrics.ack_latency_ms).toBeGreaterThan(0);
    const release = parseDhcp(decodeIpv4Udp(decodeEthernet(io.injected.at(-1)!)!.payload)!.payload)!;
    expect(release).toMatchObject({ type: DHCP_TYPE.release, ciaddr: "192.0.2.150", serverId: "192.0.2.1" });
    const nak = await createDhcpCheck({ io: lan(server({ ...GW, ack: false })) }).run(
      "eth0",
      { ...defaults, request: true },
      ctx,
      new AbortController().signal,
    );
    expect(nak.error?.code).toBe("nak");
  });

  it("a fixed client_mac is used in chaddr and as the frame's source", async () => {
    const io = lan(server(GW));
    const r = await createDhcpCheck({ io }).run(
      "eth0",
      { ...defaults, client_mac: "02-AA-00-00-00-01" },
      ctx,
      new AbortController().signal,
    );
    expect(r.status).toBe("ok");
    expect(decodeEthernet(io.injected[0]!)!.src).toBe("02:aa:00:00:00:01");
  });

  it("abort ends the run at once with what was collected", async () => {
    const ac = new AbortController();
    const t0 = Date.now();
    setTimeout(() => ac.abort(), 20);
    const r = await createDhcpCheck({ io: lan() }).run(
      "eth0",
      { ...defaults, wait_ms: 5000 },
      ctx,
      ac.signal,
    );
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(r.detail?.aborted).toBe(true);
  });
});

describe("fuzz: mutated real DHCP frames through the check", () => {
  it("100,000 mutated OFFERs: nothing escapes, every frame is counted (accepted, ignored or malformed)", async () => {
    const offer = Buffer.from(FRAMES.dhcp_offer!, "hex");
    const rnd = prng(3);
    const io = new FakeFrameIo(PROBE_MAC);
    const check = createDhcpCheck({ io });
    const ac = new AbortController();
    const run = check.run("eth0", { ...defaults, wait_ms: 60_000 }, ctx, ac.signal);
    const N = 100_000;
    let delivered = 0;
    for (let i = 0; i < N; i++) if (io.deliver(mutate(offer, rnd))) delivered++;
    ac.abort();
    const r = await run;
    expect(io.consumerErrors).toBe(0);
    // The real OFFER's xid is not this run's: a well-formed mutant is "ignored", a broken one "malformed".
    const counted =
      (r.metrics.malformed_frames ?? 0) + (r.detail?.ignored_frames as number) + (r.metrics.offers ?? 0);
    expect(counted).toBe(delivered);
    expect(r.metrics.malformed_frames).toBeGreaterThan(10_000);
    for (let i = 0; i < 20_000; i++) parseDhcp(mutate(offer, rnd).subarray(42));
  }, 60_000);
});
