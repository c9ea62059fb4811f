// Egress interface lookup from procfs routing tables (net/routes.ts), on fixed table texts as the
// kernel prints them, so the answers do not depend on the machine running the tests.
import { describe, expect, test } from "vitest";
import {
  egressInterface,
  parseIpv4Routes,
  parseIpv6Routes,
  type RouteSources,
} from "../../../services/probe/src/net/routes.ts";

// /proc/net/route on a little-endian host: default via 192.0.2.1 on eth0, 192.0.2.0/24 on eth0,
// 198.51.100.0/24 on eth1 (metric 100) and on wlan0 (metric 600), 203.0.113.128/25 via wg0,
// an unreachable 203.0.113.64/26, a route that is down (flags 0) for 198.51.100.7/32.
const ROUTE_V4 = `Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
wlan0\t006433C6\t00000000\t0001\t0\t0\t600\t00FFFFFF\t0\t0\t0
eth1\t006433C6\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0
wg0\t807100CB\t00000000\t0001\t0\t0\t0\t80FFFFFF\t0\t0\t0
lo\t407100CB\t00000000\t0201\t0\t0\t0\tC0FFFFFF\t0\t0\t0
eth1\t076433C6\t00000000\t0000\t0\t0\t0\tFFFFFFFF\t0\t0\t0
garbage line
`;

// /proc/net/ipv6_route: 2001:db8::/64 on eth0, default via fe80::1 on eth0, 2001:db8:1::/48 on
// eth1, the host's own 2001:db8::10 (local, on eth0 as the kernel prints it), an unreachable
// 2001:db8:dead::/48 (reject, on lo).
const ROUTE_V6 = [
  "20010db8000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0",
  "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000002 00000000 00000003     eth0",
  "20010db8000100000000000000000000 30 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth1",
  "20010db8000000000000000000000010 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000004 00000000 80200001     eth0",
  "20010db8dead00000000000000000000 30 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo",
  "",
].join("\n");

function sources(own: string[] = []): RouteSources {
  return { ipv4Routes: () => ROUTE_V4, ipv6Routes: () => ROUTE_V6, ownAddresses: () => own };
}

describe("egress interface by longest-prefix match", () => {
  test.each([
    ["192.0.2.77", "eth0"], // connected /24
    ["203.0.113.200", "wg0"], // /25 beats the default route
    ["203.0.113.10", "eth0"], // outside every specific prefix: default route
    ["198.51.100.7", "eth1"], // the /32 is down; among equal /24s the lowest metric wins
    ["2001:db8::99", "eth0"],
    ["2001:db8:1:2::3", "eth1"],
    ["2001:db8:ffff::1", "eth0"], // IPv6 default route
    ["fe80::1%eth3", "eth3"], // a zone names the interface
  ])("%s leaves by %s", (address, iface) => {
    expect(egressInterface(address, sources())).toBe(iface);
  });

  test.each([
    ["203.0.113.70", "an unreachable (reject) route"],
    ["2001:db8:dead::1", "an IPv6 reject route"],
    ["2001:db8::10", "a local route (the host's own IPv6 address)"],
    ["not-an-address", "not an IP literal"],
  ])("%s: no interface (%s)", (address) => {
    expect(egressInterface(address, sources())).toBeUndefined();
  });

  test("the host's own addresses never reach a wire, whatever the main table says", () => {
    expect(egressInterface("192.0.2.5", sources(["192.0.2.5"]))).toBeUndefined();
    expect(egressInterface("192.0.2.6", sources(["192.0.2.5"]))).toBe("eth0");
  });

  test("unreadable tables or no matching route: undefined", () => {
    const none: RouteSources = { ipv4Routes: () => undefined, ipv6Routes: () => "", ownAddresses: () => [] };
    expect(egressInterface("192.0.2.1", none)).toBeUndefined();
    expect(egressInterface("2001:db8::1", none)).toBeUndefined();
  });
});

describe("parsing", () => {
  test("/proc/net/route addresses are host-order u32: read little- and big-endian text", () => {
    const le = parseIpv4Routes(ROUTE_V4, true).find((r) => r.iface === "wg0");
    expect(le && [...le.prefix]).toEqual([203, 0, 113, 128]);
    expect(le?.prefixLength).toBe(25);
    const be = parseIpv4Routes(
      "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\nwg0\tCB007180\t0\t0001\t0\t0\t0\tFFFFFF80\n",
      false,
    );
    expect(be[0] && [...be[0].prefix]).toEqual([203, 0, 113, 128]);
    expect(be[0]?.prefixLength).toBe(25);
  });

  test("non-contiguous masks, down routes and junk lines are skipped", () => {
    const text =
      "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\neth0\t00000000\t0\t0001\t0\t0\t0\tFF00FF00\n";
    expect(parseIpv4Routes(text, true)).toEqual([]);
    expect(parseIpv4Routes(ROUTE_V4, true).some((r) => r.prefixLength === 32)).toBe(false);
    expect(parseIpv6Routes("zz 40\n1 2 3\n")).toEqual([]);
  });
});
