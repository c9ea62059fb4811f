import { spawn } from "node:child_process";
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ADDR, FAULTS, labDown, labUp, listLabs, listNamespaces } from "../../scripts/lab/lab.ts";
import type { FaultName, Lab, LabHost } from "../../scripts/lab/lab.ts";
import { isAlive } from "../../scripts/lab/run.ts";
import { useLab } from "./lab-fixture.ts";

const lab = useLab();

/** One echo request from `from`; true when it was answered within a second. */
async function ping(target: string, from: LabHost = "probe"): Promise<boolean> {
  return (await lab().exec(from, ["ping", "-n", "-q", "-c", "1", "-W", "1", target])).code === 0;
}

/** dig from the probe against the gateway's DNS; the answer section, one record per line. */
async function dig(name: string, type = "A", server: string = ADDR.gwLan4): Promise<string> {
  const r = await lab().exec("probe", ["dig", "+short", "+time=1", "+tries=1", `@${server}`, name, type]);
  return r.code === 0 ? r.stdout.trim() : `dig failed (${r.code}): ${r.stdout.trim()}`;
}

/** dig's status line (NOERROR, NXDOMAIN, ...) for a name. */
async function rcode(name: string): Promise<string> {
  const r = await lab().exec("probe", ["dig", "+time=1", "+tries=1", `@${ADDR.gwLan4}`, name, "A"]);
  return /status: (\w+)/.exec(r.stdout)?.[1] ?? `no answer (${r.code})`;
}

/**
 * A DHCP exchange from the probe's LAN port with busybox udhcpc (DISCOVER to ACK, then RELEASE).
 * Its script only prints what it was given, so nothing on the probe is reconfigured.
 */
async function dhcp(): Promise<{ ok: boolean; output: string }> {
  const script = join(lab().info.dir, "udhcpc-print.sh");
  if (!existsSync(script)) {
    writeFileSync(
      script,
      '#!/bin/sh\necho "udhcpc-event=$1 ip=$ip router=$router dns=$dns domain=$domain lease=$lease"\n',
    );
    chmodSync(script, 0o755);
  }
  const argv = [
    "udhcpc",
    "-i",
    ADDR.probeIf,
    "-f",
    "-q",
    "-n",
    "-R",
    "-t",
    "2",
    "-T",
    "1",
    "-A",
    "1",
    "-s",
    script,
  ];
  const r = await lab().exec("probe", argv, { timeoutMs: 10_000 });
  return { ok: r.code === 0 && r.stdout.includes("udhcpc-event=bound"), output: r.stdout + r.stderr };
}

/** Publishes one QoS 1 message from the probe to the HQ broker; false when the broker is unreachable. */
async function publish(topic: string, message: string | null, extra: string[] = []): Promise<boolean> {
  const payload = message === null ? ["-n"] : ["-m", message];
  const argv = ["mosquitto_pub", "-h", ADDR.hq4, "-q", "1", "-t", topic, ...payload, ...extra];
  return (await lab().exec("probe", argv, { timeoutMs: 3_000 })).code === 0;
}

/** What a user checks from the probe, by service; each fault must break exactly its own set. */
const SERVICES = {
  "gateway v4": () => ping(ADDR.gwLan4),
  "gateway v6": () => ping(ADDR.gwLan6),
  "wan v4": () => ping(ADDR.wanTarget4),
  "wan v6": () => ping(ADDR.wanTarget6),
  dns: async () => (await dig("wan.lab.example")) === ADDR.wanTarget4,
  dhcp: async () => (await dhcp()).ok,
  broker: () => publish("netprobe-lab/test/fault", "x"),
} satisfies Record<string, () => Promise<boolean>>;
type Service = keyof typeof SERVICES;

const ALL_SERVICES = Object.keys(SERVICES) as Service[];

/**
 * Which services each of the lab's base faults is expected to break; every other service must keep
 * working. The faults of later areas are tested by their own lab tests (lan, wan-path,
 * wan-services, phone), against the checks that detect them.
 */
const BROKEN_BY = {
  "gateway-down": ALL_SERVICES,
  "broker-down": ["broker"],
  // The broker is at HQ, behind the WAN; DNS and DHCP are the gateway's own and keep working.
  "wan-down": ["wan v4", "wan v6", "broker"],
  "dns-down": ["dns"],
  "dhcp-down": ["dhcp"],
} satisfies Partial<Record<FaultName, Service[]>>;
const BASE_FAULTS = Object.keys(BROKEN_BY) as (keyof typeof BROKEN_BY)[];

/** Runs every service check in parallel; the services that do not work. */
async function brokenServices(): Promise<Service[]> {
  const results = await Promise.all(ALL_SERVICES.map(async (s) => [s, await SERVICES[s]()] as const));
  return results.filter(([, ok]) => !ok).map(([s]) => s);
}

/** Polls until every service works again (neighbour caches and TCP retries may need a moment). */
async function expectAllServicesBack(): Promise<void> {
  let broken: Service[] = [];
  for (const deadline = Date.now() + 10_000; Date.now() < deadline;) {
    broken = await brokenServices();
    if (broken.length === 0) return;
  }
  expect(broken, "services still broken after the fault was switched off").toEqual([]);
}

describe("netprobe lab: a simulated branch office", () => {
  it("probe reaches the gateway, the WAN target and HQ over IPv4 and IPv6", async () => {
    const targets = [ADDR.gwLan4, ADDR.wanTarget4, ADDR.hq4, ADDR.gwLan6, ADDR.wanTarget6, ADDR.hq6];
    const reached = await Promise.all(targets.map(async (t) => [t, await ping(t)] as const));
    expect(Object.fromEntries(reached)).toEqual(Object.fromEntries(targets.map((t) => [t, true])));
  });

  it("the gateway's dnsmasq answers DNS for the lab's names from the probe, over UDP and TCP", async () => {
    expect(await dig("wan.lab.example")).toBe(ADDR.wanTarget4);
    expect(await dig("wan.lab.example", "AAAA")).toBe(ADDR.wanTarget6);
    expect(await dig("hq.lab.example")).toBe(ADDR.hq4);
    expect(await dig("hq.lab.example", "A", ADDR.gwLan6)).toBe(ADDR.hq4);
    const tcp = await lab().exec("probe", [
      "dig",
      "+tcp",
      "+short",
      "+time=1",
      "+tries=1",
      `@${ADDR.gwLan4}`,
      "hq.lab.example",
    ]);
    expect(tcp.stdout.trim()).toBe(ADDR.hq4);
    // Names the lab does not define are NXDOMAIN, never forwarded to the host's resolver.
    expect(await rcode("nothing.lab.example")).toBe("NXDOMAIN");
  });

  it("a DHCP client on the office LAN gets a lease from the pool with router, DNS and domain", async () => {
    const { ok, output } = await dhcp();
    expect(ok, output).toBe(true);
    const bound = /udhcpc-event=bound ip=(\S+) router=(\S+) dns=(\S+) domain=(\S+) lease=(\d+)/.exec(output);
    expect(bound, output).not.toBeNull();
    const [, ip, router, dns, domain, lease] = bound ?? [];
    const last = Number(ip?.split(".")[3]);
    expect(ip?.startsWith("192.0.2.") && last >= 100 && last <= 199, `${ip} outside the pool`).toBe(true);
    expect({ router, dns, domain, lease }).toEqual({
      router: ADDR.gwLan4,
      dns: ADDR.gwLan4,
      domain: ADDR.domain,
      lease: String(ADDR.dhcpLeaseS),
    });
  });

  it("mosquitto at HQ receives a message published from the probe", async () => {
    const topic = "netprobe-lab/test/hello";
    // Retained, so the subscriber (on the broker's own host) gets it whatever the start-up order.
    expect(await publish(topic, "hello from the branch", ["-r"])).toBe(true);
    const sub = await lab().exec("hq", ["mosquitto_sub", "-h", ADDR.hq4, "-t", topic, "-C", "1", "-W", "5"]);
    expect(sub.stdout.trim()).toBe("hello from the branch");
    expect(await publish(topic, null, ["-r"])).toBe(true); // clear the retained message
    // IPv4 leaves the office masqueraded as the gateway's WAN address.
    const log = readFileSync(join(lab().info.dir, "mosquitto.log"), "utf8");
    expect(log).toContain(`New connection from ${ADDR.gwWan4}:`);
    expect(log).not.toContain(`from ${ADDR.probe4}:`);
    expect(lab().info.brokerUrl).toBe(`mqtt://${ADDR.hq4}:1883`);
  });

  it.each(BASE_FAULTS)("fault %s breaks exactly what it says, and off restores everything", async (fault) => {
    expect(FAULTS[fault].description.length).toBeGreaterThan(10);
    await lab().fault(fault, true);
    await lab().fault(fault, true); // idempotent
    expect((await lab().status()).faults[fault]).toBe(true);
    expect((await brokenServices()).sort()).toEqual([...BROKEN_BY[fault]].sort());
    if (fault === "gateway-down") {
      // The probe's own link stays up: it is the gateway that is dead, not the cable.
      const link = await lab().exec("probe", ["ip", "-o", "link", "show", "dev", ADDR.probeIf]);
      expect(link.stdout).toMatch(/LOWER_UP.* state UP /);
    }
    await lab().fault(fault, false);
    await lab().fault(fault, false);
    const status = await lab().status();
    expect(status.faults[fault]).toBe(false);
    expect(status.healthy).toBe(true);
    await expectAllServicesBack();
  });

  it("broker-down keeps a persistent subscriber's queued QoS 1 message across the restart", async () => {
    const topic = "netprobe-lab/test/persist";
    const session = ["-h", ADDR.hq4, "-c", "-i", "netprobe-lab-persist", "-q", "1", "-t", topic];
    // A clean=false subscriber registers its subscription, then goes away.
    expect((await lab().exec("probe", ["mosquitto_sub", ...session, "-E"])).code).toBe(0);
    expect(await publish(topic, "queued while offline")).toBe(true);

    const before = (await lab().status()).daemons.mosquitto.pid;
    await lab().fault("broker-down", true);
    expect((await lab().status()).daemons.mosquitto.alive).toBe(false);
    expect(await publish(topic, "nobody home")).toBe(false);
    await lab().fault("broker-down", false);
    const after = await lab().status();
    expect(after.daemons.mosquitto.alive).toBe(true);
    expect(after.daemons.mosquitto.pid).not.toBe(before);

    const sub = await lab().exec("probe", ["mosquitto_sub", ...session, "-C", "1", "-W", "5"]);
    expect(sub.stdout.trim()).toBe("queued while offline");
  });

  it("labUp on an existing lab repairs it: a killed dnsmasq and a deleted probe link come back", async () => {
    const { name, ns } = lab().info;
    const { dnsmasq } = (await lab().status()).daemons;
    if (dnsmasq.pid !== null) process.kill(dnsmasq.pid, "SIGKILL");
    await lab().exec("probe", ["ip", "link", "del", "dev", ADDR.probeIf]);
    expect((await lab().status()).healthy).toBe(false);

    const repaired = await labUp({ name, ephemeral: true });
    expect(repaired.info.ns).toEqual(ns);
    expect((await repaired.status()).healthy).toBe(true);
    expect(await ping(ADDR.wanTarget6)).toBe(true);
    expect(await dig("wan.lab.example")).toBe(ADDR.wanTarget4);
  });

  it("down removes every namespace, process and file; a second down is harmless", async () => {
    const { name, ns, dir } = lab().info;
    const { daemons } = await lab().status();
    // Something started through the lab and something that escaped it (a background shell job).
    const tracked = lab().spawn("probe", ["sleep", "300"], { stdio: "ignore" });
    await lab().exec("wan", ["sh", "-c", "sleep 300 >/dev/null 2>&1 &"]);
    const escaped = (await lab().exec("wan", ["ip", "netns", "pids", ns.wan])).stdout;
    const pids = [
      daemons.dnsmasq.pid,
      daemons.mosquitto.pid,
      tracked.pid,
      ...escaped.split("\n").map(Number),
    ];
    const started = Date.now();
    await lab().down();
    const downMs = Date.now() - started;

    const left = (await listNamespaces()).filter((n) => n.startsWith(`${name}-`));
    expect(left).toEqual([]);
    expect(existsSync(dir)).toBe(false);
    expect(listLabs()).not.toContain(name);
    for (const pid of pids.filter((p): p is number => typeof p === "number" && p > 0)) {
      expect(isAlive(pid), `pid ${pid} still running`).toBe(false);
    }
    await lab().down();
    await labDown(name);
    expect(downMs).toBeLessThan(5_000);
  });
});

describe("netprobe lab: failures", () => {
  it("labUp that cannot start a peer names it, shows its log and removes what it built", async () => {
    const first = await labUp({ ephemeral: true });
    const { name } = first.info;
    try {
      // Take mosquitto's port before a repair run restarts it.
      await first.fault("broker-down", true);
      // SO_REUSEADDR: the stopped broker's connections leave port 1883 in TIME_WAIT for a while.
      const squat =
        "import socket,time\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)";
      const squatter = ["python3", "-c", `${squat}\ns.bind(('',1883))\ns.listen()\ntime.sleep(60)`];
      first.spawn("hq", squatter, { stdio: "ignore" });
      await waitForPort(first, 1883);
      const err: unknown = await labUp({ name, ephemeral: true }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toMatch(
        /mosquitto did not come up[\s\S]*mosquitto\.log[\s\S]*Address already in use/,
      );
      expect(listLabs()).not.toContain(name);
      expect((await listNamespaces()).filter((n) => n.startsWith(`${name}-`))).toEqual([]);
    } finally {
      await first.down();
    }
  });

  it("an ephemeral lab disappears when the process that owns it is SIGKILLed", async () => {
    const labModule = new URL("../../scripts/lab/lab.ts", import.meta.url).href;
    const code = `const { labUp } = await import(${JSON.stringify(labModule)});
      const lab = await labUp({ ephemeral: true });
      console.log(lab.info.name);
      setInterval(() => {}, 1000);`;
    const owner = spawn(process.execPath, ["--input-type=module", "-e", code], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const name = await new Promise<string>((resolve, reject) => {
      owner.stdout.setEncoding("utf8").once("data", (d: string) => resolve(d.trim()));
      owner.once("exit", (code) => reject(new Error(`lab owner exited early (${code})`)));
    });
    expect(listLabs()).toContain(name);
    owner.kill("SIGKILL");
    const deadline = Date.now() + 5_000;
    while (listLabs().includes(name) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(listLabs()).not.toContain(name);
    expect((await listNamespaces()).filter((n) => n.startsWith(`${name}-`))).toEqual([]);
  });

  it("rejects a lab name that could escape the lab directory", async () => {
    await expect(labUp({ name: "../etc" })).rejects.toThrow(/invalid lab name/);
    await expect(labDown("a/b")).rejects.toThrow(/invalid lab name/);
  });
});

async function waitForPort(l: Lab, port: number): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const r = await l.exec("hq", ["ss", "-Hltn", `sport = :${port}`]);
    if (r.stdout.trim()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`nothing listens on ${port} in hq`);
}
