// The LAN as an attacker sees it (issue 20), against real attack tools on the office switch: dsniff's
// arpspoof and scapy-forged ARP from the `lan` host. The gateway check's ARP watch must catch a
// spoofer in every run while it is at it, a malformed claim as well as a well-formed one, and the
// kernel's own poisoned cache — each checked against the ground truth (`ip neigh` on the probe).
import { afterEach, describe, expect, it } from "vitest";
import { LAN } from "../../scripts/lab/lan-hosts.ts";
import { ADDR } from "../../scripts/lab/topology.ts";
import { checkSession, type CheckSession } from "./check-session.ts";
import { useLab } from "./lab-fixture.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const OPTS = { interface: ADDR.probeIf, count: 2, interval_ms: 50, wait_ms: 300, min_trigger_gap_s: 1 };

describe("LAN security: ARP spoofing against the gateway check", () => {
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
});
