// DHCP offer latency: what the probe's dhcp check reports vs what the wire shows (pcap timestamps
// of DISCOVER and OFFER captured by tcpdump on the switch port facing the probe), over N runs, and
// nmap's broadcast-dhcp-discover on the same lab as a reference (wire latency of its exchanges and
// its own wall time; nmap prints no latency of its own).
//
//   node scripts/bench/dhcp-latency.ts [runs=50]          (root; builds and removes its own lab)
//
// The probe side runs in one process inside the probe namespace (this file with --inner), the way
// `netprobe run` does: one long-lived pcap session, runs back to back.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { labUp } from "../lab/lab.ts";
import { dhcp } from "../../services/probe/src/checks/dhcp.ts";
import { silentLogger } from "../../services/probe/src/log.ts";
import { DHCP_TYPE, parseDhcp } from "../../services/probe/src/net/dhcp-message.ts";
import { decodeEthernet, decodeIpv4Udp } from "../../services/probe/src/net/ethernet.ts";

const OPTIONS = {
  wait_ms: 300,
  client_mac: "",
  request: false,
  release: true,
  broadcast_flag: true,
  allowed_servers: [],
  expect_router: "",
  expect_dns: [],
  expect_domain: "",
  expect_ntp: [],
  expect_subnet_mask: "",
  expect_tftp: "",
  min_lease_s: 0,
  vendor_class: "",
};

if (process.argv[2] === "--inner") {
  const runs = Number(process.argv[3] ?? 50);
  for (let i = 0; i < runs; i++) {
    const m = await dhcp.run("eth0", OPTIONS, { log: silentLogger() }, AbortSignal.timeout(5000));
    console.log(JSON.stringify({ xid: m.detail?.xid, offer_latency_ms: m.metrics.offer_latency_ms ?? null }));
    await new Promise((r) => setTimeout(r, 100));
  }
  process.exit(0); // the pcap session would keep the process alive (see net/pcap-session.ts)
}

const runs = Number(process.argv[2] ?? 50);
const lab = await labUp({ ephemeral: true });
const pcapFile = join(lab.info.dir, "dhcp-bench.pcap");
try {
  const tcpdump = lab.spawn(
    "sw",
    [
      "tcpdump",
      "-i",
      "probe0",
      "-n",
      "-U",
      "-j",
      "adapter_unsynced",
      "--time-stamp-precision=micro",
      "-w",
      pcapFile,
      "udp port 67 or udp port 68",
    ],
    { stdio: "ignore" },
  );
  await new Promise((r) => setTimeout(r, 1500));

  const self = fileURLToPath(import.meta.url);
  const probeRuns: Array<{ xid: number; offer_latency_ms: number | null }> = [];
  await new Promise<void>((resolve) => {
    const child = lab.spawn("probe", [process.execPath, self, "--inner", String(runs)], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let buf = "";
    child.stdout!.on("data", (d: Buffer) => (buf += d.toString()));
    child.on("exit", () => {
      for (const line of buf.split("\n"))
        if (line.trim()) probeRuns.push(JSON.parse(line) as (typeof probeRuns)[number]);
      resolve();
    });
  });

  const nmapWallMs: number[] = [];
  const nmapRuns = runs;
  for (let i = 0; i < nmapRuns; i++) {
    const t0 = performance.now();
    await lab.exec(
      "probe",
      [
        "nmap",
        "-n",
        "-e",
        "eth0",
        "--script",
        "broadcast-dhcp-discover",
        "--script-args",
        "broadcast-dhcp-discover.timeout=1s",
      ],
      { timeoutMs: 30_000 },
    );
    nmapWallMs.push(performance.now() - t0);
  }
  await new Promise((r) => setTimeout(r, 500));
  tcpdump.kill("SIGTERM");
  await new Promise((r) => setTimeout(r, 500));

  const wire = wireLatencies(readFileSync(pcapFile));
  const pairs = probeRuns.flatMap((p) => {
    const w = wire.get(p.xid);
    return p.offer_latency_ms !== null && w !== undefined ? [{ probe: p.offer_latency_ms, wire: w }] : [];
  });
  const probeXids = new Set(probeRuns.map((p) => p.xid));
  const nmapWire = [...wire.entries()].filter(([xid]) => !probeXids.has(xid)).map(([, ms]) => ms);

  console.log(`DHCP offer latency over ${runs} runs in lab ${lab.info.name} (dnsmasq, no-ping), ms:`);
  console.log(
    `  netprobe dhcp    reported  median ${fmt(median(pairs.map((p) => p.probe)))}  p95 ${fmt(
      pct(
        pairs.map((p) => p.probe),
        95,
      ),
    )}  (${pairs.length}/${runs} matched on the wire)`,
  );
  console.log(
    `                   on wire   median ${fmt(median(pairs.map((p) => p.wire)))}  p95 ${fmt(
      pct(
        pairs.map((p) => p.wire),
        95,
      ),
    )}`,
  );
  console.log(
    `                   probe − wire: median ${fmt(median(pairs.map((p) => p.probe - p.wire)))}  p95 ${fmt(
      pct(
        pairs.map((p) => p.probe - p.wire),
        95,
      ),
    )}  max ${fmt(Math.max(...pairs.map((p) => p.probe - p.wire)))}`,
  );
  console.log(
    `  nmap broadcast-dhcp-discover on wire median ${fmt(median(nmapWire))}  p95 ${fmt(pct(nmapWire, 95))}  (${nmapWire.length} exchanges); wall time per run median ${fmt(median(nmapWallMs))}`,
  );
} finally {
  await lab.down();
}

/** xid → OFFER time − DISCOVER time (ms) from a pcap file's record timestamps. */
function wireLatencies(file: Buffer): Map<number, number> {
  const discover = new Map<number, number>();
  const out = new Map<number, number>();
  for (let off = 24; off + 16 <= file.length;) {
    const us = file.readUInt32LE(off) * 1e6 + file.readUInt32LE(off + 4);
    const len = file.readUInt32LE(off + 8);
    const frame = file.subarray(off + 16, off + 16 + len);
    off += 16 + len;
    const eth = decodeEthernet(frame);
    const udp = eth && decodeIpv4Udp(eth.payload);
    const m = udp && parseDhcp(udp.payload);
    if (!m) continue;
    if (m.type === DHCP_TYPE.discover && !discover.has(m.xid)) discover.set(m.xid, us);
    else if (m.type === DHCP_TYPE.offer && !out.has(m.xid)) {
      const t0 = discover.get(m.xid);
      if (t0 !== undefined) out.set(m.xid, (us - t0) / 1000);
    }
  }
  return out;
}

function median(v: number[]): number {
  return pct(v, 50);
}
function pct(v: number[], p: number): number {
  if (v.length === 0) return NaN;
  const s = [...v].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}
function fmt(v: number): string {
  return Number.isFinite(v) ? v.toFixed(3) : "n/a";
}
