// DHCP/BOOTP messages (RFC 2131, options RFC 2132). The fixed BOOTP part is built and read with
// the `dhcp` package's lib/protocol (format/parse). Options of received messages are walked here,
// defensively: the package's own option parser prints "Option N not known" with console.error for
// every option it does not know (43, 66, 150… are what phones need), skips one byte too many on a
// pad option, and throws on truncation. parseDhcp never throws: malformed input → undefined.

import { createRequire } from "node:module";
import { formatIpv4 } from "./ethernet.ts";

/** DHCP message types (RFC 2132 §9.6). */
export const DHCP_TYPE = {
  discover: 1,
  offer: 2,
  request: 3,
  decline: 4,
  ack: 5,
  nak: 6,
  release: 7,
  inform: 8,
} as const;

/** Name of a message type number, for details and logs. */
export function dhcpTypeName(type: number | undefined): string {
  const hit = Object.entries(DHCP_TYPE).find(([, n]) => n === type);
  return hit ? hit[0].toUpperCase() : `type ${type ?? "missing"}`;
}

/** BOOTP server and client ports. */
export const DHCP_SERVER_PORT = 67;
export const DHCP_CLIENT_PORT = 68;

const MAGIC_COOKIE = 0x63825363;
const FIXED_LENGTH = 240; // 236-byte BOOTP header + magic cookie
/** Options the probe asks for: mask, router, DNS, domain, NTP, vendor (43), lease, server id, T1, T2, TFTP (66), 150. */
export const PARAMETER_REQUEST_LIST = [1, 3, 6, 15, 42, 43, 51, 54, 58, 59, 66, 150] as const;

interface DhcpProtocol {
  format(data: Record<string, unknown>): { _data: Buffer; _w: number };
  parse(buf: Buffer): {
    op: number;
    htype: number;
    hlen: number;
    xid: number;
    flags: number;
    ciaddr: string;
    yiaddr: string;
    siaddr: string;
    giaddr: string;
    chaddr: string;
    magicCookie: number;
  };
}

const protocol = createRequire(import.meta.url)("dhcp/lib/protocol.js") as DhcpProtocol;

/** What the probe sends: DISCOVER, REQUEST or RELEASE. */
export interface DhcpClientMessage {
  type: typeof DHCP_TYPE.discover | typeof DHCP_TYPE.request | typeof DHCP_TYPE.release;
  xid: number;
  /** Client hardware address (aa:bb:cc:dd:ee:ff). */
  chaddr: string;
  /** RFC 2131 §4.1: ask the server to broadcast its answer (the probe may have no address). */
  broadcast: boolean;
  /** Client address (RELEASE). */
  ciaddr?: string;
  /** Option 50: the address being requested (REQUEST in SELECTING state). */
  requestedIp?: string;
  /** Option 54: the server chosen (REQUEST) or released to (RELEASE). */
  serverId?: string;
  /** Option 60: vendor class identifier. */
  vendorClass?: string;
}

/** Encodes a client message as a UDP payload (padded to the 300-byte BOOTP minimum, RFC 1542 §3.2). */
export function encodeDhcp(m: DhcpClientMessage): Buffer {
  const options: Record<number, unknown> = { 53: m.type };
  if (m.type !== DHCP_TYPE.release) {
    options[55] = [...PARAMETER_REQUEST_LIST];
    options[57] = 1500;
  }
  if (m.requestedIp !== undefined) options[50] = m.requestedIp;
  if (m.serverId !== undefined) options[54] = m.serverId;
  if (m.vendorClass !== undefined && m.vendorClass !== "") options[60] = m.vendorClass;
  const sb = protocol.format({
    op: 1,
    htype: 1,
    hlen: 6,
    hops: 0,
    xid: m.xid >>> 0,
    secs: 0,
    flags: m.broadcast ? 0x8000 : 0,
    ciaddr: m.ciaddr ?? "0.0.0.0",
    yiaddr: "0.0.0.0",
    siaddr: "0.0.0.0",
    giaddr: "0.0.0.0",
    chaddr: m.chaddr,
    sname: "",
    file: "",
    options,
  });
  const out = Buffer.alloc(Math.max(300, sb._w));
  sb._data.copy(out, 0, 0, sb._w);
  return out;
}

/** A received DHCP message, options decoded where the probe uses them. */
export interface DhcpMessage {
  op: number;
  xid: number;
  /** Client hardware address, lower-case colon form. */
  chaddr: string;
  ciaddr: string;
  yiaddr: string;
  siaddr: string;
  giaddr: string;
  broadcast: boolean;
  /** Option 53 (undefined: a plain BOOTP reply). */
  type?: number;
  /** Every option by code; repeated options are concatenated (RFC 3396). */
  options: Map<number, Buffer>;
  serverId?: string;
  leaseS?: number;
  renewalS?: number;
  rebindingS?: number;
  subnetMask?: string;
  router: string[];
  dns: string[];
  domain?: string;
  ntp: string[];
  /** Option 43, hex. */
  vendorSpecificHex?: string;
  /** Option 66: TFTP server name. */
  tftpServer?: string;
  /** Option 150: TFTP server addresses (Cisco phones). */
  tftpServers: string[];
  /** Option 56: server message (NAK reason). */
  message?: string;
}

/** Parses a BOOTP/DHCP UDP payload; undefined when it is malformed or truncated. */
export function parseDhcp(payload: Buffer): DhcpMessage | undefined {
  if (payload.length < FIXED_LENGTH) return undefined;
  if (payload.readUInt32BE(236) !== MAGIC_COOKIE) return undefined;
  // The package's parser reads the fixed part; it gets an option area of just END so its own
  // option walker (see the file comment) has nothing to do.
  const fixed = Buffer.alloc(FIXED_LENGTH + 1);
  payload.copy(fixed, 0, 0, FIXED_LENGTH);
  fixed[FIXED_LENGTH] = 0xff;
  let header: ReturnType<DhcpProtocol["parse"]>;
  try {
    header = protocol.parse(fixed); // throws for htype ≠ 1 or hlen ≠ 6
  } catch {
    return undefined;
  }
  const options = walkOptions(payload.subarray(FIXED_LENGTH));
  if (options === undefined) return undefined;
  const type = byteOption(options, 53);
  return {
    op: header.op,
    xid: header.xid >>> 0,
    chaddr: header.chaddr.toLowerCase().replaceAll("-", ":"),
    ciaddr: header.ciaddr,
    yiaddr: header.yiaddr,
    siaddr: header.siaddr,
    giaddr: header.giaddr,
    broadcast: (header.flags & 0x8000) !== 0,
    ...(type === undefined ? {} : { type }),
    options,
    ...defined("serverId", ipsOption(options, 54)[0]),
    ...defined("leaseS", u32Option(options, 51)),
    ...defined("renewalS", u32Option(options, 58)),
    ...defined("rebindingS", u32Option(options, 59)),
    ...defined("subnetMask", ipsOption(options, 1)[0]),
    router: ipsOption(options, 3),
    dns: ipsOption(options, 6),
    ...defined("domain", textOption(options, 15)),
    ntp: ipsOption(options, 42),
    ...defined("vendorSpecificHex", options.get(43)?.toString("hex")),
    ...defined("tftpServer", textOption(options, 66)),
    tftpServers: ipsOption(options, 150),
    ...defined("message", textOption(options, 56)),
  };
}

function defined<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

/** Walks an option area (RFC 2132 §2); undefined when an option runs past the end. */
export function walkOptions(area: Buffer): Map<number, Buffer> | undefined {
  const out = new Map<number, Buffer>();
  let i = 0;
  while (i < area.length) {
    const code = area[i] ?? 0;
    if (code === 0xff) return out;
    if (code === 0) {
      i++; // RFC 2132 §3.1: pad is a single byte
      continue;
    }
    const len = area[i + 1];
    if (len === undefined || i + 2 + len > area.length) return undefined;
    const value = area.subarray(i + 2, i + 2 + len);
    const prev = out.get(code);
    out.set(code, prev === undefined ? Buffer.from(value) : Buffer.concat([prev, value]));
    i += 2 + len;
  }
  // No END option: tolerated (some relays strip it) as long as every option was whole.
  return out;
}

function byteOption(o: Map<number, Buffer>, code: number): number | undefined {
  const v = o.get(code);
  return v !== undefined && v.length >= 1 ? v[0] : undefined;
}

function u32Option(o: Map<number, Buffer>, code: number): number | undefined {
  const v = o.get(code);
  return v !== undefined && v.length >= 4 ? v.readUInt32BE(0) : undefined;
}

function ipsOption(o: Map<number, Buffer>, code: number): string[] {
  const v = o.get(code);
  if (v === undefined) return [];
  const out: string[] = [];
  for (let i = 0; i + 4 <= v.length; i += 4) out.push(formatIpv4(v, i));
  return out;
}

function textOption(o: Map<number, Buffer>, code: number): string | undefined {
  const v = o.get(code);
  if (v === undefined) return undefined;
  // Some servers NUL-terminate strings (RFC 2132 §2 says they should not).
  const text = v.toString("latin1").replace(/\0+$/, "");
  return text.replace(/[^\x20-\x7e]/g, "?");
}
