// SIP OPTIONS ping (phone area): does the PBX or trunk answer at all, how fast, after how many
// retransmissions, and does something on the path (a router's SIP ALG) rewrite our headers.

import { Type, type Static } from "@sinclair/typebox";
import type { CheckKind, Measurement } from "./check.ts";
import { newToken } from "../sip/client.ts";
import {
  aor,
  compareEcho,
  connectionOptions,
  openClient,
  realSipDependencies,
  resolveEndpoint,
  serverHeader,
  serverUri,
  transportFailure,
  type SipDependencies,
} from "../sip/common.ts";
import { failure } from "./common/failure.ts";
import { round } from "./common/round.ts";
import { headerValue } from "../sip/message.ts";

const options = Type.Object(
  {
    ...connectionOptions,
    to_user: Type.String({
      default: "",
      pattern: "^[A-Za-z0-9._~+*#-]{0,64}$",
      description: "user part of the request URI (empty: the server itself)",
    }),
    accept_codes: Type.Array(Type.Integer({ minimum: 100, maximum: 699 }), {
      default: [],
      uniqueItems: true,
      description:
        "status codes that count as healthy; empty = any final response below 500 (a 403 or 404 still proves the server is alive)",
    }),
  },
  { additionalProperties: false },
);

/** Options of a sip-options check. */
export type SipOptionsOptions = Static<typeof options>;

/** Builds the check over the given I/O. */
export function createSipOptionsCheck(deps: SipDependencies): CheckKind<typeof options> {
  return {
    kind: "sip-options",
    defaultArea: "phone",
    options,
    run: (t, o, _c, s) => runOptions(deps, t, o, s),
  };
}

/** SIP OPTIONS over the real network. */
export const sipOptions: CheckKind<typeof options> = createSipOptionsCheck(realSipDependencies);

async function runOptions(
  deps: SipDependencies,
  target: string,
  opts: SipOptionsOptions,
  signal: AbortSignal,
): Promise<Measurement> {
  const endpoint = await resolveEndpoint(deps, target, opts, signal);
  if ("failure" in endpoint) return endpoint.failure;
  const client = await openClient(deps, endpoint, opts, signal);
  if ("failure" in client) return client.failure;
  try {
    // Answer the server's own requests politely while we wait (some PBXes ping back).
    client.onRequest = (r) =>
      client.respond(r, r.method === "OPTIONS" ? 200 : 481, r.method === "OPTIONS" ? "OK" : "No Transaction");
    const from = `<${aor(opts.from_user, endpoint)}>;tag=${newToken()}`;
    const uri = serverUri(endpoint, opts.to_user);
    const to = `<${uri}>`;
    const callId = `${newToken(12)}@netprobe`;
    const outcome = await client.transaction(
      {
        method: "OPTIONS",
        uri,
        from,
        to,
        callId,
        cseq: 1,
        headers: [
          ["Contact", `<${client.contactUri(opts.from_user)}>`],
          ["Accept", "application/sdp"],
        ],
      },
      signal,
    );
    const where = `${endpoint.address}:${endpoint.port}/${endpoint.transport}`;
    const detail: Record<string, unknown> = {
      address: endpoint.address,
      port: endpoint.port,
      transport: endpoint.transport,
      local: `${client.connection.local.address}:${client.connection.local.port}`,
      malformed: client.counters.malformed,
    };
    switch (outcome.kind) {
      case "failed":
        return {
          ...transportFailure(outcome.failure, endpoint, { retransmissions: outcome.retransmissions }),
          detail,
        };
      case "aborted":
      case "timeout":
        return failure(
          "timeout",
          `no response to OPTIONS from ${where}` +
            (outcome.kind === "timeout"
              ? ` within 64×T1 (${64 * opts.t1_ms} ms)`
              : " before the check's timeout") +
            `, ${outcome.retransmissions} retransmissions`,
          { retransmissions: outcome.retransmissions },
          detail,
        );
      case "response":
        break;
    }
    const { response } = outcome;
    const echo = compareEcho({ via: outcome.sentVia, from, to, callId }, response);
    const metrics = {
      response_ms: round(outcome.elapsedMs),
      status_code: response.status,
      retransmissions: outcome.retransmissions,
    };
    Object.assign(detail, {
      reason: response.reason,
      server: serverHeader(response),
      allow: headerValue(response, "allow"),
      rewritten_headers: echo.rewritten,
      public_address: echo.publicAddress,
    });
    const accepted =
      opts.accept_codes.length > 0 ? opts.accept_codes.includes(response.status) : response.status < 500;
    if (!accepted) {
      const code = response.status >= 500 ? "server_error" : "unexpected_status";
      return failure(
        code,
        `${where} answered OPTIONS with ${response.status} ${response.reason}`,
        metrics,
        detail,
      );
    }
    if (echo.rewritten.length > 0) {
      return {
        status: "warn",
        metrics,
        detail,
        error: {
          code: "sip_alg",
          message: `the ${echo.rewritten.join(", ")} header(s) came back different from what the probe sent: a SIP ALG on the path rewrites SIP (turn it off on the router)`,
        },
      };
    }
    return { status: "ok", metrics, detail };
  } finally {
    client.close();
  }
}
