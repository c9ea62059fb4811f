// TLS certificate (wan area): connects, completes the handshake without trusting it yet, and then
// judges what the server presented: days until the certificate expires, issuer, whether the chain
// leads to a trusted CA, and whether it is valid for the host name. The handshake is accepted first
// so that one run reports everything wrong with a certificate, not only the first thing.

import { readFile } from "node:fs/promises";
import { isIP } from "node:net";
import {
  checkServerIdentity,
  connect,
  rootCertificates,
  type PeerCertificate,
  type TLSSocket,
} from "node:tls";
import { Type, type Static } from "@sinclair/typebox";
import type { CheckError, CheckKind, Measurement } from "./check.ts";
import { AddressFamilyOption, parseHostPort, resolveTimed, socketErrorCode } from "./tcp.ts";
import { printable } from "../../../contract/src/printable-text.ts";

const options = Type.Object(
  {
    servername: Type.String({
      default: "",
      description: "name sent as SNI and checked against the certificate (empty: the target's host)",
    }),
    ca_file: Type.String({
      default: "",
      description:
        "PEM file of extra trusted CAs (a private CA), added to Node's bundled roots; empty: the bundled roots only",
    }),
    warn_days: Type.Number({
      minimum: 0,
      maximum: 3650,
      default: 14,
      description: "warn (cert_expiring) when the certificate expires within this many days",
    }),
    wait_ms: Type.Integer({
      minimum: 1,
      maximum: 60000,
      default: 5000,
      description: "how long the connection and handshake may take",
    }),
    address_family: AddressFamilyOption,
  },
  { additionalProperties: false },
);

/** Options of a tls check, defaults filled in by the config loader. */
export type TlsOptions = Static<typeof options>;

const DAY_MS = 86_400_000;

/** What a TLS handshake yielded; shared with the http check for https:// targets. */
export interface CertificateReport {
  metrics: Record<string, number>;
  detail: Record<string, unknown>;
  /** The worst finding: expired, untrusted, wrong host, expiring soon. */
  problem?: { status: "warn" | "fail"; error: CheckError };
}

/** Judges the certificate of an established TLS socket (authorised or not). */
export function judgeCertificate(
  socket: TLSSocket,
  host: string,
  warnDays: number,
  now = Date.now(),
): CertificateReport {
  const leaf = socket.getPeerCertificate(true);
  if (!leaf || Object.keys(leaf).length === 0)
    return {
      metrics: {},
      detail: {},
      problem: {
        status: "fail",
        error: { code: "no_certificate", message: "the server sent no certificate" },
      },
    };
  const notAfter = Date.parse(leaf.valid_to);
  const notBefore = Date.parse(leaf.valid_from);
  const expiryDays = (notAfter - now) / DAY_MS;
  const chain = chainOf(leaf);
  const chainExpiry = Math.min(...chain.map((c) => Date.parse(c.valid_to)));
  const metrics: Record<string, number> = {
    expiry_days: round(expiryDays),
    chain_expiry_days: round((chainExpiry - now) / DAY_MS),
    chain_length: chain.length,
  };
  const identity = checkServerIdentity(host, leaf);
  const authError = socket.authorizationError === null ? undefined : String(socket.authorizationError);
  const detail: Record<string, unknown> = {
    subject: nameText(leaf.subject),
    issuer: nameText(leaf.issuer),
    subject_alt_names: printable(leaf.subjectaltname ?? ""),
    valid_from: new Date(notBefore).toISOString(),
    valid_to: new Date(notAfter).toISOString(),
    serial: leaf.serialNumber,
    fingerprint_sha256: leaf.fingerprint256,
    protocol: socket.getProtocol(),
    cipher: socket.getCipher().name,
    chain: chain.map((c) => ({
      subject: nameText(c.subject),
      issuer: nameText(c.issuer),
      valid_to: c.valid_to,
    })),
    chain_valid: socket.authorized || authError === "ERR_TLS_CERT_ALTNAME_INVALID",
    hostname_match: identity === undefined,
  };
  if (authError !== undefined) detail.chain_error = authError;
  let problem: CertificateReport["problem"];
  if (expiryDays < 0)
    problem = fail("cert_expired", `certificate expired ${round(-expiryDays)} days ago (${leaf.valid_to})`);
  else if (notBefore > now)
    problem = fail("cert_not_yet_valid", `certificate valid only from ${leaf.valid_from}`);
  // Node folds a name mismatch into authorizationError too; report it as what it is.
  else if (!socket.authorized && authError !== "ERR_TLS_CERT_ALTNAME_INVALID")
    problem = fail("cert_untrusted", `certificate chain not trusted: ${authError ?? "unknown reason"}`);
  else if (identity !== undefined) problem = fail("hostname_mismatch", identity.message);
  else if (expiryDays < warnDays)
    problem = {
      status: "warn",
      error: {
        code: "cert_expiring",
        message: `certificate expires in ${round(expiryDays)} days (${leaf.valid_to}), warn_days ${warnDays}`,
      },
    };
  return problem === undefined ? { metrics, detail } : { metrics, detail, problem };
}

function fail(code: string, message: string): CertificateReport["problem"] {
  return { status: "fail", error: { code, message } };
}

/** The presented chain, leaf first, without repeating the self-signed root's self-reference. */
function chainOf(leaf: PeerCertificate & { issuerCertificate?: PeerCertificate }): PeerCertificate[] {
  const out: PeerCertificate[] = [];
  const seen = new Set<string>();
  let c: (PeerCertificate & { issuerCertificate?: PeerCertificate }) | undefined = leaf;
  while (c && !seen.has(c.fingerprint256) && out.length < 10) {
    seen.add(c.fingerprint256);
    out.push(c);
    c = c.issuerCertificate;
  }
  return out;
}

function nameText(name: object | undefined): string {
  if (!name) return "";
  return Object.entries(name as Record<string, string | string[]>)
    .map(([k, v]) => printable(`${k}=${Array.isArray(v) ? v.join("+") : v}`))
    .join(", ");
}

/** Trusted CAs: Node's bundled roots plus the PEM file, if any. */
export async function trustedCas(caFile: string): Promise<string[] | { error: CheckError }> {
  if (caFile === "") return [...rootCertificates];
  try {
    return [...rootCertificates, await readFile(caFile, "utf8")];
  } catch (err) {
    return {
      error: {
        code: "invalid_option",
        message: `ca_file ${caFile}: ${(err as { code?: string }).code ?? String(err)}`,
      },
    };
  }
}

/** TLS certificate check over real sockets. */
export const tls: CheckKind<typeof options> = {
  kind: "tls",
  defaultArea: "wan",
  options,
  run: (target, opts, _ctx, signal) => runTls(target, opts, signal),
};

async function runTls(target: string, opts: TlsOptions, signal: AbortSignal): Promise<Measurement> {
  const hp = parseHostPort(target.replace(/^https:\/\//, "").replace(/\/.*$/, ""), 443);
  if ("problem" in hp)
    return { status: "error", metrics: {}, error: { code: "invalid_target", message: hp.problem } };
  const ca = await trustedCas(opts.ca_file);
  if ("error" in ca) return { status: "error", metrics: {}, error: ca.error };
  const resolved = await resolveTimed(hp.host, opts.address_family, signal);
  if ("error" in resolved)
    return {
      status: resolved.error.code === "invalid_target" ? "error" : "fail",
      metrics: {},
      error: resolved.error,
    };
  const servername = opts.servername || hp.host;
  const metrics: Record<string, number> = {};
  if (isIP(hp.host) === 0) metrics.resolve_ms = round(resolved.resolveMs);

  return new Promise<Measurement>((resolve) => {
    const started = performance.now();
    let connectedAt = 0;
    let done = false;
    const socket = connect({
      host: resolved.address,
      port: hp.port,
      // SNI must be a name, never an IP literal (RFC 6066 §3).
      ...(isIP(servername) === 0 ? { servername } : {}),
      ca,
      rejectUnauthorized: false,
    });
    const finish = (m: Measurement): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      socket.destroy();
      resolve(m);
    };
    const failed = (error: CheckError): void =>
      finish({ status: "fail", metrics, detail: { address: resolved.address, port: hp.port }, error });
    const onAbort = (): void =>
      failed({ code: "timeout", message: "aborted before the TLS handshake completed" });
    const timer = setTimeout(
      () =>
        failed({
          code: "timeout",
          message: `no TLS handshake with ${resolved.address}:${hp.port} within ${opts.wait_ms} ms`,
        }),
      opts.wait_ms,
    );
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    socket.once("connect", () => {
      connectedAt = performance.now();
      metrics.connect_ms = round(connectedAt - started);
    });
    socket.on("error", (err: Error) => {
      const code = (err as { code?: unknown }).code;
      // Errors during the handshake itself (protocol, alerts) are TLS failures, not socket ones.
      if (connectedAt !== 0 && typeof code === "string" && /SSL|TLS|ALERT|ERR_SSL/.test(code))
        failed({ code: "tls_error", message: err.message });
      else failed(socketErrorCode(err));
    });
    socket.once("secureConnect", () => {
      metrics.handshake_ms = round(performance.now() - connectedAt);
      const report = judgeCertificate(socket, servername, opts.warn_days);
      Object.assign(metrics, report.metrics);
      const detail = { address: resolved.address, port: hp.port, servername, ...report.detail };
      finish(
        report.problem
          ? { status: report.problem.status, metrics, detail, error: report.problem.error }
          : { status: "ok", metrics, detail },
      );
    });
  });
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}
