import { describe, expect, test } from "vitest";
import {
  decodeRtcp,
  decodeRtp,
  encodeReceiverReport,
  encodeRtp,
  encodeSenderReport,
  JitterEstimator,
  ntpTime,
} from "../../../services/probe/src/sip/rtp.ts";
import { buildOffer, parseAnswer } from "../../../services/probe/src/sip/sdp.ts";

describe("RTP and RTCP", () => {
  test("RTP round trip; CSRC, extension and padding are skipped on decode", () => {
    const payload = Buffer.from("0123456789");
    const data = encodeRtp({
      payloadType: 8,
      marker: true,
      sequence: 65535,
      timestamp: 2 ** 32 - 1,
      ssrc: 0xdeadbeef,
      payload,
    });
    expect(decodeRtp(data)).toEqual({
      payloadType: 8,
      marker: true,
      sequence: 65535,
      timestamp: 2 ** 32 - 1,
      ssrc: 0xdeadbeef,
      payload,
    });
    // Version 2, padding, extension, 1 CSRC: 12 + 4 (CSRC) + 4 + 4 (extension) + payload + 3 padding.
    const fancy = Buffer.concat([
      Buffer.from([0b1011_0001, 0]),
      Buffer.alloc(10),
      Buffer.alloc(4),
      Buffer.from([0xbe, 0xde, 0, 1]),
      Buffer.alloc(4),
      Buffer.from("abc"),
      Buffer.from([0, 0, 3]),
    ]);
    expect(decodeRtp(fancy)?.payload.toString()).toBe("abc");
    expect(decodeRtp(Buffer.alloc(11))).toBeUndefined();
    expect(decodeRtp(Buffer.from([0x80, 200, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]))).toBeUndefined(); // RTCP SR
  });

  test("RTCP RR and SR compounds decode to what was encoded", () => {
    const block = {
      ssrc: 7,
      fractionLost: 0.25,
      cumulativeLost: -3,
      highestSequence: 70000,
      jitter: 160,
      lastSr: 1,
      delaySinceLastSr: 2,
    };
    const rr = decodeRtcp(encodeReceiverReport(42, [block], "echo@lab"));
    expect(rr).toEqual([
      { type: "rr", ssrc: 42, reports: [block] },
      { type: "other", packetType: 202 },
    ]);
    const now = ntpTime(Date.UTC(2024, 0, 1, 0, 0, 0, 500));
    expect(now.fraction).toBe(2 ** 31);
    const sr = decodeRtcp(
      encodeSenderReport(
        9,
        {
          ntpSeconds: now.seconds,
          ntpFraction: now.fraction,
          rtpTimestamp: 5,
          packetCount: 6,
          octetCount: 7,
        },
        [],
        "p",
      ),
    );
    expect(sr?.[0]).toMatchObject({ type: "sr", ssrc: 9, packetCount: 6, octetCount: 7, reports: [] });
    // A compound must start with SR or RR (RFC 3550 §6.1).
    expect(decodeRtcp(Buffer.from([0x81, 203, 0, 1, 0, 0, 0, 1]))).toBeUndefined();
  });

  test("RFC 3550 jitter estimator: constant transit → 0; alternating ±d converges to d", () => {
    const flat = new JitterEstimator();
    for (let i = 0; i < 100; i++) flat.add(25);
    expect(flat.value).toBe(0);
    const alt = new JitterEstimator();
    for (let i = 0; i < 500; i++) alt.add(i % 2 === 0 ? 0 : 10);
    expect(alt.value).toBeCloseTo(10, 3);
  });
});

describe("SDP offer/answer", () => {
  test("offer lists the codecs; answer gives address, port, first common codec and direction", () => {
    const offer = buildOffer({
      sessionId: 1,
      address: "192.0.2.10",
      port: 20000,
      codecs: ["G729", "PCMU", "PCMA"],
      ptimeMs: 20,
    });
    expect(offer).toContain("m=audio 20000 RTP/AVP 18 0 8\r\n");
    expect(offer).toContain("a=ptime:20");
    const answer = [
      "v=0",
      "o=x 1 1 IN IP4 203.0.113.60",
      "s=-",
      "c=IN IP4 203.0.113.60",
      "t=0 0",
      "m=audio 21000 RTP/AVP 8 0",
      "c=IN IP4 203.0.113.61",
      "a=rtpmap:8 PCMA/8000",
      "a=recvonly",
    ].join("\r\n");
    expect(parseAnswer(answer, ["PCMU", "PCMA"])).toEqual({
      address: "203.0.113.61",
      port: 21000,
      codec: "PCMA",
      payloadType: 8,
      direction: "recvonly",
      ptimeMs: undefined,
    });
    expect(parseAnswer("v=0\r\nm=audio 0 RTP/AVP 0\r\n", ["PCMU"])).toHaveProperty("error");
    expect(
      parseAnswer("v=0\r\nc=IN IP4 192.0.2.4\r\nm=audio 5 RTP/AVP 96\r\na=rtpmap:96 opus/48000\r\n", [
        "PCMU",
      ]),
    ).toMatchObject({ codec: undefined });
  });
});
