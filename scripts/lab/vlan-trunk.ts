// The lab's trunk (issue 20): this kernel has no 802.1Q module, so VLANs are made in user space.
// On the `lan` host, which hangs off the office switch like any port, a relay takes the frames the
// bridge floods there tagged with a lab VLAN, strips the tag and hands them to that VLAN's segment
// (a veth pair in the same namespace, with its own real dnsmasq on the far end); the segment's
// answers get the tag back and go out to the bridge, to the probe. The probe's port thereby
// carries tagged VLANs as a trunk port to a phone or an access point would, and each VLAN can be
// broken on its own (stop its dnsmasq; give it a rogue server instead).
//
//   node scripts/lab/vlan-trunk.ts --trunk eth0 --vlan 20=v20a:02:00:00:00:20:01 …   (run in `lan`)
//
// Two segments of one VLAN are two servers on it (a rogue beside the real one); they do not hear
// each other (a segment's answers go to the trunk only), which a DHCP server does not need.
//
// A segment's MAC (its dnsmasq side) tells the relay which frames on either side are its own
// injections: on the trunk, frames from a segment MAC are our own; on a segment, only frames from
// the segment MAC go back to the trunk.
import { createRequire } from "node:module";
import { parseArgs } from "node:util";
import { join } from "node:path";
import type { Lab } from "./lab.ts";
import { LAN } from "./lan-hosts.ts";

/** One DHCP server on a VLAN of the lab trunk (a VLAN may have several: a rogue beside the real one). */
export interface VlanSegment {
  /** Names its veth pair (`<name>a` relay side, `<name>b` server side) and files. */
  name: string;
  vlan: number;
  /** The DHCP server's address on the segment, its pool and mask. */
  server4: string;
  poolStart: string;
  poolEnd: string;
  /** The segment's prefix length (each segment its own subnet: one dnsmasq serves them all). */
  prefix: number;
  /** The server side's MAC (fixed: tests know the ground truth). */
  mac: string;
}

/**
 * The lab's VLANs, addresses from 198.51.100.128/25: voice (20, .128/27) and data (30, .192/26)
 * with their servers, and a rogue on VLAN 30 (.160/27; started with the others,
 * `dhcp("v30rogue", false)` silences it).
 */
export const LAB_VLANS: readonly VlanSegment[] = [
  {
    name: "v20",
    vlan: 20,
    server4: "198.51.100.129",
    poolStart: "198.51.100.140",
    poolEnd: "198.51.100.150",
    prefix: 27,
    mac: "02:00:00:00:20:01",
  },
  {
    name: "v30",
    vlan: 30,
    server4: "198.51.100.193",
    poolStart: "198.51.100.200",
    poolEnd: "198.51.100.210",
    prefix: 26,
    mac: "02:00:00:00:30:01",
  },
  {
    // A home router plugged into the data VLAN: its own subnet, as such routers have.
    name: "v30rogue",
    vlan: 30,
    server4: "198.51.100.161",
    poolStart: "198.51.100.170",
    poolEnd: "198.51.100.180",
    prefix: 27,
    mac: "02:00:00:00:30:66",
  },
];

/**
 * Builds the trunk on the lab's `lan` host: per segment a veth pair (`<name>a` relay side,
 * `<name>b` server side with the segment's MAC and address) and a dnsmasq on it; then the relay.
 * Returns `dhcp(name, on)` to stop or start one server (a per-VLAN fault) and `down()`.
 */
export async function startTrunk(lab: Lab, segments: readonly VlanSegment[] = LAB_VLANS) {
  const sh = async (argv: string[]): Promise<void> => {
    const r = await lab.exec("lan", argv);
    if (r.code !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr}`);
  };
  // One dnsmasq for every segment: two DHCP servers cannot both bind port 67 in one namespace.
  // It answers on each segment from that segment's own address and MAC, from the range of its subnet.
  const enabled = new Set(segments.map((s) => s.name));
  let dnsmasq: ReturnType<Lab["spawn"]> | undefined;
  const mask = (prefix: number) =>
    [24, 16, 8, 0].map((sh) => ((0xffffffff << (32 - prefix)) >>> sh) & 0xff).join(".");
  const startDhcp = () => {
    const on = segments.filter((s) => enabled.has(s.name));
    if (on.length === 0) return;
    dnsmasq = lab.spawn(
      "lan",
      [
        "dnsmasq",
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        ...on.map((s) => `--interface=${s.name}b`),
        "--bind-interfaces",
        "--port=0",
        "--no-resolv",
        "--no-hosts",
        "--no-ping",
        "--dhcp-authoritative",
        ...on.map((s) => `--dhcp-range=${s.poolStart},${s.poolEnd},${mask(s.prefix)},600`),
        `--dhcp-leasefile=${join(lab.info.dir, "vlan-trunk.leases")}`,
        `--pid-file=${join(lab.info.dir, "vlan-trunk-dnsmasq.pid")}`,
        "--user=root",
        "--group=root",
      ],
      { stdio: "ignore" },
    );
  };
  for (const s of segments) {
    await lab.exec("lan", ["ip", "link", "del", `${s.name}a`]);
    await sh(["ip", "link", "add", `${s.name}a`, "type", "veth", "peer", "name", `${s.name}b`]);
    await sh(["ip", "link", "set", `${s.name}b`, "address", s.mac]);
    await sh(["ip", "addr", "add", `${s.server4}/${s.prefix}`, "dev", `${s.name}b`]);
    await sh(["ip", "link", "set", `${s.name}a`, "up"]);
    await sh(["ip", "link", "set", `${s.name}b`, "up"]);
  }
  startDhcp();
  const relay = lab.spawn(
    "lan",
    [
      process.execPath,
      new URL(import.meta.url).pathname,
      "--trunk",
      LAN.hostIf,
      ...segments.flatMap((s) => ["--vlan", `${s.vlan}=${s.name}a:${s.mac}`]),
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("vlan-trunk relay did not start in 10 s")), 10_000);
    relay.stdout!.on("data", (d: Buffer) => {
      if (d.toString().includes("relaying")) {
        clearTimeout(t);
        resolve();
      }
    });
    relay.once("exit", (code) => reject(new Error(`vlan-trunk relay exited (${code})`)));
  });
  const stop = async (p: ReturnType<Lab["spawn"]>) => {
    if (p.exitCode !== null || p.signalCode !== null) return;
    p.kill("SIGTERM");
    await new Promise((r) => p.once("exit", r));
  };
  return {
    /** Stops (false) or starts again (true) one segment's DHCP server. */
    dhcp: async (name: string, on: boolean) => {
      if (!segments.some((x) => x.name === name)) throw new Error(`no lab VLAN segment ${name}`);
      if (on) enabled.add(name);
      else enabled.delete(name);
      if (dnsmasq) await stop(dnsmasq);
      startDhcp();
      await new Promise((r) => setTimeout(r, 500)); // dnsmasq binds its sockets
    },
    down: async () => {
      await stop(relay);
      if (dnsmasq) await stop(dnsmasq);
      for (const s of segments) await lab.exec("lan", ["ip", "link", "del", `${s.name}a`]);
    },
  };
}

// The relay itself (inside the `lan` namespace).
if (process.argv[1] === new URL(import.meta.url).pathname) {
  const { values } = parseArgs({
    options: { trunk: { type: "string" }, vlan: { type: "string", multiple: true, default: [] } },
  });
  interface Session {
    on(event: "packet", cb: (p: { buf: Buffer; header: Buffer }) => void): void;
    inject(data: Buffer): void;
  }
  const pcap = createRequire(import.meta.url)("pcap") as {
    createSession(iface: string, o: Record<string, unknown>): Session;
  };
  const open = (iface: string, filter: string): Session =>
    pcap.createSession(iface, { filter, buffer_timeout: 0, promiscuous: true, buffer_size: 1 << 20 });
  const frameOf = (p: { buf: Buffer; header: Buffer }): Buffer =>
    Buffer.from(p.buf.subarray(0, Math.min(p.header.readUInt32LE(8), p.buf.length)));
  const macOf = (b: Buffer, at: number) =>
    [...b.subarray(at, at + 6)].map((x) => x.toString(16).padStart(2, "0")).join(":");
  const segments = values.vlan.map((v) => {
    const m = /^(\d+)=([^:]+):(.+)$/.exec(v);
    if (!m) throw new Error(`--vlan ${v}: expected N=iface:mac`);
    return { vlan: Number(m[1]), iface: m[2]!, mac: m[3]!.toLowerCase() };
  });
  const own = new Set(segments.map((s) => s.mac));
  const vlans = [...new Set(segments.map((s) => s.vlan))];
  // Plain "vlan": in a BPF expression each `vlan` shifts the offsets of what follows, so
  // "vlan 20 or vlan 30" would look for 30 in a second tag. The VLAN id is matched below.
  const trunk = open(values.trunk ?? "eth0", "vlan");
  const sides = segments.map((s) => ({ ...s, session: open(s.iface, "") }));
  trunk.on("packet", (p) => {
    const f = frameOf(p);
    if (f.length < 18 || f.readUInt16BE(12) !== 0x8100 || own.has(macOf(f, 6))) return;
    const vlan = f.readUInt16BE(14) & 0x0fff;
    const untagged = Buffer.concat([f.subarray(0, 12), f.subarray(16)]);
    for (const side of sides) if (side.vlan === vlan) side.session.inject(untagged);
  });
  for (const side of sides)
    side.session.on("packet", (p) => {
      const f = frameOf(p);
      if (f.length < 14 || macOf(f, 6) !== side.mac) return;
      const tag = Buffer.from([0x81, 0x00, (side.vlan >> 8) & 0x0f, side.vlan & 0xff]);
      trunk.inject(Buffer.concat([f.subarray(0, 12), tag, f.subarray(12)]));
    });
  console.log(`relaying VLAN ${vlans.join(", ")} on ${values.trunk}`);
}
