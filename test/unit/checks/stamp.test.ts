// The stamp check (checks/stamp.ts) against real reflectors on loopback UDP: the product's
// reflector behind a dropper that loses chosen packets on the way out or back (per-direction loss
// from the reflector's counter), a stateless one (direction unknown), a closed port, and a peer
// that answers garbage. Timing accuracy is the lab test's job (test/lab/stamp.test.ts).
import { createSocket, type Socket } from "node:dgram";
import { afterEach, describe, expect, test } from "vitest";
import { createStampCheck, type StampOptions } from "../../../services/probe/src/checks/stamp.ts";
import { silentLogger } from "../../../services/contract/src/log.ts";
import { openRawUdpTransport } from "../../../services/probe/src/net/icmp-socket.ts";
import { StampReflector } from "../../../services/contract/src/net/stamp-reflector.ts";

const check = createStampCheck({
  resolve: () => Promise.reject(new Error("no names in this test")),
  openSocket: (family) => createSocket({ type: family === 6 ? "udp6" : "udp4" }),
  openRawUdp: openRawUdpTransport,
});

const sockets: Socket[] = [];
afterEach(() => {
  for (const s of sockets.splice(0)) s.close();
});

function options(port: number, overrides: Partial<StampOptions> = {}): StampOptions {
  return {
    count: 20,
    interval_ms: 2,
    padding: 0,
    port,
    wait_ms: 300,
    clock_synchronized: false,
    clock_error_ms: 1,
    address_family: "auto",
    ...overrides,
  };
}

/** A loopback reflector that drops the sender sequences in `outbound` before and `back` after reflecting. */
async function lossyReflector(
  mode: "stateful" | "stateless",
  outbound: number[] = [],
  back: number[] = [],
  garbage = false,
): Promise<number> {
  const reflector = new StampReflector(
    {
      enabled: true,
      address: "127.0.0.1",
      port: 862,
      allow: ["127.0.0.0/8"],
      mode,
      rate_pps: 10_000,
      burst: 10_000,
      max_clients: 8,
      clock_synchronized: true,
      clock_error_ms: 0.01,
    },
    silentLogger(),
  );
  const socket = createSocket("udp4");
  sockets.push(socket);
  socket.on("message", (msg, rinfo) => {
    if (garbage) {
      socket.send(Buffer.alloc(msg.length, 0xff).subarray(0, 20), rinfo.port, rinfo.address);
      return;
    }
    const sequence = msg.readUInt32BE(0);
    if (outbound.includes(sequence)) return;
    const reply = reflector.reflect(msg, rinfo.address, rinfo.port, Date.now());
    if (reply !== undefined && !back.includes(sequence)) socket.send(reply, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  return socket.address().port;
}

const run = (port: number, overrides: Partial<StampOptions> = {}) =>
  check.run("127.0.0.1", options(port, overrides), { log: silentLogger() }, AbortSignal.timeout(10_000));

describe("stamp check", () => {
  test("a stateful reflector: loss per direction from its own counter", async () => {
    const port = await lossyReflector("stateful", [3, 7], [5]);
    const m = await run(port);
    expect(m.status, m.error?.message).toBe("ok");
    expect(m.metrics).toMatchObject({ sent: 20, received: 17, loss_pct: 15, loss_fwd_pct: 10 });
    expect(m.metrics.loss_back_pct).toBeCloseTo(100 / 18, 3);
    expect(m.metrics).toMatchObject({ duplicates: 0, malformed: 0 });
    expect(m.detail).toMatchObject({ loss_span: 20, timestamps: "process", one_way: "unavailable" });
    expect(m.metrics.rtt_avg_ms).toBeGreaterThan(0);
    expect((m.detail?.rtts_ms as (number | null)[])[3]).toBeNull();
  });

  test("one-way delay only when both clocks say they are synchronized", async () => {
    const port = await lossyReflector("stateful");
    const m = await run(port, { count: 5, clock_synchronized: true });
    expect(m.detail?.one_way).toBe("available");
    expect(m.metrics.owd_fwd_avg_ms).toBeDefined();
    expect(m.metrics.owd_back_avg_ms).toBeDefined();
  });

  test("a stateless reflector copies sequence numbers: loss is reported, its direction is not", async () => {
    const port = await lossyReflector("stateless", [4], [9]);
    const m = await run(port);
    expect(m.metrics).toMatchObject({ sent: 20, received: 18, loss_pct: 10 });
    expect(m.metrics.loss_fwd_pct).toBeUndefined();
    expect(m.metrics.loss_back_pct).toBeUndefined();
    expect(String(m.detail?.direction_loss)).toMatch(/^unknown: the reflector copies/);
  });

  test("nothing on the port: fail / port_unreachable, not a timeout", async () => {
    const probe = createSocket("udp4");
    await new Promise<void>((resolve) => probe.bind(0, "127.0.0.1", resolve));
    const port = probe.address().port;
    probe.close(); // a port nobody listens on
    const m = await run(port, { count: 3 });
    expect(m.status).toBe("fail");
    expect(m.error?.code).toBe("port_unreachable");
  });

  test("a peer answering garbage: fail / malformed_reply, every reply counted", async () => {
    const port = await lossyReflector("stateful", [], [], true);
    const m = await run(port, { count: 4 });
    expect(m.status).toBe("fail");
    expect(m.error?.code).toBe("malformed_reply");
    expect(m.metrics.malformed).toBe(4);
  });

  test("aborted before it starts: a result, not a throw", async () => {
    const m = await check.run("127.0.0.1", options(9), { log: silentLogger() }, AbortSignal.abort());
    expect(m.status).toBe("fail");
    expect(m.detail?.aborted).toBe(true);
  });
});
