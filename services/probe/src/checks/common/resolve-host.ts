// Host name resolution for every check that takes a host: one address family option, one
// abortable lookup, one set of error codes (invalid_target, resolve_failed, timeout).

import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { Type, type Static } from "@sinclair/typebox";
import type { CheckError, Measurement } from "../check.ts";

/** The `address_family` option of every check that resolves a host name. */
export const addressFamilyOption = Type.Union(
  [Type.Literal("auto"), Type.Literal("ipv4"), Type.Literal("ipv6")],
  {
    default: "auto",
    description:
      "which address of a host name to use: auto takes the resolver's first answer; an IP literal must match it unless auto",
  },
);

/** Value of the `address_family` option. */
export type AddressFamily = Static<typeof addressFamilyOption>;

/** IP version of a resolved address. */
export type AddressFamilyNumber = 4 | 6;

/** Resolves a host name to one address of the wanted family (0 = whichever comes first). */
export type LookupHost = (
  host: string,
  family: 0 | AddressFamilyNumber,
) => Promise<{ address: string; family: AddressFamilyNumber }>;

/** The system resolver (getaddrinfo, so /etc/hosts and nsswitch apply, as for any application). */
export const systemLookup: LookupHost = async (host, family) => {
  const answer = await lookup(host, { family, order: "verbatim" });
  return { address: answer.address, family: answer.family === 6 ? 6 : 4 };
};

/** A resolved host: the address, its family and how long the lookup took (0 for an IP literal). */
export interface ResolvedHost {
  address: string;
  family: AddressFamilyNumber;
  resolveMs: number;
}

const FAMILY_NAMES = { 4: "ipv4", 6: "ipv6" } as const;
const FAMILY_NUMBERS: Readonly<Record<AddressFamily, 0 | AddressFamilyNumber>> = {
  auto: 0,
  ipv4: 4,
  ipv6: 6,
};

/**
 * Resolves a host (name, IP literal, or `[v6]`) to one address of the wanted family; never throws.
 * Errors: `invalid_target` (a literal of the other family), `resolve_failed`, `timeout` (aborted).
 */
export async function resolveHost(
  rawHost: string,
  wanted: AddressFamily,
  signal: AbortSignal,
  lookupHost: LookupHost = systemLookup,
): Promise<ResolvedHost | { error: CheckError }> {
  const host = rawHost.trim().replace(/^\[(.*)\]$/, "$1");
  const literal = isIP(host);
  if (literal === 4 || literal === 6) {
    if (wanted !== "auto" && FAMILY_NAMES[literal] !== wanted) {
      const message = `target ${host} is an ${FAMILY_NAMES[literal]} address but address_family is ${wanted}`;
      return { error: { code: "invalid_target", message } };
    }
    return { address: host, family: literal, resolveMs: 0 };
  }
  const aborted: { error: CheckError } = {
    error: { code: "timeout", message: `aborted while resolving ${host}` },
  };
  if (signal.aborted) return aborted;
  // getaddrinfo cannot be cancelled; an abort stops waiting for it, the lookup finishes unobserved.
  let onAbort = (): void => {};
  const abortedWait = new Promise<"aborted">((resolve) => {
    onAbort = () => resolve("aborted");
    signal.addEventListener("abort", onAbort, { once: true });
  });
  const started = performance.now();
  const pending = lookupHost(host, FAMILY_NUMBERS[wanted]);
  pending.catch(() => undefined);
  try {
    const answer = await Promise.race([pending, abortedWait]);
    if (answer === "aborted") return aborted;
    return { address: answer.address, family: answer.family, resolveMs: performance.now() - started };
  } catch (error) {
    if (signal.aborted) return aborted;
    const code = (error as { code?: unknown }).code;
    const reason = typeof code === "string" ? code : error instanceof Error ? error.message : String(error);
    const familyText = wanted === "auto" ? "" : ` (${wanted})`;
    return { error: { code: "resolve_failed", message: `cannot resolve ${host}${familyText}: ${reason}` } };
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

/** A resolution error as a measurement: a bad target is the probe's `error`, the rest `fail`. */
export function hostFailure(
  error: CheckError,
  extra: { metrics?: Record<string, number>; detail?: Record<string, unknown> } = {},
): Measurement {
  return { status: error.code === "invalid_target" ? "error" : "fail", metrics: {}, ...extra, error };
}

/** A resolved probe destination, or the measurement that reports why there is none. */
export type Destination = { address: string; family: AddressFamilyNumber } | { failure: Measurement };

/**
 * `resolveHost` for the series checks (icmp, stamp, traceroute, path-mtu): a target that cannot be
 * resolved is the probe's `error`; an abort while resolving is a `timeout` with nothing sent.
 */
export async function resolveDestination(
  lookupHost: LookupHost,
  target: string,
  wanted: AddressFamily,
  signal: AbortSignal,
): Promise<Destination> {
  const resolved = await resolveHost(target, wanted, signal, lookupHost);
  if (!("error" in resolved)) return { address: resolved.address, family: resolved.family };
  if (resolved.error.code === "timeout")
    return {
      failure: {
        status: "fail",
        metrics: { sent: 0, received: 0 },
        detail: { aborted: true },
        error: resolved.error,
      },
    };
  return { failure: { status: "error", metrics: {}, error: resolved.error } };
}
