// iperf3 --json reports as Debian's iperf3 3.12 printed them in the lab (test/fixtures/iperf3,
// written by `node scripts/bench/throughput.ts --fixtures test/fixtures/iperf3`), and
// malformed ones: cut off, not JSON, wrong types. Nothing may throw; every failure has its code.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { iperf3Error, parseIperf3Json } from "../../../services/probe/src/checks/throughput.ts";

const fixture = (name: string): string =>
  readFileSync(new URL(`../../fixtures/iperf3/${name}.stdout`, import.meta.url), "utf8");

/** The numbers straight from a fixture, to compare the parser with. */
function raw(name: string) {
  return JSON.parse(fixture(name)) as {
    start: { test_start: { num_streams: number } };
    end: {
      sum_sent: { bits_per_second: number; retransmits?: number };
      sum_received: { bits_per_second: number; bytes: number };
      sum?: { lost_percent: number; jitter_ms: number; packets: number; lost_packets: number };
      cpu_utilization_percent: { host_total: number; remote_total: number };
    };
  };
}

describe("iperf3 --json reports", () => {
  it("TCP upload: the receiver's goodput, the sender's rate and retransmits, both CPUs", () => {
    const r = parseIperf3Json(fixture("tcp-upload"));
    const want = raw("tcp-upload").end;
    expect(r).toMatchObject({
      protocol: "tcp",
      reverse: false,
      streams: 1,
      receivedBitsPerS: want.sum_received.bits_per_second,
      sentBitsPerS: want.sum_sent.bits_per_second,
      receivedBytes: want.sum_received.bytes,
      retransmits: want.sum_sent.retransmits,
      cpuLocalPct: want.cpu_utilization_percent.host_total,
      cpuRemotePct: want.cpu_utilization_percent.remote_total,
      version: "iperf 3.12",
    });
    expect(r).not.toHaveProperty("lossPct");
  });

  it("TCP download (-R) and four parallel streams are read from the same summary", () => {
    expect(parseIperf3Json(fixture("tcp-download"))).toMatchObject({ protocol: "tcp", reverse: true });
    const p4 = parseIperf3Json(fixture("tcp-upload-parallel4"));
    expect(p4).toMatchObject({
      streams: 4,
      receivedBitsPerS: raw("tcp-upload-parallel4").end.sum_received.bits_per_second,
    });
  });

  it("UDP: loss, lost packets and jitter from the receiver's summary", () => {
    for (const name of ["udp-upload", "udp-download-overload"]) {
      const want = raw(name).end;
      expect(parseIperf3Json(fixture(name)), name).toMatchObject({
        protocol: "udp",
        lossPct: want.sum?.lost_percent,
        lostPackets: want.sum?.lost_packets,
        packets: want.sum?.packets,
        jitterMs: want.sum?.jitter_ms,
        receivedBitsPerS: want.sum_received.bits_per_second,
      });
    }
    const overload = parseIperf3Json(fixture("udp-download-overload"));
    expect("lossPct" in overload && overload.lossPct).toBeGreaterThan(30); // 80 Mbit/s into a 50 Mbit/s bucket
  });

  it('iperf3\'s own {"error": …} reports map to stable codes', () => {
    const cases: [string, string][] = [
      ["error-busy", "busy"],
      ["error-refused", "connection_refused"],
      ["error-timeout", "timeout"],
      ["error-no-route", "no_route"],
      ["error-server-killed", "server_lost"],
    ];
    for (const [name, code] of cases) {
      const r = parseIperf3Json(fixture(name));
      expect(r, name).toMatchObject({ error: { code } });
      expect("error" in r && r.error.message, name).toMatch(/^iperf3: /);
    }
    expect(iperf3Error("unable to write to stream socket: Connection reset by peer").code).toBe(
      "server_lost",
    );
    expect(iperf3Error("unable to connect to server: Network is unreachable").code).toBe("no_route");
    expect(iperf3Error("something new in iperf3 3.99").code).toBe("iperf3_error");
  });

  it("a report cut off at any byte is bad_output, never a throw", () => {
    const text = fixture("udp-upload");
    for (let n = 0; n < text.length - 2; n += 97) {
      const r = parseIperf3Json(text.slice(0, n));
      expect(r, `cut at ${n}`).toMatchObject({ error: { code: "bad_output" } });
    }
  });

  it("not JSON, not an object, wrong types and missing summaries are bad_output", () => {
    const bad = [
      "",
      "iperf3: error - unable to connect",
      "[]",
      "null",
      "42",
      '{"start":{}}',
      '{"start":{"test_start":{"protocol":"SCTP"}},"end":{}}',
      '{"start":{"test_start":{"protocol":"TCP"}},"end":{"sum_sent":{"bits_per_second":"fast"}}}',
      '{"start":{"test_start":{"protocol":"TCP"}},"end":{"sum_sent":{"bits_per_second":1},"sum_received":[]}}',
      '{"error": 5}',
    ];
    for (const text of bad)
      expect(parseIperf3Json(text), text).toMatchObject({ error: { code: "bad_output" } });
  });

  it("an old-style UDP report with only end.sum still reads, and odd optional fields are left out", () => {
    const r = parseIperf3Json(
      JSON.stringify({
        start: { test_start: { protocol: "UDP", num_streams: 1, reverse: 0 } },
        end: {
          sum: {
            bits_per_second: 1e6,
            bytes: 125000,
            seconds: 1,
            jitter_ms: 0.5,
            lost_percent: 2,
            packets: 100,
            lost_packets: 2,
          },
          cpu_utilization_percent: { host_total: "high", remote_total: null },
        },
      }),
    );
    expect(r).toEqual({
      protocol: "udp",
      reverse: false,
      streams: 1,
      receivedBitsPerS: 1e6,
      sentBitsPerS: 1e6,
      receivedBytes: 125000,
      seconds: 1,
      lossPct: 2,
      lostPackets: 2,
      packets: 100,
      jitterMs: 0.5,
    });
  });
});
