// SIP REGISTER with digest authentication (phone area): do the office's phone credentials still
// register? Registers a binding for the probe's own Contact, then removes it (Expires: 0) so
// nothing lingers on the registrar and no call is ever routed to the probe.

import { Type, type Static } from "@sinclair/typebox";
import type { CheckKind, Measurement } from "./check.ts";
import { newToken, requestWithAuth, type AuthSettings, type SipClient } from "../sip/client.ts";
import {
  aor,
  compareEcho,
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
import { failure } from "./common/failure.ts";
import { round } from "./common/round.ts";
import { headerValue, headerValues, parseNameAddr, parseSipUri } from "../sip/message.ts";

const options = Type.Object(
  {
    ...connectionOptions,
    ...credentialOptions,
    expires_s: Type.Integer({
      minimum: 1,
      maximum: 86400,
      default: 60,
      description:
        "Expires asked for; the binding is removed right after anyway (a 423 raises it to Min-Expires)",
    }),
    unregister: Type.Boolean({
      default: true,
      description: "remove the binding after a successful REGISTER",
    }),
  },
  { additionalProperties: false },
);

/** Options of a sip-register check. */
export type SipRegisterOptions = Static<typeof options>;

/** Builds the check over the given I/O. */
export function createSipRegisterCheck(deps: SipDependencies): CheckKind<typeof options> {
  return {
    kind: "sip-register",
    defaultArea: "phone",
    options,
    run: (t, o, _c, s) => runRegister(deps, t, o, s),
  };
}

/** SIP REGISTER over the real network. */
export const sipRegister: CheckKind<typeof options> = createSipRegisterCheck(realSipDependencies);

async function runRegister(
  deps: SipDependencies,
  target: string,
  opts: SipRegisterOptions,
  signal: AbortSignal,
): Promise<Measurement> {
  if (opts.username === "")
    return failure(
      "invalid_options",
      "sip-register needs options.username (and a password)",
      {},
      {},
      "error",
    );
  const endpoint = await resolveEndpoint(deps, target, opts, signal);
  if ("failure" in endpoint) return endpoint.failure;
  const client = await openClient(deps, endpoint, opts, signal);
  if ("failure" in client) return client.failure;
  try {
    client.onRequest = (r) =>
      client.respond(r, r.method === "OPTIONS" ? 200 : 481, r.method === "OPTIONS" ? "OK" : "No Transaction");
    return await register(client, endpoint, opts, signal);
  } finally {
    client.close();
  }
}

async function register(
  client: SipClient,
  endpoint: SipEndpoint,
  opts: SipRegisterOptions,
  signal: AbortSignal,
): Promise<Measurement> {
  const where = `${endpoint.address}:${endpoint.port}/${endpoint.transport}`;
  const auth: AuthSettings = {
    username: opts.auth_username || opts.username,
    password: passwordOf(opts),
    algorithms: opts.algorithms,
  };
  const addressOfRecord = aor(opts.username, endpoint);
  const from = `<${addressOfRecord}>;tag=${newToken()}`;
  const to = `<${addressOfRecord}>`;
  const callId = `${newToken(12)}@netprobe`;
  const contact = client.contactUri(opts.username);
  const uri = aor("", endpoint) + (endpoint.transport === "tcp" ? ";transport=tcp" : "");
  let expires = opts.expires_s;
  let cseq = 1;
  const started = performance.now();
  const detail: Record<string, unknown> = {
    address: endpoint.address,
    port: endpoint.port,
    transport: endpoint.transport,
    aor: addressOfRecord,
  };
  let retransmissions = 0;
  let attempts = 0;
  for (let attempt = 0; attempt < 2; attempt++) {
    const result = await requestWithAuth(
      client,
      {
        method: "REGISTER",
        uri,
        from,
        to,
        callId,
        headers: [
          ["Contact", `<${contact}>`],
          ["Expires", String(expires)],
        ],
      },
      cseq,
      auth,
      signal,
    );
    cseq = result.nextCseq;
    retransmissions += result.totalRetransmissions;
    attempts += result.attempts;
    if (result.challenge) detail.algorithm = result.challenge.algorithm;
    if (result.challenge) detail.realm = result.challenge.realm;
    const metrics = (): Record<string, number> => ({ attempts, retransmissions });
    const { outcome } = result;
    if (outcome.kind === "failed")
      return { ...transportFailure(outcome.failure, endpoint, metrics()), detail };
    if (outcome.kind === "timeout" || outcome.kind === "aborted")
      return failure(
        "timeout",
        `no final response to REGISTER from ${where}${outcome.kind === "timeout" ? ` within 64×T1 (${64 * opts.t1_ms} ms)` : " before the check's timeout"}`,
        metrics(),
        detail,
      );
    const { response } = outcome;
    detail.server = serverHeader(response);
    detail.reason = response.reason;
    const status = response.status;
    if (result.unsupportedChallenge !== undefined)
      return failure(
        "auth_failed",
        `the registrar asks for a digest the probe may not answer (allowed: ${opts.algorithms.join(", ")}): ${result.unsupportedChallenge}`,
        { ...metrics(), status_code: status },
        detail,
      );
    if (status === 423 && attempt === 0) {
      // Interval Too Brief (RFC 3261 §10.2.8): retry once with the registrar's minimum.
      const min = Number(headerValue(response, "min-expires"));
      if (Number.isInteger(min) && min > expires && min <= 86400) {
        expires = min;
        continue;
      }
    }
    if (status === 401 || status === 407) {
      const why =
        auth.password === ""
          ? `no password configured${opts.password_env ? ` (environment variable ${opts.password_env} is empty)` : ""}`
          : result.rejectedCredentials
            ? "the registrar refused the credentials"
            : "authentication did not complete";
      return failure(
        "auth_failed",
        `REGISTER ${addressOfRecord} at ${where}: ${status} ${response.reason}: ${why}`,
        { ...metrics(), status_code: status },
        detail,
      );
    }
    if (status === 403 || status === 404)
      return failure(
        "auth_failed",
        `REGISTER ${addressOfRecord} at ${where}: ${status} ${response.reason} (${
          auth.password === ""
            ? `no password configured${opts.password_env ? ` (environment variable ${opts.password_env} is empty)` : ""}`
            : status === 403
              ? "wrong password or account not allowed"
              : "no such account on this registrar"
        })`,
        { ...metrics(), status_code: status },
        detail,
      );
    if (status >= 500)
      return failure(
        "server_error",
        `REGISTER at ${where}: ${status} ${response.reason}`,
        { ...metrics(), status_code: status },
        detail,
      );
    if (status >= 300)
      return failure(
        "rejected",
        `REGISTER at ${where}: ${status} ${response.reason}`,
        { ...metrics(), status_code: status },
        detail,
      );

    // 2xx: registered.
    const registerMs = performance.now() - started;
    const sentVia = outcome.sentVia;
    const echo = compareEcho({ via: sentVia, from, to, callId }, response);
    const contacts = headerValues(response, "contact").map((c) => parseNameAddr(c));
    const ours = parseSipUri(contact);
    const bound = contacts.find((c) => {
      const u = c === undefined ? undefined : parseSipUri(c.uri);
      return u !== undefined && u.user === ours?.user && u.host === ours?.host && u.port === ours?.port;
    });
    const grantedExpires = Number(bound?.params.expires ?? headerValue(response, "expires"));
    // A binding listed under another host:port than the Contact we sent was rewritten on the way.
    const contactRewritten = contacts.length > 0 && bound === undefined;
    if (contactRewritten) echo.rewritten.push("contact");
    Object.assign(detail, {
      rewritten_headers: echo.rewritten,
      public_address: echo.publicAddress,
      contact,
      ...(Number.isFinite(grantedExpires) ? { expires_s: grantedExpires } : {}),
    });
    const out: Record<string, number> = {
      register_ms: round(registerMs),
      status_code: status,
      attempts,
      retransmissions,
    };
    if (opts.unregister) {
      const t0 = performance.now();
      const un = await requestWithAuth(
        client,
        {
          method: "REGISTER",
          uri,
          from,
          to,
          callId,
          headers: [
            ["Contact", `<${contact}>`],
            ["Expires", "0"],
          ],
        },
        cseq,
        auth,
        signal,
      );
      const ok = un.outcome.kind === "response" && un.outcome.response.status < 300;
      detail.unregistered = ok;
      if (ok) out.unregister_ms = round(performance.now() - t0);
      else
        detail.unregister_error =
          un.outcome.kind === "response"
            ? `${un.outcome.response.status} ${un.outcome.response.reason}`
            : un.outcome.kind;
    }
    if (echo.rewritten.length > 0)
      return {
        status: "warn",
        metrics: out,
        detail,
        error: {
          code: "sip_alg",
          message: `registered, but the ${echo.rewritten.join(", ")} header(s) came back rewritten: a SIP ALG on the path (turn it off on the router)`,
        },
      };
    return { status: "ok", metrics: out, detail };
  }
  return failure(
    "rejected",
    `REGISTER at ${where}: 423 Interval Too Brief twice`,
    { attempts, retransmissions },
    detail,
  );
}
