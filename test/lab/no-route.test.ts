// A probe with no route to anything (issue 14): a Raspberry Pi whose dhcpcd dropped the address
// after a pulled cable or an expired lease, a USB adapter unplugged. Every check kind still prints
// a result with an error code and exits 1, never a stack trace; the running service keeps its PID
// while the address, the routes, the link and the whole interface go away and come back, and
// every check keeps producing results. The address/route/link changes are made here with
// `ip -n <probe namespace>`, on the lab's probe interface only.
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runOk } from "../../scripts/lab/run.ts";
import { useLab } from "./lab-fixture.ts";
import { exited, probeStatus, startProbe, waitFor } from "./probe-harness.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const NETPROBE = join(ROOT, "services/probe/bin/netprobe");

/** One `netprobe check` of every kind (services/probe/src/checks/registry.ts), at lab targets. */
const KINDS: ReadonlyArray<{ kind: string; target: string; options?: string[]; layer: 2 | 3 }> = [
  { kind: "icmp", target: "203.0.113.10", options: ["count=2", "interval_ms=50"], layer: 3 },
  { kind: "traceroute", target: "203.0.113.200", options: ["max_hops=4"], layer: 3 },
  { kind: "path-mtu", target: "203.0.113.200", layer: 3 },
  { kind: "tcp", target: "203.0.113.10:80", layer: 3 },
  { kind: "http", target: "http://203.0.113.10/", layer: 3 },
  { kind: "tls", target: "203.0.113.10:443", layer: 3 },
  { kind: "ntp", target: "203.0.113.10", layer: 3 },
  { kind: "dns", target: "www.example.net", options: ["resolvers=[203.0.113.53]"], layer: 3 },
  { kind: "sip-options", target: "203.0.113.60", layer: 3 },
  { kind: "sip-register", target: "203.0.113.60", options: SIP(), layer: 3 },
  { kind: "sip-call", target: "203.0.113.60", options: SIP(), layer: 3 },
  { kind: "link", target: "eth0", layer: 2 },
  { kind: "lldp", target: "eth0", options: ["wait_ms=1500"], layer: 2 },
  { kind: "gateway", target: "192.0.2.1", options: ["interface=eth0", "wait_ms=500"], layer: 2 },
  { kind: "arp", target: "self", options: ["interface=eth0", "wait_ms=500"], layer: 2 },
  { kind: "dhcp", target: "eth0", options: ["wait_ms=1000"], layer: 2 },
];

function SIP(): string[] {
  return ["domain=pbx.lab.example", "username=office100", "password=lab-office100-secret"];
}

/** A Node stack frame, as an uncaught exception prints it. */
const STACK_FRAME = /^\s+at .+(:\d+:\d+\)?|\(native\))$/m;

interface Envelope {
  kind: string;
  status: string;
  error?: { code: string; message: string };
}

describe("a probe with no route to anything", () => {
  const lab = useLab();
  let probe: ReturnType<typeof startProbe> | undefined;
  const ns = () => lab().info.ns;
  const ipProbe = (...args: string[]) => runOk(["ip", "-n", ns().probe, ...args]);

  afterAll(async () => {
    if (probe && probe.exitCode === null) {
      probe.kill("SIGTERM");
      await exited(probe);
    }
  });

  /** What dhcpcd does when the lease goes: addresses and routes gone, the link still up. */
  async function dropAddresses(): Promise<void> {
    await ipProbe("-4", "route", "flush", "table", "main");
    await ipProbe("-6", "route", "flush", "table", "main");
    await ipProbe("addr", "flush", "dev", "eth0", "scope", "global");
  }

  async function restoreAddresses(): Promise<void> {
    const a = lab().info.addr;
    await ipProbe("addr", "replace", `${a.probe4}/24`, "dev", "eth0");
    await ipProbe("-6", "addr", "replace", `${a.probe6}/64`, "dev", "eth0", "nodad");
    await ipProbe("-4", "route", "replace", "default", "via", a.gwLan4, "dev", "eth0");
    await ipProbe("-6", "route", "replace", "default", "via", a.gwLan6, "dev", "eth0");
  }

  /** The USB adapter unplugged: the interface (and its switch port) disappears. */
  async function removeInterface(): Promise<void> {
    await ipProbe("link", "del", "eth0");
  }

  /** …and plugged back in: a new interface with the same name and MAC, a new ifindex. */
  async function recreateInterface(): Promise<void> {
    const a = lab().info.addr;
    await ipProbe("link", "add", "eth0", "type", "veth", "peer", "name", "probe0", "netns", ns().sw);
    await runOk(["ip", "-n", ns().sw, "link", "set", "probe0", "master", "br0", "up"]);
    await ipProbe("link", "set", "eth0", "address", a.probeMac, "up");
    await restoreAddresses();
  }

  async function checkEveryKind(layers: ReadonlyArray<2 | 3>) {
    const picked = KINDS.filter((k) => layers.includes(k.layer));
    const out: Array<{ kind: string; code: number; stderr: string; result: Envelope | undefined }> = [];
    // Three at a time: the machine is shared, and each run starts a Node.
    for (let i = 0; i < picked.length; i += 3) {
      out.push(
        ...(await Promise.all(
          picked.slice(i, i + 3).map(async (k) => {
            const argv = [NETPROBE, "check", k.kind, "-t", k.target, "--json", "--timeout", "8s"];
            for (const o of k.options ?? []) argv.push("-o", o);
            const r = await lab().exec("probe", argv, { timeoutMs: 60_000 });
            let result: Envelope | undefined;
            try {
              result = JSON.parse(r.stdout) as Envelope;
            } catch {
              result = undefined;
            }
            return { kind: k.kind, code: r.code, stderr: r.stderr, result };
          }),
        )),
      );
    }
    return out;
  }

  function expectFailedCleanly(runs: Awaited<ReturnType<typeof checkEveryKind>>, codes: readonly string[]) {
    for (const r of runs) {
      const what = `${r.kind}: exit ${r.code}, stderr ${JSON.stringify(r.stderr.slice(0, 300))}`;
      expect(r.stderr, what).not.toMatch(STACK_FRAME);
      expect(r.result?.kind, what).toBe(r.kind);
      expect(["fail", "error"], what).toContain(r.result?.status);
      expect(r.code, what).toBe(1);
      expect(codes, `${what}: ${r.result?.error?.code}: ${r.result?.error?.message}`).toContain(
        r.result?.error?.code,
      );
    }
    console.log(
      runs.map((r) => `${r.kind}: ${r.result?.error?.code} (${r.result?.error?.message})`).join("\n"),
    );
  }

  it("no address, no route: every IP-level kind prints a result with an error code and exits 1, no stack trace", async () => {
    await dropAddresses();
    try {
      const ip = await checkEveryKind([3]);
      expect(ip.map((r) => r.kind)).toHaveLength(11);
      // No route at all: the socket says so at once (ENETUNREACH), whatever the protocol.
      expectFailedCleanly(ip, ["no_route"]);
      // Ethernet-level checks need no address: link, LLDP, the gateway's ARP and DHCP still see
      // the office; the duplicate-address check says there is no address to check.
      const l2 = await checkEveryKind([2]);
      for (const r of l2) {
        expect(r.stderr, r.kind).not.toMatch(STACK_FRAME);
        expect(r.result?.kind, r.kind).toBe(r.kind);
      }
      const arp = l2.find((r) => r.kind === "arp");
      expect(arp).toMatchObject({ code: 1, result: { status: "error", error: { code: "no_address" } } });
      expect(l2.find((r) => r.kind === "link")).toMatchObject({ code: 0, result: { status: "ok" } });
    } finally {
      await restoreAddresses();
    }
  });

  it("interface removed: every kind prints a result with an error code and exits 1, no stack trace", async () => {
    await removeInterface();
    try {
      const runs = await checkEveryKind([2, 3]);
      expect(runs).toHaveLength(KINDS.length);
      expectFailedCleanly(runs, ["no_route", "interface_missing"]);
      for (const kind of ["link", "lldp", "gateway", "arp", "dhcp"])
        expect(runs.find((r) => r.kind === kind)?.result?.error?.code, kind).toBe("interface_missing");
    } finally {
      await recreateInterface();
    }
  });

  it("the service keeps its PID through address loss, link down, interface removal, and recovers", async () => {
    probe = startProbe(lab());
    const pid = probe.pid;
    const names = () => probeStatus(lab()).checks.map((c) => c.check);
    const seqs = () => new Map(probeStatus(lab()).checks.map((c) => [c.check, c.seq]));
    const last = (check: string) => probeStatus(lab()).checks.find((c) => c.check === check);
    await waitFor("a result of every check", 60_000, () => names().length >= 15);
    const configured = names();
    /** Every configured check has produced a result since `before`; returns them. */
    const everyCheckRanSince = async (what: string, before: Map<string, number>) => {
      await waitFor(
        () =>
          `${what}: checks without a new result: ${configured.filter((c) => (seqs().get(c) ?? 0) <= (before.get(c) ?? 0)).join(", ")}`,
        60_000,
        () => configured.every((c) => (seqs().get(c) ?? 0) > (before.get(c) ?? 0)),
      );
      expect(probe?.exitCode, `${what}: the service exited`).toBeNull();
      expect(probe?.pid).toBe(pid);
    };
    const recovered = async (what: string) => {
      for (const check of ["link", "gateway-icmp", "wan-icmp", "dhcp", "pbx-options"])
        await waitFor(`${check} ok again after ${what}`, 60_000, () => last(check)?.status === "ok");
    };

    // 1. The lease goes: addresses and routes flushed.
    await dropAddresses();
    await everyCheckRanSince("no address", seqs());
    await waitFor("wan-icmp: no_route", 30_000, () => last("wan-icmp")?.error?.code === "no_route");
    expect(last("wan-icmp")?.error?.message).toMatch(
      /no route to 203\.0\.113\.10: the probe has no address or default route/,
    );
    await waitFor("pbx-options: no_route", 30_000, () => last("pbx-options")?.error?.code === "no_route");
    await restoreAddresses();
    await recovered("the address came back");

    // 2. Cable pulled on the probe's side: the link goes down and up.
    await ipProbe("link", "set", "eth0", "down");
    await everyCheckRanSince("link down", seqs());
    await waitFor("link: not ok while down", 30_000, () => last("link")?.status === "fail");
    await ipProbe("link", "set", "eth0", "up");
    await restoreAddresses(); // a link down takes the routes with it
    await recovered("the link came back");

    // 3. The adapter unplugged and plugged back: a new interface under the same name.
    await removeInterface();
    try {
      await everyCheckRanSince("interface removed", seqs());
      await waitFor(
        "link: interface_missing",
        30_000,
        () => last("link")?.error?.code === "interface_missing",
      );
      await waitFor(
        "dhcp: interface_missing",
        30_000,
        () => last("dhcp")?.error?.code === "interface_missing",
      );
    } finally {
      await recreateInterface();
    }
    // The DHCP check captures with pcap: green again means its session follows the new interface.
    await recovered("the interface came back");
    await everyCheckRanSince("interface back", seqs());

    expect(probe.log.filter((l) => l.includes('"level":60'))).toEqual([]); // no fatal line
    probe.kill("SIGTERM");
    expect((await exited(probe)).code).toBe(0);
  });
});
