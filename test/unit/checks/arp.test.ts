// RFC 5227 duplicate address detection on an in-memory LAN.
import { describe, expect, it } from "vitest";
import { createArpCheck, type ArpOptions } from "../../../services/probe/src/checks/arp.ts";
import { ARP_OP, decodeArp, encodeArp } from "../../../services/probe/src/net/arp-packet.ts";
import { decodeEthernet, encodeEthernet, ETHERTYPE } from "../../../services/probe/src/net/ethernet.ts";
import { FakeFrameIo } from "../../doubles/fake-frame-io.ts";
import { silentLogger } from "../../../services/contract/src/log.ts";
import { answering } from "../../doubles/arp-hosts.ts";

const PROBE_MAC = "02:00:00:00:00:10";
const ctx = { log: silentLogger() };
const signal = (): AbortSignal => new AbortController().signal;

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
