// The LAN as an attacker and a desk see it (issue 20), against real tools on the office switch from
// the `lan` host: dsniff's arpspoof and scapy-forged ARP (the gateway check's ARP watch must catch a
// spoofer in every run while it is at it, a malformed claim as well as a well-formed one, and the
// kernel's own poisoned cache, each against the ground truth of `ip neigh` on the probe); lldpd as
// a CDPv2-only Cisco switch and as an IP phone beside the switch; a scapy flood of 5,000 chassis;
// ISC Kea as a rogue DHCP server forging the real server's identifier (option 54); per-VLAN DHCP
// through the lab's user-space trunk (scripts/lab/vlan-trunk.ts), a real dnsmasq per VLAN.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { LAN } from "../../scripts/lab/lan-hosts.ts";
import { LAB_VLANS, startTrunk } from "../../scripts/lab/vlan-trunk.ts";
import { ADDR } from "../../scripts/lab/topology.ts";
import { MAX_NEIGHBORS } from "../../services/probe/src/checks/lldp.ts";
import { checkSession, type CheckSession } from "./check-session.ts";
import { runCheckIn } from "./run-check.ts";
import { useLab } from "./lab-fixture.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const OPTS = { interface: ADDR.probeIf, count: 2, interval_ms: 50, wait_ms: 300, min_trigger_gap_s: 1 };

describe("LAN security against real tools on the office switch", () => {
  const lab = useLab();
  let session: CheckSession | undefined;

  afterEach(async () => {
    await session?.close();
    session = undefined;
    // Whatever the attack left in the probe's ARP cache goes; the next test starts clean.
    await lab().exec("probe", ["ip", "neigh", "flush", "dev", ADDR.probeIf]);
  });

  /** The probe kernel's entry for the gateway (lladdr), or undefined. */
  const kernelEntry = async (): Promise<string | undefined> => {
    const r = await lab().exec("probe", ["ip", "neigh", "show", ADDR.gwLan4, "dev", ADDR.probeIf]);
    return /lladdr (\S+)/.exec(r.stdout)?.[1];
  };

  it("arpspoof (dsniff) poisoning the probe: every run while it runs fails arp_spoof naming the attacker, the watch asks for runs; killed without restoring, a fresh check finds the poisoned kernel cache", async () => {
    session = checkSession(lab(), "gateway", ADDR.gwLan4, OPTS);
    const first = await session.run();
    expect(first.status, first.error?.message).toBe("ok");
    expect(first.detail?.mac).toBe(ADDR.gwLanMac);
    // -t: unicast replies to the probe only, every 2 s (arpspoof's fixed period), as an attacker
    // in the middle of the probe and its router would send them.
    const spoofer = lab().spawn("lan", ["arpspoof", "-i", LAN.hostIf, "-t", ADDR.probe4, ADDR.gwLan4], {
      stdio: "ignore",
    });
    const runs = [];
    let poisoned: string | undefined;
    try {
      await sleep(2500);
      for (let i = 0; i < 4; i++) {
        runs.push(await session.run());
        await sleep(1500);
      }
      // Ground truth: arpspoof's replies update the probe kernel's entry for the gateway (the
      // kernel re-validates on its own too, so wait for a moment it holds the attacker's MAC).
      for (let i = 0; i < 50 && poisoned !== LAN.hostMac; i++) {
        poisoned = await kernelEntry();
        if (poisoned !== LAN.hostMac) await sleep(200);
      }
    } finally {
      // Gone without restoring the true mapping (SIGINT would make it re-ARP the gateway's MAC).
      spoofer.kill("SIGKILL");
      await new Promise((r) => spoofer.once("exit", r));
    }
    for (const r of runs) {
      expect(r.status, JSON.stringify(r.error)).toBe("fail");
      expect(["arp_spoof", "gateway_mac_conflict"]).toContain(r.error?.code);
      expect(r.error?.message).toContain(LAN.hostMac);
    }
    expect(runs.filter((r) => r.error?.code === "arp_spoof").length).toBeGreaterThanOrEqual(2);
    expect(session.triggers).toBeGreaterThanOrEqual(1);
    expect(poisoned).toBe(LAN.hostMac);
    // A probe (re)started right after the attack heard no spoofed frame, yet its traffic goes to
    // the attacker: the kernel's cache tells (an entry a unicast reply made REACHABLE stays so ≥ 15 s).
    await session.close();
    session = checkSession(lab(), "gateway", ADDR.gwLan4, OPTS);
    const fresh = await session.run();
    expect(fresh.error?.code).toBe("arp_cache_poisoned");
    expect(fresh.error?.message).toContain(`maps gateway ${ADDR.gwLan4} to ${LAN.hostMac}`);
    // The cache re-learnt: green.
    await lab().exec("probe", ["ip", "neigh", "flush", "dev", ADDR.probeIf]);
    const after = await session.run();
    expect(after.status, JSON.stringify(after.error)).toBe("ok");
  }, 60_000);

  it("three scapy-forged replies with hardware type 6 (IEEE 802) between runs: arp_spoof names them malformed, and the kernel cache they poisoned fails a fresh check", async () => {
    session = checkSession(lab(), "gateway", ADDR.gwLan4, OPTS);
    expect((await session.run()).status).toBe("ok");
    // The probe talks to its gateway, so the kernel has an entry an unsolicited reply could update.
    await lab().exec("probe", ["ping", "-c", "1", "-W", "1", ADDR.gwLan4]);
    await sleep(1200); // Linux keeps an entry updated within the last second (locktime)
    // With a hardware type other than 1 scapy takes hwsrc/hwdst as raw bytes: give it 6 of them.
    const hex = (mac: string) => `bytes.fromhex("${mac.replaceAll(":", "")}")`;
    const forge = [
      "from scapy.all import ARP, Ether, sendp",
      `sendp(Ether(dst="${ADDR.probeMac}", src="${LAN.hostMac}")/ARP(hwtype=6, hwlen=6, op=2, hwsrc=${hex(LAN.hostMac)}, psrc="${ADDR.gwLan4}", hwdst=${hex(ADDR.probeMac)}, pdst="${ADDR.probe4}"), iface="${LAN.hostIf}", count=3, inter=0.1, verbose=False)`,
    ].join("\n");
    const r = await lab().exec("lan", ["/usr/bin/python3", "-c", forge], { timeoutMs: 30_000 });
    expect(r.code, r.stderr).toBe(0);
    await sleep(300);
    const seen = await session.run();
    expect(seen.error?.code).toBe("arp_spoof");
    expect(seen.error?.message).toContain(`${LAN.hostMac} claimed gateway ${ADDR.gwLan4}`);
    expect(seen.error?.message).toContain("3 malformed ARP frame(s) (hardware type 6)");
    expect(seen.metrics.malformed_claims).toBe(3);
    // They poisoned the kernel's cache all the same (Linux takes hardware type 6 on Ethernet), and
    // the check's reading of it (taken before its own request, whose answer repairs the entry) agrees.
    expect(seen.detail?.kernel_mac).toBe(LAN.hostMac);
    // A probe started after such frames heard none of them (forged again before it starts, so the
    // entry is not the one the last run's own request may have repaired), yet the cache is poisoned.
    await session.close();
    await sleep(1200);
    expect((await lab().exec("lan", ["/usr/bin/python3", "-c", forge], { timeoutMs: 30_000 })).code).toBe(0);
    expect(await kernelEntry()).toBe(LAN.hostMac);
    session = checkSession(lab(), "gateway", ADDR.gwLan4, OPTS);
    const fresh = await session.run();
    expect(fresh.error?.code).toBe("arp_cache_poisoned");
  }, 60_000);

  /** lldpd on the `lan` host (the switch port's other side, through the bridge), stopped by the caller. */
  const lldpdOnLan = (name: string, args: string[], conf: string[]) => {
    const dir = lab().info.dir;
    const confFile = join(dir, `${name}.conf`);
    writeFileSync(confFile, [...conf, "configure lldp tx-interval 1", ""].join("\n"));
    const d = lab().spawn(
      "lan",
      [
        "lldpd",
        "-d",
        "-k",
        "-i",
        "-u",
        join(dir, `${name}.sock`),
        "-I",
        LAN.hostIf,
        ...args,
        "-O",
        confFile,
        "-L",
        "/usr/sbin/lldpcli",
      ],
      { stdio: "ignore" },
    );
    return async () => {
      d.kill("SIGTERM");
      if (d.exitCode === null) await new Promise((r) => d.once("exit", r));
    };
  };
  /** The bridge forwards LLDP's nearest-bridge group (as a phone's built-in switch passes it on). */
  const bridgeForwardsLldp = (on: boolean) =>
    lab().exec("sw", ["ip", "link", "set", "br0", "type", "bridge", "group_fwd_mask", on ? "0x4000" : "0"]);
  const switchLldp = (status: "disabled" | "rx-and-tx") =>
    lab().exec("sw", [
      "lldpcli",
      "-u",
      join(lab().info.dir, "lldpd.socket"),
      "configure",
      "ports",
      "probe0",
      "lldp",
      "status",
      status,
    ]);
  const LLDP_OPTS = { wait_ms: 4000, min_trigger_gap_s: 10 };

  it("a Cisco switch speaking only CDPv2 (lldpd -ccccc -ll) is named as the port's switch, not `no_lldp`", async () => {
    expect((await switchLldp("disabled")).code).toBe(0);
    const stop = lldpdOnLan("cisco", ["-ccccc", "-ll"], ["configure system hostname cisco-sw-7"]);
    try {
      await sleep(5000); // the switch's last LLDPDU (TTL 4 s at a 1 s interval) ages out
      session = checkSession(lab(), "lldp", ADDR.probeIf, LLDP_OPTS);
      const r = await session.run();
      expect(r.status, JSON.stringify(r.error)).toBe("ok");
      expect(r.detail).toMatchObject({
        protocol: "cdp",
        system_name: "cisco-sw-7",
        source_mac: LAN.hostMac,
        cdp_version: 2,
      });
      expect(r.metrics).toMatchObject({ cdp_neighbors: 1, lldp_neighbors: 0 });
    } finally {
      await stop();
      await switchLldp("rx-and-tx");
    }
  }, 60_000);

  it("a switch and an IP phone on the port: neighbors 2, the switch stays the switch, no move reported over 30 s, the phone's voice VLAN", async () => {
    await bridgeForwardsLldp(true);
    const stop = lldpdOnLan(
      "phone",
      ["-M", "3"],
      [
        "configure system hostname phone-desk-12",
        "configure med policy application voice tagged vlan 20 priority voice dscp 46",
      ],
    );
    try {
      session = checkSession(lab(), "lldp", ADDR.probeIf, LLDP_OPTS);
      await sleep(3000);
      const runs = [];
      for (let i = 0; i < 10; i++) {
        runs.push(await session.run());
        await sleep(3000);
      }
      for (const r of runs) {
        expect(r.status, JSON.stringify(r.error)).toBe("ok");
        expect(r.detail).toMatchObject({ protocol: "lldp", system_name: LAN.switchName });
        expect(r.metrics.neighbors).toBe(2);
      }
      const names = (runs.at(-1)!.detail!.neighbors as { system_name: string }[]).map((n) => n.system_name);
      expect(names.sort()).toEqual([LAN.switchName, "phone-desk-12"].sort());
      expect(runs.at(-1)!.metrics.voice_vlan_id).toBe(20);
    } finally {
      await stop();
      await bridgeForwardsLldp(false);
    }
  }, 90_000);

  it("5,000 LLDPDUs from new switch-class chassis (scapy): the table stays bounded, the switch stays the switch, the watch asks for no more runs than its gap allows", async () => {
    await bridgeForwardsLldp(true);
    try {
      session = checkSession(lab(), "lldp", ADDR.probeIf, LLDP_OPTS);
      expect((await session.run()).detail?.system_name).toBe(LAN.switchName);
      // Chassis id (MAC subtype), port id (local), TTL 120 s, capabilities bridge/bridge, end.
      const flood = [
        "import struct",
        "from scapy.all import Ether, Raw, sendp",
        "def tlv(t, v): return struct.pack('!H', (t << 9) | len(v)) + v",
        "frames = []",
        "for i in range(5000):",
        "    mac = bytes([0x02, 0xfd, 0, 0, i >> 8, i & 0xff])",
        "    pdu = tlv(1, b'\\x04' + mac) + tlv(2, b'\\x07p1') + tlv(3, struct.pack('!H', 120)) + tlv(7, struct.pack('!HH', 4, 4)) + tlv(0, b'')",
        `    frames.append(Ether(dst='01:80:c2:00:00:0e', src=mac, type=0x88cc)/Raw(pdu))`,
        `sendp(frames, iface='${LAN.hostIf}', verbose=False)`,
      ].join("\n");
      const t0 = Date.now();
      const r = await lab().exec("lan", ["/usr/bin/python3", "-c", flood], { timeoutMs: 120_000 });
      expect(r.code, r.stderr).toBe(0);
      const floodS = (Date.now() - t0) / 1000;
      await sleep(500);
      const after = await session.run();
      expect(after.status, JSON.stringify(after.error)).toBe("ok");
      expect(after.detail?.system_name).toBe(LAN.switchName);
      expect(after.metrics.neighbors).toBeLessThanOrEqual(MAX_NEIGHBORS);
      // Every chassis beyond the bound is dropped and counted (a few frames may be lost by the capture itself).
      expect(after.metrics.dropped_neighbors).toBeGreaterThan(4500);
      // The switch never changed (one trigger at most: the watch hearing the switch for the first time).
      expect(session.triggers).toBeLessThanOrEqual(Math.ceil(floodS / 10));
      console.log(
        `flood of 5000 in ${floodS} s: neighbors ${after.metrics.neighbors}, dropped ${after.metrics.dropped_neighbors}, triggers ${session.triggers}`,
      );
    } finally {
      await bridgeForwardsLldp(false);
    }
  }, 180_000);

  it("ISC Kea as a rogue forging option 54 with the real server's address: rogue_dhcp names its real MAC and source IP in every run", async () => {
    const dir = lab().info.dir;
    const conf = join(dir, "kea-rogue.json");
    writeFileSync(
      conf,
      JSON.stringify({
        Dhcp4: {
          "interfaces-config": { interfaces: [LAN.hostIf], "dhcp-socket-type": "raw" },
          "lease-database": { type: "memfile", persist: false },
          "valid-lifetime": 600,
          subnet4: [
            {
              id: 1,
              subnet: "192.0.2.0/24",
              pools: [{ pool: "192.0.2.230 - 192.0.2.240" }],
              "option-data": [
                { name: "routers", data: LAN.host4 },
                // The forgery: the identifier of the office's real server (the gateway).
                { name: "dhcp-server-identifier", data: ADDR.gwLan4 },
              ],
            },
          ],
          loggers: [
            { name: "kea-dhcp4", output_options: [{ output: join(dir, "kea-rogue.log") }], severity: "INFO" },
          ],
        },
      }),
    );
    const kea = lab().spawn("lan", ["kea-dhcp4", "-c", conf], {
      stdio: "ignore",
      env: { ...process.env, KEA_PIDFILE_DIR: dir, KEA_LOCKFILE_DIR: dir },
    });
    try {
      await sleep(1500);
      expect(kea.exitCode, `kea-dhcp4 exited: see ${join(dir, "kea-rogue.log")}`).toBeNull();
      for (let i = 0; i < 3; i++) {
        const r = await runCheckIn(lab(), "dhcp", ADDR.probeIf, {
          wait_ms: 1500,
          request: false,
          allowed_servers: [ADDR.gwLan4],
        });
        expect(r.error?.code, JSON.stringify(r.error)).toBe("rogue_dhcp");
        expect(r.error?.message).toContain(
          `${LAN.host4} (MAC ${LAN.hostMac} claiming server id ${ADDR.gwLan4})`,
        );
        expect(r.metrics.rogue_servers).toBe(1);
      }
    } finally {
      kea.kill("SIGTERM");
      if (kea.exitCode === null) await new Promise((r) => kea.once("exit", r));
    }
  }, 60_000);

  it("per-VLAN DHCP through the trunk: each VLAN's server, a rogue named with its VLAN, one VLAN's server down while the others answer", async () => {
    const [v20, v30, rogue] = LAB_VLANS;
    const trunk = await startTrunk(lab());
    const dhcp = (vlan: number, allowed: string[]) =>
      runCheckIn(lab(), "dhcp", ADDR.probeIf, {
        vlan,
        wait_ms: 1500,
        request: true,
        allowed_servers: allowed,
      });
    try {
      await trunk.dhcp(rogue!.name, false);
      await sleep(1000);
      const voice = await dhcp(20, [v20!.server4]);
      expect(voice.status, JSON.stringify(voice.error)).toBe("ok");
      expect(voice.detail?.servers).toEqual([expect.objectContaining({ ip: v20!.server4, mac: v20!.mac })]);
      expect(voice.detail?.ack).toBeDefined();
      const data = await dhcp(30, [v30!.server4]);
      expect(data.status, JSON.stringify(data.error)).toBe("ok");
      expect(data.detail?.servers).toEqual([expect.objectContaining({ ip: v30!.server4 })]);
      // The untagged LAN still has only the office's server.
      const native = await runCheckIn(lab(), "dhcp", ADDR.probeIf, {
        wait_ms: 1500,
        allowed_servers: [ADDR.gwLan4],
      });
      expect(native.metrics).toMatchObject({ servers: 1, rogue_servers: 0 });
      // A rogue on VLAN 30 only.
      await trunk.dhcp(rogue!.name, true);
      await sleep(1000);
      const hit = await dhcp(30, [v30!.server4]);
      expect(hit.error?.code).toBe("rogue_dhcp");
      expect(hit.error?.message).toContain(
        `rogue DHCP server on VLAN 30: ${rogue!.server4} (MAC ${rogue!.mac})`,
      );
      expect((await dhcp(20, [v20!.server4])).status).toBe("ok");
      // vlan: auto-voice takes the voice VLAN a phone beside the switch advertises (LLDP-MED).
      await bridgeForwardsLldp(true);
      const phone = lldpdOnLan(
        "phone-av",
        ["-M", "3"],
        [
          "configure system hostname phone-desk-14",
          "configure med policy application voice tagged vlan 20 priority voice dscp 46",
        ],
      );
      try {
        await sleep(2000);
        const auto = await runCheckIn(
          lab(),
          "dhcp",
          ADDR.probeIf,
          { vlan: "auto-voice", wait_ms: 1500, allowed_servers: [v20!.server4] },
          // The lldp run returns once it hears the switch; its listener then hears the phone (every 1 s).
          { before: [{ kind: "lldp", target: ADDR.probeIf, options: { wait_ms: 3000 }, thenMs: 3000 }] },
        );
        expect(auto.status, JSON.stringify(auto.error)).toBe("ok");
        expect(auto.detail?.vlan).toBe(20);
        expect(auto.detail?.servers).toEqual([expect.objectContaining({ ip: v20!.server4 })]);
      } finally {
        await phone();
        await bridgeForwardsLldp(false);
      }
      // Voice VLAN's server down: that VLAN fails, the data VLAN does not.
      await trunk.dhcp(rogue!.name, false);
      await trunk.dhcp(v20!.name, false);
      const down = await dhcp(20, [v20!.server4]);
      expect(down.error?.code).toBe("no_offer");
      expect(down.error?.message).toContain(`on ${ADDR.probeIf} VLAN 20`);
      expect((await dhcp(30, [v30!.server4])).status).toBe("ok");
    } finally {
      await trunk.down();
    }
  }, 90_000);
});
