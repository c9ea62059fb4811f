// The lab PBX's echo service: a tiny SIP user agent server (INVITE → 200 OK with SDP, ACK, BYE)
// and an RTP echo with configurable impairment, so the phone checks are measured against a known
// ground truth. kamailio proxies INVITEs for the `echo` extension here.
//
// Impairment (read from --config at every INVITE; pbx.ts writes it when a fault switches):
//   loss_pct   each echoed packet is dropped with this probability;
//   jitter_ms  each echoed packet is held delay_ms + U(0, 3 × jitter_ms): for a uniform hold on
//              [0, a] the mean |D(i) − D(i−1)| is a/3, which is what the RFC 3550 estimator tracks;
//   delay_ms   fixed extra hold;
//   one_way    no RTP goes back at all (RTCP receiver reports still do).
// Like a PBX echo application, the echo re-packetises: own SSRC, sequence and timestamps, the
// payload unchanged. It sends RTCP receiver reports about the stream it receives every second.
// When a call ends (BYE) one JSON line with the call's ground truth is appended to --calls.

import { randomBytes, randomInt } from "node:crypto";
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { appendFileSync, readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import {
  headerValue,
  parseSipMessage,
  responseHeadersFor,
  serializeResponse,
  type SipRequest,
} from "../../services/probe/src/sip/message.ts";
import {
  decodeRtcp,
  decodeRtp,
  encodeReceiverReport,
  encodeRtp,
  JitterEstimator,
} from "../../services/probe/src/sip/rtp.ts";

process.title = "rtp-echo";

const { values: args } = parseArgs({
  options: {
    address: { type: "string" },
    port: { type: "string", default: "5070" },
    config: { type: "string" },
    calls: { type: "string" },
  },
});
if (!args.address || !args.config || !args.calls) {
  console.error("usage: rtp-echo.ts --address A --port P --config FILE --calls FILE");
  process.exit(2);
}
const ADDRESS = args.address;
const CONFIG = args.config;
const CALLS = args.calls;

interface Impairment {
  loss_pct: number;
  jitter_ms: number;
  delay_ms: number;
  one_way: boolean;
}

function readImpairment(): Impairment {
  try {
    const c = JSON.parse(readFileSync(CONFIG, "utf8")) as Partial<Impairment>;
    return {
      loss_pct: Number(c.loss_pct) || 0,
      jitter_ms: Number(c.jitter_ms) || 0,
      delay_ms: Number(c.delay_ms) || 0,
      one_way: c.one_way === true,
    };
  } catch {
    return { loss_pct: 0, jitter_ms: 0, delay_ms: 0, one_way: false };
  }
}

const PAYLOAD_TYPES: Record<string, number> = { PCMU: 0, PCMA: 8, G729: 18 };

interface Call {
  callId: string;
  toTag: string;
  impairment: Impairment;
  rtp: Socket;
  rtcp: Socket;
  port: number;
  payloadType: number;
  codec: string;
  /** Where the offer said to send media; replaced by the source of the first packet (symmetric RTP). */
  peer: { address: string; port: number };
  rtcpPeer: { address: string; port: number };
  ssrc: number;
  seq: number;
  timestamp: number;
  received: number;
  echoed: number;
  dropped: number;
  remoteSsrc: number | undefined;
  baseSeq: number | undefined;
  maxSeq: number;
  cycles: number;
  expectedPrior: number;
  receivedPrior: number;
  /** Jitter of the stream the echo receives (RTP timestamp units), for its RTCP reports. */
  inbound: JitterEstimator;
  lastArrivalTs: { arrival: number; ts: number } | undefined;
  /** Ground truth of what the echo itself adds: RFC 3550 jitter over its hold times, in ms. */
  added: JitterEstimator;
  holdSumMs: number;
  reportTimer: NodeJS.Timeout;
  okTimer: NodeJS.Timeout | undefined;
  ended: boolean;
  started: number;
}

const calls = new Map<string, Call>();
const sip = createSocket("udp4");

function reply(
  request: SipRequest,
  to: RemoteInfo,
  status: number,
  reason: string,
  extra: [string, string][] = [],
  body?: string,
  toTag?: string,
): void {
  const headers = [...responseHeadersFor(request, toTag), ...extra];
  sip.send(serializeResponse(status, reason, headers, body), to.port, to.address);
}

function bindPair(): Promise<{ rtp: Socket; rtcp: Socket; port: number }> {
  return new Promise((resolve, reject) => {
    let attempts = 0;
    const tryOne = (): void => {
      if (attempts++ > 50) return reject(new Error("no free RTP port pair"));
      const port = 20000 + 2 * randomInt(5000);
      const rtp = createSocket("udp4");
      const rtcp = createSocket("udp4");
      rtp.once("error", () => {
        rtp.close();
        rtcp.close();
        tryOne();
      });
      rtp.bind(port, ADDRESS, () => {
        rtcp.once("error", () => {
          rtp.close();
          rtcp.close();
          tryOne();
        });
        rtcp.bind(port + 1, ADDRESS, () => resolve({ rtp, rtcp, port }));
      });
    };
    tryOne();
  });
}

async function onInvite(request: SipRequest, from: RemoteInfo): Promise<void> {
  const callId = headerValue(request, "call-id") ?? "";
  const existing = calls.get(callId);
  if (existing) {
    // A retransmitted INVITE: the 200 OK is being retransmitted already.
    return;
  }
  const sdp = request.body.toString("utf8");
  const conn = /^c=IN IP4 ([0-9.]+)/m.exec(sdp)?.[1];
  const media = /^m=audio (\d+) RTP\/AVP ([\d ]+)/m.exec(sdp);
  if (!conn || !media) {
    reply(request, from, 488, "Not Acceptable Here");
    return;
  }
  const offered = (media[2] ?? "").trim().split(/\s+/).map(Number);
  const codec =
    Object.keys(PAYLOAD_TYPES).find((c) => offered[0] === PAYLOAD_TYPES[c]) ??
    Object.keys(PAYLOAD_TYPES).find((c) => offered.includes(PAYLOAD_TYPES[c]!));
  if (codec === undefined) {
    reply(request, from, 488, "Not Acceptable Here");
    return;
  }
  const { rtp, rtcp, port } = await bindPair();
  const remotePort = Number(media[1]);
  const call: Call = {
    callId,
    toTag: randomBytes(6).toString("hex"),
    impairment: readImpairment(),
    rtp,
    rtcp,
    port,
    payloadType: PAYLOAD_TYPES[codec]!,
    codec,
    peer: { address: conn, port: remotePort },
    rtcpPeer: { address: conn, port: remotePort + 1 },
    ssrc: randomBytes(4).readUInt32BE(0),
    seq: randomInt(0x10000),
    timestamp: randomBytes(4).readUInt32BE(0),
    received: 0,
    echoed: 0,
    dropped: 0,
    remoteSsrc: undefined,
    baseSeq: undefined,
    maxSeq: 0,
    cycles: 0,
    expectedPrior: 0,
    receivedPrior: 0,
    inbound: new JitterEstimator(),
    lastArrivalTs: undefined,
    added: new JitterEstimator(),
    holdSumMs: 0,
    reportTimer: setInterval(() => sendReport(call), 1000),
    okTimer: undefined,
    ended: false,
    started: Date.now(),
  };
  calls.set(callId, call);
  rtp.on("message", (data, rinfo) => onRtp(call, data, rinfo));
  rtcp.on("message", (data, rinfo) => {
    if (decodeRtcp(data) !== undefined) call.rtcpPeer = { address: rinfo.address, port: rinfo.port };
  });
  const answer =
    [
      "v=0",
      `o=rtp-echo ${randomInt(1, 2 ** 31)} 1 IN IP4 ${ADDRESS}`,
      "s=netprobe lab echo",
      `c=IN IP4 ${ADDRESS}`,
      "t=0 0",
      `m=audio ${port} RTP/AVP ${call.payloadType}`,
      `a=rtpmap:${call.payloadType} ${codec}/8000`,
      "a=sendrecv",
    ].join("\r\n") + "\r\n";
  const extra: [string, string][] = [
    ["Contact", `<sip:echo@${ADDRESS}:${args.port}>`],
    ["Content-Type", "application/sdp"],
    ["Server", "netprobe lab rtp-echo"],
  ];
  for (const rr of request.headers.filter((h) => h.name === "record-route"))
    extra.push(["Record-Route", rr.value]);
  // 200 OK is retransmitted until the ACK (RFC 3261 §13.3.1.4): T1 doubling up to T2, 64×T1 in all.
  let interval = 500;
  const send = (): void => {
    if (call.ended) return;
    reply(request, from, 200, "OK", extra, answer, call.toTag);
    call.okTimer = setTimeout(send, interval);
    interval = Math.min(interval * 2, 4000);
  };
  send();
  setTimeout(() => clearTimeout(call.okTimer), 32_000).unref();
  // A call nobody hangs up ends on its own.
  setTimeout(() => endCall(call), 300_000).unref();
}

function onRtp(call: Call, data: Buffer, rinfo: RemoteInfo): void {
  if (call.ended) return;
  const p = decodeRtp(data);
  if (p === undefined) return;
  const now = performance.now();
  // Symmetric RTP (RFC 4961): answer where the media comes from, which also crosses the office NAT.
  call.peer = { address: rinfo.address, port: rinfo.port };
  call.received++;
  if (call.remoteSsrc === undefined || call.baseSeq === undefined) {
    call.remoteSsrc = p.ssrc;
    call.baseSeq = p.sequence;
    call.maxSeq = p.sequence;
  } else {
    const delta = (p.sequence - call.maxSeq) & 0xffff;
    if (delta > 0 && delta < 0x8000) {
      if (p.sequence < call.maxSeq) call.cycles += 0x10000;
      call.maxSeq = p.sequence;
    }
  }
  const arrivalTs = (now * 8) >>> 0; // 8 kHz clock units
  call.inbound.add(arrivalTs - p.timestamp);
  call.lastArrivalTs = { arrival: now, ts: p.timestamp };
  const imp = call.impairment;
  if (imp.one_way) return;
  if (Math.random() * 100 < imp.loss_pct) {
    call.dropped++;
    return;
  }
  const hold = imp.delay_ms + (imp.jitter_ms > 0 ? Math.random() * 3 * imp.jitter_ms : 0);
  const payload = Buffer.from(p.payload);
  const emit = (): void => {
    if (call.ended) return;
    const actualHold = performance.now() - now;
    call.added.add(actualHold);
    call.holdSumMs += actualHold;
    call.echoed++;
    call.seq = (call.seq + 1) & 0xffff;
    call.timestamp = (call.timestamp + 160) >>> 0;
    const out = encodeRtp({
      payloadType: call.payloadType,
      marker: false,
      sequence: call.seq,
      timestamp: call.timestamp,
      ssrc: call.ssrc,
      payload,
    });
    call.rtp.send(out, call.peer.port, call.peer.address);
  };
  if (hold <= 0) emit();
  else setTimeout(emit, hold);
}

function sendReport(call: Call): void {
  if (call.ended || call.remoteSsrc === undefined || call.baseSeq === undefined) return;
  const extendedMax = call.cycles + call.maxSeq;
  const expected = extendedMax - call.baseSeq + 1;
  const lost = expected - call.received;
  const expectedInterval = expected - call.expectedPrior;
  const receivedInterval = call.received - call.receivedPrior;
  call.expectedPrior = expected;
  call.receivedPrior = call.received;
  const lostInterval = expectedInterval - receivedInterval;
  const fraction = expectedInterval <= 0 || lostInterval <= 0 ? 0 : lostInterval / expectedInterval;
  const rr = encodeReceiverReport(
    call.ssrc,
    [
      {
        ssrc: call.remoteSsrc,
        fractionLost: fraction,
        cumulativeLost: lost,
        highestSequence: extendedMax,
        jitter: call.inbound.value,
        lastSr: 0,
        delaySinceLastSr: 0,
      },
    ],
    `rtp-echo@${ADDRESS}`,
  );
  call.rtcp.send(rr, call.rtcpPeer.port, call.rtcpPeer.address);
}

function endCall(call: Call): void {
  if (call.ended) return;
  sendReport(call);
  call.ended = true;
  clearInterval(call.reportTimer);
  clearTimeout(call.okTimer);
  calls.delete(call.callId);
  try {
    call.rtp.close();
    call.rtcp.close();
  } catch {
    // closed
  }
  const truth = {
    call_id: call.callId,
    ended_at: new Date().toISOString(),
    codec: call.codec,
    impairment: call.impairment,
    received: call.received,
    dropped: call.dropped,
    echoed: call.echoed,
    loss_pct: call.received > 0 ? (100 * call.dropped) / call.received : 0,
    added_jitter_ms: call.added.value,
    added_delay_avg_ms: call.echoed > 0 ? call.holdSumMs / call.echoed : 0,
    duration_ms: Date.now() - call.started,
  };
  appendFileSync(CALLS, `${JSON.stringify(truth)}\n`);
}

sip.on("message", (data, rinfo) => {
  const m = parseSipMessage(data);
  if ("error" in m || m.kind !== "request") {
    if ("error" in m)
      console.error(`rtp-echo: malformed SIP from ${rinfo.address}:${rinfo.port}: ${m.error}`);
    return;
  }
  const callId = headerValue(m, "call-id") ?? "";
  const call = calls.get(callId);
  switch (m.method) {
    case "INVITE":
      onInvite(m, rinfo).catch((error: unknown) => {
        console.error(`rtp-echo: INVITE failed: ${String(error)}`);
        reply(m, rinfo, 500, "Server Internal Error");
      });
      return;
    case "ACK":
      if (call) clearTimeout(call.okTimer);
      return;
    case "BYE":
      reply(m, rinfo, call ? 200 : 481, call ? "OK" : "Call/Transaction Does Not Exist");
      if (call) endCall(call);
      return;
    case "CANCEL":
      reply(m, rinfo, 200, "OK");
      return;
    case "OPTIONS":
      reply(m, rinfo, 200, "OK", [["Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS"]]);
      return;
    default:
      reply(m, rinfo, 405, "Method Not Allowed");
  }
});
sip.on("error", (error) => {
  console.error(`rtp-echo: ${error.message}`);
  process.exit(1);
});
sip.bind(Number(args.port), ADDRESS, () => console.error(`rtp-echo: listening on ${ADDRESS}:${args.port}`));
process.on("SIGTERM", () => process.exit(0));
