// HTTP(S) (wan area): one request on a fresh connection, timed by phase — name resolution, TCP
// connect, TLS handshake, first byte (response headers), total (body read) — like curl's -w
// timings; the status and optionally the body are checked against expectations. For https the
// certificate is judged as by the tls check (an untrusted or expired one fails the request).
//
// Redirects are not followed by default (unlike blackbox_exporter): the check measures the URL it
// was given, and a 3xx reports where it points (`detail.location`), so a portal or a login page in
// front of a service shows up instead of being walked through. `follow_redirects: N` follows up to
// N hops, each on a fresh connection, and reports the chain; the phase timings are the final hop's.

import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { isIP, type Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { Type, type Static } from "@sinclair/typebox";
import type { CheckError, CheckKind, Measurement } from "./check.ts";
import { AddressFamilyOption, resolveTimed, socketErrorCode } from "./tcp.ts";
import { judgeCertificate, trustedCas } from "./tls.ts";
import { printable } from "../../../contract/src/printable-text.ts";

const options = Type.Object(
  {
    method: Type.Union([Type.Literal("GET"), Type.Literal("HEAD")], {
      default: "GET",
      description: "request method",
    }),
    expect_status: Type.Array(Type.Integer({ minimum: 100, maximum: 599 }), {
      default: [],
      maxItems: 32,
      description:
        "acceptable status codes of the final response; empty: any 2xx (a 3xx not followed must be listed)",
    }),
    follow_redirects: Type.Integer({
      minimum: 0,
      maximum: 20,
      default: 0,
      description:
        "follow up to this many redirects (3xx with a Location), reporting each hop; 0: a 3xx is the answer",
    }),
    expect_body_regex: Type.String({
      default: "",
      description: "regex the body (first max_body_bytes) must match; empty: not checked",
    }),
    max_body_bytes: Type.Integer({
      minimum: 0,
      maximum: 10_485_760,
      default: 65536,
      description: "body bytes kept for the regex (the rest is read and counted)",
    }),
    ca_file: Type.String({
      default: "",
      description: "https: PEM file of extra trusted CAs, added to Node's bundled roots",
    }),
    insecure: Type.Boolean({
      default: false,
      description: "https: do not fail on an untrusted, expired or mismatched certificate (still reported)",
    }),
    warn_days: Type.Number({
      minimum: 0,
      maximum: 3650,
      default: 14,
      description: "https: warn (cert_expiring) when the certificate expires within this many days",
    }),
    user_agent: Type.String({ default: "netprobe", description: "User-Agent header" }),
    wait_ms: Type.Integer({
      minimum: 1,
      maximum: 120000,
      default: 10000,
      description: "how long the whole request may take",
    }),
    address_family: AddressFamilyOption,
  },
  { additionalProperties: false },
);

/** Options of an http check, defaults filled in by the config loader. */
export type HttpOptions = Static<typeof options>;

/** HTTP(S) check over real sockets. */
export const http: CheckKind<typeof options> = {
  kind: "http",
  defaultArea: "wan",
  options,
  run: (target, opts, _ctx, signal) => runHttp(target, opts, signal),
};

function errorResult(code: string, message: string): Measurement {
  return { status: "error", metrics: {}, error: { code, message } };
}

async function runHttp(target: string, opts: HttpOptions, signal: AbortSignal): Promise<Measurement> {
  let url: URL;
  try {
    url = new URL(target.trim());
  } catch {
    return errorResult("invalid_target", `"${target}" is not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    return errorResult("invalid_target", `"${target}": only http:// and https:// URLs`);
  let bodyRegex: RegExp | undefined;
  try {
    bodyRegex = opts.expect_body_regex === "" ? undefined : new RegExp(opts.expect_body_regex);
  } catch (err) {
    return errorResult("invalid_option", `expect_body_regex: ${String(err)}`);
  }
  const started = performance.now();
  const deadline = started + opts.wait_ms;
  const chain: Array<{ status_code: number; url: string }> = [];
  const visited = new Set<string>([url.href]);
  for (let current = url; ;) {
    const hop = await requestOnce(current, opts, signal, Math.max(1, deadline - performance.now()));
    const metrics = hop.metrics;
    const detail: Record<string, unknown> = { url: url.href, ...hop.detail };
    if (chain.length > 0) {
      metrics.redirects = chain.length;
      metrics.redirect_ms = round(hop.startedAt - started);
      detail.redirects = chain;
      detail.final_url = current.href;
    }
    if ("failure" in hop) return { ...hop.failure, metrics, detail };
    const code = hop.statusCode;
    const location = code >= 300 && code < 400 ? hop.location : undefined;
    let next: URL | undefined;
    let shownLocation: string | undefined;
    if (location !== undefined) {
      try {
        next = new URL(location, current);
      } catch {
        next = undefined;
      }
      // The resolved URL is percent-encoded by URL: safe to show; a raw unparsable one is not.
      shownLocation = next?.href ?? printable(location);
      detail.location = shownLocation;
    }
    if (location !== undefined && opts.follow_redirects > 0) {
      const fail = (errorCode: string, message: string): Measurement => ({
        status: "fail",
        metrics,
        detail,
        error: { code: errorCode, message },
      });
      const hops = [...chain, { status_code: code, url: current.href }].map(
        (h) => `${h.status_code} ${h.url}`,
      );
      if (next === undefined || (next.protocol !== "http:" && next.protocol !== "https:"))
        return fail(
          "redirect_invalid",
          `${code} from ${current.href} points to "${printable(location)}", not an http(s) URL`,
        );
      if (visited.has(next.href))
        return fail("redirect_loop", `redirect loop: ${hops.join(" → ")} → ${next.href} again`);
      if (chain.length >= opts.follow_redirects)
        return fail(
          "too_many_redirects",
          `more than ${opts.follow_redirects} redirects (follow_redirects): ${hops.join(" → ")} → ${next.href}`,
        );
      chain.push({ status_code: code, url: current.href });
      visited.add(next.href);
      current = next;
      continue;
    }
    const statusOk =
      opts.expect_status.length === 0 ? code >= 200 && code < 300 : opts.expect_status.includes(code);
    if (!statusOk) {
      const wanted = opts.expect_status.length === 0 ? "2xx" : opts.expect_status.join(", ");
      const to = shownLocation === undefined ? "" : ` → ${shownLocation}`;
      const hint = to !== "" && opts.follow_redirects === 0 ? "; set follow_redirects to follow it" : "";
      return {
        status: "fail",
        metrics,
        detail,
        error: {
          code: "http_status",
          message: `status ${code} ${hop.statusText}${to} (expected ${wanted}${hint})`.replace("  ", " "),
        },
      };
    }
    if (bodyRegex !== undefined && !bodyRegex.test(hop.body))
      return {
        status: "fail",
        metrics,
        detail,
        error: { code: "body_mismatch", message: `body does not match /${opts.expect_body_regex}/` },
      };
    const certProblem = hop.detail.certificate_problem as CheckError | undefined;
    if (certProblem?.code === "cert_expiring") return { status: "warn", metrics, detail, error: certProblem };
    // insecure: a bad certificate is in the detail but does not fail the request.
    if (certProblem !== undefined && !opts.insecure)
      return { status: "fail", metrics, detail, error: certProblem };
    return { status: "ok", metrics, detail };
  }
}

/** One request and its response, before the status and body are judged. */
type Hop = {
  startedAt: number;
  metrics: Record<string, number>;
  detail: Record<string, unknown>;
} & (
  | { failure: { status: Measurement["status"]; error: CheckError } }
  | { statusCode: number; statusText: string; location: string | undefined; body: string }
);

/** One request on a fresh connection, timed by phase; never rejects. */
async function requestOnce(url: URL, opts: HttpOptions, signal: AbortSignal, waitMs: number): Promise<Hop> {
  const startedAt = performance.now();
  const https = url.protocol === "https:";
  const ca = https ? await trustedCas(opts.ca_file) : [];
  if ("error" in ca)
    return { startedAt, metrics: {}, detail: {}, failure: { status: "error", error: ca.error } };
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const started = performance.now();
  const resolved = await resolveTimed(host, opts.address_family, signal);
  if ("error" in resolved)
    return {
      startedAt,
      metrics: {},
      detail: {},
      failure: { status: resolved.error.code === "invalid_target" ? "error" : "fail", error: resolved.error },
    };
  const metrics: Record<string, number> = { dns_ms: round(resolved.resolveMs) };
  const detail: Record<string, unknown> = { address: resolved.address };

  return new Promise<Hop>((resolve) => {
    let done = false;
    let connectedAt = 0;
    const settle = (hop: Hop): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      req.destroy();
      resolve(hop);
    };
    const failed = (error: CheckError): void =>
      settle({ startedAt, metrics, detail, failure: { status: "fail", error } });
    const onAbort = (): void => failed({ code: "timeout", message: `aborted (${phase()})` });
    const phase = (): string =>
      connectedAt === 0
        ? "while connecting"
        : metrics.first_byte_ms === undefined
          ? "waiting for the response"
          : "reading the body";
    const timer = setTimeout(
      () =>
        failed({ code: "timeout", message: `no complete response within ${opts.wait_ms} ms (${phase()})` }),
      waitMs,
    );
    const requestOptions = {
      method: opts.method,
      host: resolved.address,
      port: url.port === "" ? (https ? 443 : 80) : Number(url.port),
      path: `${url.pathname}${url.search}`,
      // The Host header and SNI carry the name from the URL, the connection goes to the address we timed.
      headers: { host: url.host, "user-agent": opts.user_agent, accept: "*/*", connection: "close" },
      agent: false as const,
      ...(https ? { ca, rejectUnauthorized: false, ...(isIP(host) === 0 ? { servername: host } : {}) } : {}),
    };
    const req = (https ? httpsRequest : httpRequest)(requestOptions);
    req.on("socket", (s: Socket) => {
      s.once("connect", () => {
        connectedAt = performance.now();
        metrics.connect_ms = round(connectedAt - started - resolved.resolveMs);
      });
      if (https)
        s.once("secureConnect", () => {
          metrics.tls_ms = round(performance.now() - connectedAt);
          const report = judgeCertificate(s as TLSSocket, host, opts.warn_days);
          Object.assign(metrics, { cert_expiry_days: report.metrics.expiry_days ?? NaN });
          detail.certificate = report.detail;
          if (report.problem) {
            detail.certificate_problem = report.problem.error;
            if (!opts.insecure && report.problem.status === "fail") failed(report.problem.error);
          }
        });
    });
    req.on("error", (err) => failed(socketErrorCode(err)));
    req.on("response", (res: IncomingMessage) => {
      metrics.first_byte_ms = round(performance.now() - started);
      metrics.status_code = res.statusCode ?? 0;
      detail.http_version = res.httpVersion;
      let kept = "";
      let bytes = 0;
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        bytes += Buffer.byteLength(chunk);
        if (kept.length < opts.max_body_bytes) kept += chunk.slice(0, opts.max_body_bytes - kept.length);
      });
      res.on("error", (err) => failed(socketErrorCode(err)));
      res.on("end", () => {
        metrics.total_ms = round(performance.now() - started);
        metrics.body_bytes = bytes;
        const location = res.headers.location;
        settle({
          startedAt,
          metrics,
          detail,
          statusCode: res.statusCode ?? 0,
          statusText: printable(res.statusMessage ?? ""),
          location: location === undefined || location === "" ? undefined : location,
          body: kept,
        });
      });
    });
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    req.end();
  });
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}
