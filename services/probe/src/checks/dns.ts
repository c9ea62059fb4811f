// DNS (dns area): asks every resolver the same question over UDP (TCP on truncation, or TCP only)
// and reports them side by side: query time, RCODE, flags, the answer checked against expectations,
// and whether the resolver turns a name that does not exist into an address (NXDOMAIN hijacking).
//
// Each query has a random id and goes out from a fresh socket (random source port); a reply counts
// only when it comes from the resolver (connected socket), carries the id and echoes the question.
// Anything else — malformed, mismatched — is counted and ignored, never thrown.

import { randomBytes, randomInt } from "node:crypto";
import { readFile } from "node:fs/promises";
import { isIP } from "node:net";
import { Type, type Static } from "@sinclair/typebox";
import type { CheckError, CheckKind, Measurement, Status } from "./check.ts";
import { worse } from "../runner/thresholds.ts";
import {
  QUERY_TYPES,
  encodeQuery,
  invalidQueryName,
  normalizeAddress,
  parseResponse,
  type DnsResponse,
  type QueryType,
} from "../net/dns-message.ts";
import { socketDnsTransport, type DnsServer, type DnsTransport } from "../net/dns-transport.ts";
import { round } from "./common/round.ts";
import { errorMessage } from "./common/failure.ts";

/** The resolvers entry that stands for the resolvers in resolv.conf (where DHCP puts its DNS servers). */
export const DHCP_RESOLVERS = "dhcp";

const options = Type.Object(
  {
    resolvers: Type.Array(Type.String({ minLength: 1 }), {
      minItems: 1,
      maxItems: 8,
      default: [DHCP_RESOLVERS],
      description:
        'resolvers to ask, side by side: IP addresses ("192.0.2.53", "192.0.2.53:5353", ' +
        '"[2001:db8::53]:53") and/or "dhcp" = every nameserver in resolv_conf (the DHCP-provided ones)',
    }),
    resolv_conf: Type.String({
      minLength: 1,
      default: "/etc/resolv.conf",
      description:
        'file the "dhcp" entry reads nameserver lines from; with systemd-resolved use ' +
        "/run/systemd/resolve/resolv.conf (the real upstreams, not the 127.0.0.53 stub)",
    }),
    type: Type.Union(
      QUERY_TYPES.map((t) => Type.Literal(t)),
      { default: "A", description: "record type to ask for" },
    ),
    transport: Type.Union([Type.Literal("udp"), Type.Literal("tcp")], {
      default: "udp",
      description: "udp (with TCP fallback on truncation) or tcp only",
    }),
    tcp_fallback: Type.Boolean({
      default: true,
      description:
        "retry over TCP when the UDP answer is truncated (TC bit); false: a truncated answer fails",
    }),
    edns: Type.Boolean({ default: true, description: "send an EDNS(0) OPT record (RFC 6891)" }),
    edns_udp_size: Type.Integer({
      minimum: 512,
      maximum: 65535,
      default: 1232,
      description: "UDP payload size advertised with EDNS (1232: DNS flag day 2020)",
    }),
    recursion: Type.Boolean({
      default: true,
      description: "set RD (ask for recursion); false for authoritative servers",
    }),
    dnssec: Type.Boolean({
      default: false,
      description:
        "set DO and AD and require the AD bit in the answer (the resolver validated it); implies EDNS",
    }),
    expect_rcode: Type.Union([Type.Literal("NOERROR"), Type.Literal("NXDOMAIN")], {
      default: "NOERROR",
      description: "the RCODE a healthy resolver gives; NOERROR also requires at least one record of `type`",
    }),
    expect_addresses: Type.Array(Type.String({ minLength: 1 }), {
      default: [],
      maxItems: 64,
      description: "A/AAAA: every address in the answer must be one of these (empty: any)",
    }),
    expect_regex: Type.String({
      default: "",
      description: "at least one answer record's data (as dig prints it) must match this regex (empty: any)",
    }),
    hijack_check: Type.Boolean({
      default: true,
      description: "also ask for a random name that cannot exist; an address instead of NXDOMAIN = hijack",
    }),
    hijack_domain: Type.String({
      default: "",
      description:
        "domain the random name goes under (empty: the target's parent domain); must have no wildcard records",
    }),
    slow_ms: Type.Integer({
      minimum: 0,
      maximum: 60000,
      default: 500,
      description:
        "a resolver whose answer takes longer than this is degraded: warn with code slow (0: never)",
    }),
    wait_ms: Type.Integer({
      minimum: 1,
      maximum: 60000,
      default: 2000,
      description: "how long to wait for each answer (UDP, TCP fallback and hijack probe each)",
    }),
  },
  { additionalProperties: false },
);

/** Options of a dns check, defaults filled in by the config loader. */
export type DnsOptions = Static<typeof options>;

/** The I/O a dns check uses; unit tests pass a fake transport and a fake file. */
export interface DnsDependencies {
  transport: DnsTransport;
  readResolvConf: (path: string) => Promise<string>;
}

/** Cap on the answer records listed per resolver in the detail. */
export const MAX_DETAIL_ANSWERS = 20;

/** Builds the dns check over the given I/O (docs/architecture.md, "Conventions"). */
export function createDnsCheck(deps: DnsDependencies): CheckKind<typeof options> {
  return {
    kind: "dns",
    defaultArea: "dns",
    options,
    run: (target, opts, _ctx, signal) => runDns(deps, target, opts, signal),
  };
}

/** DNS check over real sockets and the real resolv.conf. */
export const dns: CheckKind<typeof options> = createDnsCheck({
  transport: socketDnsTransport,
  readResolvConf: (path) => readFile(path, "utf8"),
});

/** A resolver to ask and where it came from. */
interface ResolverEntry {
  server: DnsServer;
  /** As configured or as read from resolv.conf. */
  label: string;
  source: "config" | "dhcp";
}

/** Per-resolver outcome, as it appears in detail.resolvers. */
interface ResolverReport {
  resolver: string;
  source: "config" | "dhcp";
  status: Status;
  error?: CheckError;
  rcode?: string;
  query_ms?: number;
  query_id?: number;
  transport?: "udp" | "tcp" | "udp+tcp";
  truncated?: boolean;
  udp_query_ms?: number;
  tcp_connect_ms?: number;
  answers?: string[];
  answer_count?: number;
  flags?: { aa: boolean; ra: boolean; ad: boolean; tc: boolean };
  edns?: { udp_size: number; version: number; do: boolean } | null;
  hijack_probe?: {
    name: string;
    verdict: "nxdomain" | "hijacked" | "inconclusive";
    rcode?: string;
    answers?: string[];
    error?: string;
  };
  ignored_replies?: { malformed: number; mismatched: number };
}

async function runDns(
  deps: DnsDependencies,
  rawTarget: string,
  opts: DnsOptions,
  signal: AbortSignal,
): Promise<Measurement> {
  const target = rawTarget.trim().replace(/\.$/, "");
  const badName = invalidQueryName(target);
  if (badName !== undefined) return errorResult("invalid_target", `target "${rawTarget}" ${badName}`);
  let regex: RegExp | undefined;
  if (opts.expect_regex !== "") {
    try {
      regex = new RegExp(opts.expect_regex);
    } catch (err) {
      return errorResult("invalid_option", `expect_regex: ${errorMessage(err)}`);
    }
  }
  const badAddress = opts.expect_addresses.find((a) => isIP(a) === 0);
  if (badAddress !== undefined)
    return errorResult("invalid_option", `expect_addresses: "${badAddress}" is not an IP address`);
  const hijackDomain = (opts.hijack_domain || parentDomain(target)).replace(/\.$/, "");
  if (opts.hijack_check && invalidQueryName(`netprobe-nx-000000000000.${hijackDomain}`) !== undefined)
    return errorResult("invalid_option", `hijack_domain "${hijackDomain}" cannot hold a probe name`);

  const resolvers = await resolverList(deps, opts);
  if ("failure" in resolvers) return resolvers.failure;

  const run = new ResolverRun(deps.transport, target, opts, regex, hijackDomain, signal);
  const reports = await Promise.all(resolvers.list.map((r) => run.ask(r)));
  return combine(reports, target, opts.type);
}

async function resolverList(
  deps: DnsDependencies,
  opts: DnsOptions,
): Promise<{ list: ResolverEntry[] } | { failure: Measurement }> {
  const list: ResolverEntry[] = [];
  const seen = new Set<string>();
  const add = (entry: ResolverEntry): void => {
    const key = `${entry.server.address}|${entry.server.port}`;
    if (seen.has(key)) return;
    seen.add(key);
    list.push(entry);
  };
  for (const spec of opts.resolvers) {
    if (spec.trim().toLowerCase() === DHCP_RESOLVERS) {
      let text: string;
      try {
        text = await deps.readResolvConf(opts.resolv_conf);
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        const reason = typeof code === "string" ? code : errorMessage(err);
        return { failure: errorResult("no_resolvers", `cannot read ${opts.resolv_conf}: ${reason}`) };
      }
      const servers = nameserversOf(text);
      if (servers.length === 0)
        return { failure: errorResult("no_resolvers", `no nameserver line in ${opts.resolv_conf}`) };
      for (const address of servers) add({ server: serverOf(address, 53), label: address, source: "dhcp" });
      continue;
    }
    const server = parseResolver(spec);
    if (server === undefined)
      return {
        failure: errorResult(
          "invalid_option",
          `resolvers: "${spec}" is neither an IP address (optionally with :port) nor "${DHCP_RESOLVERS}"`,
        ),
      };
    add({ server, label: spec.trim(), source: "config" });
  }
  return { list };
}

/** The nameserver addresses of a resolv.conf (resolv.conf(5)); a scope suffix (%eth0) is dropped. */
export function nameserversOf(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split("\n")) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    const address = m?.[1]?.replace(/%.*$/, "");
    if (address !== undefined && isIP(address) !== 0) out.push(address);
  }
  return out;
}

/** "192.0.2.53", "192.0.2.53:5353", "2001:db8::53", "[2001:db8::53]:5353" → server; else undefined. */
export function parseResolver(spec: string): DnsServer | undefined {
  const s = spec.trim();
  if (isIP(s) !== 0) return serverOf(s, 53);
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(s) ?? /^([^:]+):(\d+)$/.exec(s);
  if (m === null) return undefined;
  const [, address = "", portText = ""] = m;
  const port = Number(portText);
  if (isIP(address) === 0 || !Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  return serverOf(address, port);
}

function serverOf(address: string, port: number): DnsServer {
  return { address, port, family: isIP(address) === 6 ? 6 : 4 };
}

/** The parent of a name with three or more labels, else the name itself (www.example.net → example.net). */
function parentDomain(name: string): string {
  const labels = name.split(".");
  return labels.length >= 3 ? labels.slice(1).join(".") : name;
}

/** Outcome of one query (with its TCP fallback). */
type QueryOutcome =
  | {
      ok: true;
      response: DnsResponse;
      queryMs: number;
      transport: "udp" | "tcp" | "udp+tcp";
      udpQueryMs?: number;
      connectMs?: number;
      /** DNS message id of the query that was answered (for matching with a packet capture). */
      id: number;
      ignored: { malformed: number; mismatched: number };
    }
  | { ok: false; error: CheckError; ignored: { malformed: number; mismatched: number }; truncated?: boolean };

/** One run's question, asked of each resolver. */
class ResolverRun {
  readonly #transport: DnsTransport;
  readonly #target: string;
  readonly #opts: DnsOptions;
  readonly #regex: RegExp | undefined;
  readonly #hijackDomain: string;
  readonly #signal: AbortSignal;
  readonly #expected: Set<string>;

  constructor(
    transport: DnsTransport,
    target: string,
    opts: DnsOptions,
    regex: RegExp | undefined,
    hijackDomain: string,
    signal: AbortSignal,
  ) {
    this.#transport = transport;
    this.#target = target;
    this.#opts = opts;
    this.#regex = regex;
    this.#hijackDomain = hijackDomain;
    this.#signal = signal;
    this.#expected = new Set(opts.expect_addresses.map(normalizeAddress));
  }

  async ask(entry: ResolverEntry): Promise<ResolverReport> {
    const report: ResolverReport = { resolver: entry.label, source: entry.source, status: "ok" };
    const outcome = await this.#query(entry.server, this.#target, this.#opts.type);
    if (outcome.ignored.malformed + outcome.ignored.mismatched > 0) report.ignored_replies = outcome.ignored;
    if (!outcome.ok) {
      if (outcome.truncated) report.truncated = true;
      return { ...report, status: "fail", error: outcome.error };
    }
    const { response } = outcome;
    const records = response.answers.filter((r) => r.type === this.#opts.type);
    report.rcode = response.rcode;
    report.query_ms = round(outcome.queryMs);
    report.query_id = outcome.id;
    report.transport = outcome.transport;
    report.truncated = outcome.transport === "udp+tcp";
    if (outcome.udpQueryMs !== undefined) report.udp_query_ms = round(outcome.udpQueryMs);
    if (outcome.connectMs !== undefined) report.tcp_connect_ms = round(outcome.connectMs);
    report.answers = records.slice(0, MAX_DETAIL_ANSWERS).map((r) => r.data);
    report.answer_count = records.length;
    report.flags = {
      aa: response.header.aa,
      ra: response.header.ra,
      ad: response.header.ad,
      tc: response.header.tc,
    };
    report.edns = response.edns
      ? { udp_size: response.edns.udpSize, version: response.edns.version, do: response.edns.dnssecOk }
      : null;

    const problem = this.#judgeAnswer(
      response,
      records.map((r) => r.data),
    );
    if (problem !== undefined && isRcodeProblem(problem))
      return { ...report, status: "fail", error: problem };
    if (this.#opts.hijack_check) {
      report.hijack_probe = await this.#hijackProbe(entry.server);
      if (report.hijack_probe.verdict === "hijacked") {
        const answers = report.hijack_probe.answers?.join(", ") ?? "";
        return {
          ...report,
          status: "fail",
          error: {
            code: "hijack",
            message:
              `${report.hijack_probe.name} does not exist but the resolver answered ${report.hijack_probe.rcode ?? ""} ${answers}`.trim(),
          },
        };
      }
    }
    if (problem !== undefined) return { ...report, status: "fail", error: problem };
    if (this.#opts.slow_ms > 0 && outcome.queryMs > this.#opts.slow_ms)
      return {
        ...report,
        status: "warn",
        error: {
          code: "slow",
          message: `answered in ${round(outcome.queryMs)} ms (slow_ms ${this.#opts.slow_ms})`,
        },
      };
    return report;
  }

  /** Why an answer is wrong (RCODE first, then content), or undefined when it is as expected. */
  #judgeAnswer(response: DnsResponse, data: string[]): CheckError | undefined {
    const o = this.#opts;
    const q = `${this.#target} ${o.type}`;
    if (response.rcode !== o.expect_rcode) return rcodeError(response.rcode, o.expect_rcode, q);
    if (o.expect_rcode === "NOERROR" && data.length === 0)
      return { code: "no_answer", message: `${q}: NOERROR but no ${o.type} record in the answer` };
    if (this.#expected.size > 0 && (o.type === "A" || o.type === "AAAA")) {
      const unexpected = data.filter((d) => !this.#expected.has(normalizeAddress(d)));
      if (unexpected.length > 0)
        return {
          code: "wrong_answer",
          message: `${q}: ${unexpected.join(", ")} not among the expected ${o.expect_addresses.join(", ")}`,
        };
    }
    if (this.#regex !== undefined && data.length > 0 && !data.some((d) => this.#regex?.test(d) === true))
      return {
        code: "wrong_answer",
        message: `${q}: no record matches /${o.expect_regex}/ (got ${data.slice(0, 5).join(", ")})`,
      };
    if (o.dnssec && !response.header.ad)
      return {
        code: "dnssec_unvalidated",
        message: `${q}: answer without the AD bit (not DNSSEC-validated)`,
      };
    return undefined;
  }

  async #hijackProbe(server: DnsServer): Promise<NonNullable<ResolverReport["hijack_probe"]>> {
    const name = `netprobe-nx-${randomBytes(6).toString("hex")}.${this.#hijackDomain}`;
    const outcome = await this.#query(server, name, "A");
    if (!outcome.ok) return { name, verdict: "inconclusive", error: outcome.error.code };
    const { rcode, answers } = outcome.response;
    const addresses = answers
      .filter((r) => r.type === "A" || r.type === "AAAA" || r.type === "CNAME")
      .map((r) => r.data);
    const verdict =
      rcode === "NXDOMAIN"
        ? "nxdomain"
        : rcode === "NOERROR" && addresses.length > 0
          ? "hijacked"
          : "inconclusive";
    return { name, verdict, rcode, answers: addresses.slice(0, MAX_DETAIL_ANSWERS) };
  }

  async #query(server: DnsServer, name: string, type: QueryType): Promise<QueryOutcome> {
    const o = this.#opts;
    const id = randomInt(0x10000);
    const query = encodeQuery({
      id,
      name,
      type,
      recursionDesired: o.recursion,
      authenticData: o.dnssec,
      ...(o.edns || o.dnssec ? { edns: { udpSize: o.edns_udp_size, dnssecOk: o.dnssec } } : {}),
    });
    const ignored = { malformed: 0, mismatched: 0 };
    let parsed: DnsResponse | undefined;
    let truncatedUnparsed = false;
    const accept = (reply: Buffer): boolean => {
      const p = parseResponse(reply);
      if (!p.ok) {
        // A truncated UDP answer may be cut anywhere; its header is enough to go to TCP.
        if (p.header?.id === id && p.header.qr && p.header.tc) {
          truncatedUnparsed = true;
          return true;
        }
        ignored.malformed++;
        return false;
      }
      if (!answersQuestion(p.response, id, name, type)) {
        ignored.mismatched++;
        return false;
      }
      parsed = p.response;
      return true;
    };
    const exchange = async (protocol: "udp" | "tcp") => {
      parsed = undefined;
      truncatedUnparsed = false;
      return this.#transport.exchange({
        server,
        protocol,
        query,
        waitMs: o.wait_ms,
        signal: this.#signal,
        accept,
      });
    };

    const first = await exchange(o.transport);
    if (first.kind !== "reply")
      return { ok: false, error: exchangeError(first, o, ignored, o.transport), ignored };
    const firstMs = Number(first.receivedAt - first.sentAt) / 1e6;
    const firstResponse = parsed;
    const truncated = truncatedUnparsed || (o.transport === "udp" && firstResponse?.header.tc === true);
    if (!truncated && firstResponse !== undefined)
      return {
        ok: true,
        response: firstResponse,
        queryMs: firstMs,
        transport: o.transport,
        ...(first.connectMs === undefined ? {} : { connectMs: first.connectMs }),
        id,
        ignored,
      };
    if (!o.tcp_fallback)
      return {
        ok: false,
        truncated: true,
        ignored,
        error: {
          code: "truncated",
          message: `${name} ${type}: UDP answer truncated (TC) and tcp_fallback is off`,
        },
      };
    // RFC 7766 §5: a truncated UDP answer is retried over TCP.
    const second = await exchange("tcp");
    if (second.kind !== "reply") {
      const why = exchangeError(second, o, ignored, "tcp");
      return {
        ok: false,
        truncated: true,
        ignored,
        error: {
          code: "truncated",
          message: `${name} ${type}: UDP answer truncated and the TCP fallback failed: ${why.message}`,
        },
      };
    }
    const secondResponse = parsed;
    if (secondResponse === undefined)
      return {
        ok: false,
        truncated: true,
        ignored,
        error: { code: "malformed", message: "TCP answer unreadable" },
      };
    return {
      ok: true,
      response: secondResponse,
      queryMs: Number(second.receivedAt - second.sentAt) / 1e6,
      transport: "udp+tcp",
      udpQueryMs: firstMs,
      ...(second.connectMs === undefined ? {} : { connectMs: second.connectMs }),
      id,
      ignored,
    };
  }
}

/** A reply answers our query when it is a response with our id that echoes our question (RFC 5452 §4.3). */
function answersQuestion(r: DnsResponse, id: number, name: string, type: string): boolean {
  if (r.header.id !== id || !r.header.qr || r.header.opcode !== 0) return false;
  const q = r.questions[0];
  // Some servers leave out the question in error replies (FORMERR, REFUSED, NOTIMP).
  if (q === undefined) return r.rcode !== "NOERROR" && r.questions.length === 0;
  return r.questions.length === 1 && q.name.toLowerCase() === name.toLowerCase() && q.type === type;
}

function exchangeError(
  result: Exclude<Awaited<ReturnType<DnsTransport["exchange"]>>, { kind: "reply" }>,
  opts: DnsOptions,
  ignored: { malformed: number; mismatched: number },
  protocol: "udp" | "tcp",
): CheckError {
  switch (result.kind) {
    case "timeout":
      if (ignored.malformed > 0)
        return {
          code: "malformed",
          message: `only malformed replies (${ignored.malformed}) within ${opts.wait_ms} ms`,
        };
      return { code: "timeout", message: `no answer over ${protocol} within ${opts.wait_ms} ms` };
    case "aborted":
      return { code: "timeout", message: `aborted (check timeout) before an answer over ${protocol}` };
    case "error":
      return { code: result.code, message: `${protocol}: ${result.message}` };
  }
}

const RCODE_CODES: Readonly<Record<string, string>> = {
  SERVFAIL: "servfail",
  REFUSED: "refused",
  NXDOMAIN: "nxdomain",
  NOERROR: "wrong_answer",
};

function rcodeError(rcode: string, expected: string, question: string): CheckError {
  return {
    code: RCODE_CODES[rcode] ?? rcode.toLowerCase(),
    message: `${question}: ${rcode} (expected ${expected})`,
  };
}

function isRcodeProblem(e: CheckError): boolean {
  return e.code !== "wrong_answer" && e.code !== "dnssec_unvalidated";
}

function combine(reports: ResolverReport[], target: string, type: QueryType): Measurement {
  let status: Status = "ok";
  for (const r of reports) status = worse(status, r.status);
  const answered = reports.flatMap((r) => (r.query_ms === undefined ? [] : [r.query_ms]));
  const metrics: Record<string, number> = {
    resolvers: reports.length,
    resolvers_ok: reports.filter((r) => r.status === "ok").length,
  };
  if (answered.length > 0) {
    metrics.query_ms = round(Math.max(...answered));
    metrics.query_min_ms = round(Math.min(...answered));
    metrics.query_avg_ms = round(answered.reduce((a, b) => a + b, 0) / answered.length);
  }
  const detail = { name: target, type, resolvers: reports };
  if (status === "ok") return { status, metrics, detail };
  const failing = reports.filter((r) => r.status === status && r.error !== undefined);
  const first = failing[0]?.error ?? { code: "unknown", message: "no resolver answered" };
  const message = failing
    .map((r) => `${r.resolver}: ${r.error?.code ?? "?"} (${r.error?.message ?? ""})`)
    .join("; ");
  return { status, metrics, detail, error: { code: first.code, message } };
}

function errorResult(code: string, message: string): Measurement {
  return { status: "error", metrics: {}, error: { code, message } };
}
