// The lab learns how real offices fail: the probe's own faults (scripts/lab/probe-host.ts) with the
// probe addressed statically and by DHCP as dhcpcd on Raspberry Pi OS does it. Each fault on → what
// a technician would see in the probe namespace (no address or route, no interface, the MTU, an
// empty resolv.conf …) → off → the probe exactly as before. Then `netprobe lab fault` as a user
// types it: within a second (median of several toggles, printed).
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { availableParallelism, loadavg } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ADDR } from "../../scripts/lab/lab.ts";
import type { FaultName, Lab, LabHost } from "../../scripts/lab/lab.ts";
import {
  PROBE_FAULTS,
  dhcpEventsLog,
  probeResolvConf,
  type ProbeFault,
} from "../../scripts/lab/probe-host.ts";
import { useLab } from "./lab-fixture.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const NETPROBE = join(ROOT, "services/probe/bin/netprobe");

/** What a technician would look at on the probe: addresses, default routes, MTU, MAC, resolv.conf. */
interface ProbeView {
  link: string | null;
  mtu: number | null;
  v4: string[];
  v6: string[];
  default4: string[];
  default6: string[];
  resolv: string;
}

async function probeView(lab: Lab): Promise<ProbeView> {
  const j = async (argv: string[]): Promise<unknown[]> => {
    const r = await lab.exec("probe", ["ip", "-j", ...argv]);
    return r.code === 0 && r.stdout.trim() ? (JSON.parse(r.stdout) as unknown[]) : [];
  };
  const links = (await j(["link", "show", "dev", ADDR.probeIf])) as Array<{ address: string; mtu: number }>;
  const addrs = (await j(["addr", "show", "dev", ADDR.probeIf, "scope", "global"])) as Array<{
    addr_info: Array<{ family: string; local: string; prefixlen: number }>;
  }>;
  const info = addrs.flatMap((a) => a.addr_info);
  const routes = async (family: string) =>
    ((await j([family, "route", "show", "default"])) as Array<{ gateway?: string; dev: string }>).map(
      (r) => `${r.gateway} dev ${r.dev}`,
    );
  return {
    link: links[0]?.address ?? null,
    mtu: links[0]?.mtu ?? null,
    v4: info.filter((a) => a.family === "inet").map((a) => `${a.local}/${a.prefixlen}`),
    v6: info.filter((a) => a.family === "inet6").map((a) => `${a.local}/${a.prefixlen}`),
    default4: await routes("-4"),
    default6: await routes("-6"),
    resolv: readFileSync(probeResolvConf(lab.info.ns), "utf8"),
  };
}

async function ping(
  lab: Lab,
  target: string,
  extra: string[] = [],
  from: LabHost = "probe",
): Promise<boolean> {
  const r = await lab.exec(from, ["ping", "-n", "-q", "-c", "1", "-W", "1", ...extra, target]);
  return r.code === 0;
}

/** A name through the probe's resolv.conf (dig without @server reads it, as the dns check does). */
async function resolves(lab: Lab): Promise<boolean> {
  const r = await lab.exec("probe", ["dig", "+short", "+time=1", "+tries=1", "wan.lab.example", "A"]);
  return r.stdout.trim() === ADDR.wanTarget4;
}

/** Polls `fn` until it holds (DHCP and carrier events take a moment). */
async function eventually(what: string, fn: () => Promise<boolean>, ms = 15_000): Promise<void> {
  for (const until = Date.now() + ms; ; await new Promise((r) => setTimeout(r, 100))) {
    if (await fn()) return;
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
  }
}

/** The observable effect of each probe fault while it is on. */
const EFFECT: Record<ProbeFault, (lab: Lab, v: ProbeView) => Promise<void>> = {
  "lease-lost": async (lab, v) => {
    expect(v.v4, "IPv4 address").toEqual([]);
    expect(v.default4, "IPv4 default route").toEqual([]);
    expect(v.resolv, "nameservers removed with the lease").toBe("");
    expect(await ping(lab, ADDR.gwLan4)).toBe(false);
    // The gateway's DHCP server is silent: no DISCOVER from the probe's port gets an OFFER.
    const dhcp = await lab.exec(
      "probe",
      ["udhcpc", "-i", ADDR.probeIf, "-f", "-q", "-n", "-t", "2", "-T", "1", "-s", "/bin/true"],
      { timeoutMs: 8000 },
    );
    expect(dhcp.code, dhcp.stderr).not.toBe(0);
  },
  "adapter-unplugged": async (lab, v) => {
    expect(v.link, "eth0 exists").toBeNull();
    const port = await lab.exec("sw", ["ip", "link", "show", "dev", "probe0"]);
    expect(port.code, "the switch port is gone with the cable").not.toBe(0);
  },
  "address-changed": async (lab, v) => {
    expect(v.v4).toEqual([`${ADDR.probeAlt4}/24`]);
    expect(v.default4).toEqual([`${ADDR.gwLan4} dev ${ADDR.probeIf}`]);
    expect(await ping(lab, ADDR.wanTarget4)).toBe(true); // the new address works
  },
  "resolv-empty": async (lab, v) => {
    expect(v.resolv).toBe("");
    expect(await resolves(lab)).toBe(false);
    expect(await ping(lab, ADDR.wanTarget4)).toBe(true); // only the resolver is gone
  },
  "mtu-changed": async (lab, v) => {
    expect(v.mtu).toBe(1280);
    // 1252 bytes of payload + 28 of headers fit 1280 exactly; one more with DF does not.
    expect(await ping(lab, ADDR.gwLan4, ["-M", "do", "-s", "1252"])).toBe(true);
    expect(await ping(lab, ADDR.gwLan4, ["-M", "do", "-s", "1253"])).toBe(false);
    expect(await ping(lab, ADDR.wanTarget6)).toBe(true); // 1280 is IPv6's minimum: IPv6 stays
  },
  "ra-gone": async (lab, v) => {
    expect(v.default6).toEqual([]);
    expect(v.v6).toEqual([`${ADDR.probe6}/64`]); // the SLAAC address outlives the router
    expect(await ping(lab, ADDR.wanTarget6)).toBe(false);
    expect(await ping(lab, ADDR.gwLan6)).toBe(true); // on-link still works
    expect(await ping(lab, ADDR.wanTarget4)).toBe(true);
  },
};

/** Everything works from the probe: the gateway, the WAN over v4 and v6, a name. */
async function allWorks(lab: Lab): Promise<void> {
  await eventually("the probe reaching gateway, WAN v4/v6 and DNS", async () => {
    const ok = await Promise.all([
      ping(lab, ADDR.gwLan4),
      ping(lab, ADDR.wanTarget4),
      ping(lab, ADDR.wanTarget6),
      resolves(lab),
    ]);
    return ok.every(Boolean);
  });
}

function faultSuite(addressing: "static" | "dhcp"): void {
  describe(`probe faults, ${addressing} addressing`, () => {
    const lab = useLab({ probeAddressing: addressing });

    it("the probe has its addresses, routes and resolver", async () => {
      const v = await probeView(lab());
      expect(v.link).toBe(ADDR.probeMac);
      expect(v.mtu).toBe(1500);
      expect(v.v6).toEqual([`${ADDR.probe6}/64`]);
      expect(v.default4).toEqual([`${ADDR.gwLan4} dev ${ADDR.probeIf}`]);
      expect(v.default6).toEqual([`${ADDR.gwLan6} dev ${ADDR.probeIf}`]);
      expect(v.resolv).toContain(`nameserver ${ADDR.gwLan4}`);
      if (addressing === "static") expect(v.v4).toEqual([`${ADDR.probe4}/24`]);
      else {
        // A pool address, leased for the short time of this mode.
        expect(v.v4).toHaveLength(1);
        const last = Number(/\.(\d+)\//.exec(v.v4[0]!)?.[1]);
        expect(last >= 100 && last <= 199, `${v.v4[0]} in the pool`).toBe(true);
        const log = readFileSync(dhcpEventsLog(lab().info.dir), "utf8");
        expect(log).toMatch(
          new RegExp(
            `bound ip=${v.v4[0]!.split("/")[0]} router=${ADDR.gwLan4} dns=${ADDR.gwLan4} lease=${ADDR.probeLeaseS}`,
          ),
        );
      }
      await allWorks(lab());
    });

    it.each(PROBE_FAULTS)("%s: on shows in the probe namespace, off restores it exactly", async (fault) => {
      const before = await probeView(lab());
      await lab().fault(fault, true);
      await lab().fault(fault, true); // idempotent
      expect((await lab().status()).faults[fault]).toBe(true);
      await EFFECT[fault](lab(), await probeView(lab()));
      await lab().fault(fault, false);
      await lab().fault(fault, false);
      expect(await probeView(lab())).toEqual(before);
      await allWorks(lab());
      expect((await lab().status()).healthy).toBe(true);
    });

    it("mtu-changed 576: below IPv6's minimum the kernel takes IPv6 off the link; off brings it back", async () => {
      const before = await probeView(lab());
      await lab().fault("mtu-changed", true, 576);
      const v = await probeView(lab());
      expect(v.mtu).toBe(576);
      expect(v.v6).toEqual([]);
      expect(await ping(lab(), ADDR.wanTarget4, ["-M", "do", "-s", "548"])).toBe(true);
      expect(await ping(lab(), ADDR.wanTarget4, ["-M", "do", "-s", "549"])).toBe(false);
      await lab().fault("mtu-changed", false);
      expect(await probeView(lab())).toEqual(before);
      await allWorks(lab());
    });

    it("two faults together and off in the other order: adapter-unplugged + mtu-changed + address-changed", async () => {
      const before = await probeView(lab());
      const faults: FaultName[] = ["mtu-changed", "address-changed", "adapter-unplugged"];
      for (const f of faults) await lab().fault(f, true);
      expect((await probeView(lab())).link).toBeNull();
      await lab().fault("adapter-unplugged", false);
      const v = await probeView(lab());
      expect({ mtu: v.mtu, v4: v.v4, link: v.link }).toEqual({
        mtu: 1280,
        v4: [`${ADDR.probeAlt4}/24`],
        link: ADDR.probeMac,
      });
      await lab().fault("mtu-changed", false);
      await lab().fault("address-changed", false);
      expect(await probeView(lab())).toEqual(before);
      await allWorks(lab());
      // The re-created switch port is the probe's again: LLDP advertises its port id.
      const lldp = execFileSync(
        "lldpcli",
        ["-u", join(lab().info.dir, "lldpd.socket"), "show", "interfaces", "ports", "probe0"],
        { encoding: "utf8" },
      );
      expect(lldp).toContain("Gi1/0/10");
    });

    if (addressing === "dhcp") {
      it("link-down (carrier lost): dhcpcd's behaviour, address, routes and nameservers go; carrier back renews", async () => {
        const before = await probeView(lab());
        await lab().fault("link-down", true);
        await eventually("the lease dropped on carrier loss", async () => {
          const v = await probeView(lab());
          return v.v4.length === 0 && v.default4.length === 0 && v.default6.length === 0 && v.resolv === "";
        });
        await lab().fault("link-down", false);
        await eventually("the lease back on carrier", async () => {
          const v = await probeView(lab());
          return JSON.stringify(v) === JSON.stringify(before);
        });
        await allWorks(lab());
      });

      it(`the short lease (${ADDR.probeLeaseS} s) really expires while the DHCP server is silent (dhcp-down), and comes back`, async () => {
        const before = await probeView(lab());
        const t0 = Date.now();
        await lab().fault("dhcp-down", true);
        try {
          // Renewal at T1 (half the lease) and rebinding fail; at the lease's end udhcpc deconfigures.
          await eventually(
            "the lease to expire",
            async () => (await probeView(lab())).v4.length === 0,
            (ADDR.probeLeaseS + 15) * 1000,
          );
          const expiredAfterS = (Date.now() - t0) / 1000;
          console.log(
            `lease expired ${expiredAfterS.toFixed(1)} s after the DHCP server went silent (lease ${ADDR.probeLeaseS} s)`,
          );
          expect(expiredAfterS).toBeLessThanOrEqual(ADDR.probeLeaseS + 15);
          const v = await probeView(lab());
          expect({ default4: v.default4, resolv: v.resolv }).toEqual({ default4: [], resolv: "" });
        } finally {
          await lab().fault("dhcp-down", false);
        }
        await eventually(
          "a new lease",
          async () => JSON.stringify(await probeView(lab())) === JSON.stringify(before),
          15_000,
        );
        await allWorks(lab());
      }, 200_000);
    }

    it("`netprobe lab fault NAME on|off` returns within 1 s (median of the toggles, printed)", async () => {
      const faults: FaultName[] = [
        "dns-down",
        "resolv-empty",
        "mtu-changed",
        "link-down",
        "gateway-mac-change",
        "wan-loss",
      ];
      const times: Array<{ fault: string; state: string; ms: number }> = [];
      for (const fault of faults) {
        for (const state of ["on", "off", "on", "off"]) {
          const t0 = performance.now();
          execFileSync(NETPROBE, ["lab", "fault", fault, state, "-n", lab().info.name], { stdio: "pipe" });
          times.push({ fault, state, ms: Math.round(performance.now() - t0) });
        }
      }
      const sorted = times.map((t) => t.ms).sort((a, b) => a - b);
      const median = sorted[Math.floor(sorted.length / 2)]!;
      console.log(
        `lab fault timings (${addressing}, ${times.length} toggles): median ${median} ms, min ${sorted[0]} ms, max ${sorted.at(-1)} ms` +
          ` (load average ${loadavg()[0]!.toFixed(1)} on ${availableParallelism()} cores)\n` +
          times.map((t) => `  ${t.fault} ${t.state}: ${t.ms} ms`).join("\n"),
      );
      expect(median).toBeLessThan(1000);
      expect((await lab().status()).faults).toEqual(
        Object.fromEntries(Object.keys((await lab().status()).faults).map((f) => [f, false])),
      );
      await allWorks(lab());
    }, 120_000);
  });
}

faultSuite("static");
faultSuite("dhcp");
