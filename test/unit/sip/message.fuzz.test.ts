// Fuzz: the SIP parser (datagrams and the TCP framer, plus every header parser a check applies to
// what comes back) and the RTP/RTCP/SDP decoders get 100,000+ malformed inputs each, built by
// mutating valid messages. None may throw; each must return a message or a reason.
import { describe, expect, test } from "vitest";
import { parseDigestChallenge } from "../../../services/probe/src/sip/digest.ts";
import {
  headerValues,
  parseCSeq,
  parseNameAddr,
  parseSipMessage,
  parseSipUri,
  parseVia,
  SipStreamFramer,
} from "../../../services/probe/src/sip/message.ts";
import {
  decodeRtcp,
  decodeRtp,
  encodeReceiverReport,
  encodeRtp,
  encodeSenderReport,
} from "../../../services/probe/src/sip/rtp.ts";
import { parseAnswer } from "../../../services/probe/src/sip/sdp.ts";
import { prng } from "../../fixtures/prng.ts";

const SIP_SEEDS = [
  'SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK1;rport=1;received=198.51.100.1\r\nFrom: <sip:office100@pbx.lab.example>;tag=a\r\nTo: <sip:office100@pbx.lab.example>;tag=b\r\nCall-ID: c@x\r\nCSeq: 1 REGISTER\r\nWWW-Authenticate: Digest realm="pbx.lab.example", nonce="abc", qop="auth", algorithm=SHA-256\r\nContent-Length: 0\r\n\r\n',
  'SIP/2.0 200 OK\r\nv: SIP/2.0/TCP [2001:db8::1]:5060;branch=z9hG4bK2\r\nf: "A, B" <sip:a@b>;tag=1\r\nt: <sip:echo@b>;tag=2\r\ni: x\r\nCSeq: 1 INVITE\r\nm: <sip:echo@203.0.113.60:5070>\r\nRecord-Route: <sip:203.0.113.60;lr>\r\nc: application/sdp\r\nl: 120\r\n\r\nv=0\r\no=x 1 1 IN IP4 203.0.113.60\r\ns=-\r\nc=IN IP4 203.0.113.60\r\nt=0 0\r\nm=audio 20000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n',
  "BYE sip:office100@192.0.2.10:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.60;branch=z9hG4bK3\r\nFrom: <sip:echo@b>;tag=2\r\nTo: <sip:a@b>;tag=1\r\nCall-ID: x\r\nCSeq: 2 BYE\r\n\r\n",
];

const TOKENS = [
  "\r\n",
  "\n",
  ":",
  ";",
  ",",
  "<",
  ">",
  '"',
  "\\",
  " ",
  "\t",
  "=",
  "@",
  "[",
  "]",
  "SIP/2.0",
  "Content-Length: 99999",
  "l: 5",
  "\r\n\r\n",
  "\0",
  "ÿ",
];

function mutate(seed: Buffer, rnd: () => number): Buffer {
  const bytes = [...seed];
  const edits = 1 + Math.floor(rnd() * 8);
  for (let e = 0; e < edits; e++) {
    const at = Math.floor(rnd() * (bytes.length + 1));
    switch (Math.floor(rnd() * 6)) {
      case 0:
        bytes[at] = Math.floor(rnd() * 256);
        break;
      case 1:
        bytes.splice(at, 1 + Math.floor(rnd() * 16));
        break;
      case 2:
        bytes.splice(at, 0, ...Buffer.from(TOKENS[Math.floor(rnd() * TOKENS.length)]!));
        break;
      case 3:
        bytes.length = Math.min(bytes.length, at);
        break;
      case 4:
        bytes.splice(
          at,
          0,
          ...bytes.slice(Math.floor(rnd() * bytes.length), Math.floor(rnd() * bytes.length)),
        );
        break;
      default:
        bytes.splice(at, 0, ...Array.from({ length: Math.floor(rnd() * 32) }, () => Math.floor(rnd() * 256)));
    }
  }
  return Buffer.from(bytes);
}

const N = 100_000;
// Generous: the two CPUs of a CI runner are shared; this is a robustness test, not a speed one.
const TIMEOUT_MS = 120_000;

describe("fuzz", () => {
  test(
    `SIP parser, header parsers and stream framer: ${N} malformed messages, no exception`,
    () => {
      const rnd = prng(5);
      const seeds = SIP_SEEDS.map((s) => Buffer.from(s));
      let parsed = 0;
      let rejected = 0;
      let framer = new SipStreamFramer();
      for (let i = 0; i < N; i++) {
        const input =
          i % 10 === 0
            ? Buffer.from(Array.from({ length: Math.floor(rnd() * 300) }, () => Math.floor(rnd() * 256)))
            : mutate(seeds[i % seeds.length]!, rnd);
        try {
          const m = parseSipMessage(input);
          if ("error" in m) {
            expect(typeof m.error).toBe("string");
            rejected++;
          } else {
            parsed++;
            for (const v of headerValues(m, "via")) parseVia(v);
            for (const name of ["from", "to", "contact", "record-route"])
              for (const v of headerValues(m, name)) {
                const na = parseNameAddr(v);
                if (na) parseSipUri(na.uri);
              }
            for (const h of m.headers) if (h.name.endsWith("authenticate")) parseDigestChallenge(h.value);
            parseCSeq(m.headers.find((h) => h.name === "cseq")?.value);
            parseAnswer(m.body.toString("utf8"), ["PCMU", "PCMA", "G729"]);
          }
          const framed = framer.push(input);
          if ("error" in framed) framer = new SipStreamFramer();
        } catch (error) {
          throw new Error(`input ${i} threw: ${String(error)}\n${JSON.stringify(input.toString("latin1"))}`);
        }
      }
      // Both outcomes occur: the mutations do produce parseable-but-odd messages and garbage.
      expect(parsed).toBeGreaterThan(1000);
      expect(rejected).toBeGreaterThan(1000);
    },
    TIMEOUT_MS,
  );

  test(
    `RTP and RTCP decoders: ${N} malformed packets, no exception`,
    () => {
      const rnd = prng(3550);
      const seeds = [
        encodeRtp({
          payloadType: 0,
          marker: false,
          sequence: 1,
          timestamp: 2,
          ssrc: 3,
          payload: Buffer.alloc(160, 0xff),
        }),
        encodeReceiverReport(
          1,
          [
            {
              ssrc: 2,
              fractionLost: 0.1,
              cumulativeLost: 5,
              highestSequence: 9,
              jitter: 3,
              lastSr: 0,
              delaySinceLastSr: 0,
            },
          ],
          "a@b",
        ),
        encodeSenderReport(
          1,
          { ntpSeconds: 1, ntpFraction: 2, rtpTimestamp: 3, packetCount: 4, octetCount: 5 },
          [],
          "x",
        ),
      ];
      let rtp = 0;
      let rtcp = 0;
      for (let i = 0; i < N; i++) {
        const input =
          i % 10 === 0
            ? Buffer.from(Array.from({ length: Math.floor(rnd() * 80) }, () => Math.floor(rnd() * 256)))
            : mutate(seeds[i % seeds.length]!, rnd);
        try {
          if (decodeRtp(input) !== undefined) rtp++;
          if (decodeRtcp(input) !== undefined) rtcp++;
        } catch (error) {
          throw new Error(`input ${i} threw: ${String(error)}: ${input.toString("hex")}`);
        }
      }
      expect(rtp).toBeGreaterThan(100);
      expect(rtcp).toBeGreaterThan(100);
    },
    TIMEOUT_MS,
  );
});
