// NTP/SNTP (wan area): one SNTP query (RFC 4330) to a server, the local clock's offset from it and
// the round-trip delay. The Pi has no real-time clock: until it syncs, its wall time can be far off,
// which this check reports (warn/fail past the offset limits) instead of trusting.
//
// The request's transmit timestamp carries random sub-millisecond bits; a reply counts only when it
// echoes them as its originate timestamp (RFC 4330 §5), so stray or spoofed replies are ignored.

import { randomInt } from "node:crypto";
import { isIP } from "node:net";
import { Type, type Static } from "@sinclair/typebox";
import type { CheckKind, Measurement } from "./check.ts";
import { parseHostPort } from "./tcp.ts";
import { addressFamilyOption, hostFailure, resolveHost } from "./common/resolve-host.ts";
import { socketDnsTransport, type DnsTransport } from "../net/dns-transport.ts";
import {
  encodeSntpRequest,
  offsetAndDelay,
  parseSntpReply,
  type SntpReply,
} from "../../../contract/src/net/sntp-packet.ts";
import { round } from "./common/round.ts";

const options = Type.Object(
  {
    warn_offset_ms: Type.Number({
      minimum: 0,
      default: 100,
      description: "warn (clock_offset) when |offset| exceeds this",
    }),
    fail_offset_ms: Type.Number({
      minimum: 0,
      default: 1000,
      description: "fail (clock_offset) when |offset| exceeds this",
    }),
    wait_ms: Type.Integer({
      minimum: 1,
      maximum: 60000,
      default: 2000,
      description: "how long to wait for the reply",
    }),
    version: Type.Integer({ minimum: 3, maximum: 4, default: 4, description: "NTP version in the request" }),
    address_family: addressFamilyOption,
  },
  { additionalProperties: false },
);

/** Options of an ntp check, defaults filled in by the config loader. */
export type NtpOptions = Static<typeof options>;

/** The I/O an ntp check uses: a UDP exchange (the DNS transport's is protocol-agnostic) and the wall clock. */
export interface NtpDependencies {
  transport: DnsTransport;
  /** Wall-clock Unix time in ms: the clock being judged. */
  now: () => number;
}

/** Builds the ntp check over the given I/O (docs/architecture.md, "Conventions"). */
export function createNtpCheck(deps: NtpDependencies): CheckKind<typeof options> {
  return {
    kind: "ntp",
    defaultArea: "wan",
    options,
    run: (target, opts, _ctx, signal) => runNtp(deps, target, opts, signal),
  };
}

/** SNTP check over a real UDP socket and the system clock. */
export const ntp: CheckKind<typeof options> = createNtpCheck({
  transport: socketDnsTransport,
  now: () => Date.now(),
});

async function runNtp(
  deps: NtpDependencies,
  target: string,
  opts: NtpOptions,
  signal: AbortSignal,
): Promise<Measurement> {
  const hp = parseHostPort(target, 123);
  if ("problem" in hp)
    return { status: "error", metrics: {}, error: { code: "invalid_target", message: hp.problem } };
  const resolved = await resolveHost(hp.host, opts.address_family, signal);
  if ("error" in resolved) return hostFailure(resolved.error);
  // The wall clock is read once and carried forward on the monotonic clock to the moments the
  // request left and the reply came (the transport's stamps): opening and connecting the socket
  // takes a while, and that must not count as offset.
  const wallAtStart = deps.now();
  const monoAtStart = process.hrtime.bigint();
  // The transmit timestamp is only a cookie for the server to echo (RFC 4330 §5); random bits below
  // the millisecond make it unguessable for a spoofer.
  const request = encodeSntpRequest(wallAtStart + randomInt(1_000_000) / 1e9, opts.version);
  const sentOriginate = request.subarray(40, 48);
  let reply: SntpReply | undefined;
  let ignored = 0;
  const result = await deps.transport.exchange({
    server: { address: resolved.address, port: hp.port, family: resolved.family },
    protocol: "udp",
    query: request,
    waitMs: opts.wait_ms,
    signal,
    accept: (buf) => {
      const p = parseSntpReply(buf);
      if (!p.ok || (p.reply.mode !== 4 && p.reply.mode !== 5) || !p.reply.originate.equals(sentOriginate)) {
        ignored++;
        return false;
      }
      reply = p.reply;
      return true;
    },
  });
  const metrics: Record<string, number> = {};
  if (isIP(hp.host) === 0) metrics.resolve_ms = round(resolved.resolveMs);
  const detail: Record<string, unknown> = { address: resolved.address, port: hp.port };
  if (ignored > 0) detail.ignored_replies = ignored;
  if (result.kind !== "reply" || reply === undefined) {
    const error =
      result.kind === "error"
        ? { code: result.code, message: result.message }
        : {
            code: "timeout",
            message:
              result.kind === "aborted" ? "aborted before a reply" : `no reply within ${opts.wait_ms} ms`,
          };
    return { status: "fail", metrics, detail, error };
  }
  const r: SntpReply = reply;
  Object.assign(detail, {
    stratum: r.stratum,
    reference_id: r.referenceId,
    leap: r.leap,
    version: r.version,
  });
  const refusal = r.stratum === 0 ? KISS_REFUSALS[r.referenceId] : undefined;
  if (refusal !== undefined)
    return {
      status: "fail",
      metrics,
      detail,
      error: { code: "kiss_of_death", message: `server refused: ${r.referenceId} (${refusal})` },
    };
  // Stratum 0 without a refusal code is "unspecified or invalid" (RFC 5905 §7.3): what every chronyd
  // and ntpd sends before it has synchronised (leap 3, empty reference id, or INIT/STEP).
  if (r.leap === 3 || r.stratum === 0 || r.stratum > 15)
    return {
      status: "fail",
      metrics,
      detail,
      error: {
        code: "unsynchronized",
        message: `server clock unsynchronized (leap ${r.leap}, stratum ${r.stratum}${r.stratum === 0 ? `, reference id ${r.referenceId === "" ? "empty" : r.referenceId}` : ""})`,
      },
    };
  if (r.transmitMs === 0)
    return {
      status: "fail",
      metrics,
      detail,
      error: { code: "malformed", message: "reply without a transmit timestamp" },
    };
  const t1 = wallAtStart + Number(result.sentAt - monoAtStart) / 1e6;
  const t4 = wallAtStart + Number(result.receivedAt - monoAtStart) / 1e6;
  const { offsetMs, delayMs } = offsetAndDelay(t1, r.receiveMs, r.transmitMs, t4);
  Object.assign(metrics, {
    offset_ms: round(offsetMs),
    delay_ms: round(Math.max(0, delayMs)),
    stratum: r.stratum,
    root_delay_ms: round(r.rootDelayMs),
    root_dispersion_ms: round(r.rootDispersionMs),
  });
  const abs = Math.abs(offsetMs);
  const text = `local clock is ${round(abs)} ms ${offsetMs > 0 ? "behind" : "ahead of"} ${resolved.address}`;
  if (abs > opts.fail_offset_ms)
    return {
      status: "fail",
      metrics,
      detail,
      error: { code: "clock_offset", message: `${text} (fail_offset_ms ${opts.fail_offset_ms})` },
    };
  if (abs > opts.warn_offset_ms)
    return {
      status: "warn",
      metrics,
      detail,
      error: { code: "clock_offset", message: `${text} (warn_offset_ms ${opts.warn_offset_ms})` },
    };
  return { status: "ok", metrics, detail };
}

/**
 * Kiss codes by which a server refuses or throttles a client (RFC 5905 §7.4), with what a technician
 * should read. INIT and STEP are not here: they say the server is not synchronised, not a refusal.
 */
const KISS_REFUSALS: Readonly<Record<string, string>> = {
  ACST: "the association belongs to a unicast server",
  AUTH: "server authentication failed",
  AUTO: "autokey sequence failed",
  BCST: "the association belongs to a broadcast server",
  CRYP: "cryptographic authentication or identification failed",
  DENY: "access denied by the server",
  DROP: "lost peer in symmetric mode",
  RSTR: "access denied due to local policy",
  MCST: "the association belongs to a dynamically discovered server",
  NKEY: "no key found",
  RATE: "rate exceeded: the server asks this client to poll less often",
  RMOT: "alteration of association from a remote host running ntpdc",
};
