// HTTP Digest authentication as SIP uses it: RFC 3261 §22 on top of RFC 2617, with the SHA-256
// algorithms of RFC 8760 / RFC 7616. Only qop=auth (or no qop, RFC 2069 style) is implemented:
// auth-int would hash the body, and no registrar the probe talks to requires it.

import { createHash, randomBytes } from "node:crypto";
import { splitList } from "./message.ts";

/** Digest algorithms the probe can answer, strongest first (RFC 8760 §2.4: pick the strongest). */
export const DIGEST_ALGORITHMS = ["SHA-256", "SHA-256-sess", "MD5", "MD5-sess"] as const;
/** One supported algorithm. */
export type DigestAlgorithm = (typeof DIGEST_ALGORITHMS)[number];

/** One parsed `WWW-Authenticate` / `Proxy-Authenticate` Digest challenge. */
export interface DigestChallenge {
  realm: string;
  nonce: string;
  opaque: string | undefined;
  /** As the server wrote it; MD5 when absent (RFC 2617 §3.2.1). */
  algorithm: string;
  /** qop options offered, lower case; empty for an RFC 2069 challenge. */
  qop: string[];
  stale: boolean;
}

/** Parses one challenge header value; undefined when it is not a usable Digest challenge. */
export function parseDigestChallenge(value: string): DigestChallenge | undefined {
  const m = /^\s*Digest\s+(.*)$/is.exec(value);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  for (const part of splitList(m[1] ?? "")) {
    const eq = part.indexOf("=");
    if (eq <= 0) continue;
    const key = part.slice(0, eq).trim().toLowerCase();
    let v = part.slice(eq + 1).trim();
    if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1).replace(/\\(.)/g, "$1");
    if (key !== "__proto__") params[key] = v;
  }
  if (params.realm === undefined || params.nonce === undefined || params.nonce === "") return undefined;
  return {
    realm: params.realm,
    nonce: params.nonce,
    opaque: params.opaque,
    algorithm: params.algorithm ?? "MD5",
    qop: (params.qop ?? "")
      .split(",")
      .map((q) => q.trim().toLowerCase())
      .filter(Boolean),
    stale: (params.stale ?? "").toLowerCase() === "true",
  };
}

/** The algorithm name as the probe spells it, or undefined when unsupported. */
export function supportedAlgorithm(name: string): DigestAlgorithm | undefined {
  return DIGEST_ALGORITHMS.find((a) => a.toLowerCase() === name.trim().toLowerCase());
}

/**
 * Of several challenges (RFC 8760 allows one per algorithm), the one to answer: the strongest
 * supported algorithm among `allowed`, preferring challenges that offer qop=auth or no qop.
 */
export function chooseChallenge(
  values: readonly string[],
  allowed: readonly DigestAlgorithm[] = DIGEST_ALGORITHMS,
): DigestChallenge | undefined {
  const usable = values
    .map(parseDigestChallenge)
    .filter((c): c is DigestChallenge => c !== undefined)
    .filter((c) => {
      const alg = supportedAlgorithm(c.algorithm);
      return alg !== undefined && allowed.includes(alg) && (c.qop.length === 0 || c.qop.includes("auth"));
    });
  usable.sort(
    (a, b) =>
      DIGEST_ALGORITHMS.indexOf(supportedAlgorithm(a.algorithm)!) -
      DIGEST_ALGORITHMS.indexOf(supportedAlgorithm(b.algorithm)!),
  );
  return usable[0];
}

/** What the client knows when answering a challenge. */
export interface DigestCredentials {
  username: string;
  password: string;
}

/** Inputs of one response computation (exposed for tests against RFC examples). */
export interface DigestInput extends DigestCredentials {
  challenge: DigestChallenge;
  method: string;
  uri: string;
  /** Nonce count, 1 for the first use of a nonce. */
  nc: number;
  cnonce: string;
}

function hash(algorithm: DigestAlgorithm, text: string): string {
  return createHash(algorithm.startsWith("SHA-256") ? "sha256" : "md5")
    .update(text, "utf8")
    .digest("hex");
}

/** The `response` value (RFC 2617 §3.2.2.1, RFC 7616 §3.4.1). */
export function digestResponse(input: DigestInput): string {
  const algorithm = supportedAlgorithm(input.challenge.algorithm);
  if (algorithm === undefined) throw new Error(`unsupported digest algorithm ${input.challenge.algorithm}`);
  const { realm, nonce } = input.challenge;
  let ha1 = hash(algorithm, `${input.username}:${realm}:${input.password}`);
  if (algorithm.endsWith("-sess")) ha1 = hash(algorithm, `${ha1}:${nonce}:${input.cnonce}`);
  const ha2 = hash(algorithm, `${input.method}:${input.uri}`);
  if (input.challenge.qop.includes("auth")) {
    return hash(algorithm, `${ha1}:${nonce}:${ncText(input.nc)}:${input.cnonce}:auth:${ha2}`);
  }
  return hash(algorithm, `${ha1}:${nonce}:${ha2}`);
}

function ncText(nc: number): string {
  return nc.toString(16).padStart(8, "0");
}

function quote(value: string): string {
  return `"${value.replace(/(["\\])/g, "\\$1")}"`;
}

/** The complete `Authorization` / `Proxy-Authorization` header value. */
export function authorizationHeader(input: DigestInput): string {
  const { challenge } = input;
  const parts = [
    `username=${quote(input.username)}`,
    `realm=${quote(challenge.realm)}`,
    `nonce=${quote(challenge.nonce)}`,
    `uri=${quote(input.uri)}`,
    `response=${quote(digestResponse(input))}`,
    `algorithm=${supportedAlgorithm(challenge.algorithm) ?? challenge.algorithm}`,
  ];
  if (challenge.qop.includes("auth"))
    parts.push(`qop=auth`, `nc=${ncText(input.nc)}`, `cnonce=${quote(input.cnonce)}`);
  if (challenge.opaque !== undefined) parts.push(`opaque=${quote(challenge.opaque)}`);
  return `Digest ${parts.join(", ")}`;
}

/** A fresh client nonce. */
export function newCnonce(): string {
  return randomBytes(8).toString("hex");
}
