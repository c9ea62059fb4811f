import { describe, expect, test } from "vitest";
import {
  headerValue,
  headerValues,
  parseCSeq,
  parseNameAddr,
  parseSipMessage,
  parseSipUri,
  parseVia,
  serializeRequest,
  SipStreamFramer,
  splitList,
} from "../../../services/probe/src/sip/message.ts";

// A response as kamailio sends it, with a compact header, folding and a comma-separated Via list.
const RESPONSE = Buffer.from(
  [
    "SIP/2.0 200 OK",
    "v: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKabc;rport=40000;received=198.51.100.1,",
    " SIP/2.0/UDP 192.0.2.99;branch=z9hG4bKdef",
    'From: "Office" <sip:office100@pbx.lab.example>;tag=1234',
    "To: <sip:office100@pbx.lab.example>;tag=srv",
    "i: call-1@netprobe",
    "CSeq: 2 REGISTER",
    "Contact: <sip:office100@192.0.2.10:5062>;expires=60, <sip:office100@192.0.2.11>;expires=30",
    "Content-Length: 4",
    "",
    "abcdEXTRA",
  ].join("\r\n"),
);

describe("SIP message parser", () => {
  test("parses a response: compact names, folding, lists, body cut at Content-Length", () => {
    const m = parseSipMessage(RESPONSE);
    if ("error" in m) throw new Error(m.error);
    expect(m).toMatchObject({ kind: "response", status: 200, reason: "OK" });
    expect(headerValue(m, "call-id")).toBe("call-1@netprobe");
    const vias = headerValues(m, "via");
    expect(vias).toHaveLength(2);
    expect(parseVia(vias[0]!)).toEqual({
      transport: "UDP",
      host: "192.0.2.10",
      port: 5062,
      params: { branch: "z9hG4bKabc", rport: "40000", received: "198.51.100.1" },
    });
    expect(headerValues(m, "contact").map((c) => parseNameAddr(c)?.params.expires)).toEqual(["60", "30"]);
    expect(parseNameAddr(headerValue(m, "from")!)).toEqual({
      display: "Office",
      uri: "sip:office100@pbx.lab.example",
      params: { tag: "1234" },
    });
    expect(parseCSeq(headerValue(m, "cseq"))).toEqual({ seq: 2, method: "REGISTER" });
    expect(m.body.toString()).toBe("abcd");
  });

  test("round-trips what the probe builds; Content-Length is computed", () => {
    const data = serializeRequest({
      method: "OPTIONS",
      uri: "sip:pbx.lab.example",
      headers: [
        ["Via", "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK1"],
        ["Call-ID", "x"],
      ],
      body: "héllo",
    });
    const m = parseSipMessage(data);
    if ("error" in m) throw new Error(m.error);
    expect(m).toMatchObject({ kind: "request", method: "OPTIONS", uri: "sip:pbx.lab.example" });
    expect(headerValue(m, "content-length")).toBe("6");
    expect(m.body.toString()).toBe("héllo");
  });

  test("refuses header injection through a value", () => {
    expect(() =>
      serializeRequest({ method: "OPTIONS", uri: "sip:x", headers: [["X", "a\r\nVia: evil"]] }),
    ).toThrow(/line break/);
  });

  test.each([
    ["empty", ""],
    ["no blank line", "SIP/2.0 200 OK\r\nVia: x\r\n"],
    ["bad start line", "HELLO\r\n\r\n"],
    ["bad status", "SIP/2.0 999 No\r\n\r\n"],
    ["short body", "SIP/2.0 200 OK\r\nContent-Length: 10\r\n\r\nabc"],
    ["bad length", "SIP/2.0 200 OK\r\nContent-Length: -1\r\n\r\n"],
    ["continuation first", "SIP/2.0 200 OK\r\n folded\r\n\r\n"],
    ["nameless header", "SIP/2.0 200 OK\r\n: x\r\n\r\n"],
  ])("malformed (%s) → an error, not a throw", (_name, text) => {
    expect(parseSipMessage(Buffer.from(text))).toHaveProperty("error");
  });

  test("URIs and list splitting respect brackets and quotes", () => {
    expect(parseSipUri("sip:echo@[2001:db8::1]:5070;transport=tcp")).toMatchObject({
      user: "echo",
      host: "[2001:db8::1]",
      port: 5070,
      params: { transport: "tcp" },
    });
    expect(splitList('"a, b" <sip:x>, <sip:y;p=1,2>')).toEqual(['"a, b" <sip:x>', "<sip:y;p=1,2>"]);
    expect(parseVia("SIP/2.0/UDP host:99999")).toBeUndefined();
  });

  test("stream framer: cuts by Content-Length, skips keep-alive CRLFs, waits for the rest", () => {
    const framer = new SipStreamFramer();
    const one = "SIP/2.0 200 OK\r\nContent-Length: 3\r\n\r\nabc";
    const two = "SIP/2.0 404 Not Found\r\nl: 0\r\n\r\n";
    const all = Buffer.from(`\r\n\r\n${one}${two}`);
    const first = framer.push(all.subarray(0, 30));
    expect(first).toEqual({ messages: [] });
    const rest = framer.push(all.subarray(30));
    if ("error" in rest) throw new Error(rest.error);
    expect(rest.messages.map((m) => m.toString())).toEqual([one, two]);
    expect(new SipStreamFramer().push(Buffer.from("SIP/2.0 200 OK\r\n\r\n"))).toHaveProperty("error");
  });
});
