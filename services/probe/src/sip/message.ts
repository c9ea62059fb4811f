// SIP messages (RFC 3261 §7, §20, §25): parse what the network sends, build what the probe sends.
//
// The parser is deliberately forgiving in what it accepts (header folding, compact header names,
// LF-only line ends, RFC 3261 §7.3.1) and strict about what it cannot make sense of, and it never
// throws: a malformed message comes back as `{ error }` so a check can count it and move on.
import { printable } from "../../../contract/src/printable-text.ts";

/** One header line as received: `name` is the long form, lower case (`v` → `via`). */
export interface SipHeader {
  name: string;
  value: string;
}

/** A SIP request (RFC 3261 §7.1). */
export interface SipRequest {
  kind: "request";
  method: string;
  uri: string;
  headers: SipHeader[];
  body: Buffer;
}

/** A SIP response (RFC 3261 §7.2). */
export interface SipResponse {
  kind: "response";
  status: number;
  reason: string;
  headers: SipHeader[];
  body: Buffer;
}

/** Either kind of SIP message. */
export type SipMessage = SipRequest | SipResponse;

/** Why a datagram or stream chunk was not a SIP message. */
export interface SipParseError {
  error: string;
}

/** Biggest message the probe accepts: far above any OPTIONS/REGISTER/INVITE exchange it makes. */
export const MAX_SIP_MESSAGE_BYTES = 65_535;

// RFC 3261 §7.3.3 compact forms (plus those of RFC 3515, RFC 3841 and RFC 4028 seen in the wild).
const COMPACT: Readonly<Record<string, string>> = {
  i: "call-id",
  m: "contact",
  e: "content-encoding",
  l: "content-length",
  c: "content-type",
  f: "from",
  s: "subject",
  k: "supported",
  t: "to",
  v: "via",
  r: "refer-to",
  b: "referred-by",
  o: "event",
  u: "allow-events",
  x: "session-expires",
};

const TOKEN = /^[A-Za-z0-9.!%*_+`'~-]+$/;

/** Long, lower-case form of a header name. */
export function canonicalHeaderName(name: string): string {
  const lower = name.trim().toLowerCase();
  return COMPACT[lower] ?? lower;
}

/** Parses one complete message (a UDP datagram, or a frame cut by {@link SipStreamFramer}). */
export function parseSipMessage(data: Buffer): SipMessage | SipParseError {
  if (data.length === 0) return { error: "empty message" };
  if (data.length > MAX_SIP_MESSAGE_BYTES)
    return { error: `message larger than ${MAX_SIP_MESSAGE_BYTES} bytes` };
  const split = headerEnd(data);
  if (split === undefined) return { error: "no blank line after the headers" };
  // latin1 keeps one char per byte, so the header text maps 1:1 onto offsets; SIP headers are UTF-8
  // in theory but the probe only compares ASCII parts of them.
  const head = data.toString("latin1", 0, split.headerBytes);
  const lines = head.split(/\r?\n/);
  const startLine = lines.shift() ?? "";
  const headers: SipHeader[] = [];
  for (const line of lines) {
    if (line === "") continue;
    if (line.startsWith(" ") || line.startsWith("\t")) {
      // Folded continuation of the previous header (RFC 3261 §7.3.1).
      const last = headers[headers.length - 1];
      if (last === undefined) return { error: "continuation line before any header" };
      last.value = `${last.value} ${line.trim()}`;
      continue;
    }
    const colon = line.indexOf(":");
    if (colon <= 0) return { error: `header line without a name: ${JSON.stringify(line.slice(0, 40))}` };
    const rawName = line.slice(0, colon).trim();
    if (!TOKEN.test(rawName)) return { error: `invalid header name ${JSON.stringify(rawName.slice(0, 40))}` };
    headers.push({ name: canonicalHeaderName(rawName), value: line.slice(colon + 1).trim() });
  }
  let body = data.subarray(split.bodyStart);
  const lengthValue = headers.find((h) => h.name === "content-length")?.value;
  if (lengthValue !== undefined) {
    if (!/^\d{1,9}$/.test(lengthValue))
      return { error: `invalid Content-Length ${JSON.stringify(lengthValue)}` };
    const length = Number(lengthValue);
    if (length > body.length) return { error: `body shorter than Content-Length ${length}` };
    // Over UDP, bytes after Content-Length are discarded (RFC 3261 §18.3).
    body = body.subarray(0, length);
  }
  const response = /^SIP\/2\.0 ([1-6]\d\d)(?: (.*))?$/.exec(startLine);
  if (response) {
    return {
      kind: "response",
      status: Number(response[1]),
      reason: printable(response[2] ?? ""),
      headers,
      body,
    };
  }
  const request = /^([A-Za-z]+) (\S+) SIP\/2\.0$/.exec(startLine);
  if (request) {
    return { kind: "request", method: request[1] ?? "", uri: request[2] ?? "", headers, body };
  }
  return { error: `not a SIP start line: ${JSON.stringify(startLine.slice(0, 60))}` };
}

function headerEnd(data: Buffer): { headerBytes: number; bodyStart: number } | undefined {
  const crlf = data.indexOf("\r\n\r\n");
  const lf = data.indexOf("\n\n");
  if (crlf === -1 && lf === -1) return undefined;
  if (crlf !== -1 && (lf === -1 || crlf < lf)) return { headerBytes: crlf, bodyStart: crlf + 4 };
  return { headerBytes: lf, bodyStart: lf + 2 };
}

/** First value of a header (by long or compact name), or undefined. */
export function headerValue(message: { headers: readonly SipHeader[] }, name: string): string | undefined {
  const wanted = canonicalHeaderName(name);
  return message.headers.find((h) => h.name === wanted)?.value;
}

/**
 * Every value of a header, with comma-separated lists split (RFC 3261 §7.3.1): for Via, Contact,
 * Record-Route and the like. Commas inside quotes or angle brackets do not split.
 */
export function headerValues(message: { headers: readonly SipHeader[] }, name: string): string[] {
  const wanted = canonicalHeaderName(name);
  return message.headers.filter((h) => h.name === wanted).flatMap((h) => splitList(h.value));
}

/** Splits a header value on commas that are outside quotes and angle brackets. */
export function splitList(value: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (quoted) {
      if (c === "\\") i++;
      else if (c === '"') quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === "<") depth++;
    else if (c === ">") depth = Math.max(0, depth - 1);
    else if (c === "," && depth === 0) {
      out.push(value.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(value.slice(start).trim());
  return out.filter((v) => v !== "");
}

/** `;name=value` parameters, names lower-cased; a parameter without `=` maps to "". */
export function parseParams(text: string): Record<string, string> {
  const params: Record<string, string> = {};
  for (const part of text.split(";")) {
    const p = part.trim();
    if (p === "") continue;
    const eq = p.indexOf("=");
    const key = (eq === -1 ? p : p.slice(0, eq)).trim().toLowerCase();
    if (key === "" || key === "__proto__") continue;
    params[key] = eq === -1 ? "" : unquote(p.slice(eq + 1).trim());
  }
  return params;
}

function unquote(value: string): string {
  return value.length >= 2 && value.startsWith('"') && value.endsWith('"')
    ? value.slice(1, -1).replace(/\\(.)/g, "$1")
    : value;
}

/** One Via entry (RFC 3261 §20.42). */
export interface Via {
  transport: string;
  host: string;
  port: number | undefined;
  params: Record<string, string>;
}

/** Parses one Via value (`SIP/2.0/UDP host:port;branch=…`); undefined when malformed. */
export function parseVia(value: string): Via | undefined {
  const m =
    /^SIP\s*\/\s*2\.0\s*\/\s*([A-Za-z]+)\s+(\[[0-9A-Fa-f:.]+\]|[^\s;:]+)(?:\s*:\s*(\d{1,5}))?\s*(;.*)?$/.exec(
      value.trim(),
    );
  if (!m) return undefined;
  const port = m[3] === undefined ? undefined : Number(m[3]);
  if (port !== undefined && port > 65535) return undefined;
  return {
    transport: (m[1] ?? "").toUpperCase(),
    host: (m[2] ?? "").toLowerCase(),
    port,
    params: parseParams(m[4] ?? ""),
  };
}

/** A name-addr or addr-spec with its header parameters (From, To, Contact: RFC 3261 §20.10). */
export interface NameAddr {
  display: string;
  uri: string;
  params: Record<string, string>;
}

/** Parses `"Name" <sip:u@h>;tag=x` or `sip:u@h;tag=x`; undefined when malformed. */
export function parseNameAddr(value: string): NameAddr | undefined {
  const v = value.trim();
  const open = v.indexOf("<");
  if (open !== -1) {
    const close = v.indexOf(">", open);
    if (close === -1) return undefined;
    return {
      display: unquote(v.slice(0, open).trim()),
      uri: v.slice(open + 1, close).trim(),
      params: parseParams(v.slice(close + 1)),
    };
  }
  if (v === "*") return { display: "", uri: "*", params: {} };
  // addr-spec form: parameters after the URI belong to the header, not the URI (RFC 3261 §20).
  const semi = v.indexOf(";");
  const uri = semi === -1 ? v : v.slice(0, semi);
  if (!/^[A-Za-z][A-Za-z0-9+.-]*:\S+$/.test(uri)) return undefined;
  return { display: "", uri, params: parseParams(semi === -1 ? "" : v.slice(semi)) };
}

/** Host and port of a SIP URI (`sip:user@host:port;params`); undefined when malformed. */
export function parseSipUri(uri: string):
  | {
      scheme: string;
      user: string | undefined;
      host: string;
      port: number | undefined;
      params: Record<string, string>;
    }
  | undefined {
  const m = /^(sips?):(?:([^@;?]*)@)?(\[[0-9A-Fa-f:.]+\]|[^:;?>]+)(?::(\d{1,5}))?(;[^?]*)?(\?.*)?$/i.exec(
    uri.trim(),
  );
  if (!m) return undefined;
  const port = m[4] === undefined ? undefined : Number(m[4]);
  if (port !== undefined && port > 65535) return undefined;
  return {
    scheme: (m[1] ?? "sip").toLowerCase(),
    user: m[2],
    host: (m[3] ?? "").toLowerCase(),
    port,
    params: parseParams(m[5] ?? ""),
  };
}

/** CSeq (RFC 3261 §20.16); undefined when malformed. */
export function parseCSeq(value: string | undefined): { seq: number; method: string } | undefined {
  const m = /^(\d{1,10})\s+([A-Za-z]+)$/.exec((value ?? "").trim());
  if (!m) return undefined;
  const seq = Number(m[1]);
  return seq > 2 ** 31 - 1 ? undefined : { seq, method: (m[2] ?? "").toUpperCase() };
}

/** What the probe sends: start line, headers in order, optional body (Content-Length is added). */
export interface OutgoingRequest {
  method: string;
  uri: string;
  headers: ReadonlyArray<readonly [string, string]>;
  body?: string;
}

/** Serialises a request; Content-Length is always written last so a framer can trust it. */
export function serializeRequest(request: OutgoingRequest): Buffer {
  return serialize(`${request.method} ${request.uri} SIP/2.0`, request.headers, request.body);
}

/** Serialises a response (used by the lab's echo responder and the tests' fake servers). */
export function serializeResponse(
  status: number,
  reason: string,
  headers: ReadonlyArray<readonly [string, string]>,
  body?: string,
): Buffer {
  return serialize(`SIP/2.0 ${status} ${reason}`, headers, body);
}

function serialize(startLine: string, headers: ReadonlyArray<readonly [string, string]>, body = ""): Buffer {
  const payload = Buffer.from(body, "utf8");
  const lines = [startLine];
  for (const [name, value] of headers) {
    if (name.toLowerCase() === "content-length") continue;
    // A CR or LF in a value would let config text inject headers: refuse it here, once.
    if (/[\r\n]/.test(name) || /[\r\n]/.test(value)) throw new Error(`header ${name} contains a line break`);
    lines.push(`${name}: ${value}`);
  }
  lines.push(`Content-Length: ${payload.length}`, "", "");
  return Buffer.concat([Buffer.from(lines.join("\r\n"), "utf8"), payload]);
}

/** The headers a response must copy from its request (RFC 3261 §8.2.6.2). */
export function responseHeadersFor(request: SipRequest, toTag?: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const h of request.headers) {
    if (h.name === "via") out.push(["Via", h.value]);
  }
  const from = headerValue(request, "from");
  let to = headerValue(request, "to");
  if (to !== undefined && toTag !== undefined && parseNameAddr(to)?.params.tag === undefined)
    to = `${to};tag=${toTag}`;
  if (from !== undefined) out.push(["From", from]);
  if (to !== undefined) out.push(["To", to]);
  const callId = headerValue(request, "call-id");
  if (callId !== undefined) out.push(["Call-ID", callId]);
  const cseq = headerValue(request, "cseq");
  if (cseq !== undefined) out.push(["CSeq", cseq]);
  return out;
}

/**
 * Cuts a TCP/TLS byte stream into messages by Content-Length (RFC 3261 §18.3). Keep-alive CRLFs
 * between messages (RFC 5626 §3.5.1) are skipped. A stream that cannot be framed (no
 * Content-Length, oversized) is unrecoverable: `push` returns an error and the caller closes it.
 */
export class SipStreamFramer {
  #buffer: Buffer = Buffer.alloc(0);

  /** Adds bytes; returns every complete message now available, or the reason the stream is broken. */
  push(chunk: Buffer): { messages: Buffer[] } | SipParseError {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    const messages: Buffer[] = [];
    for (;;) {
      let skip = 0;
      while (skip < this.#buffer.length && (this.#buffer[skip] === 0x0d || this.#buffer[skip] === 0x0a))
        skip++;
      if (skip > 0) this.#buffer = this.#buffer.subarray(skip);
      if (this.#buffer.length === 0) return { messages };
      const split = headerEnd(this.#buffer);
      if (split === undefined) {
        if (this.#buffer.length > MAX_SIP_MESSAGE_BYTES) return { error: "header block too large" };
        return { messages };
      }
      const head = this.#buffer.toString("latin1", 0, split.headerBytes);
      const m = /(?:^|\n)(?:content-length|l)[ \t]*:[ \t]*(\d{1,9})[ \t]*\r?(?:\n|$)/i.exec(head);
      if (!m) return { error: "stream message without Content-Length" };
      const total = split.bodyStart + Number(m[1]);
      if (total > MAX_SIP_MESSAGE_BYTES) return { error: "message too large" };
      if (this.#buffer.length < total) return { messages };
      messages.push(this.#buffer.subarray(0, total));
      this.#buffer = this.#buffer.subarray(total);
    }
  }
}
