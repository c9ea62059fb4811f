// ≥ 100,000 malformed datagrams through the ICMP reply parser and the shared socket's dispatch
// (issue 4): mutations of real replies and of ICMP errors quoting our echo requests and UDP
// probes. Nothing may throw, and what decodes must be internally consistent.
import { describe, expect, test } from "vitest";
import {
  decodeIcmp,
  encodeEchoRequest,
  encodeUdpDatagram,
} from "../../../services/probe/src/net/icmp-packet.ts";
import { IcmpSocketPool } from "../../../services/probe/src/net/icmp-socket.ts";
import {
  FakeIcmpNetwork,
  echoReplyFor,
  icmpErrorFor,
  udpErrorFor,
  type SentEcho,
  type SentUdp,
} from "../../doubles/fake-icmp-network.ts";
import { prng } from "../../fixtures/prng.ts";

function echo(family: 4 | 6, size: number, identifier: number): SentEcho {
  const payload = Buffer.alloc(size, 0xab);
  const message = encodeEchoRequest(family, identifier, 7, payload);
  const address = family === 4 ? "203.0.113.200" : "2001:db8:14::200";
  return { family, address, message, identifier, sequence: 7, payload, sentAt: 0n };
}

function udp(family: 4 | 6, sourcePort: number): SentUdp {
  const datagram = encodeUdpDatagram(sourcePort, 33440, Buffer.alloc(32));
  const address = family === 4 ? "203.0.113.200" : "2001:db8:14::200";
  return { family, address, datagram, sourcePort, destinationPort: 33440, sentAt: 0n };
}

/** Real datagrams a raw socket receives for the given echo identifier and UDP source port. */
function seeds(family: 4 | 6, identifier: number, sourcePort: number): { family: 4 | 6; datagram: Buffer }[] {
  const router = family === 4 ? "203.0.113.130" : "2001:db8:11::2";
  return [
    echoReplyFor(echo(family, 56, identifier)),
    echoReplyFor(echo(family, 1400, identifier)),
    icmpErrorFor(echo(family, 56, identifier), family === 4 ? 11 : 3, 0, router, 64),
    icmpErrorFor(echo(family, 56, identifier), family === 4 ? 3 : 1, family === 4 ? 4 : 0, router, 8),
    icmpErrorFor(echo(family, 1472, identifier), family === 4 ? 3 : 2, 0, router, 512),
    udpErrorFor(udp(family, sourcePort), family === 4 ? 3 : 1, family === 4 ? 3 : 4, router),
    udpErrorFor(udp(family, sourcePort), family === 4 ? 11 : 3, 0, router),
  ].map((datagram) => ({ family, datagram }));
}

function mutate(random: () => number, seed: Buffer): Buffer {
  let datagram = Buffer.from(seed);
  const operations = 1 + Math.floor(random() * 4);
  for (let op = 0; op < operations; op++) {
    const choice = random();
    if (choice < 0.35 && datagram.length > 0) {
      datagram[Math.floor(random() * datagram.length)] = Math.floor(random() * 256);
    } else if (choice < 0.55) {
      datagram = datagram.subarray(0, Math.floor(random() * (datagram.length + 1)));
    } else if (choice < 0.65) {
      const extra = Buffer.alloc(Math.floor(random() * 64));
      for (let i = 0; i < extra.length; i++) extra[i] = Math.floor(random() * 256);
      datagram = Buffer.concat([datagram, extra]);
    } else if (choice < 0.8 && datagram.length > 0) {
      // Header fields that steer parsing: IHL/version, protocol, ICMP type/code, quoted IHL.
      const at = [0, 9, 20, 21, 28, 37, 48, 6][Math.floor(random() * 8)] ?? 0;
      if (at < datagram.length) datagram[at] = Math.floor(random() * 256);
    } else if (datagram.length > 4) {
      // A run of 0x00 or 0xff (zeroed lengths, all-ones MTUs).
      const start = Math.floor(random() * datagram.length);
      datagram.fill(
        random() < 0.5 ? 0 : 0xff,
        start,
        Math.min(datagram.length, start + 1 + Math.floor(random() * 8)),
      );
    }
  }
  return datagram;
}

describe("ICMP reply parser fuzz", () => {
  test("120,000 mutated replies and errors never throw out of the decoder or the shared socket", () => {
    const random = prng(0x4e5a);
    const network = new FakeIcmpNetwork();
    const pool = new IcmpSocketPool(network.open, network.openUdp);
    let delivered = 0;
    const listener = {
      reply: () => void delivered++,
      icmpError: () => void delivered++,
      socketFailed: () => {
        throw new Error("the socket must not fail");
      },
    };
    // Sessions on both families, so decoded messages are dispatched to listeners too.
    const SEEDS: { family: 4 | 6; datagram: Buffer }[] = [];
    for (const family of [4, 6] as const) {
      const session = pool.open(family, listener);
      const udpSession = pool.openUdp(family, listener);
      if ("code" in session || "code" in udpSession) throw new Error("fake sockets must open");
      SEEDS.push(...seeds(family, session.identifier, udpSession.sourcePort));
    }
    const kinds = new Map<string, number>();
    const ITERATIONS = 120_000;
    for (let i = 0; i < ITERATIONS; i++) {
      const seed = SEEDS[Math.floor(random() * SEEDS.length)];
      if (seed === undefined) continue;
      const datagram = mutate(random, seed.datagram);
      const decoded = decodeIcmp(seed.family, datagram);
      const kind = decoded?.kind ?? "malformed";
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
      if (decoded?.kind === "error" || decoded?.kind === "udp_error") {
        expect(typeof decoded.originalDestination).toBe("string");
        if (decoded.nextHopMtu !== undefined) expect(decoded.nextHopMtu).toBeGreaterThanOrEqual(0);
      }
      network.deliver(seed.family, datagram, seed.family === 4 ? "203.0.113.130" : "2001:db8:11::2");
    }
    const stats = [pool.stats(4), pool.stats(6)];
    expect(stats[0]!.datagrams + stats[1]!.datagrams).toBe(ITERATIONS);
    // The mutations really exercise every path: some still decode, many are rejected.
    for (const kind of ["echo_reply", "error", "udp_error", "other", "malformed"]) {
      expect(kinds.get(kind) ?? 0, kind).toBeGreaterThan(100);
    }
    expect(delivered).toBeGreaterThan(1000);
  });
});
