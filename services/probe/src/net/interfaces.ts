// What the kernel says about the probe's interfaces, read from sysfs and procfs (no external
// tools, no netlink addon). Reads are synchronous: sysfs/procfs files are tiny and in-kernel.

import { readFileSync } from "node:fs";
import { networkInterfaces } from "node:os";

const IFACE_PATTERN = /^[A-Za-z0-9_.:@-]{1,15}$/;

/** True when `name` is a syntactically valid Linux interface name (so it is safe in a sysfs path). */
export function isInterfaceName(name: string): boolean {
  return IFACE_PATTERN.test(name) && name !== "." && name !== "..";
}

/** One sysfs attribute of an interface (`/sys/class/net/<iface>/<attr>`), trimmed; undefined if unreadable. */
export function readSysfs(iface: string, attr: string): string | undefined {
  if (!isInterfaceName(iface)) return undefined;
  try {
    return readFileSync(`/sys/class/net/${iface}/${attr}`, "utf8").trim();
  } catch {
    return undefined;
  }
}

/** MAC of an interface from sysfs, "" when it does not exist. */
export function readInterfaceMac(iface: string): string {
  return readSysfs(iface, "address")?.toLowerCase() ?? "";
}

/** The first IPv4 address (and prefix length) of an interface, if it has one. */
export function interfaceIpv4(iface: string): { address: string; prefix: number } | undefined {
  const entry = networkInterfaces()[iface]?.find((a) => a.family === "IPv4");
  if (entry === undefined) return undefined;
  const prefix = Number((entry.cidr ?? "/32").split("/")[1]);
  return { address: entry.address, prefix };
}

/** The IPv4 default route: gateway and interface, from /proc/net/route. */
export function defaultRoute4(): { gateway: string; iface: string } | undefined {
  let text: string;
  try {
    text = readFileSync("/proc/net/route", "utf8");
  } catch {
    return undefined;
  }
  for (const line of text.split("\n").slice(1)) {
    const [iface, dest, gw, , , , metric, mask] = line.trim().split(/\s+/);
    if (iface === undefined || dest !== "00000000" || mask !== "00000000" || gw === undefined) continue;
    if (metric === undefined) continue;
    // /proc/net/route prints addresses as host-order (little-endian on every Pi) hex.
    const n = Number.parseInt(gw, 16);
    if (!Number.isFinite(n) || n === 0) continue;
    return { gateway: [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24].join("."), iface };
  }
  return undefined;
}

/** The interface with the IPv4 default route, else the first non-loopback interface that is up. */
export function defaultInterface(): string | undefined {
  const route = defaultRoute4();
  if (route !== undefined) return route.iface;
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    if (addrs?.some((a) => !a.internal)) return name;
  }
  return undefined;
}
