// Which interface a packet to a given address leaves by, from the kernel's routing tables in procfs
// (no netlink addon, no `ip route get` child process). Longest-prefix match over the main table
// (/proc/net/route) and the IPv6 FIB (/proc/net/ipv6_route); among equal prefixes the lowest
// metric wins. Policy routing (ip rule, other tables, marks) and multipath are ignored: a probe
// with such a setup may get the wrong interface, and callers must treat the answer as a hint.
// "Cannot tell" (no route, a reject route, an address of the host itself) is undefined.

import { readFileSync } from "node:fs";
import { endianness, networkInterfaces } from "node:os";
import { isIP } from "node:net";
import { normalizeIpLiteral } from "./icmp-packet.ts";

/** One usable route: destination prefix, output interface and metric. */
export interface Route {
  /** 4 or 16 bytes, network byte order. */
  prefix: Buffer;
  prefixLength: number;
  iface: string;
  metric: number;
  /** A reject/unreachable route (RTF_REJECT) or local delivery (RTF_LOCAL): no wire to watch. */
  noWire: boolean;
}

/** <linux/route.h> / <linux/ipv6_route.h> flags. */
const RTF_UP = 0x0001;
const RTF_REJECT = 0x0200;
const RTF_LOCAL = 0x80000000;

/**
 * Parses /proc/net/route. Addresses are printed as the kernel's u32 in host byte order, so on a
 * little-endian machine "0102A8C0" is 192.168.2.1; `littleEndian` says which one this text is.
 * Lines that do not parse are skipped.
 */
export function parseIpv4Routes(text: string, littleEndian = endianness() === "LE"): Route[] {
  const routes: Route[] = [];
  for (const line of text.split("\n").slice(1)) {
    const [iface, dest, , flags, , , metric, mask] = line.trim().split(/\s+/);
    if (iface === undefined || dest === undefined || flags === undefined || mask === undefined) continue;
    const destination = hostOrderBytes(dest, littleEndian);
    const netmask = hostOrderBytes(mask, littleEndian);
    const flagBits = Number.parseInt(flags, 16);
    const metricValue = Number.parseInt(metric ?? "", 10);
    if (destination === undefined || netmask === undefined || !Number.isFinite(flagBits)) continue;
    if ((flagBits & (RTF_UP | RTF_REJECT)) === 0 || !Number.isFinite(metricValue)) continue;
    const prefixLength = maskLength(netmask);
    if (prefixLength === undefined) continue;
    routes.push({
      prefix: destination,
      prefixLength,
      iface,
      metric: metricValue,
      noWire: (flagBits & RTF_REJECT) !== 0,
    });
  }
  return routes;
}

/**
 * Parses /proc/net/ipv6_route: destination, prefix length, source, source prefix length, next hop,
 * metric, refcount, use, flags, interface — all hex. Source-specific routes are skipped (they only
 * apply to some source addresses, which this lookup does not know).
 */
export function parseIpv6Routes(text: string): Route[] {
  const routes: Route[] = [];
  for (const line of text.split("\n")) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 10) continue;
    const [dest = "", plen = "", , srcPlen = "", , metric = "", , , flags = "", iface = ""] = fields;
    if (!/^[0-9a-f]{32}$/i.test(dest)) continue;
    const prefixLength = Number.parseInt(plen, 16);
    const flagBits = Number.parseInt(flags, 16);
    const metricValue = Number.parseInt(metric, 16);
    if (!(prefixLength >= 0 && prefixLength <= 128) || !Number.isFinite(flagBits)) continue;
    if (!Number.isFinite(metricValue) || Number.parseInt(srcPlen, 16) !== 0) continue;
    // The kernel prints reject (unreachable/prohibit) routes without RTF_UP; they still match.
    if ((flagBits & (RTF_UP | RTF_REJECT)) === 0) continue;
    routes.push({
      prefix: Buffer.from(dest, "hex"),
      prefixLength,
      iface,
      metric: metricValue,
      noWire: (flagBits & (RTF_REJECT | RTF_LOCAL)) !== 0,
    });
  }
  return routes;
}

/** The route a packet to `address` (4 or 16 bytes) takes: longest prefix, then lowest metric. */
export function lookupRoute(routes: readonly Route[], address: Buffer): Route | undefined {
  let best: Route | undefined;
  for (const r of routes) {
    if (r.prefix.length !== address.length || !prefixMatches(r.prefix, address, r.prefixLength)) continue;
    if (
      best === undefined ||
      r.prefixLength > best.prefixLength ||
      (r.prefixLength === best.prefixLength && r.metric < best.metric)
    )
      best = r;
  }
  return best;
}

/** Where the routing tables and the host's own addresses come from (tests pass fixed ones). */
export interface RouteSources {
  ipv4Routes(): string | undefined;
  ipv6Routes(): string | undefined;
  /** Every address configured on the host (normalized text form). */
  ownAddresses(): readonly string[];
}

/** The running kernel's tables (of the process's network namespace). */
export const procRoutes: RouteSources = {
  ipv4Routes: () => readText("/proc/net/route"),
  ipv6Routes: () => readText("/proc/net/ipv6_route"),
  ownAddresses: () =>
    Object.values(networkInterfaces()).flatMap((list) =>
      (list ?? []).map((a) => normalizeIpLiteral(a.address)),
    ),
};

/**
 * The interface packets to the IP literal `address` leave by, or undefined when it cannot tell
 * (no route, a reject route, one of the host's own addresses — those never reach a wire). An IPv6
 * zone index (`fe80::1%eth1`) names the interface directly.
 */
export function egressInterface(address: string, sources: RouteSources = procRoutes): string | undefined {
  const zoneAt = address.indexOf("%");
  if (zoneAt >= 0) {
    const zone = address.slice(zoneAt + 1);
    return zone === "" ? undefined : zone;
  }
  const family = isIP(address);
  if (family !== 4 && family !== 6) return undefined;
  if (sources.ownAddresses().includes(normalizeIpLiteral(address))) return undefined;
  const text = family === 4 ? sources.ipv4Routes() : sources.ipv6Routes();
  if (text === undefined) return undefined;
  const routes = family === 4 ? parseIpv4Routes(text) : parseIpv6Routes(text);
  const bytes = family === 4 ? Buffer.from(address.split(".").map(Number)) : ipv6Bytes(address);
  const route = lookupRoute(routes, bytes);
  return route === undefined || route.noWire ? undefined : route.iface;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

/** 4 bytes in network order from /proc/net/route's 8-hex-digit host-order u32. */
function hostOrderBytes(hex: string, littleEndian: boolean): Buffer | undefined {
  if (!/^[0-9a-f]{8}$/i.test(hex)) return undefined;
  const bytes = Buffer.from(hex, "hex");
  return littleEndian ? bytes.reverse() : bytes;
}

/** Prefix length of a contiguous netmask, undefined for a non-contiguous one. */
function maskLength(mask: Buffer): number | undefined {
  const n = mask.readUInt32BE(0);
  const length = Math.clz32(~n >>> 0);
  const rebuilt = length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0;
  return rebuilt === n ? length : undefined;
}

function prefixMatches(prefix: Buffer, address: Buffer, length: number): boolean {
  const whole = length >> 3;
  if (prefix.compare(address, 0, whole, 0, whole) !== 0) return false;
  const rest = length & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return ((prefix[whole] ?? 0) & mask) === ((address[whole] ?? 0) & mask);
}

/** The 16 bytes of an IPv6 literal (normalized first, so an embedded dotted quad is hex too). */
function ipv6Bytes(address: string): Buffer {
  const [head = "", tail] = normalizeIpLiteral(address).split("::");
  const headGroups = head === "" ? [] : head.split(":");
  const tailGroups = tail === undefined || tail === "" ? [] : tail.split(":");
  const middle = new Array<string>(Math.max(0, 8 - headGroups.length - tailGroups.length)).fill("0");
  const groups = tail === undefined ? headGroups : [...headGroups, ...middle, ...tailGroups];
  const bytes = Buffer.alloc(16);
  groups.slice(0, 8).forEach((group, i) => bytes.writeUInt16BE(Number.parseInt(group, 16) & 0xffff, i * 2));
  return bytes;
}
