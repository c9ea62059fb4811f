// DNS messages for the dns check: query encoding (dns-packet) and a response parser that never
// throws. dns-packet's `decode` throws on malformed input and returns loosely shaped objects, so
// every decoded value is re-checked here before a check sees it; the 12-byte header is read by hand
// so that a reply whose body is cut short (a truncated UDP answer) can still be matched and acted on.

import * as dnsPacket from "dns-packet";
import type { Answer, DecodedPacket } from "dns-packet";
import { isIP } from "node:net";
import { printable } from "../../../contract/src/printable-text.ts";

/** Record types a dns check may ask for. */
export const QUERY_TYPES = ["A", "AAAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT", "CAA"] as const;
/** One record type a dns check may ask for. */
export type QueryType = (typeof QUERY_TYPES)[number];

/** What goes into a query. */
export interface DnsQuery {
  id: number;
  /** Without the trailing dot. */
  name: string;
  type: QueryType;
  recursionDesired: boolean;
  /** EDNS(0) OPT record (RFC 6891): advertised UDP payload size and the DO bit (RFC 3225). */
  edns?: { udpSize: number; dnssecOk: boolean };
  /** Ask for the AD bit (RFC 6840 §5.7): a validating resolver then says whether it validated. */
  authenticData: boolean;
}

/** The fixed header of a DNS message (RFC 1035 §4.1.1). */
export interface DnsHeader {
  id: number;
  qr: boolean;
  opcode: number;
  aa: boolean;
  tc: boolean;
  rd: boolean;
  ra: boolean;
  ad: boolean;
  cd: boolean;
  /** The 4-bit header RCODE (extended by the OPT record, see DnsResponse.rcode). */
  rcode: number;
  qdcount: number;
  ancount: number;
  nscount: number;
  arcount: number;
}

/** One resource record, with its data rendered as text (as dig prints it). */
export interface DnsRecord {
  name: string;
  type: string;
  ttl: number;
  data: string;
}

/** A fully parsed response. */
export interface DnsResponse {
  header: DnsHeader;
  /** Full RCODE name: header RCODE plus the OPT record's extended bits ("NOERROR", "BADVERS"…). */
  rcode: string;
  questions: { name: string; type: string; class: string }[];
  answers: DnsRecord[];
  authorities: DnsRecord[];
  /** The response's OPT record, when it has one. */
  edns?: { udpSize: number; version: number; dnssecOk: boolean };
}

/** Outcome of parsing: the response, or why not (with the header when at least that was readable). */
export type ParsedResponse =
  { ok: true; response: DnsResponse } | { ok: false; reason: string; header?: DnsHeader };

/** Largest DNS message (the TCP length prefix is 16 bits). */
export const MAX_MESSAGE_BYTES = 65535;
const HEADER_BYTES = 12;

/** Why a query name cannot be sent, or undefined when it is a valid DNS name (RFC 1035 §2.3.4). */
export function invalidQueryName(name: string): string | undefined {
  const trimmed = name.endsWith(".") ? name.slice(0, -1) : name;
  if (trimmed === "") return "is empty";
  if (Buffer.byteLength(trimmed) > 253) return "is longer than 253 bytes";
  for (const label of trimmed.split(".")) {
    if (label === "") return "has an empty label";
    if (Buffer.byteLength(label) > 63) return `has a label longer than 63 bytes (${label.slice(0, 20)}…)`;
  }
  return undefined;
}

/** Encodes a query; the name must have passed invalidQueryName. */
export function encodeQuery(q: DnsQuery): Buffer {
  let flags = q.recursionDesired ? dnsPacket.RECURSION_DESIRED : 0;
  if (q.authenticData) flags |= dnsPacket.AUTHENTIC_DATA;
  const additionals: Answer[] = q.edns
    ? [
        {
          name: ".",
          type: "OPT",
          udpPayloadSize: q.edns.udpSize,
          flags: q.edns.dnssecOk ? dnsPacket.DNSSEC_OK : 0,
          options: [],
        },
      ]
    : [];
  return dnsPacket.encode({
    id: q.id,
    type: "query",
    flags,
    questions: [{ name: stripDot(q.name), type: q.type, class: "IN" }],
    additionals,
  });
}

/** Reads the 12-byte header, or undefined when the message is shorter than that. */
export function parseHeader(buf: Buffer): DnsHeader | undefined {
  if (buf.length < HEADER_BYTES) return undefined;
  const flags = buf.readUInt16BE(2);
  return {
    id: buf.readUInt16BE(0),
    qr: (flags & 0x8000) !== 0,
    opcode: (flags >> 11) & 0xf,
    aa: (flags & 0x0400) !== 0,
    tc: (flags & 0x0200) !== 0,
    rd: (flags & 0x0100) !== 0,
    ra: (flags & 0x0080) !== 0,
    ad: (flags & 0x0020) !== 0,
    cd: (flags & 0x0010) !== 0,
    rcode: flags & 0xf,
    qdcount: buf.readUInt16BE(4),
    ancount: buf.readUInt16BE(6),
    nscount: buf.readUInt16BE(8),
    arcount: buf.readUInt16BE(10),
  };
}

/** Parses a response; never throws, whatever the bytes. */
export function parseResponse(buf: Buffer): ParsedResponse {
  const header = parseHeader(buf);
  if (header === undefined) return { ok: false, reason: `${buf.length} bytes, shorter than a DNS header` };
  if (buf.length > MAX_MESSAGE_BYTES) return { ok: false, reason: "longer than a DNS message", header };
  // dns-packet preallocates an array per section from the header counts (up to 4 × 65535 slots,
  // ~2 MB) before it finds the body too short: junk would cost milliseconds and megabytes each.
  // A question takes at least 5 bytes and a record at least 11, so impossible counts stop here.
  const minimum = header.qdcount * 5 + (header.ancount + header.nscount + header.arcount) * 11;
  if (minimum > buf.length - HEADER_BYTES)
    return { ok: false, reason: "section counts exceed the message length", header };
  let decoded: DecodedPacket;
  try {
    decoded = dnsPacket.decode(buf);
  } catch (err) {
    return { ok: false, reason: `undecodable: ${err instanceof Error ? err.message : String(err)}`, header };
  }
  try {
    return { ok: true, response: shape(header, decoded) };
  } catch (err) {
    // shape() re-checks dns-packet's output; anything it did not foresee lands here, not in the check.
    return {
      ok: false,
      reason: `unexpected content: ${err instanceof Error ? err.message : String(err)}`,
      header,
    };
  }
}

function shape(header: DnsHeader, decoded: DecodedPacket): DnsResponse {
  const opt = (Array.isArray(decoded.additionals) ? decoded.additionals : []).find((a) => a.type === "OPT");
  const extended = typeof opt?.extendedRcode === "number" ? opt.extendedRcode : 0;
  const response: DnsResponse = {
    header,
    rcode: rcodeName((extended << 4) | header.rcode),
    questions: (Array.isArray(decoded.questions) ? decoded.questions : []).map((q) => ({
      name: stripDot(String(q.name)),
      type: String(q.type),
      class: String(q.class),
    })),
    answers: records(decoded.answers),
    authorities: records(decoded.authorities),
  };
  if (opt !== undefined) {
    response.edns = {
      udpSize: typeof opt.udpPayloadSize === "number" ? opt.udpPayloadSize : 0,
      version: typeof opt.ednsVersion === "number" ? opt.ednsVersion : 0,
      dnssecOk: opt.flag_do === true,
    };
  }
  return response;
}

function records(list: unknown): DnsRecord[] {
  if (!Array.isArray(list)) return [];
  return (list as Answer[])
    .filter((a) => a.type !== "OPT")
    .map((a) => ({
      name: printable(stripDot(String(a.name))),
      type: String(a.type),
      ttl: typeof a.ttl === "number" ? a.ttl : 0,
      data: printable(rdataText(String(a.type), a.data)),
    }));
}

const RCODE_NAMES: readonly string[] = [
  "NOERROR",
  "FORMERR",
  "SERVFAIL",
  "NXDOMAIN",
  "NOTIMP",
  "REFUSED",
  "YXDOMAIN",
  "YXRRSET",
  "NXRRSET",
  "NOTAUTH",
  "NOTZONE",
  "DSOTYPENI",
];
const EXTENDED_RCODE_NAMES: Readonly<Record<number, string>> = { 16: "BADVERS", 23: "BADCOOKIE" };

/** Name of an RCODE (RFC 1035, RFC 6891 extended); unknown ones as RCODE_<n>. */
export function rcodeName(rcode: number): string {
  return RCODE_NAMES[rcode] ?? EXTENDED_RCODE_NAMES[rcode] ?? `RCODE_${rcode}`;
}

/** Record data as text, the way dig prints it; never throws (unknown shapes become hex or JSON). */
export function rdataText(type: string, data: unknown): string {
  try {
    if (typeof data === "string") return type === "AAAA" ? normalizeAddress(data) : stripDot(data);
    if (Buffer.isBuffer(data)) return `\\# ${data.length} ${data.toString("hex")}`;
    if (Array.isArray(data)) {
      // TXT: a list of character-strings.
      return data.map((s) => `"${Buffer.isBuffer(s) ? s.toString("utf8") : String(s)}"`).join(" ");
    }
    if (data !== null && typeof data === "object") {
      const d = data as Record<string, unknown>;
      switch (type) {
        case "MX":
          return `${num(d.preference)} ${stripDot(String(d.exchange))}`;
        case "SRV":
          return `${num(d.priority)} ${num(d.weight)} ${num(d.port)} ${stripDot(String(d.target))}`;
        case "SOA":
          return [
            stripDot(String(d.mname)),
            stripDot(String(d.rname)),
            num(d.serial),
            num(d.refresh),
            num(d.retry),
            num(d.expire),
            num(d.minimum),
          ].join(" ");
        case "CAA":
          return `${num(d.flags)} ${String(d.tag)} "${String(d.value)}"`;
        default:
          return JSON.stringify(data, (_k, v: unknown) =>
            Buffer.isBuffer(v) ? v.toString("hex") : typeof v === "bigint" ? v.toString() : v,
          );
      }
    }
    return String(data);
  } catch {
    return "(unprintable)";
  }
}

/** An IP literal in its canonical text form (for comparing AAAA answers with expectations). */
export function normalizeAddress(address: string): string {
  const family = isIP(address);
  if (family === 4) return address;
  if (family === 6) {
    try {
      return new URL(`http://[${address}]/`).hostname.slice(1, -1);
    } catch {
      return address.toLowerCase();
    }
  }
  return address;
}

function num(v: unknown): string {
  return typeof v === "number" ? String(v) : "?";
}

function stripDot(name: string): string {
  return name.length > 1 && name.endsWith(".") ? name.slice(0, -1) : name;
}
