// STAMP through the lab WAN: the probe's sender (checks/stamp.ts) against the lab's reflector
// (scripts/lab/stamp-responder.ts, around the product's services/contract/src/net/stamp-reflector.ts), checked against
// a second implementation — tshark's TWAMP-Test dissector on a capture of the probe's interface —
// and against the ground truth of the injected impairment (wan-loss, wan-latency, wan-jitter).
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { describe, expect, it } from "vitest";
import { interarrivalJitter } from "../../services/probe/src/checks/series-stats.ts";
import { labCredentials } from "../../scripts/lab/broker-tls.ts";
import { stampResponderCommand } from "../../scripts/lab/stamp-target.ts";
import { ADDR } from "../../scripts/lab/topology.ts";
import { useLab } from "./lab-fixture.ts";

const CLI = new URL("../../services/probe/src/cli.ts", import.meta.url).pathname;

interface CheckOutput {
  status: string;
  metrics: Record<string, number>;
  detail: Record<string, unknown> & { rtts_ms?: (number | null)[] };
  error?: { code: string; message: string };
}

interface Flow {
  client: string;
  port: number;
  received: number;
  fwd_dropped: number[];
  back_dropped: number[];
  replied: number;
  holds: Record<string, [number, number]>;
}

/** One TWAMP-Test packet as tshark decodes it (`-d udp.port==862,twamp.test`). */
interface Decoded {
  epochS: number;
  srcPort: number;
  dstPort: number;
  udpLength: number;
  seq: number;
  timestamp: string;
  errorEstimate: number;
  s: boolean;
  z: boolean;
  receiveTimestamp: string;
  senderSeq: number;
  senderTimestamp: string;
  senderErrorEstimate: number;
  senderTtl: number;
  mbz1: number;
  mbz2: number;
  payload: Buffer;
}

const FIELDS = [
  "frame.time_epoch",
  "udp.srcport",
  "udp.dstport",
  "udp.length",
  "twamp.test.seq_number",
  "twamp.test.timestamp",
  "twamp.test.error_estimate",
  "twamp.test.error_estimate.s",
  "twamp.test.error_estimate.z",
  "twamp.test.receive_timestamp",
  "twamp.test.sender_seq_number",
  "twamp.test.sender_timestamp",
  "twamp.test.sender_error_estimate",
  "twamp.test.sender_ttl",
  "twamp.test.mbz1",
  "twamp.test.mbz2",
  "udp.payload",
];

/** Unix ms of an NTP timestamp at `offset` of a STAMP payload (the bytes tshark decoded). */
function ntpMs(payload: Buffer, offset: number): number {
  return (
    (payload.readUInt32BE(offset) - 2_208_988_800) * 1000 +
    (payload.readUInt32BE(offset + 4) / 2 ** 32) * 1000
  );
}

/** tshark prints absolute times as "… hh:mm:ss.nnnnnnnnn UTC": the seconds of the day, to compare. */
function secondsOfDay(text: string): number {
  const m = /(\d\d):(\d\d):(\d\d(?:\.\d+)?)/.exec(text);
  if (m === null) throw new Error(`tshark time without hh:mm:ss: ${text}`);
  return Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]);
}

// A reflector packet has two Error Estimates, so tshark prints `s`/`z` as "own,sender's": the first is the packet's own.
const first = (v: string | undefined): string => (v ?? "").split(",")[0] ?? "";
const bool = (v: string | undefined): boolean => ["1", "True", "true"].includes(first(v));
const num = (v: string | undefined): number => {
  const text = first(v);
  return text.startsWith("0x") ? Number.parseInt(text, 16) : Number(text);
};

describe("STAMP (RFC 8762) through the lab WAN", () => {
  const lab = useLab();

  async function stampCheck(
    target: string,
    options: Record<string, string | number | boolean>,
    timeout = "30s",
  ) {
    const argv = [process.execPath, CLI, "check", "stamp", "-t", target, "--json", "--timeout", timeout];
    for (const [k, v] of Object.entries(options)) argv.push("-o", `${k}=${v}`);
    const r = await lab().exec("probe", argv, { timeoutMs: 120_000 });
    try {
      return JSON.parse(r.stdout) as CheckOutput;
    } catch {
      throw new Error(`netprobe check stamp printed no JSON (exit ${r.code}): ${r.stdout}${r.stderr}`);
    }
  }

  /** Runs `body` while tshark captures UDP 862 on the probe's interface; returns the decoded packets. */
  async function captured<T>(body: () => Promise<T>): Promise<{ result: T; packets: Decoded[] }> {
    const file = join(lab().info.dir, `stamp-${Date.now()}.pcap`);
    const capture = lab().spawn("probe", ["tshark", "-q", "-i", "eth0", "-f", "udp port 862", "-w", file], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    capture.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise((r) => capture.once("exit", r));
    // tshark prints "Capturing on" to stderr once the capture is open.
    for (let i = 0; i < 200 && !stderr.includes("Capturing on"); i++)
      await new Promise((r) => setTimeout(r, 50));
    expect(stderr).toContain("Capturing on");
    const result = await body();
    await new Promise((r) => setTimeout(r, 300));
    capture.kill("SIGINT");
    await exited;
    const argv = [
      "tshark",
      "-r",
      file,
      "-d",
      "udp.port==862,twamp.test",
      "-T",
      "fields",
      "-E",
      "separator=\t",
    ];
    for (const f of FIELDS) argv.push("-e", f);
    const r = await lab().exec("probe", argv, { timeoutMs: 60_000 });
    expect(r.code, r.stderr).toBe(0);
    const packets = r.stdout
      .trim()
      .split("\n")
      .filter((l) => l !== "")
      .map((line) => {
        const c = line.split("\t");
        return {
          epochS: Number(c[0]),
          srcPort: num(c[1]),
          dstPort: num(c[2]),
          udpLength: num(c[3]),
          seq: num(c[4]),
          timestamp: c[5] ?? "",
          errorEstimate: num(c[6]),
          s: bool(c[7]),
          z: bool(c[8]),
          receiveTimestamp: c[9] ?? "",
          senderSeq: num(c[10]),
          senderTimestamp: c[11] ?? "",
          senderErrorEstimate: num(c[12]),
          senderTtl: num(c[13]),
          mbz1: num(c[14]),
          mbz2: num(c[15]),
          payload: Buffer.from((c[16] ?? "").replaceAll(":", ""), "hex"),
        };
      });
    return { result, packets };
  }

  it("an unimpaired path: every packet back, wire timestamps, one-way delay, and every field as RFC 8762 defines it", async () => {
    await stampResponderCommand(lab().info.dir, { stats: true, reset: true });
    const { result, packets } = await captured(() =>
      stampCheck(lab().info.addr.farTarget4, {
        count: 20,
        interval_ms: 20,
        padding: 20,
        clock_synchronized: true,
      }),
    );
    expect(result.status, result.error?.message).toBe("ok");
    expect(result.metrics).toMatchObject({
      sent: 20,
      received: 20,
      loss_pct: 0,
      loss_fwd_pct: 0,
      loss_back_pct: 0,
    });
    expect(result.metrics).toMatchObject({ duplicates: 0, reordered: 0, malformed: 0 });
    expect(result.detail).toMatchObject({ timestamps: "wire", one_way: "available", packet_bytes: 64 });
    expect(result.metrics.rtt_avg_ms).toBeGreaterThan(0);
    // Each RTT is the wire's: T4 − T1 of the capture minus the reflector's T3 − T2.
    const rtts = result.detail.rtts_ms ?? [];

    const requests = packets.filter((p) => p.dstPort === 862);
    const replies = packets.filter((p) => p.srcPort === 862);
    expect(requests).toHaveLength(20);
    expect(replies).toHaveLength(20);
    for (const [i, q] of requests.entries()) {
      // Session-Sender packet, RFC 8762 §4.2.1: 44 octets + padding, sequence from 0, NTP time (Z = 0),
      // S set (declared synchronized), multiplier ≠ 0, MBZ zero.
      expect(q.udpLength).toBe(8 + 44 + 20);
      expect(q.payload.readUInt32BE(0)).toBe(i);
      expect(q.seq).toBe(i);
      const t1 = ntpMs(q.payload, 4);
      expect(Math.abs(t1 - q.epochS * 1000)).toBeLessThan(5);
      expect(Math.abs(secondsOfDay(q.timestamp) - ((t1 / 1000) % 86_400))).toBeLessThan(1e-3);
      const estimate = q.payload.readUInt16BE(12);
      expect(estimate & 0x8000).not.toBe(0); // S
      expect(estimate & 0x4000).toBe(0); // Z: NTP format
      expect(estimate & 0xff).toBeGreaterThan(0); // multiplier
      expect([q.errorEstimate, q.s, q.z]).toEqual([estimate, true, false]); // as tshark reads them
      expect(q.payload.subarray(14).every((b) => b === 0)).toBe(true);
    }
    for (const a of replies) {
      // Session-Reflector packet, RFC 8762 §4.3.1: same size as the request, copies of the
      // sender's fields, T2 ≤ T3, stateful counter, NTP format.
      const q = requests.find((r) => r.seq === a.senderSeq);
      expect(q, `reply to sender sequence ${a.senderSeq}`).toBeDefined();
      if (q === undefined) continue;
      expect(a.udpLength).toBe(q.udpLength);
      expect(a.seq).toBe(a.senderSeq); // no loss: the reflector's own counter equals ours
      expect(a.senderErrorEstimate).toBe(q.payload.readUInt16BE(12));
      expect(a.payload.subarray(28, 36).equals(q.payload.subarray(4, 12))).toBe(true);
      expect(secondsOfDay(a.senderTimestamp)).toBeCloseTo(secondsOfDay(q.timestamp), 6);
      const t2 = ntpMs(a.payload, 16);
      const t3 = ntpMs(a.payload, 4);
      expect(t3).toBeGreaterThanOrEqual(t2);
      expect(t2).toBeGreaterThan(q.epochS * 1000);
      expect(t3).toBeLessThan(a.epochS * 1000);
      expect(Math.abs(secondsOfDay(a.receiveTimestamp) - ((t2 / 1000) % 86_400))).toBeLessThan(1e-3);
      expect(a.s).toBe(true);
      expect(a.z).toBe(false);
      expect(a.mbz1).toBe(0);
      expect(a.mbz2).toBe(0);
      expect(a.senderTtl).toBe(255);
      expect(a.payload.subarray(41).every((b) => b === 0)).toBe(true);
      const wireRtt = a.epochS * 1000 - q.epochS * 1000 - (t3 - t2);
      expect(Math.abs((rtts[a.senderSeq] ?? NaN) - wireRtt), `packet ${a.senderSeq}`).toBeLessThanOrEqual(
        0.1,
      );
    }
  });

  it("IPv6 works the same, and a closed port is `port_unreachable`, not a timeout", async () => {
    const v6 = await stampCheck(lab().info.addr.farTarget6, { count: 5, interval_ms: 20 });
    expect(v6.status, v6.error?.message).toBe("ok");
    expect(v6.metrics).toMatchObject({ sent: 5, received: 5, loss_pct: 0 });
    expect(v6.detail).toMatchObject({ family: "ipv6", one_way: "unavailable" });
    const closed = await stampCheck(lab().info.addr.farTarget4, {
      count: 3,
      interval_ms: 20,
      port: 863,
      wait_ms: 500,
    });
    expect(closed.status).toBe("fail");
    expect(closed.error?.code).toBe("port_unreachable");
  });

  it("5 % loss, 30 ms delay, 10 ms jitter: loss per direction, RTT against the wire, jitter per direction against the truth", async () => {
    await lab().fault("wan-loss", true, 5);
    await lab().fault("wan-latency", true, 30);
    await lab().fault("wan-jitter", true, 10);
    try {
      await stampResponderCommand(lab().info.dir, { stats: true, reset: true });
      const count = 1000;
      const { result, packets } = await captured(() =>
        stampCheck(
          lab().info.addr.farTarget4,
          { count, interval_ms: 10, wait_ms: 1000, clock_synchronized: true },
          "60s",
        ),
      );
      expect(result.status, result.error?.message).toBe("ok");
      const stats = await stampResponderCommand(lab().info.dir, { stats: true });
      const flows = stats.flows as Flow[];
      expect(flows).toHaveLength(1);
      const flow = flows[0] as Flow;
      expect(flow.received).toBe(count);

      // Loss: exact shares were dropped each way; the probe's estimate is within ±1 point.
      const fwdTruth = (100 * flow.fwd_dropped.length) / count;
      const backTruth = (100 * flow.back_dropped.length) / (count - flow.fwd_dropped.length);
      expect(fwdTruth).toBe(5);
      expect(backTruth).toBeCloseTo(5, 0);
      expect(Math.abs((result.metrics.loss_fwd_pct ?? NaN) - fwdTruth)).toBeLessThanOrEqual(1);
      expect(Math.abs((result.metrics.loss_back_pct ?? NaN) - backTruth)).toBeLessThanOrEqual(1);
      const totalTruth = (100 * (count - flow.replied)) / count;
      expect(result.metrics.loss_pct).toBeCloseTo(totalTruth, 6);

      // RTT against the wire: (T4 − T1) from the capture minus the reflector's (T3 − T2).
      const sentAt = new Map<number, number>();
      for (const p of packets) if (p.dstPort === 862) sentAt.set(p.seq, p.epochS * 1000);
      const wire = new Map<number, number>();
      for (const p of packets) {
        if (p.srcPort !== 862 || wire.has(p.senderSeq)) continue;
        const t1 = sentAt.get(p.senderSeq);
        if (t1 === undefined) continue;
        wire.set(p.senderSeq, p.epochS * 1000 - t1 - (ntpMs(p.payload, 4) - ntpMs(p.payload, 16)));
      }
      expect(wire.size).toBe(flow.replied);
      const wireList = [...wire.values()];
      const wireAvg = wireList.reduce((a, b) => a + b, 0) / wireList.length;
      expect(Math.abs((result.metrics.rtt_avg_ms ?? NaN) - wireAvg)).toBeLessThanOrEqual(0.1);
      const rtts = result.detail.rtts_ms ?? [];
      let compared = 0;
      for (const [i, rtt] of rtts.entries()) {
        const w = wire.get(i);
        expect(rtt === null, `packet ${i}: probe ${rtt}, wire ${w}`).toBe(w === undefined);
        if (rtt === null || w === undefined) continue;
        expect(Math.abs(rtt - w), `packet ${i}`).toBeLessThanOrEqual(0.1);
        compared++;
      }
      expect(compared).toBeGreaterThan(80);
      // 30 ms of latency plus two holds of mean 15 ms each.
      expect(result.metrics.rtt_avg_ms).toBeGreaterThan(55);
      expect(result.metrics.rtt_avg_ms).toBeLessThan(70);

      // Jitter per direction against the holds the responder applied, in send order.
      const order = Object.keys(flow.holds)
        .map(Number)
        .sort((a, b) => a - b);
      const fwdJitter = interarrivalJitter(order.map((s) => flow.holds[s]?.[0] ?? 0)) ?? NaN;
      const backJitter = interarrivalJitter(order.map((s) => flow.holds[s]?.[1] ?? 0)) ?? NaN;
      expect(fwdJitter).toBeGreaterThan(8);
      expect(fwdJitter).toBeLessThan(12);
      expect(Math.abs((result.metrics.jitter_fwd_ms ?? NaN) - fwdJitter) / fwdJitter).toBeLessThanOrEqual(
        0.1,
      );
      expect(Math.abs((result.metrics.jitter_back_ms ?? NaN) - backJitter) / backJitter).toBeLessThanOrEqual(
        0.1,
      );
      // One-way delays: each direction carries the holds applied (half the latency plus a mean
      // 15 ms of jitter), plus the path and the responder's wake-up.
      const mean = (list: number[]): number => list.reduce((a, b) => a + b, 0) / list.length;
      const fwdHold = mean(order.map((s) => flow.holds[s]?.[0] ?? 0));
      const backHold = mean(order.map((s) => flow.holds[s]?.[1] ?? 0));
      expect(fwdHold).toBeGreaterThan(28);
      expect(fwdHold).toBeLessThan(34);
      const owdFwd = result.metrics.owd_fwd_avg_ms ?? NaN;
      const owdBack = result.metrics.owd_back_avg_ms ?? NaN;
      // The responder's wake-up before each hold starts is on top (≈0.1 ms idle, ~1 ms under load).
      expect(owdFwd - fwdHold).toBeGreaterThan(0);
      expect(owdFwd - fwdHold).toBeLessThan(3);
      expect(owdBack - backHold).toBeGreaterThan(-0.05);
      expect(owdBack - backHold).toBeLessThan(3);
      // And to the wire: T2 − T1 and T4 − T3 with T1 and T4 from the capture.
      const fwdWire: number[] = [];
      const backWire: number[] = [];
      const seen = new Set<number>();
      for (const p of packets) {
        const t1 = sentAt.get(p.senderSeq);
        if (p.srcPort !== 862 || t1 === undefined || seen.has(p.senderSeq)) continue;
        seen.add(p.senderSeq);
        fwdWire.push(ntpMs(p.payload, 16) - t1);
        backWire.push(p.epochS * 1000 - ntpMs(p.payload, 4));
      }
      expect(Math.abs(owdFwd - mean(fwdWire))).toBeLessThanOrEqual(0.1);
      expect(Math.abs(owdBack - mean(backWire))).toBeLessThanOrEqual(0.1);
      expect(result.metrics.reordered).toBeGreaterThan(0); // 10 ms apart with up to 30 ms of jitter
      expect(result.metrics.duplicates).toBe(0);
      console.log(
        JSON.stringify({
          probe: result.metrics,
          truth: {
            fwd_hold_ms: fwdHold,
            back_hold_ms: backHold,
            fwd_loss_pct: fwdTruth,
            back_loss_pct: backTruth,
            fwd_jitter_ms: fwdJitter,
            back_jitter_ms: backJitter,
            wire_rtt_avg_ms: wireAvg,
          },
        }),
      );
    } finally {
      await lab().fault("wan-loss", false);
      await lab().fault("wan-latency", false);
      await lab().fault("wan-jitter", false);
    }
  });
  it("headquarters answers too: `hq serve` with stamp_reflector, and only to the prefixes it allows", async () => {
    const c = labCredentials(lab().info.dir, "hq");
    const config = (allow: string[]) => {
      const file = join(lab().info.dir, `hq-stamp-${allow.length}.json`);
      writeFileSync(
        file,
        JSON.stringify({
          broker: { url: c.url, username: c.username, password: c.password, ca_file: c.ca_file },
          auth: { token_file: join(lab().info.dir, "hq-stamp-token") },
          history: { engine: "none" },
          stamp_reflector: { enabled: true, address: ADDR.hq4, allow },
        }),
        { mode: 0o600 },
      );
      return file;
    };
    const serve = async (file: string) => {
      const hq = lab().spawn(
        "hq",
        [process.execPath, CLI, "hq", "serve", "--config", file, "--cert", c.cert_file, "--key", c.key_file],
        { stdio: ["ignore", "ignore", "pipe"] },
      );
      const log: string[] = [];
      createInterface({ input: hq.stderr! }).on("line", (l) => log.push(l));
      for (let i = 0; i < 300 && !log.some((l) => l.includes("stamp reflector listening")); i++)
        await new Promise((r) => setTimeout(r, 50));
      expect(log.join("\n")).toContain("stamp reflector listening");
      return async () => {
        hq.kill("SIGTERM");
        await new Promise((r) => hq.once("exit", r));
      };
    };
    // The probe's IPv4 reaches HQ masqueraded by the office gateway, as 198.51.100.1.
    let stop = await serve(config(["198.51.100.1/32"]));
    try {
      const r = await stampCheck(ADDR.hq4, { count: 10, interval_ms: 20 });
      expect(r.status, r.error?.message).toBe("ok");
      expect(r.metrics).toMatchObject({ sent: 10, received: 10, loss_pct: 0 });
    } finally {
      await stop();
    }
    // A reflector that does not list the probe's address stays silent: every packet is lost.
    stop = await serve(config(["198.51.100.2/32", "192.0.2.0/24", "203.0.113.0/24"]));
    try {
      const r = await stampCheck(ADDR.hq4, { count: 5, interval_ms: 20, wait_ms: 300 });
      expect(r.metrics.received).toBe(0);
      expect(r.status).not.toBe("ok");
    } finally {
      await stop();
    }
  });
});
