// The STAMP reflector's rules (net/stamp-reflector.ts): the allow-list, the per-client token
// bucket, no amplification, the stateful/stateless sequence numbers, and one real round trip over
// loopback UDP with the reflector started and stopped.
import { createSocket } from "node:dgram";
import { describe, expect, test } from "vitest";
import { silentLogger } from "../../../../services/contract/src/log.ts";
import {
  decodeReflectorPacket,
  encodeSenderPacket,
  errorEstimateFor,
} from "../../../../services/contract/src/net/stamp-packet.ts";
import {
  StampReflector,
  stampReflectorConfigProblem,
  type StampReflectorConfig,
} from "../../../../services/contract/src/net/stamp-reflector.ts";

const NOW = Date.UTC(2026, 11, 3, 14, 0, 0);

function config(overrides: Partial<StampReflectorConfig> = {}): StampReflectorConfig {
  return {
    enabled: true,
    address: "127.0.0.1",
    port: 862,
    allow: ["198.51.100.0/24", "2001:db8::/32"],
    mode: "stateful",
    rate_pps: 10,
    burst: 5,
    max_clients: 16,
    clock_synchronized: false,
    clock_error_ms: 1,
    ...overrides,
  };
}

function request(sequence: number, padding = 0): Buffer {
  return encodeSenderPacket(
    { sequence, timestampMs: NOW, errorEstimate: errorEstimateFor(1, false) },
    padding,
  );
}

/** A reflector on a fake clock (ms) the test moves. */
function reflectorAt(overrides: Partial<StampReflectorConfig> = {}) {
  const clock = { ms: 0 };
  const r = new StampReflector(config(overrides), silentLogger(), () => clock.ms);
  return { r, clock };
}

describe("STAMP reflector", () => {
  test("answers only clients inside the allow-list (IPv4, IPv6, IPv4-mapped)", () => {
    const { r } = reflectorAt();
    expect(r.reflect(request(0), "198.51.100.7", 40000, NOW)).toBeDefined();
    expect(r.reflect(request(0), "::ffff:198.51.100.8", 40000, NOW)).toBeDefined();
    expect(r.reflect(request(0), "2001:db8:1::5", 40000, NOW)).toBeDefined();
    expect(r.reflect(request(0), "203.0.113.9", 40000, NOW)).toBeUndefined();
    expect(r.reflect(request(0), "2001:db9::1", 40000, NOW)).toBeUndefined();
    expect(r.counters).toMatchObject({ received: 5, reflected: 3, denied: 2 });
  });

  test("an empty allow-list answers nobody", () => {
    const { r } = reflectorAt({ allow: [] });
    expect(r.reflect(request(0), "198.51.100.7", 40000, NOW)).toBeUndefined();
    expect(r.counters.denied).toBe(1);
  });

  test("the token bucket bounds each client address, whatever its source port, and refills at rate_pps", () => {
    const { r, clock } = reflectorAt({ rate_pps: 10, burst: 5 });
    const answered = (address: string, n: number): number => {
      let count = 0;
      for (let i = 0; i < n; i++) if (r.reflect(request(i), address, 40000 + i, NOW) !== undefined) count++;
      return count;
    };
    expect(answered("198.51.100.7", 20)).toBe(5);
    expect(answered("198.51.100.8", 20)).toBe(5); // another client has its own bucket
    clock.ms += 300; // 3 tokens at 10/s
    expect(answered("198.51.100.7", 20)).toBe(3);
    expect(r.counters.rate_limited).toBe(15 + 15 + 17);
  });

  test("no amplification: the reply is exactly the request's size; short requests get nothing", () => {
    const { r } = reflectorAt({ burst: 100 });
    for (const padding of [0, 1, 100, 1400]) {
      const q = request(1, padding);
      expect(r.reflect(q, "198.51.100.7", 40000, NOW)?.length).toBe(q.length);
    }
    for (const size of [0, 1, 20, 43]) {
      expect(r.reflect(Buffer.alloc(size), "198.51.100.7", 40000, NOW)).toBeUndefined();
    }
    expect(r.counters.malformed).toBe(4);
  });

  test("a datagram from a reflector port is never answered (no reflector loops)", () => {
    const { r } = reflectorAt();
    expect(r.reflect(request(0), "198.51.100.7", 862, NOW)).toBeUndefined();
  });

  test("stateful: its own counter per session; stateless: copies the sender's sequence", () => {
    const stateful = reflectorAt({ burst: 100 }).r;
    const seqs = [5, 6, 8, 9].map((s) => {
      const reply = decodeReflectorPacket(
        stateful.reflect(request(s), "198.51.100.7", 40000, NOW) ?? Buffer.alloc(0),
      );
      return reply.ok ? [reply.packet.sequence, reply.packet.senderSequence] : undefined;
    });
    expect(seqs).toEqual([
      [0, 5],
      [1, 6],
      [2, 8],
      [3, 9],
    ]);
    // Another port is another session, counted from 0.
    const other = decodeReflectorPacket(
      stateful.reflect(request(77), "198.51.100.7", 40001, NOW) ?? Buffer.alloc(0),
    );
    expect(other.ok && other.packet.sequence).toBe(0);
    const stateless = reflectorAt({ mode: "stateless" }).r;
    const copied = decodeReflectorPacket(
      stateless.reflect(request(42), "198.51.100.7", 40000, NOW) ?? Buffer.alloc(0),
    );
    expect(copied.ok && copied.packet.sequence).toBe(42);
  });

  test("state is bounded by max_clients", () => {
    const { r } = reflectorAt({ max_clients: 2, burst: 1, rate_pps: 0.1 });
    expect(r.reflect(request(0), "198.51.100.1", 40000, NOW)).toBeDefined();
    expect(r.reflect(request(0), "198.51.100.1", 40000, NOW)).toBeUndefined(); // bucket empty
    r.reflect(request(0), "198.51.100.2", 40000, NOW);
    r.reflect(request(0), "198.51.100.3", 40000, NOW); // evicts .1's bucket
    expect(r.reflect(request(0), "198.51.100.1", 40000, NOW)).toBeDefined(); // a fresh bucket
  });

  test("config problems name the field", () => {
    expect(stampReflectorConfigProblem(config({ address: "" }))?.field).toBe("address");
    expect(stampReflectorConfigProblem(config({ allow: ["198.51.100.0/33"] }))).toEqual({
      field: "allow",
      message: '"198.51.100.0/33" is not an address or prefix (e.g. 198.51.100.0/24)',
    });
    expect(stampReflectorConfigProblem(config({ enabled: false, address: "" }))).toBeUndefined();
  });

  test("started on loopback it answers a real sender with timestamps, then stops", async () => {
    const reflector = new StampReflector(config({ port: 0, allow: ["127.0.0.0/8"] }), silentLogger());
    await reflector.start();
    const port = reflector.address()?.port ?? 0;
    expect(port).toBeGreaterThan(0);
    const client = createSocket("udp4");
    try {
      const reply = await new Promise<Buffer>((resolve, reject) => {
        client.once("message", resolve);
        client.once("error", reject);
        client.send(request(3, 10), port, "127.0.0.1");
      });
      const decoded = decodeReflectorPacket(reply);
      if (!decoded.ok) throw new Error(decoded.reason);
      expect(reply.length).toBe(54);
      expect(decoded.packet.senderSequence).toBe(3);
      expect(decoded.packet.timestampMs).toBeGreaterThanOrEqual(decoded.packet.receiveTimestampMs);
      expect(Math.abs(decoded.packet.receiveTimestampMs - Date.now())).toBeLessThan(1000);
    } finally {
      client.close();
      await reflector.stop();
      await reflector.stop(); // idempotent
    }
  });
});
