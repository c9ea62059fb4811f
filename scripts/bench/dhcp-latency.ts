// DHCP offer latency: what the probe's dhcp check reports vs what the wire shows (pcap timestamps
// of DISCOVER and OFFER captured by tshark on the switch port facing the probe, wire-capture.ts),
// over N runs; then monitoring-plugins' check_dhcp and nmap's broadcast-dhcp-discover on the same
// lab as references. Neither prints a latency of its own: for each, the wire latency of its
// exchanges and its wall time per run (check_dhcp's is what a monitoring system would record as the
// plugin's duration).
//
//   node scripts/bench/dhcp-latency.ts [runs=50] [--nmap-runs N] [--lab NAME] [--json]
//                                                   (root; builds and removes its own lab unless --lab)
//
// The probe side runs in one process inside the probe namespace (this file with --inner), the way
// `netprobe run` does: one long-lived pcap session, runs back to back.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Lab, labUp } from "../lab/lab.ts";
import { startCapture } from "./wire-capture.ts";
import { dhcp } from "../../services/probe/src/checks/dhcp.ts";
import { silentLogger } from "../../services/contract/src/log.ts";
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
  vlan: 0,
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

const { values: args, positionals } = parseArgs({
  options: {
    "nmap-runs": { type: "string" },
    lab: { type: "string" },
    json: { type: "boolean", default: false },
  },
  allowPositionals: true,
});
const runs = Number(positionals[0] ?? 50);
const CHECK_DHCP = "/usr/lib/nagios/plugins/check_dhcp";
const lab = args.lab ? Lab.load(args.lab) : await labUp({ ephemeral: true });
const pcapFile = join(lab.info.dir, "dhcp-bench.pcap");
try {
  const capture = await startCapture(lab, "sw", "probe0", "udp port 67 or udp port 68", pcapFile);

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

  // check_dhcp: DISCOVER from the probe's port, waits for the gateway's OFFER; its wall time and window.
  const checkDhcpRuns: Array<{ from: number; to: number; ok: boolean }> = [];
  for (let i = 0; i < runs; i++) {
    const from = wallUs();
    const r = await lab.exec("probe", [CHECK_DHCP, "-i", "eth0", "-s", "192.0.2.1", "-t", "1"], {
      timeoutMs: 30_000,
    });
    checkDhcpRuns.push({ from, to: wallUs(), ok: r.code === 0 });
    await new Promise((r) => setTimeout(r, 100));
  }

  const nmapWallMs: number[] = [];
  const nmapRuns = args["nmap-runs"] === undefined ? runs : Number(args["nmap-runs"]);
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
  await capture.stop();

  const wire = wireLatencies(readFileSync(pcapFile));
  const pairs = probeRuns.flatMap((p) => {
    const w = wire.get(p.xid)?.ms;
    return p.offer_latency_ms !== null && w !== undefined ? [{ probe: p.offer_latency_ms, wire: w }] : [];
  });
  const probeXids = new Set(probeRuns.map((p) => p.xid));
  const inRun = (at: number, run: { from: number; to: number }) => at >= run.from && at <= run.to;
  const checkDhcp = checkDhcpRuns.flatMap((run) => {
    const w = [...wire.values()].find((x) => inRun(x.at, run));
    return run.ok && w ? [{ wall: (run.to - run.from) / 1000, wire: w.ms }] : [];
  });
  const lastCheckDhcp = checkDhcpRuns.at(-1)?.to ?? 0;
  const nmapWire = [...wire.entries()]
    .filter(([xid, w]) => !probeXids.has(xid) && w.at > lastCheckDhcp)
    .map(([, w]) => w.ms);
  const probeMinusWire = median(pairs.map((p) => p.probe - p.wire));
  if (args.json) {
    console.log(
      JSON.stringify({
        runs,
        probe_matched: pairs.length,
        probe_median_ms: median(pairs.map((p) => p.probe)),
        probe_wire_median_ms: median(pairs.map((p) => p.wire)),
        probe_minus_wire_median_ms: probeMinusWire,
        check_dhcp_matched: checkDhcp.length,
        check_dhcp_wall_median_ms: median(checkDhcp.map((c) => c.wall)),
        check_dhcp_wire_median_ms: median(checkDhcp.map((c) => c.wire)),
        check_dhcp_wall_minus_wire_median_ms: median(checkDhcp.map((c) => c.wall - c.wire)),
        nmap_exchanges: nmapWire.length,
        nmap_wire_median_ms: median(nmapWire),
        nmap_wall_median_ms: median(nmapWallMs),
      }),
    );
  } else {
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
      `  check_dhcp       on wire median ${fmt(median(checkDhcp.map((c) => c.wire)))}  (${checkDhcp.length}/${runs} runs matched); wall time per run median ${fmt(median(checkDhcp.map((c) => c.wall)))}; wall − wire median ${fmt(median(checkDhcp.map((c) => c.wall - c.wire)))}`,
    );
    console.log(
      `  nmap broadcast-dhcp-discover on wire median ${fmt(median(nmapWire))}  p95 ${fmt(pct(nmapWire, 95))}  (${nmapWire.length} exchanges); wall time per run median ${fmt(median(nmapWallMs))}`,
    );
  }
} finally {
  if (!args.lab) await lab.down();
}

/** Wall-clock time in µs (the pcap records' clock). */
function wallUs(): number {
  return (performance.timeOrigin + performance.now()) * 1000;
}

/** xid → DISCOVER time (µs since the epoch) and OFFER time − DISCOVER time (ms), from a pcap file's record timestamps. */
function wireLatencies(file: Buffer): Map<number, { at: number; ms: number }> {
  const discover = new Map<number, number>();
  const out = new Map<number, { at: number; ms: number }>();
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
      if (t0 !== undefined) out.set(m.xid, { at: t0, ms: (us - t0) / 1000 });
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
