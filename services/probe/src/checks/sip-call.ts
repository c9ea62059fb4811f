// A real test call (phone area): INVITE to an echo extension, an RTP stream for N seconds, and from
// the echoed stream the loss, RFC 3550 jitter, round-trip time, reordering and an E-model MOS;
// then BYE. Every way a call can go wrong ends in one code a technician can act on.
//
// Each RTP payload starts with an 8-byte tag (a per-call cookie and the packet's index), so the
// echo is matched to what was sent even when the far end re-packetises with its own SSRC and
// sequence numbers, as a PBX echo application does. Jitter is the RFC 3550 §6.4.1 estimator run
// over the round-trip transit time of each echoed packet (arrival − actual send time), so the
// probe's own send-timer noise does not count as network jitter.

import { randomBytes, randomInt } from "node:crypto";
import { Type, type Static } from "@sinclair/typebox";
import type { CheckKind, Measurement } from "./check.ts";
import {
  newBranch,
  newToken,
  requestWithAuth,
  type AuthSettings,
  type RequestSpec,
  type SipClient,
  type TransactionOutcome,
} from "../sip/client.ts";
import {
  aor,
  connectionOptions,
  credentialOptions,
  openClient,
  passwordOf,
  realSipDependencies,
  resolveEndpoint,
  serverHeader,
  transportFailure,
  type SipDependencies,
  type SipEndpoint,
} from "../sip/common.ts";
import { errorMessage, failure } from "./common/failure.ts";
import { round } from "./common/round.ts";
import { burstRatio, CODEC_IMPAIRMENT, mosFromR, oneWayDelayMs, rFactor } from "../sip/emodel.ts";
import { openMediaSockets, type MediaSockets, type OpenMedia } from "../sip/media.ts";
import { headerValue, headerValues, parseNameAddr, parseVia, type SipResponse } from "../sip/message.ts";
import {
  decodeRtcp,
  decodeRtp,
  encodeRtp,
  encodeSenderReport,
  JitterEstimator,
  ntpTime,
  type ReportBlock,
} from "../sip/rtp.ts";
import { buildOffer, CODEC_NAMES, CODECS, parseAnswer, type CodecName } from "../sip/sdp.ts";

const options = Type.Object(
  {
    ...connectionOptions,
    ...credentialOptions,
    extension: Type.String({
      default: "echo",
      pattern: "^[A-Za-z0-9._~+*#-]{1,64}$",
      description: "the test extension to call: an echo service that returns the audio it receives",
    }),
    codec: Type.Union(
      CODEC_NAMES.map((c) => Type.Literal(c)),
      { default: "PCMU", description: "codec offered first (G.711 PCMU and PCMA are always offered too)" },
    ),
    duration_s: Type.Number({
      minimum: 0.2,
      maximum: 120,
      default: 5,
      description: "how long to stream RTP once answered; the check's timeout must cover setup + this + 2 s",
    }),
    ptime_ms: Type.Integer({
      minimum: 10,
      maximum: 60,
      default: 20,
      description: "packet time (ms of audio per RTP packet)",
    }),
    answer_timeout_ms: Type.Integer({
      minimum: 100,
      maximum: 120000,
      default: 15000,
      description: "ringing longer than this ends the call attempt as no_answer (CANCEL)",
    }),
    drain_ms: Type.Integer({
      minimum: 50,
      maximum: 10000,
      default: 1000,
      description: "how long to wait for the last echoes after the stream ends; later ones count as lost",
    }),
  },
  { additionalProperties: false },
);

/** Options of a sip-call check. */
export type SipCallOptions = Static<typeof options>;

/** The I/O of a call: signalling plus the media sockets. */
export interface SipCallDependencies extends SipDependencies {
  openMedia: OpenMedia;
}

/** Builds the check over the given I/O. */
export function createSipCallCheck(deps: SipCallDependencies): CheckKind<typeof options> {
  return { kind: "sip-call", defaultArea: "phone", options, run: (t, o, _c, s) => runCall(deps, t, o, s) };
}

/** A test call over the real network. */
export const sipCall: CheckKind<typeof options> = createSipCallCheck({
  ...realSipDependencies,
  openMedia: openMediaSockets,
});

/** The dialog state the probe keeps (RFC 3261 §12.1.2). */
interface Dialog {
  remoteTarget: string;
  routes: string[];
  from: string;
  to: string;
  callId: string;
  inviteCseq: number;
}

async function runCall(
  deps: SipCallDependencies,
  target: string,
  opts: SipCallOptions,
  signal: AbortSignal,
): Promise<Measurement> {
  const endpoint = await resolveEndpoint(deps, target, opts, signal);
  if ("failure" in endpoint) return endpoint.failure;
  const client = await openClient(deps, endpoint, opts, signal);
  if ("failure" in client) return client.failure;
  let media: MediaSockets | undefined;
  try {
    media = await deps.openMedia(client.connection.local.address);
  } catch (error) {
    client.close();
    return failure("socket_error", `cannot open RTP sockets: ${errorMessage(error)}`, {}, {}, "error");
  }
  try {
    return await new TestCall(client, media, endpoint, opts, signal).run();
  } finally {
    media.close();
    client.close();
  }
}

/** Codes of INVITE final responses (RFC 3261 §21). */
function inviteFailureCode(status: number): string {
  if (status === 486 || status === 600) return "busy";
  if (status === 408 || status === 480 || status === 487) return "no_answer";
  if (status === 401 || status === 407 || status === 403) return "auth_failed";
  if (status >= 500 && status < 600) return "server_error";
  return "rejected";
}

class TestCall {
  readonly #client: SipClient;
  readonly #media: MediaSockets;
  readonly #endpoint: SipEndpoint;
  readonly #opts: SipCallOptions;
  readonly #signal: AbortSignal;
  readonly #where: string;
  readonly #detail: Record<string, unknown> = {};
  readonly #metrics: Record<string, number> = {};
  #remoteBye = false;
  #dialog: Dialog | undefined;

  constructor(
    client: SipClient,
    media: MediaSockets,
    endpoint: SipEndpoint,
    opts: SipCallOptions,
    signal: AbortSignal,
  ) {
    this.#client = client;
    this.#media = media;
    this.#endpoint = endpoint;
    this.#opts = opts;
    this.#signal = signal;
    this.#where = `${endpoint.address}:${endpoint.port}/${endpoint.transport}`;
  }

  async run(): Promise<Measurement> {
    const { opts } = { opts: this.#opts };
    const client = this.#client;
    const local = client.connection.local.address;
    const user = opts.username || opts.from_user;
    const from = `<${aor(user, this.#endpoint)}>;tag=${newToken()}`;
    const uri =
      aor(opts.extension, this.#endpoint) + (this.#endpoint.transport === "tcp" ? ";transport=tcp" : "");
    const to = `<${uri}>`;
    const callId = `${newToken(12)}@netprobe`;
    const codecs = [...new Set<CodecName>([opts.codec, "PCMU", "PCMA"])];
    const sdp = buildOffer({
      sessionId: randomInt(1, 2 ** 31),
      address: local,
      port: this.#media.rtpPort,
      codecs,
      ptimeMs: opts.ptime_ms,
    });
    Object.assign(this.#detail, {
      address: this.#endpoint.address,
      port: this.#endpoint.port,
      transport: this.#endpoint.transport,
      extension: opts.extension,
      local_rtp: `${local}:${this.#media.rtpPort}`,
    });
    const auth: AuthSettings | undefined =
      opts.username === ""
        ? undefined
        : {
            username: opts.auth_username || opts.username,
            password: passwordOf(opts),
            algorithms: opts.algorithms,
          };

    client.onRequest = (r) => {
      if (r.method === "BYE" && this.#dialog !== undefined && headerValue(r, "call-id") === callId) {
        this.#remoteBye = true;
        client.respond(r, 200, "OK");
      } else if (r.method === "OPTIONS") client.respond(r, 200, "OK");
      else if (r.method !== "ACK") client.respond(r, 481, "Call/Transaction Does Not Exist");
    };
    // Non-2xx final responses are ACKed by the client (again for each retransmission); 2xx here.
    client.onStrayResponse = (r) => this.#onStray(r, callId);

    // INVITE, answering auth challenges. Ringing longer than answer_timeout_ms (or past the check's
    // own deadline) is CANCELled (RFC 3261 §9.1) and the INVITE then waits for its 487, which the
    // client ACKs. Before any provisional there is nothing to CANCEL: the INVITE is abandoned.
    const t1 = opts.t1_ms;
    const abandon = new AbortController();
    let inviteBranch: string | undefined;
    let lastInviteCseq = 1;
    let ringingAt: number | undefined;
    let stoppedBy: "answer_timeout" | "check_timeout" | undefined;
    let cancelling: Promise<TransactionOutcome> | undefined;
    let graceTimer: NodeJS.Timeout | undefined;
    const stopRinging = (why: "answer_timeout" | "check_timeout"): void => {
      if (stoppedBy !== undefined) return;
      stoppedBy = why;
      if (inviteBranch === undefined) return abandon.abort();
      // Over UDP the CANCEL is retransmitted like any non-INVITE request (Timer E). The 487 should
      // follow its 200; without one, give up after 64·T1 (§9.1), or 2 s past the check's deadline.
      cancelling = client.transaction(
        { method: "CANCEL", uri, from, to, callId, cseq: lastInviteCseq, branch: inviteBranch },
        AbortSignal.any([abandon.signal, AbortSignal.timeout(why === "check_timeout" ? 2000 : 64 * t1)]),
      );
      graceTimer = setTimeout(() => abandon.abort(), why === "check_timeout" ? 2000 : 64 * t1);
    };
    const answerTimer = setTimeout(() => stopRinging("answer_timeout"), opts.answer_timeout_ms);
    const onCheckAbort = (): void => {
      if (stoppedBy === undefined) return stopRinging("check_timeout");
      // Already CANCELled on answer_timeout_ms: the check's deadline still bounds the wait for the 487.
      clearTimeout(graceTimer);
      graceTimer = setTimeout(() => abandon.abort(), 2000);
    };
    this.#signal.addEventListener("abort", onCheckAbort, { once: true });
    if (this.#signal.aborted) onCheckAbort();
    const started = performance.now();
    const result = await requestWithAuth(
      client,
      {
        method: "INVITE",
        uri,
        from,
        to,
        callId,
        body: sdp,
        headers: [
          ["Contact", `<${client.contactUri(user)}>`],
          ["Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS"],
        ],
      },
      1,
      auth,
      abandon.signal,
      (provisional) => {
        inviteBranch = parseVia(headerValues(provisional, "via")[0] ?? "")?.params.branch;
        lastInviteCseq = Number(headerValue(provisional, "cseq")?.split(" ")[0]) || lastInviteCseq;
        if (provisional.status === 180 || provisional.status === 183)
          ringingAt ??= performance.now() - started;
      },
      // The challenged INVITE is finished (and ACKed): its branch must not be CANCELled.
      () => (inviteBranch = undefined),
    );
    clearTimeout(answerTimer);
    clearTimeout(graceTimer);
    this.#signal.removeEventListener("abort", onCheckAbort);
    // The CANCEL's 200 normally comes before the 487: do not wait long for a late or lost one.
    const lateCancel = setTimeout(() => abandon.abort(), Math.min(2000, 4 * t1));
    const cancelOutcome = await cancelling;
    clearTimeout(lateCancel);
    if (cancelOutcome !== undefined)
      this.#detail.cancel =
        cancelOutcome.kind === "response"
          ? `${cancelOutcome.response.status} ${cancelOutcome.response.reason}`
          : cancelOutcome.kind;
    const { outcome } = result;
    this.#metrics.attempts = result.attempts;
    this.#metrics.retransmissions = result.totalRetransmissions;
    if (ringingAt !== undefined) this.#metrics.ringing_ms = round(ringingAt);
    if (outcome.kind === "failed") return this.#with(transportFailure(outcome.failure, this.#endpoint));
    if (stoppedBy !== undefined && cancelling !== undefined) {
      const within = stoppedBy === "answer_timeout" ? `${opts.answer_timeout_ms} ms` : "the check's timeout";
      const final =
        outcome.kind === "response"
          ? `${outcome.response.status} ${outcome.response.reason}`
          : "no final response";
      if (outcome.kind === "response" && outcome.response.status < 300) {
        // Answered while the CANCEL was on its way (§9.1 race): the call exists; end it properly.
        this.#dialogFrom(outcome.response, uri, from, to, callId, result.nextCseq - 1);
        this.#sendAck();
        await this.#bye();
      }
      return this.#fail(
        "no_answer",
        `${opts.extension} at ${this.#where} rang but did not answer within ${within} (CANCEL: ${String(this.#detail.cancel)}; INVITE: ${final})`,
      );
    }
    if (outcome.kind === "aborted" || outcome.kind === "timeout")
      return this.#fail(
        "timeout",
        `no response to INVITE from ${this.#where}${outcome.kind === "timeout" ? ` within 64×T1 (${64 * t1} ms)` : ""}`,
      );
    const answer = outcome.response;
    this.#detail.server = serverHeader(answer);
    this.#metrics.status_code = answer.status;
    if (answer.status >= 300) {
      if (result.unsupportedChallenge !== undefined)
        return this.#fail(
          "auth_failed",
          `INVITE challenged with a digest the probe may not answer: ${result.unsupportedChallenge}`,
        );
      const code = inviteFailureCode(answer.status);
      const why =
        code === "auth_failed" && auth === undefined
          ? " (the PBX wants credentials: set options.username and a password)"
          : code === "auth_failed" && result.rejectedCredentials
            ? " (credentials refused)"
            : "";
      return this.#fail(
        code,
        `calling ${opts.extension} at ${this.#where}: ${answer.status} ${answer.reason}${why}`,
      );
    }

    // 2xx: the dialog exists; ACK it (new transaction, RFC 3261 §13.2.2.4), then stream.
    this.#metrics.setup_ms = round(outcome.elapsedMs);
    this.#dialogFrom(answer, uri, from, to, callId, result.nextCseq - 1);
    this.#sendAck();
    const sdpAnswer = parseAnswer(answer.body.toString("utf8"), codecs);
    if ("error" in sdpAnswer || sdpAnswer.address === undefined || sdpAnswer.codec === undefined) {
      await this.#bye();
      const why =
        "error" in sdpAnswer
          ? sdpAnswer.error
          : sdpAnswer.address === undefined
            ? "no connection address"
            : `no common codec (offered ${codecs.join(", ")})`;
      return this.#fail("rejected", `the call was answered but its SDP is unusable: ${why}`);
    }
    this.#detail.codec = sdpAnswer.codec;
    this.#detail.remote_rtp = `${sdpAnswer.address}:${sdpAnswer.port}`;
    if (sdpAnswer.direction !== "sendrecv") this.#detail.direction = sdpAnswer.direction;
    const stream = await this.#stream(
      sdpAnswer.address,
      sdpAnswer.port,
      sdpAnswer.codec,
      sdpAnswer.payloadType ?? CODECS[sdpAnswer.codec].payloadType,
    );
    await this.#bye();
    return stream;
  }

  #with(m: Measurement): Measurement {
    return { ...m, metrics: { ...this.#metrics, ...m.metrics }, detail: { ...this.#detail, ...m.detail } };
  }

  #fail(code: string, message: string): Measurement {
    return { status: "fail", metrics: this.#metrics, detail: this.#detail, error: { code, message } };
  }

  /** The dialog a 2xx creates (RFC 3261 §12.1.2). */
  #dialogFrom(
    answer: SipResponse,
    uri: string,
    from: string,
    to: string,
    callId: string,
    cseq: number,
  ): void {
    const contact = parseNameAddr(headerValues(answer, "contact")[0] ?? "");
    this.#dialog = {
      remoteTarget: contact?.uri ?? uri,
      routes: headerValues(answer, "record-route").reverse(),
      from,
      to: headerValue(answer, "to") ?? to,
      callId,
      inviteCseq: cseq,
    };
  }

  /** A 2xx retransmitted because our ACK was lost gets the ACK again (RFC 3261 §13.2.2.4). */
  #onStray(r: SipResponse, callId: string): void {
    if (headerValue(r, "call-id") !== callId || r.status < 200 || r.status >= 300) return;
    if (!/INVITE$/i.test(headerValue(r, "cseq") ?? "")) return;
    if (this.#dialog !== undefined) this.#sendAck();
  }

  /** A request inside the dialog: remote target as URI, the route set as Route headers. */
  #inDialog(d: Dialog, method: string, cseq: number): RequestSpec {
    const headers = d.routes.map((r): [string, string] => ["Route", r]);
    return { method, uri: d.remoteTarget, from: d.from, to: d.to, callId: d.callId, cseq, headers };
  }

  #sendAck(): void {
    const d = this.#dialog;
    if (d === undefined) return;
    this.#client.sendRaw(
      this.#client.build({ ...this.#inDialog(d, "ACK", d.inviteCseq), branch: newBranch() }).data,
    );
  }

  async #bye(): Promise<void> {
    const d = this.#dialog;
    if (d === undefined || this.#remoteBye) return;
    const t0 = performance.now();
    // Even when the run was aborted, hang up: bounded by 2 s so a dead PBX cannot hold the check.
    const byeSignal = AbortSignal.timeout(2000);
    const out = await this.#client.transaction(this.#inDialog(d, "BYE", d.inviteCseq + 1), byeSignal);
    this.#detail.bye = out.kind === "response" ? `${out.response.status} ${out.response.reason}` : out.kind;
    if (out.kind === "response") this.#metrics.bye_ms = round(performance.now() - t0);
  }

  /** Streams RTP for duration_s, collects the echo and RTCP, and judges the audio. */
  #stream(address: string, port: number, codec: CodecName, payloadType: number): Promise<Measurement> {
    const opts = this.#opts;
    const media = this.#media;
    const count = Math.max(1, Math.round((opts.duration_s * 1000) / opts.ptime_ms));
    const samplesPerPacket = (CODECS[codec].clockRate / 1000) * opts.ptime_ms;
    const payloadBytes = Math.max(8, CODECS[codec].bytesPerMs * opts.ptime_ms);
    const cookie = randomBytes(4);
    const ssrc = randomBytes(4).readUInt32BE(0);
    const firstSeq = randomInt(0x10000);
    const firstTs = randomBytes(4).readUInt32BE(0);
    const cname = `netprobe@${this.#client.connection.local.address}`;
    const sentAt: bigint[] = [];
    const received: boolean[] = new Array<boolean>(count).fill(false);
    const rtts: number[] = [];
    const jitter = new JitterEstimator();
    let receivedCount = 0;
    let duplicates = 0;
    let outOfOrder = 0;
    let highest = -1;
    let foreign = 0;
    let malformed = 0;
    let octets = 0;
    let rtcpFromRemote = 0;
    let remoteReport: ReportBlock | undefined;
    const filler = codec === "PCMA" ? 0xd5 : 0xff; // G.711 silence

    media.onRtp = (data, _from, at) => {
      const p = decodeRtp(data);
      if (p === undefined) {
        malformed++;
        return;
      }
      if (p.payload.length < 8 || !p.payload.subarray(0, 4).equals(cookie)) {
        foreign++;
        return;
      }
      const index = p.payload.readUInt32BE(4);
      const sent = sentAt[index];
      if (index >= count || sent === undefined) {
        foreign++;
        return;
      }
      if (received[index]) {
        duplicates++;
        return;
      }
      received[index] = true;
      receivedCount++;
      if (index < highest) outOfOrder++;
      else highest = index;
      const rttMs = Number(at - sent) / 1e6;
      rtts.push(rttMs);
      jitter.add(rttMs);
    };
    media.onRtcp = (data) => {
      const packets = decodeRtcp(data);
      if (packets === undefined) {
        malformed++;
        return;
      }
      rtcpFromRemote++;
      for (const p of packets) {
        if (p.type !== "sr" && p.type !== "rr") continue;
        const block = p.reports.find((b) => b.ssrc === ssrc);
        if (block) remoteReport = block;
      }
    };

    const sendReport = (sent: number): void => {
      const now = ntpTime(Date.now());
      const sr = encodeSenderReport(
        ssrc,
        {
          ntpSeconds: now.seconds,
          ntpFraction: now.fraction,
          rtpTimestamp: (firstTs + sent * samplesPerPacket) >>> 0,
          packetCount: sent,
          octetCount: octets,
        },
        [],
        cname,
      );
      media.sendRtcp(sr, port + 1, address);
    };

    return new Promise<Measurement>((resolve) => {
      let issued = 0;
      let timer: NodeJS.Timeout | undefined;
      let finished = false;
      const start = performance.now();
      const finish = (): void => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        this.#signal.removeEventListener("abort", finish);
        media.onRtp = () => {};
        media.onRtcp = () => {};
        resolve(
          this.#judge({
            count: issued,
            receivedCount,
            received: received.slice(0, issued),
            rtts,
            jitterMs: jitter.value,
            duplicates,
            outOfOrder,
            foreign,
            malformed,
            rtcpFromRemote,
            remoteReport,
            codec,
            firstSeq,
          }),
        );
      };
      this.#signal.addEventListener("abort", finish, { once: true });
      const sendNext = (): void => {
        if (finished) return;
        if (this.#remoteBye || issued >= count) {
          sendReport(issued);
          timer = setTimeout(finish, this.#remoteBye ? 0 : opts.drain_ms);
          return;
        }
        const index = issued++;
        const payload = Buffer.alloc(payloadBytes, filler);
        cookie.copy(payload, 0);
        payload.writeUInt32BE(index, 4);
        const packet = encodeRtp({
          payloadType,
          marker: index === 0,
          sequence: (firstSeq + index) & 0xffff,
          timestamp: (firstTs + index * samplesPerPacket) >>> 0,
          ssrc,
          payload,
        });
        sentAt[index] = process.hrtime.bigint();
        media.sendRtp(packet, port, address);
        octets += payload.length;
        // RTCP SR at the start and about every 2.5 s: a short call still gets a few reports each way.
        if (index % Math.max(1, Math.round(2500 / opts.ptime_ms)) === 0) sendReport(issued);
        // Scheduled from the start time so timer lateness does not accumulate.
        const due = start + issued * opts.ptime_ms;
        timer = setTimeout(sendNext, Math.max(0, due - performance.now()));
      };
      sendNext();
    });
  }

  #judge(s: {
    count: number;
    receivedCount: number;
    received: boolean[];
    rtts: number[];
    jitterMs: number;
    duplicates: number;
    outOfOrder: number;
    foreign: number;
    malformed: number;
    rtcpFromRemote: number;
    remoteReport: ReportBlock | undefined;
    codec: CodecName;
    firstSeq: number;
  }): Measurement {
    const opts = this.#opts;
    const m = this.#metrics;
    m.sent = s.count;
    m.received = s.receivedCount;
    m.out_of_order = s.outOfOrder;
    m.duplicates = s.duplicates;
    Object.assign(this.#detail, {
      foreign_rtp: s.foreign,
      malformed: s.malformed,
      rtcp_received: s.rtcpFromRemote,
    });
    if (s.remoteReport) {
      // What the far end says it received from us: the upstream half of the path.
      const expected = Math.max(1, ((s.remoteReport.highestSequence - s.firstSeq) & 0xffff) + 1);
      m.remote_loss_pct = round(Math.max(0, (100 * s.remoteReport.cumulativeLost) / expected));
      m.remote_jitter_ms = round(s.remoteReport.jitter / (CODECS[s.codec].clockRate / 1000));
    }
    if (s.count > 0) m.loss_pct = round((100 * (s.count - s.receivedCount)) / s.count);
    if (this.#remoteBye) this.#detail.remote_hangup = true;
    if (s.receivedCount === 0) {
      const reached = s.remoteReport !== undefined && s.remoteReport.cumulativeLost < s.count;
      if (reached || s.foreign > 0) {
        return this.#fail(
          "one_way_audio",
          `one-way audio: ${reached ? "the far end reports receiving the probe's audio" : `audio arrives from the far end (${s.foreign} packets)`} but none of the ${s.count} packets came back — media towards the office is blocked or sent to the wrong address (NAT, firewall, SIP ALG)`,
        );
      }
      return this.#fail(
        "no_media",
        `the call was answered but no audio flowed: none of ${s.count} RTP packets came back and the far end sent no RTCP — RTP is blocked both ways or the PBX does not relay media`,
      );
    }
    const sorted = [...s.rtts].sort((a, b) => a - b);
    const rttAvg = s.rtts.reduce((a, b) => a + b, 0) / s.rtts.length;
    const p95 = sorted[Math.min(sorted.length - 1, Math.ceil(0.95 * sorted.length) - 1)] ?? rttAvg;
    m.rtt_avg_ms = round(rttAvg);
    m.rtt_min_ms = round(sorted[0] ?? rttAvg);
    m.rtt_p95_ms = round(p95);
    m.jitter_ms = round(s.jitterMs);
    const burst = burstRatio(s.received);
    const delay = oneWayDelayMs(rttAvg, s.jitterMs, opts.ptime_ms);
    const r = rFactor({
      oneWayDelayMs: delay,
      lossPct: m.loss_pct ?? 0,
      burstRatio: burst,
      codec: CODEC_IMPAIRMENT[s.codec],
    });
    m.burst_ratio = round(burst);
    m.one_way_delay_ms = round(delay);
    m.r_factor = round(r, 2);
    m.mos = round(mosFromR(r), 2);
    return { status: "ok", metrics: m, detail: this.#detail };
  }
}
