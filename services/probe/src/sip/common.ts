// What the three phone checks share: the target syntax, the connection options, name resolution,
// credentials from config or environment, and the mapping of transport failures to results.

import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { Type } from "@sinclair/typebox";
import type { Measurement } from "../checks/check.ts";
import { SipClient } from "./client.ts";
import { DIGEST_ALGORITHMS, type DigestAlgorithm } from "./digest.ts";
import { headerValue, headerValues, parseNameAddr, parseVia, type SipResponse } from "./message.ts";
import { connectSip, type ConnectSip, type SipTransportFailure, type SipTransportName } from "./transport.ts";
import { printable } from "../../../contract/src/printable-text.ts";

/** Options every phone check has (spread into each kind's TypeBox object). */
export const connectionOptions = {
  transport: Type.Union([Type.Literal("udp"), Type.Literal("tcp"), Type.Literal("tls")], {
    default: "udp",
    description: "signalling transport; a sip: target's ;transport= parameter wins",
  }),
  port: Type.Integer({
    minimum: 0,
    maximum: 65535,
    default: 0,
    description: "server port; 0 = the target's port, else 5060 (5061 for tls)",
  }),
  local_port: Type.Integer({
    minimum: 0,
    maximum: 65535,
    default: 0,
    description: "local port to bind; 0 = any",
  }),
  domain: Type.String({
    default: "",
    description: "SIP domain for the request URI, From and To; empty = the target host",
  }),
  from_user: Type.String({
    default: "netprobe",
    pattern: "^[A-Za-z0-9._~+*#-]{1,64}$",
    description: "user part of From",
  }),
  t1_ms: Type.Integer({
    minimum: 50,
    maximum: 10000,
    default: 500,
    description:
      "RFC 3261 T1 (round-trip estimate): UDP retransmissions start at T1 and double; a transaction times out at 64×T1",
  }),
  tls_verify: Type.Boolean({
    default: true,
    description: "tls: verify the server certificate against the system CAs",
  }),
} as const;

/** Credential options of the checks that authenticate. */
export const credentialOptions = {
  username: Type.String({
    default: "",
    description: "SIP account (user part of the AOR and digest username)",
  }),
  auth_username: Type.String({ default: "", description: "digest username when it differs from username" }),
  password: Type.String({
    default: "",
    writeOnly: true,
    description: "digest password (redacted in published config; prefer password_env)",
  }),
  password_env: Type.String({
    default: "",
    pattern: "^([A-Za-z_][A-Za-z0-9_]*)?$",
    description: "name of an environment variable holding the password (wins over password)",
  }),
  algorithms: Type.Array(Type.Union(DIGEST_ALGORITHMS.map((a) => Type.Literal(a))), {
    default: ["SHA-256", "MD5"],
    minItems: 1,
    uniqueItems: true,
    description: "digest algorithms the probe may answer with; the strongest offered wins (RFC 8760)",
  }),
} as const;

/** The connection options as a plain type. */
export interface ConnectionOptions {
  transport: SipTransportName;
  port: number;
  local_port: number;
  domain: string;
  from_user: string;
  t1_ms: number;
  tls_verify: boolean;
}

/** The credential options as a plain type. */
export interface CredentialOptions {
  username: string;
  auth_username: string;
  password: string;
  password_env: string;
  algorithms: DigestAlgorithm[];
}

/** Where a check sends its requests. */
export interface SipEndpoint {
  host: string;
  address: string;
  port: number;
  transport: SipTransportName;
  /** Domain for URIs (option, else the target host). */
  domain: string;
}

/** The I/O a phone check uses; tests pass in-memory doubles. */
export interface SipDependencies {
  connect: ConnectSip;
  resolve: (host: string) => Promise<string>;
}

/** The real network and the system resolver. */
export const realSipDependencies: SipDependencies = {
  connect: connectSip,
  resolve: async (host) => (await lookup(host, { order: "verbatim" })).address,
};

/** A failed measurement with a code. */
export function failure(
  code: string,
  message: string,
  metrics: Record<string, number> = {},
  detail: Record<string, unknown> = {},
  status: "fail" | "error" = "fail",
): Measurement {
  return { status, metrics, detail, error: { code, message } };
}

/** Parses `host`, `host:port`, `[v6]:port` or `sip:host:port;transport=tcp`. */
export function parseTarget(
  target: string,
): { host: string; port: number | undefined; transport: SipTransportName | undefined } | undefined {
  let t = target.trim();
  let transport: SipTransportName | undefined;
  const sip = /^(sips?):(?:[^@]*@)?(.*)$/i.exec(t);
  if (sip) {
    if (sip[1]?.toLowerCase() === "sips") transport = "tls";
    const [hostPart, ...params] = (sip[2] ?? "").split(";");
    t = hostPart ?? "";
    const tp = params.map((p) => /^transport=(udp|tcp|tls)$/i.exec(p)?.[1]).find(Boolean);
    if (tp) transport = tp.toLowerCase() as SipTransportName;
  }
  const v6 = /^\[([0-9A-Fa-f:.]+)\](?::(\d{1,5}))?$/.exec(t);
  if (v6) return { host: v6[1] ?? "", port: v6[2] ? Number(v6[2]) : undefined, transport };
  if (isIP(t) === 6) return { host: t, port: undefined, transport };
  const hp = /^([A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(t);
  if (!hp) return undefined;
  const port = hp[2] ? Number(hp[2]) : undefined;
  if (port !== undefined && (port < 1 || port > 65535)) return undefined;
  return { host: hp[1] ?? "", port, transport };
}

/** Resolves the target into an endpoint, or a failed measurement. */
export async function resolveEndpoint(
  deps: SipDependencies,
  target: string,
  opts: ConnectionOptions,
  signal: AbortSignal,
): Promise<SipEndpoint | { failure: Measurement }> {
  const parsed = parseTarget(target);
  if (parsed === undefined)
    return {
      failure: failure(
        "invalid_target",
        `target ${JSON.stringify(target)} is not host[:port] or a sip: URI`,
        {},
        {},
        "error",
      ),
    };
  const transport = parsed.transport ?? opts.transport;
  const port = opts.port || parsed.port || (transport === "tls" ? 5061 : 5060);
  const domain = opts.domain || parsed.host;
  if (isIP(parsed.host)) return { host: parsed.host, address: parsed.host, port, transport, domain };
  if (signal.aborted) return { failure: failure("timeout", `aborted while resolving ${parsed.host}`) };
  try {
    const address = await Promise.race([
      deps.resolve(parsed.host),
      new Promise<never>((_, reject) =>
        signal.addEventListener("abort", () => reject(new Error("aborted")), { once: true }),
      ),
    ]);
    return { host: parsed.host, address, port, transport, domain };
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (signal.aborted) return { failure: failure("timeout", `aborted while resolving ${parsed.host}`) };
    return {
      failure: failure(
        "resolve_failed",
        `cannot resolve ${parsed.host}: ${typeof code === "string" ? code : String(error)}`,
      ),
    };
  }
}

/** Opens the signalling connection; a failed measurement when it cannot. */
export async function openClient(
  deps: SipDependencies,
  endpoint: SipEndpoint,
  opts: ConnectionOptions,
  signal: AbortSignal,
): Promise<SipClient | { failure: Measurement }> {
  const client = await SipClient.open(
    deps.connect,
    {
      transport: endpoint.transport,
      address: endpoint.address,
      port: endpoint.port,
      localPort: opts.local_port,
      servername: endpoint.host,
      verifyCertificate: opts.tls_verify,
    },
    { t1Ms: opts.t1_ms, t2Ms: Math.max(4000, opts.t1_ms) },
    signal,
  );
  if (client instanceof SipClient) return client;
  return { failure: transportFailure(client, endpoint) };
}

/** A transport failure as a measurement. */
export function transportFailure(
  f: SipTransportFailure,
  endpoint: SipEndpoint,
  metrics: Record<string, number> = {},
): Measurement {
  const where = `${endpoint.address}:${endpoint.port}/${endpoint.transport}`;
  const message =
    f.code === "unreachable"
      ? `${where} unreachable (${f.message}): nothing answers SIP there, or the path is blocked`
      : `${where}: ${f.message}`;
  return failure(f.code, message, metrics, {}, f.code === "socket_error" ? "error" : "fail");
}

/** The password from the environment variable named in the options, else from the options. */
export function passwordOf(opts: CredentialOptions, env: NodeJS.ProcessEnv = process.env): string {
  if (opts.password_env !== "") return env[opts.password_env] ?? "";
  return opts.password;
}

/** `sip:` URI of a user at the endpoint's domain. */
export function aor(user: string, endpoint: SipEndpoint): string {
  const scheme = endpoint.transport === "tls" ? "sips" : "sip";
  const host = endpoint.domain.includes(":") ? `[${endpoint.domain}]` : endpoint.domain;
  return user === "" ? `${scheme}:${host}` : `${scheme}:${user}@${host}`;
}

/** Request URI of the server itself (port when not the default and the domain is the target). */
export function serverUri(endpoint: SipEndpoint, user = ""): string {
  const defaultPort = endpoint.transport === "tls" ? 5061 : 5060;
  const port = endpoint.domain === endpoint.host && endpoint.port !== defaultPort ? `:${endpoint.port}` : "";
  const transport = endpoint.transport === "tcp" ? ";transport=tcp" : "";
  return `${aor(user, endpoint)}${port}${transport}`;
}

/**
 * Compares what the probe sent with what the server echoed back (RFC 3261 §8.2.6.2: a response
 * copies Via, From, To and Call-ID verbatim, adding only `received`/`rport` to the top Via and a
 * To tag). A middlebox that rewrites them, typically a router's SIP ALG, shows up here; plain NAT
 * only shows in `received`/`rport`.
 */
export function compareEcho(
  sent: { via: string; from: string; to: string; callId: string },
  response: SipResponse,
): { rewritten: string[]; publicAddress: string | undefined } {
  const rewritten: string[] = [];
  const sentVia = parseVia(sent.via);
  const gotVia = parseVia(headerValues(response, "via")[0] ?? "");
  if (sentVia === undefined || gotVia === undefined) rewritten.push("via");
  else if (
    gotVia.host !== sentVia.host ||
    gotVia.port !== sentVia.port ||
    gotVia.transport !== sentVia.transport ||
    gotVia.params.branch !== sentVia.params.branch
  )
    rewritten.push("via");
  const stripTag = (v: string | undefined): string | undefined => {
    const p = v === undefined ? undefined : parseNameAddr(v);
    return p === undefined ? v : p.uri.toLowerCase();
  };
  if (stripTag(headerValue(response, "from")) !== stripTag(sent.from)) rewritten.push("from");
  if (stripTag(headerValue(response, "to")) !== stripTag(sent.to)) rewritten.push("to");
  if (headerValue(response, "call-id") !== sent.callId) rewritten.push("call-id");
  const received = gotVia?.params.received;
  const rport = gotVia?.params.rport;
  const publicAddress =
    received !== undefined && received !== "" && received !== sentVia?.host
      ? `${received}${rport ? `:${rport}` : ""}`
      : rport && Number(rport) !== sentVia?.port
        ? `${sentVia?.host}:${rport}`
        : undefined;
  return { rewritten, publicAddress };
}

/** Milliseconds to the microsecond. */
export function round3(value: number): number {
  return Math.round(value * 1000) / 1000;
}

/** The Server (or User-Agent) header of a response, for the detail. */
export function serverHeader(response: SipResponse): string | undefined {
  const value = headerValue(response, "server") ?? headerValue(response, "user-agent");
  return value === undefined ? undefined : printable(value);
}
