// A minimal SIP user agent client over one connection: client transactions with the RFC 3261 §17.1
// timers (A/B for INVITE, E/F for the rest), the ACK of every non-2xx final response to an INVITE
// (§17.1.1.3, again for each retransmission of it), digest-authenticated retries, and a hook for
// requests the far end sends (BYE, OPTIONS). Everything a check needs and nothing more.

import { randomBytes } from "node:crypto";
import {
  authorizationHeader,
  chooseChallenge,
  newCnonce,
  type DigestAlgorithm,
  type DigestChallenge,
} from "./digest.ts";
import {
  headerValue,
  headerValues,
  parseCSeq,
  parseSipMessage,
  parseVia,
  serializeRequest,
  serializeResponse,
  responseHeadersFor,
  type OutgoingRequest,
  type SipRequest,
  type SipResponse,
} from "./message.ts";
import type { ConnectSip, SipConnection, SipConnectOptions, SipTransportFailure } from "./transport.ts";

/** RFC 3261 timer values (§17.1.1.1, Table 4). */
export interface SipTimers {
  t1Ms: number;
  t2Ms: number;
}

/** Magic cookie every RFC 3261 branch starts with (§8.1.1.7). */
export const BRANCH_COOKIE = "z9hG4bK";
const USER_AGENT = "netprobe";

/** How a client transaction ended. */
export type TransactionOutcome =
  | {
      kind: "response";
      response: SipResponse;
      /** The exact Via the probe sent in this transaction (to compare with what came back). */
      sentVia: string;
      retransmissions: number;
      /** From the first transmission to the final response. */
      elapsedMs: number;
      /** From the first transmission to the first response of any class. */
      firstResponseMs: number;
    }
  | { kind: "timeout"; retransmissions: number; elapsedMs: number; provisional: SipResponse | undefined }
  | { kind: "failed"; failure: SipTransportFailure; retransmissions: number }
  | { kind: "aborted"; retransmissions: number; provisional: SipResponse | undefined };

/** A request the client will fill Via, Max-Forwards, Call-ID, CSeq and User-Agent into. */
export interface RequestSpec {
  method: string;
  uri: string;
  /** From header value, with its tag. */
  from: string;
  /** To header value (with a tag inside a dialog). */
  to: string;
  callId: string;
  cseq: number;
  /** Further headers (Contact, Expires, Authorization…). */
  headers?: ReadonlyArray<readonly [string, string]>;
  body?: string;
  contentType?: string;
  /** Reuse this branch (CANCEL and non-2xx ACK share the INVITE's, RFC 3261 §9.1, §17.1.1.3). */
  branch?: string;
}

interface Pending {
  branch: string;
  method: string;
  onProvisional: ((r: SipResponse) => void) | undefined;
  resolve: (r: SipResponse) => void;
}

/** Counters a check reports in `detail`. */
export interface ClientCounters {
  malformed: number;
  strayResponses: number;
}

/** One connection's user agent client. Create with {@link SipClient.open}. */
export class SipClient {
  readonly connection: SipConnection;
  readonly counters: ClientCounters = { malformed: 0, strayResponses: 0 };
  readonly #pending = new Map<string, Pending>();
  /**
   * ACKs sent for non-2xx final responses, by INVITE branch: a retransmission of that response
   * (our ACK was lost) gets the same ACK again, as in the transaction's Completed state (§17.1.1.2).
   */
  readonly #acked = new Map<string, Buffer>();
  readonly #timers: SipTimers;
  #failure: SipTransportFailure | undefined;
  #onFailure: Array<(f: SipTransportFailure) => void> = [];
  /** Requests from the far end (inside our dialog: BYE; outside: OPTIONS keep-alives). */
  onRequest: (request: SipRequest) => void = () => {};
  /** Responses that match no live transaction (2xx retransmissions of an INVITE). */
  onStrayResponse: (response: SipResponse) => void = () => {};

  private constructor(connection: SipConnection, timers: SipTimers) {
    this.connection = connection;
    this.#timers = timers;
  }

  /** Connects and returns a client, or the transport failure. */
  static async open(
    connect: ConnectSip,
    options: SipConnectOptions,
    timers: SipTimers,
    signal: AbortSignal,
  ): Promise<SipClient | SipTransportFailure> {
    // Messages may arrive before the client object exists (the far end is fast): buffer them.
    const ref: { client?: SipClient } = {};
    const early: Buffer[] = [];
    let earlyFailure: SipTransportFailure | undefined;
    const connection = await connect(
      options,
      {
        message: (data) => (ref.client ? ref.client.#receive(data) : early.push(data)),
        failed: (failure) => (ref.client ? ref.client.#failed(failure) : (earlyFailure = failure)),
      },
      signal,
    );
    if ("code" in connection) return connection;
    const client = new SipClient(connection, timers);
    ref.client = client;
    for (const data of early) client.#receive(data);
    if (earlyFailure) client.#failed(earlyFailure);
    return client;
  }

  /** The transport failure that ended the connection, if any. */
  get transportFailure(): SipTransportFailure | undefined {
    return this.#failure;
  }

  /** Via value for a new branch on this connection. */
  via(branch: string): string {
    const { transport, local } = this.connection;
    const host = local.address.includes(":") ? `[${local.address}]` : local.address;
    return `SIP/2.0/${transport.toUpperCase()} ${host}:${local.port};branch=${branch};rport`;
  }

  /** The probe's Contact URI on this connection. */
  contactUri(user: string): string {
    const { transport, local } = this.connection;
    const host = local.address.includes(":") ? `[${local.address}]` : local.address;
    const scheme = transport === "tls" ? "sips" : "sip";
    const param = transport === "udp" || transport === "tls" ? "" : `;transport=${transport}`;
    return `${scheme}:${user}@${host}:${local.port}${param}`;
  }

  /** Builds the wire form of a request with a fresh branch. */
  build(
    spec: RequestSpec,
    branch: string = spec.branch ?? newBranch(),
  ): { data: Buffer; via: string; branch: string } {
    const via = this.via(branch);
    const headers: Array<[string, string]> = [
      ["Via", via],
      ["Max-Forwards", "70"],
      ["From", spec.from],
      ["To", spec.to],
      ["Call-ID", spec.callId],
      ["CSeq", `${spec.cseq} ${spec.method}`],
      ["User-Agent", USER_AGENT],
      ...(spec.headers ?? []).map(([n, v]) => [n, v] as [string, string]),
    ];
    if (spec.body !== undefined) headers.push(["Content-Type", spec.contentType ?? "application/sdp"]);
    const request: OutgoingRequest = { method: spec.method, uri: spec.uri, headers, body: spec.body };
    return { data: serializeRequest(request), via, branch };
  }

  /** Sends a request outside any transaction (ACK for a 2xx, RFC 3261 §13.2.2.4). */
  sendRaw(data: Buffer): void {
    if (this.#failure === undefined) this.connection.send(data);
  }

  /** Answers a request from the far end with a plain response. */
  respond(request: SipRequest, status: number, reason: string): void {
    this.sendRaw(serializeResponse(status, reason, responseHeadersFor(request)));
  }

  /**
   * Runs one client transaction to its final response, its timeout (Timer B/F = 64·T1), a
   * transport failure or the abort signal. Retransmits over UDP per Timer A (INVITE: doubling
   * from T1, stops at the first provisional) or Timer E (others: doubling up to T2, then T2).
   * Timer B runs only until the first provisional (§17.1.1.2): a ringing INVITE waits for its final
   * response until the caller CANCELs it or aborts. A non-2xx final response to an INVITE is ACKed
   * here, before the outcome is returned (§17.1.1.3).
   */
  transaction(
    spec: RequestSpec,
    signal: AbortSignal,
    onProvisional?: (response: SipResponse) => void,
  ): Promise<TransactionOutcome> {
    const { data, via, branch } = this.build(spec, spec.branch);
    const invite = spec.method === "INVITE";
    const t1 = this.#timers.t1Ms;
    const t2 = this.#timers.t2Ms;
    const started = performance.now();
    let retransmissions = 0;
    let firstResponseMs: number | undefined;
    let provisional: SipResponse | undefined;
    return new Promise<TransactionOutcome>((resolve) => {
      let retransmitTimer: NodeJS.Timeout | undefined;
      let interval = t1;
      const finish = (outcome: TransactionOutcome): void => {
        clearTimeout(retransmitTimer);
        clearTimeout(timeoutTimer);
        signal.removeEventListener("abort", onAbort);
        this.#pending.delete(`${branch} ${spec.method}`);
        this.#onFailure = this.#onFailure.filter((f) => f !== onFailure);
        resolve(outcome);
      };
      const onAbort = (): void => finish({ kind: "aborted", retransmissions, provisional });
      const onFailure = (failure: SipTransportFailure): void =>
        finish({ kind: "failed", failure, retransmissions });
      const retransmit = (): void => {
        if (provisional !== undefined && invite) return;
        this.connection.send(data);
        retransmissions++;
        interval = invite ? interval * 2 : provisional !== undefined ? t2 : Math.min(interval * 2, t2);
        retransmitTimer = setTimeout(retransmit, interval);
      };
      const timeoutTimer = setTimeout(
        () =>
          finish({ kind: "timeout", retransmissions, elapsedMs: performance.now() - started, provisional }),
        64 * t1,
      );
      if (signal.aborted) return onAbort();
      if (this.#failure) return onFailure(this.#failure);
      signal.addEventListener("abort", onAbort, { once: true });
      this.#onFailure.push(onFailure);
      this.#pending.set(`${branch} ${spec.method}`, {
        branch,
        method: spec.method,
        onProvisional: (r) => {
          firstResponseMs ??= performance.now() - started;
          provisional = r;
          if (invite) {
            clearTimeout(retransmitTimer);
            clearTimeout(timeoutTimer);
          }
          onProvisional?.(r);
        },
        resolve: (response) => {
          const elapsedMs = performance.now() - started;
          if (invite && response.status >= 300) this.#ackFailure(spec, branch, response);
          finish({
            kind: "response",
            response,
            sentVia: via,
            retransmissions,
            elapsedMs,
            firstResponseMs: firstResponseMs ?? elapsedMs,
          });
        },
      });
      this.connection.send(data);
      if (!this.connection.reliable) retransmitTimer = setTimeout(retransmit, interval);
    });
  }

  close(): void {
    this.connection.close();
  }

  /**
   * The ACK of a non-2xx final response (RFC 3261 §17.1.1.3): the INVITE's Request-URI, From,
   * Call-ID, CSeq number and Route headers, its branch, and the To of the response (with its tag).
   */
  #ackFailure(invite: RequestSpec, branch: string, response: SipResponse): void {
    const routes = (invite.headers ?? []).filter(([name]) => name.toLowerCase() === "route");
    const ack = this.build(
      {
        method: "ACK",
        uri: invite.uri,
        from: invite.from,
        to: headerValue(response, "to") ?? invite.to,
        callId: invite.callId,
        cseq: invite.cseq,
        headers: routes,
      },
      branch,
    ).data;
    this.#acked.set(branch, ack);
    this.sendRaw(ack);
  }

  #failed(failure: SipTransportFailure): void {
    this.#failure ??= failure;
    for (const f of [...this.#onFailure]) f(failure);
  }

  #receive(data: Buffer): void {
    const message = parseSipMessage(data);
    if ("error" in message) {
      this.counters.malformed++;
      return;
    }
    if (message.kind === "request") {
      this.onRequest(message);
      return;
    }
    // Match on the top Via's branch and the CSeq method (RFC 3261 §17.1.3).
    const top = headerValues(message, "via")[0];
    const branch = top === undefined ? undefined : parseVia(top)?.params.branch;
    const cseq = parseCSeq(headerValue(message, "cseq"));
    const pending =
      branch === undefined || cseq === undefined ? undefined : this.#pending.get(`${branch} ${cseq.method}`);
    if (pending === undefined) {
      const ack = branch === undefined ? undefined : this.#acked.get(branch);
      if (ack !== undefined && cseq?.method === "INVITE" && message.status >= 300) {
        this.sendRaw(ack); // the final response again: our ACK was lost
        return;
      }
      this.counters.strayResponses++;
      this.onStrayResponse(message);
      return;
    }
    if (message.status < 200) pending.onProvisional?.(message);
    else pending.resolve(message);
  }
}

/** A fresh RFC 3261 branch. */
export function newBranch(): string {
  return `${BRANCH_COOKIE}${randomBytes(10).toString("hex")}`;
}

/** A fresh tag or Call-ID component. */
export function newToken(bytes = 8): string {
  return randomBytes(bytes).toString("hex");
}

/** Credentials and the algorithms the probe may answer with. */
export interface AuthSettings {
  username: string;
  password: string;
  algorithms: readonly DigestAlgorithm[];
}

/** The result of a request that may need digest authentication. */
export interface AuthenticatedOutcome {
  outcome: TransactionOutcome;
  /** Transactions used (1 without a challenge). */
  attempts: number;
  /** The challenge answered last, if any (algorithm and realm go into the result's detail). */
  challenge: DigestChallenge | undefined;
  /** The server challenged again after we answered (wrong password): RFC 3261 §22.2. */
  rejectedCredentials: boolean;
  /** A challenge came but none of it could be answered (unsupported algorithm or qop). */
  unsupportedChallenge: string | undefined;
  /** The next free CSeq number. */
  nextCseq: number;
  totalRetransmissions: number;
}

/**
 * Sends a request and answers 401/407 challenges (RFC 3261 §22.2): once normally, once more when
 * the server says the nonce was stale. A second challenge for a fresh answer means the credentials
 * were refused. `build` gets the CSeq number and the authorisation header to add.
 */
export async function requestWithAuth(
  client: SipClient,
  spec: Omit<RequestSpec, "cseq">,
  firstCseq: number,
  auth: AuthSettings | undefined,
  signal: AbortSignal,
  onProvisional?: (response: SipResponse) => void,
  onChallengeResponse?: (response: SipResponse, via: string) => void,
): Promise<AuthenticatedOutcome> {
  let cseq = firstCseq;
  let attempts = 0;
  let challenge: DigestChallenge | undefined;
  let authHeader: [string, string] | undefined;
  let nc = 0;
  let totalRetransmissions = 0;
  const cnonce = newCnonce();
  for (;;) {
    const headers = [...(spec.headers ?? []), ...(authHeader ? [authHeader] : [])];
    const outcome = await client.transaction({ ...spec, cseq, headers }, signal, onProvisional);
    attempts++;
    cseq++;
    totalRetransmissions +=
      outcome.kind === "timeout" || outcome.kind === "response" ? outcome.retransmissions : 0;
    const done = (rejected: boolean, unsupported?: string): AuthenticatedOutcome => ({
      outcome,
      attempts,
      challenge,
      rejectedCredentials: rejected,
      unsupportedChallenge: unsupported,
      nextCseq: cseq,
      totalRetransmissions,
    });
    if (outcome.kind !== "response") return done(false);
    const { status } = outcome.response;
    if (status !== 401 && status !== 407) return done(false);
    onChallengeResponse?.(outcome.response, outcome.sentVia);
    if (auth === undefined) return done(false);
    const headerName = status === 401 ? "www-authenticate" : "proxy-authenticate";
    const offered = outcome.response.headers.filter((h) => h.name === headerName).map((h) => h.value);
    const next = chooseChallenge(offered, auth.algorithms);
    if (next === undefined) return done(false, offered.join(" | ") || "(no challenge header)");
    // A fresh challenge after we answered one, without stale=true, refuses the credentials.
    if (challenge !== undefined && !next.stale) return done(true);
    if (attempts > 3) return done(true);
    nc = challenge?.nonce === next.nonce ? nc + 1 : 1;
    challenge = next;
    const value = authorizationHeader({
      username: auth.username,
      password: auth.password,
      challenge,
      method: spec.method,
      uri: spec.uri,
      nc: Math.max(1, nc),
      cnonce,
    });
    authHeader = [status === 401 ? "Authorization" : "Proxy-Authorization", value];
  }
}
