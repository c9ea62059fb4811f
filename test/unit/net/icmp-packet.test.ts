import { describe, expect, test } from "vitest";
import {
  decodeIcmp,
  encodeEchoRequest,
  formatIpAddress,
  internetChecksum,
  normalizeIpLiteral,
} from "../../../services/probe/src/net/icmp-packet.ts";
import {
  echoReplyFor,
  icmpErrorFor,
  ipv4Datagram,
  ipv6Bytes,
  withChecksum,
  type SentEcho,
} from "../../doubles/fake-icmp-network.ts";
import { prng } from "../../fixtures/prng.ts";

// An echo request laid out by hand from RFC 792 ("Echo or Echo Reply Message"): type 8, code 0,
// checksum, identifier 0x1234, sequence 1, data "abcdefgh". Checksum worked out on paper:
// 0x0800 + 0x1234 + 0x0001 + 0x6162 + 0x6364 + 0x6566 + 0x6768 = 0x2abc9, folded 0xabca,
// complemented 0x5435.
const HAND_MADE_REQUEST = Buffer.from("08005435123400016162636465666768", "hex");

function sentEcho(
  family: 4 | 6,
  address: string,
  identifier: number,
  sequence: number,
  payload: Buffer,
): SentEcho {
  const message = encodeEchoRequest(family, identifier, sequence, payload);
  return { family, address, message, identifier, sequence, payload, sentAt: 0n };
}

describe("internet checksum (RFC 1071)", () => {
  test("matches the worked example of RFC 1071 §3", () => {
    expect(internetChecksum(Buffer.from("0001f203f4f5f6f7", "hex"))).toBe(0x220d);
  });

  test("pads an odd trailing byte with zero", () => {
    expect(internetChecksum(Buffer.from([0x01]))).toBe(~0x0100 & 0xffff);
    expect(internetChecksum(Buffer.from([0x00, 0x01, 0xf2]))).toBe(~(0x0001 + 0xf200) & 0xffff);
  });

  test("is zero over a message that carries its correct checksum", () => {
    expect(internetChecksum(HAND_MADE_REQUEST)).toBe(0);
  });

  test("folds carries over a long all-ones message", () => {
    expect(internetChecksum(Buffer.alloc(65_536, 0xff))).toBe(0);
  });
});

describe("echo request encoding", () => {
  test("IPv4: byte for byte the hand-made RFC 792 packet", () => {
    expect(encodeEchoRequest(4, 0x1234, 1, Buffer.from("abcdefgh"))).toEqual(HAND_MADE_REQUEST);
  });

  test("IPv6: type 128 and a zero checksum, which the kernel fills in (RFC 3542 §3.1)", () => {
    const packet = encodeEchoRequest(6, 0xbeef, 0xfffe, Buffer.from("xy"));
    expect(packet.toString("hex")).toBe("80000000beeffffe7879");
  });

  test("identifier and sequence wrap to 16 bits", () => {
    const packet = encodeEchoRequest(4, 0x1_0002, 0x1_0003, Buffer.alloc(0));
    expect(packet.readUInt16BE(4)).toBe(2);
    expect(packet.readUInt16BE(6)).toBe(3);
  });
});

describe("decoding what a raw socket receives", () => {
  const payload = Buffer.from("0123456789abcdef");
  const echo4 = sentEcho(4, "192.0.2.2", 0x4242, 7, payload);
  const echo6 = sentEcho(6, "2001:db8::2", 0x4242, 7, payload);

  test("IPv4 echo reply: skips the IP header by its IHL", () => {
    expect(decodeIcmp(4, echoReplyFor(echo4))).toEqual({
      kind: "echo_reply",
      identifier: 0x4242,
      sequence: 7,
      payload,
    });
  });

  test("IPv4 echo reply behind a header with options (IHL 6)", () => {
    const plain = echoReplyFor(echo4);
    const withOptions = Buffer.concat([plain.subarray(0, 20), Buffer.from([1, 1, 1, 0]), plain.subarray(20)]);
    withOptions[0] = 0x46;
    expect(decodeIcmp(4, withOptions)).toMatchObject({
      kind: "echo_reply",
      identifier: 0x4242,
      sequence: 7,
      payload,
    });
  });

  test("IPv6 echo reply: no IP header on raw ICMPv6 sockets", () => {
    expect(decodeIcmp(6, echoReplyFor(echo6))).toEqual({
      kind: "echo_reply",
      identifier: 0x4242,
      sequence: 7,
      payload,
    });
  });

  test("IPv4: a bad ICMP checksum makes the datagram malformed", () => {
    const reply = echoReplyFor(echo4);
    reply[reply.length - 1] = (reply[reply.length - 1] ?? 0) ^ 0xff;
    expect(decodeIcmp(4, reply)).toBeUndefined();
  });

  test("IPv4: not ICMP, not version 4, IHL below 5 or past the end: malformed", () => {
    const reply = echoReplyFor(echo4);
    const udp = Buffer.from(reply);
    udp[9] = 17;
    const v6 = Buffer.from(reply);
    v6[0] = 0x65;
    const shortIhl = Buffer.from(reply);
    shortIhl[0] = 0x44;
    const longIhl = Buffer.from(reply.subarray(0, 30));
    longIhl[0] = 0x4f;
    for (const datagram of [udp, v6, shortIhl, longIhl]) expect(decodeIcmp(4, datagram)).toBeUndefined();
  });

  test("truncated datagrams are malformed, never a crash", () => {
    const reply4 = echoReplyFor(echo4);
    const reply6 = echoReplyFor(echo6);
    for (let length = 0; length < 28; length++)
      expect(decodeIcmp(4, reply4.subarray(0, length))).toBeUndefined();
    for (let length = 0; length < 8; length++)
      expect(decodeIcmp(6, reply6.subarray(0, length))).toBeUndefined();
  });

  test("echo requests and other types are reported as other", () => {
    expect(decodeIcmp(4, ipv4Datagram("192.0.2.9", "192.0.2.1", Buffer.from(HAND_MADE_REQUEST)))).toEqual({
      kind: "other",
      type: 8,
      code: 0,
    });
    expect(decodeIcmp(6, Buffer.from("8700000000000000", "hex"))).toEqual({
      kind: "other",
      type: 135,
      code: 0,
    });
  });

  test("IPv4 destination unreachable quoting our request (IP header + 8 bytes, RFC 792)", () => {
    expect(decodeIcmp(4, icmpErrorFor(echo4, 3, 1, "198.51.100.1"))).toEqual({
      kind: "error",
      error: "unreachable",
      type: 3,
      code: 1,
      originalDestination: "192.0.2.2",
      identifier: 0x4242,
      sequence: 7,
      quotedPayload: Buffer.alloc(0),
    });
  });

  test("IPv4 time exceeded quoting more of the request exposes the cookie bytes", () => {
    const decoded = decodeIcmp(4, icmpErrorFor(echo4, 11, 0, "198.51.100.1", 16));
    expect(decoded).toMatchObject({
      kind: "error",
      error: "time_exceeded",
      quotedPayload: payload.subarray(0, 8),
    });
  });

  test("IPv6 destination unreachable and packet too big quoting our request", () => {
    expect(decodeIcmp(6, icmpErrorFor(echo6, 1, 3, "2001:db8:ffff::1", 24))).toMatchObject({
      kind: "error",
      error: "unreachable",
      code: 3,
      originalDestination: "2001:db8::2",
      identifier: 0x4242,
      sequence: 7,
    });
    expect(decodeIcmp(6, icmpErrorFor(echo6, 2, 0, "2001:db8:ffff::1"))).toMatchObject({
      error: "packet_too_big",
    });
  });

  test("errors quoting something other than an echo request are other", () => {
    const udpQuote = icmpErrorFor(echo4, 3, 3, "192.0.2.2");
    udpQuote[20 + 8 + 9] = 17; // inner IP protocol: UDP
    withChecksum(udpQuote.subarray(20));
    // …except UDP, which UDP traceroute matches by its ports instead.
    expect(decodeIcmp(4, udpQuote)).toMatchObject({ kind: "udp_error", type: 3, code: 3 });

    const redirect = icmpErrorFor(echo4, 5, 1, "192.0.2.254");
    expect(decodeIcmp(4, redirect)).toEqual({ kind: "other", type: 5, code: 1 });

    const withExtensionHeader = icmpErrorFor(echo6, 1, 0, "2001:db8::ff");
    withExtensionHeader[8 + 6] = 0; // hop-by-hop options before the ICMPv6 header
    expect(decodeIcmp(6, withExtensionHeader)).toEqual({ kind: "other", type: 1, code: 0 });

    const cutShort = icmpErrorFor(echo6, 1, 0, "2001:db8::ff").subarray(0, 8 + 40 + 4);
    expect(decodeIcmp(6, cutShort)).toEqual({ kind: "other", type: 1, code: 0 });
  });
});

describe("decoder fuzz", () => {
  test("thousands of random and mutated datagrams never throw", () => {
    const random = prng(0x1c3b);
    const payload = Buffer.from("cookie!!padding.");
    const seeds = [
      echoReplyFor(sentEcho(4, "192.0.2.2", 1, 2, payload)),
      echoReplyFor(sentEcho(6, "2001:db8::2", 1, 2, payload)),
      icmpErrorFor(sentEcho(4, "192.0.2.2", 1, 2, payload), 3, 1, "198.51.100.1", 24),
      icmpErrorFor(sentEcho(6, "2001:db8::2", 1, 2, payload), 3, 0, "2001:db8::ff", 24),
    ];
    let decoded = 0;
    for (let i = 0; i < 20_000; i++) {
      let datagram: Buffer;
      if (i % 2 === 0) {
        datagram = Buffer.alloc(Math.floor(random() * 120));
        for (let j = 0; j < datagram.length; j++) datagram[j] = Math.floor(random() * 256);
        // Make a share of them look like IPv4 + ICMP so deeper code paths run too.
        if (datagram.length > 20 && random() < 0.5) {
          datagram[0] = 0x45;
          datagram[9] = 1;
        }
      } else {
        const seed = seeds[i % seeds.length] ?? Buffer.alloc(0);
        datagram = Buffer.from(seed.subarray(0, Math.floor(random() * (seed.length + 1))));
        const flips = Math.floor(random() * 4);
        for (let f = 0; f < flips && datagram.length > 0; f++) {
          datagram[Math.floor(random() * datagram.length)] = Math.floor(random() * 256);
        }
      }
      for (const family of [4, 6] as const) {
        if (decodeIcmp(family, datagram) !== undefined) decoded++;
      }
    }
    expect(decoded).toBeGreaterThan(0);
  });
});

describe("address text", () => {
  test("IPv4 dotted quad", () => {
    expect(formatIpAddress(Buffer.from([192, 0, 2, 1]))).toBe("192.0.2.1");
  });

  test.each([
    ["2001:db8::1", "2001:0DB8:0000:0000:0000:0000:0000:0001"],
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
    ["2001:0:0:1::1", "2001:0:0:1:0:0:0:1"],
    ["::", "::"],
    ["::1", "::1"],
    ["fe80::", "fe80::"],
    ["::ffff:c000:201", "::ffff:192.0.2.1"],
  ])("IPv6 %s formats and normalizes the same (RFC 5952)", (canonical, written) => {
    expect(normalizeIpLiteral(written)).toBe(canonical);
    expect(formatIpAddress(ipv6Bytes(canonical))).toBe(canonical);
  });

  test("the zone index is dropped for comparison", () => {
    expect(normalizeIpLiteral("FE80::0001%eth0")).toBe("fe80::1");
    expect(normalizeIpLiteral("192.0.2.1")).toBe("192.0.2.1");
  });
});
