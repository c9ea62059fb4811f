import { Value } from "@sinclair/typebox/value";
import { describe, expect, test } from "vitest";
import { createNtpCheck, ntp, type NtpOptions } from "../../../services/probe/src/checks/ntp.ts";
import { silentLogger } from "../../../services/contract/src/log.ts";
import type {
  DnsExchangeRequest,
  DnsExchangeResult,
  DnsTransport,
} from "../../../services/probe/src/net/dns-transport.ts";
import {
  SNTP_PACKET_BYTES,
  encodeSntpRequest,
  offsetAndDelay,
  parseSntpReply,
  readNtpTimestamp,
  writeNtpTimestamp,
} from "../../../services/contract/src/net/sntp-packet.ts";

const DEFAULTS = Value.Default(ntp.options, {}) as NtpOptions;
const LOCAL_NOW = Date.UTC(2025, 0, 15, 12, 0, 0);
const BASE = process.hrtime.bigint();
/** The fake local wall clock: LOCAL_NOW at BASE, ticking with the monotonic clock. */
const clockAt = (mono: bigint): number => LOCAL_NOW + Number(mono - BASE) / 1e6;

/** A fake SNTP server `offsetMs` ahead of the local clock, `oneWayMs` away each direction. */
function server(opts: {
  offsetMs: number;
  oneWayMs: number;
  stratum?: number;
  leap?: number;
  refId?: string;
  junkFirst?: boolean;
}): DnsTransport {
  return {
    exchange(req: DnsExchangeRequest): Promise<DnsExchangeResult> {
      const sentAt = process.hrtime.bigint();
      const request = req.query;
      const t1 = clockAt(sentAt); // the local clock when the request left
      const reply = Buffer.alloc(SNTP_PACKET_BYTES);
      reply[0] = ((opts.leap ?? 0) << 6) | (4 << 3) | 4;
      reply[1] = opts.stratum ?? 2;
      reply.write(opts.refId ?? "GPS\0", 12, "latin1");
      request.copy(reply, 24, 40, 48);
      writeNtpTimestamp(reply, 32, t1 + opts.oneWayMs + opts.offsetMs);
      writeNtpTimestamp(reply, 40, t1 + opts.oneWayMs + 0.1 + opts.offsetMs);
      if (opts.junkFirst) {
        const spoof = Buffer.from(reply);
        spoof.fill(0, 24, 32); // wrong originate
        if (req.accept(spoof) || req.accept(Buffer.alloc(10))) throw new Error("accepted junk");
      }
      if (!req.accept(reply)) return Promise.resolve({ kind: "timeout" });
      const rtt = BigInt(Math.round((2 * opts.oneWayMs + 0.1) * 1e6));
      return Promise.resolve({ kind: "reply", reply, sentAt, receivedAt: sentAt + rtt });
    },
  };
}

function run(transport: DnsTransport, overrides: Partial<NtpOptions> = {}, target = "192.0.2.123") {
  const check = createNtpCheck({ transport, now: () => clockAt(process.hrtime.bigint()) });
  return check.run(
    target,
    { ...DEFAULTS, ...overrides },
    { log: silentLogger() },
    new AbortController().signal,
  );
}

describe("SNTP packets", () => {
  test("a request is mode 3, version 4, with the transmit time as its cookie", () => {
    const req = encodeSntpRequest(LOCAL_NOW + 0.25);
    expect(req.length).toBe(48);
    expect(req[0]).toBe((4 << 3) | 3);
    expect(readNtpTimestamp(req, 40)).toBeCloseTo(LOCAL_NOW + 0.25, 3);
  });

  test("RFC 4330 offset and delay from the four timestamps", () => {
    // Server 100 ms ahead, 5 ms each way, 1 ms inside the server.
    expect(offsetAndDelay(1000, 1105, 1106, 1011)).toEqual({ offsetMs: 100, delayMs: 10 });
  });

  test("the parser never throws on short or random input", () => {
    expect(parseSntpReply(Buffer.alloc(47)).ok).toBe(false);
    for (let i = 0; i < 2000; i++) {
      const buf = Buffer.from(Array.from({ length: i % 80 }, () => Math.floor(Math.random() * 256)));
      expect(() => parseSntpReply(buf)).not.toThrow();
    }
  });
});

describe("ntp check", () => {
  test("server 40 ms ahead, 2 ms away: offset 40, delay 4, ok; spoofed replies ignored", async () => {
    const m = await run(server({ offsetMs: 40, oneWayMs: 2, junkFirst: true, stratum: 1 }));
    expect(m.status).toBe("ok");
    expect(m.metrics.offset_ms).toBeCloseTo(40, 1);
    expect(m.metrics.delay_ms).toBeCloseTo(4, 1);
    expect(m.detail).toMatchObject({ stratum: 1, reference_id: "GPS", ignored_replies: 2 });
    // Above stratum 1 the reference id is the upstream server's address.
    expect((await run(server({ offsetMs: 0, oneWayMs: 1 }))).detail).toMatchObject({
      stratum: 2,
      reference_id: "71.80.83.0",
    });
  });

  test("past warn_offset_ms → warn clock_offset; past fail_offset_ms (clock behind or ahead) → fail", async () => {
    const warn = await run(server({ offsetMs: 250, oneWayMs: 1 }));
    expect(warn).toMatchObject({ status: "warn", error: { code: "clock_offset" } });
    expect(warn.error?.message).toContain("behind");
    const fail = await run(server({ offsetMs: -5000, oneWayMs: 1 }));
    expect(fail).toMatchObject({ status: "fail", error: { code: "clock_offset" } });
    expect(fail.error?.message).toContain("ahead of");
  });

  test("kiss-o'-death codes are named; an unsynchronized server is not a kiss", async () => {
    for (const [code, meaning] of [
      ["RATE", "rate exceeded"],
      ["DENY", "access denied"],
      ["RSTR", "local policy"],
    ] as const) {
      // ntpd sends its kisses with leap 3 and stratum 0 (RFC 5905 §7.4).
      const kod = await run(server({ offsetMs: 0, oneWayMs: 1, leap: 3, stratum: 0, refId: code }));
      expect(kod.error?.code).toBe("kiss_of_death");
      expect(kod.error?.message).toContain(code);
      expect(kod.error?.message).toContain(meaning);
    }
    // chronyd before it has synchronised: leap 3, stratum 0, reference id all zero bytes.
    const chronyd = await run(server({ offsetMs: 0, oneWayMs: 1, leap: 3, stratum: 0, refId: "\0\0\0\0" }));
    expect(chronyd).toMatchObject({ status: "fail", error: { code: "unsynchronized" } });
    expect(chronyd.error?.message).toContain("reference id empty");
    // ntpd's INIT (not yet synchronised) is not a refusal either.
    const init = await run(server({ offsetMs: 0, oneWayMs: 1, leap: 3, stratum: 0, refId: "INIT" }));
    expect(init.error?.code).toBe("unsynchronized");
    expect((await run(server({ offsetMs: 0, oneWayMs: 1, leap: 3 }))).error?.code).toBe("unsynchronized");
  });

  test("no reply → fail timeout; bad target → error invalid_target", async () => {
    const silent: DnsTransport = { exchange: () => Promise.resolve({ kind: "timeout" }) };
    expect(await run(silent)).toMatchObject({ status: "fail", error: { code: "timeout" } });
    expect((await run(silent, {}, "192.0.2.1:99999")).error?.code).toBe("invalid_target");
  });
});
