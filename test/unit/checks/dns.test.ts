import * as dnsPacket from "dns-packet";
import { Value } from "@sinclair/typebox/value";
import { describe, expect, test } from "vitest";
import type { Measurement } from "../../../services/probe/src/checks/check.ts";
import {
  createDnsCheck,
  dns,
  nameserversOf,
  parseResolver,
  type DnsOptions,
} from "../../../services/probe/src/checks/dns.ts";
import { silentLogger } from "../../../services/contract/src/log.ts";
import {
  FakeDnsNetwork,
  aRecords,
  replyTo,
  type FakeDnsHandler,
  type ReceivedQuery,
} from "../../doubles/dns-fake-network.ts";

const ctx = { log: silentLogger() };
const DEFAULTS = Value.Default(dns.options, {}) as DnsOptions;
const RESOLV_CONF =
  "# written by dhcpcd\nsearch branch.example\nnameserver 192.0.2.1\nnameserver 2001:db8:1::1\n";

/** A healthy resolver: the target has 203.0.113.80, every other name is NXDOMAIN. */
const healthy =
  (delayMs = 2): FakeDnsHandler =>
  (q) => {
    const name = q.packet.questions[0]?.name ?? "";
    if (name === "www.example.net")
      return { replies: [replyTo(q, { answers: aRecords(q, "203.0.113.80") })], delayMs };
    return { replies: [replyTo(q, { rcode: "NXDOMAIN" })], delayMs };
  };

function setup(handler: FakeDnsHandler, resolvConf = RESOLV_CONF) {
  const network = new FakeDnsNetwork(handler);
  const check = createDnsCheck({ transport: network, readResolvConf: () => Promise.resolve(resolvConf) });
  const run = (
    overrides: Partial<DnsOptions> = {},
    target = "www.example.net",
    signal = new AbortController().signal,
  ) =>
    check.run(target, { ...DEFAULTS, resolvers: ["203.0.113.53"], wait_ms: 100, ...overrides }, ctx, signal);
  return { network, run };
}

interface ResolverDetail {
  resolver: string;
  source: string;
  status: string;
  error?: { code: string; message: string };
  rcode?: string;
  query_ms?: number;
  transport?: string;
  truncated?: boolean;
  answers?: string[];
  hijack_probe?: { name: string; verdict: string; answers?: string[] };
  ignored_replies?: { malformed: number; mismatched: number };
  flags?: { ad: boolean };
}

function resolvers(m: Measurement): ResolverDetail[] {
  return (m.detail?.resolvers ?? []) as ResolverDetail[];
}

describe("dns check: healthy resolvers", () => {
  test("two resolvers answer: ok, side by side, with query times and the answer", async () => {
    const { run } = setup((q) => healthy(q.server === "192.0.2.53" ? 3 : 7)(q));
    const m = await run({ resolvers: ["192.0.2.53", "203.0.113.53"] });
    expect(m.status).toBe("ok");
    expect(m.metrics).toMatchObject({
      resolvers: 2,
      resolvers_ok: 2,
      query_ms: 7,
      query_min_ms: 3,
      query_avg_ms: 5,
    });
    expect(resolvers(m).map((r) => [r.resolver, r.status, r.rcode, r.query_ms, r.answers])).toEqual([
      ["192.0.2.53", "ok", "NOERROR", 3, ["203.0.113.80"]],
      ["203.0.113.53", "ok", "NOERROR", 7, ["203.0.113.80"]],
    ]);
    expect(resolvers(m)[0]?.hijack_probe?.verdict).toBe("nxdomain");
  });

  test('"dhcp" asks every nameserver of resolv.conf, and a configured duplicate only once', async () => {
    const { run, network } = setup(healthy());
    const m = await run({ resolvers: ["dhcp", "192.0.2.1", "[2001:db8::53]:5353"], hijack_check: false });
    expect(resolvers(m).map((r) => `${r.source} ${r.resolver}`)).toEqual([
      "dhcp 192.0.2.1",
      "dhcp 2001:db8:1::1",
      "config [2001:db8::53]:5353",
    ]);
    expect(network.queries.map((q) => `${q.server}:${q.port}`).sort()).toEqual(
      ["192.0.2.1:53", "2001:db8:1::1:53", "2001:db8::53:5353"].sort(),
    );
  });

  test("the query carries RD, a random id and EDNS(0) with the configured UDP size", async () => {
    const { run, network } = setup(healthy());
    await run({ hijack_check: false, edns_udp_size: 1400 });
    await run({ hijack_check: false, edns: false, recursion: false });
    const [withEdns, plain] = network.queries;
    expect(withEdns?.packet.flag_rd).toBe(true);
    expect(withEdns?.packet.additionals).toEqual([
      expect.objectContaining({ type: "OPT", udpPayloadSize: 1400, flag_do: false }),
    ]);
    expect(plain?.packet.flag_rd).toBe(false);
    expect(plain?.packet.additionals).toEqual([]);
    expect(withEdns?.packet.id).not.toBe(plain?.packet.id);
  });

  test("the hijack probe asks for a random name under the target's parent domain", async () => {
    const { run, network } = setup(healthy());
    await run();
    await run({ hijack_domain: "invalid" });
    const names = network.queries.map((q) => q.packet.questions[0]?.name ?? "");
    expect(names[1]).toMatch(/^netprobe-nx-[0-9a-f]{12}\.example\.net$/);
    expect(names[3]).toMatch(/^netprobe-nx-[0-9a-f]{12}\.invalid$/);
    expect(names[1]).not.toBe(names[3]?.replace("invalid", "example.net"));
  });
});

describe("dns check: failures are data with a specific code", () => {
  const cases: Array<[string, FakeDnsHandler, Partial<DnsOptions>, string]> = [
    ["silent resolver", () => ({ silent: true }), {}, "timeout"],
    ["SERVFAIL", (q) => ({ replies: [replyTo(q, { rcode: "SERVFAIL" })] }), {}, "servfail"],
    ["REFUSED without a question section", (q) => ({ replies: [refusedWithoutQuestion(q)] }), {}, "refused"],
    ["NXDOMAIN for the target", (q) => ({ replies: [replyTo(q, { rcode: "NXDOMAIN" })] }), {}, "nxdomain"],
    ["NOERROR but no A record", (q) => ({ replies: [replyTo(q)] }), {}, "no_answer"],
    ["an address not expected", healthy(), { expect_addresses: ["203.0.113.81"] }, "wrong_answer"],
    ["no record matches the regex", healthy(), { expect_regex: "^198\\.51\\.100\\." }, "wrong_answer"],
    ["port unreachable", () => ({ error: "connection_refused" }), {}, "connection_refused"],
    ["only junk comes back", () => ({ replies: [Buffer.from("junk"), Buffer.alloc(12)] }), {}, "malformed"],
    ["no AD bit with dnssec", healthy(), { dnssec: true }, "dnssec_unvalidated"],
  ];

  test.each(cases)("%s → fail %s", async (_what, handler, overrides, code) => {
    const { run } = setup(handler);
    const m = await run(overrides);
    expect(m.status).toBe("fail");
    expect(m.error?.code).toBe(code);
    expect(m.error?.message).toContain("203.0.113.53");
  });

  test("an answer slower than slow_ms → warn slow (degraded, not failing); slow_ms 0 never warns", async () => {
    const { run } = setup(healthy(600));
    const m = await run({ wait_ms: 1000 });
    expect(m.status).toBe("warn");
    expect(m.error?.code).toBe("slow");
    expect(m.error?.message).toContain("600 ms");
    expect(m.metrics.query_ms).toBe(600);
    expect((await run({ wait_ms: 1000, slow_ms: 0 })).status).toBe("ok");
  });

  test("NXDOMAIN hijacking: the random name gets an address → fail hijack, the real answer still shown", async () => {
    const { run } = setup((q) => ({
      replies: [
        replyTo(q, {
          answers: aRecords(
            q,
            q.packet.questions[0]?.name === "www.example.net" ? "203.0.113.80" : "203.0.113.66",
          ),
        }),
      ],
    }));
    const m = await run({ expect_addresses: ["203.0.113.80"] });
    expect(m.status).toBe("fail");
    expect(m.error?.code).toBe("hijack");
    expect(m.error?.message).toContain("203.0.113.66");
    const [r] = resolvers(m);
    expect(r?.answers).toEqual(["203.0.113.80"]);
    expect(r?.hijack_probe).toMatchObject({ verdict: "hijacked", answers: ["203.0.113.66"] });
  });

  test("a hijacking resolver that also answers the real name wrongly is reported as hijack", async () => {
    const { run } = setup((q) => ({ replies: [replyTo(q, { answers: aRecords(q, "203.0.113.66") })] }));
    expect((await run({ expect_addresses: ["203.0.113.80"] })).error?.code).toBe("hijack");
  });

  test("expect_rcode NXDOMAIN: a blocked name that resolves is a wrong answer", async () => {
    const { run } = setup((q) => ({ replies: [replyTo(q, { answers: aRecords(q, "203.0.113.66") })] }));
    const m = await run({ expect_rcode: "NXDOMAIN", hijack_check: false });
    expect(m.error?.code).toBe("wrong_answer");
    const ok = setup((q) => ({ replies: [replyTo(q, { rcode: "NXDOMAIN" })] }));
    expect((await ok.run({ expect_rcode: "NXDOMAIN", hijack_check: false })).status).toBe("ok");
  });

  test("one of two resolvers failing fails the check, names that resolver, keeps the other's numbers", async () => {
    const { run } = setup((q) => (q.server === "192.0.2.1" ? { silent: true } : healthy(4)(q)));
    const m = await run({ resolvers: ["192.0.2.1", "203.0.113.53"] });
    expect(m.status).toBe("fail");
    expect(m.error?.code).toBe("timeout");
    expect(m.error?.message).toMatch(/^192\.0\.2\.1: timeout/);
    expect(m.metrics).toMatchObject({ resolvers: 2, resolvers_ok: 1, query_ms: 4 });
  });

  test("a hijack probe that times out is inconclusive and does not fail a good answer", async () => {
    const { run } = setup((q) =>
      q.packet.questions[0]?.name === "www.example.net" ? healthy()(q) : { silent: true },
    );
    const m = await run();
    expect(m.status).toBe("ok");
    expect(resolvers(m)[0]?.hijack_probe?.verdict).toBe("inconclusive");
  });

  test("an abort (the check's timeout) ends the run at once with timeout", async () => {
    const { run } = setup(() => ({ silent: true }));
    const controller = new AbortController();
    const started = Date.now();
    const pending = run({ wait_ms: 10_000 }, "www.example.net", controller.signal);
    setTimeout(() => controller.abort(), 20);
    const m = await pending;
    expect(Date.now() - started).toBeLessThan(1000);
    expect(m.error?.code).toBe("timeout");
    expect(m.error?.message).toContain("aborted");
  });

  test.each([
    [{ resolvers: ["resolver.example"] }, "www.example.net", "invalid_option"],
    [{ expect_regex: "(" }, "www.example.net", "invalid_option"],
    [{ expect_addresses: ["not-an-ip"] }, "www.example.net", "invalid_option"],
    [{}, "a..b", "invalid_target"],
    [{}, `${"x".repeat(64)}.example`, "invalid_target"],
  ] as const)("bad input %j for %s → error %s, nothing sent", async (overrides, target, code) => {
    const { run, network } = setup(healthy());
    const m = await run(overrides as Partial<DnsOptions>, target);
    expect(m.status).toBe("error");
    expect(m.error?.code).toBe(code);
    expect(network.queries).toEqual([]);
  });

  test("dhcp with an unreadable or empty resolv.conf → error no_resolvers", async () => {
    const network = new FakeDnsNetwork(healthy());
    const missing = createDnsCheck({
      transport: network,
      readResolvConf: () => Promise.reject(Object.assign(new Error("ENOENT"), { code: "ENOENT" })),
    });
    const m = await missing.run("www.example.net", { ...DEFAULTS }, ctx, new AbortController().signal);
    expect(m).toMatchObject({ status: "error", error: { code: "no_resolvers" } });
    const { run } = setup(healthy(), "search example.net\n");
    expect((await run({ resolvers: ["dhcp"] })).error?.code).toBe("no_resolvers");
  });
});

describe("dns check: truncation, spoofing, DNSSEC", () => {
  test("a truncated UDP answer is retried over TCP: transport udp+tcp, TCP's answer and time", async () => {
    const { run, network } = setup((q) =>
      q.protocol === "udp"
        ? {
            replies: [replyTo(q, { flags: dnsPacket.TRUNCATED_RESPONSE | dnsPacket.RECURSION_AVAILABLE })],
            delayMs: 1,
          }
        : { replies: [replyTo(q, { answers: aRecords(q, "203.0.113.80") })], delayMs: 5, connectMs: 2 },
    );
    const m = await run({ hijack_check: false });
    expect(m.status).toBe("ok");
    expect(resolvers(m)[0]).toMatchObject({
      transport: "udp+tcp",
      truncated: true,
      query_ms: 5,
      answers: ["203.0.113.80"],
    });
    expect(network.queries.map((q) => q.protocol)).toEqual(["udp", "tcp"]);
  });

  test("a truncated answer cut mid-record still goes to TCP (only its header is needed)", async () => {
    const { run } = setup((q) => {
      if (q.protocol === "tcp") return { replies: [replyTo(q, { answers: aRecords(q, "203.0.113.80") })] };
      const full = replyTo(q, { answers: aRecords(q, "203.0.113.80"), flags: dnsPacket.TRUNCATED_RESPONSE });
      return { replies: [full.subarray(0, full.length - 3)] };
    });
    expect((await run({ hijack_check: false })).status).toBe("ok");
  });

  test("truncated with tcp_fallback off → fail truncated; fallback that fails → fail truncated", async () => {
    const tc = (q: ReceivedQuery) => ({ replies: [replyTo(q, { flags: dnsPacket.TRUNCATED_RESPONSE })] });
    const off = setup(tc);
    expect((await off.run({ tcp_fallback: false, hijack_check: false })).error?.code).toBe("truncated");
    const blocked = setup((q) => (q.protocol === "udp" ? tc(q) : { error: "connection_refused" }));
    const m = await blocked.run({ hijack_check: false });
    expect(m.error?.code).toBe("truncated");
    expect(m.error?.message).toContain("TCP fallback failed");
  });

  test("transport tcp asks over TCP only and reports the connect time apart from the query time", async () => {
    const { run, network } = setup((q) => ({
      replies: [replyTo(q, { answers: aRecords(q, "203.0.113.80") })],
      delayMs: 3,
      connectMs: 1.5,
    }));
    const m = await run({ transport: "tcp", hijack_check: false });
    expect(network.queries.map((q) => q.protocol)).toEqual(["tcp"]);
    expect(resolvers(m)[0]).toMatchObject({ transport: "tcp", query_ms: 3, tcp_connect_ms: 1.5 });
  });

  test("replies with another id, another question or junk are ignored and counted; the real one wins", async () => {
    const { run } = setup((q) => ({
      replies: [
        Buffer.from([1, 2, 3]),
        replyTo(q, { id: (q.packet.id + 1) & 0xffff, answers: aRecords(q, "203.0.113.66") }),
        replyTo(q, { questionName: "evil.example", answers: aRecords(q, "203.0.113.66") }),
        replyTo(q, { answers: aRecords(q, "203.0.113.80") }),
      ],
    }));
    const m = await run({ hijack_check: false });
    expect(m.status).toBe("ok");
    expect(resolvers(m)[0]).toMatchObject({
      answers: ["203.0.113.80"],
      ignored_replies: { malformed: 1, mismatched: 2 },
    });
  });

  test("the question name is matched case-insensitively (0x20 mixing by resolvers)", async () => {
    const { run } = setup((q) => ({
      replies: [replyTo(q, { questionName: "WWW.Example.NET", answers: aRecords(q, "203.0.113.80") })],
    }));
    expect((await run({ hijack_check: false })).status).toBe("ok");
  });

  test("dnssec: the query sets DO and AD; an answer with AD passes", async () => {
    const { run, network } = setup((q) => ({
      replies: [
        replyTo(q, {
          answers: aRecords(q, "203.0.113.80"),
          flags: dnsPacket.RECURSION_AVAILABLE | dnsPacket.AUTHENTIC_DATA,
        }),
      ],
    }));
    const m = await run({ dnssec: true, edns: false, hijack_check: false });
    expect(m.status).toBe("ok");
    expect(resolvers(m)[0]?.flags?.ad).toBe(true);
    const q = network.queries[0]?.packet;
    expect(q?.flag_ad).toBe(true);
    expect(q?.additionals[0]).toMatchObject({ type: "OPT", flag_do: true });
  });

  test("AAAA answers compare with expect_addresses in canonical form", async () => {
    const { run } = setup((q) => ({ replies: [replyTo(q, { answers: aRecords(q, "2001:db8:3::80") })] }));
    const m = await run({
      type: "AAAA",
      expect_addresses: ["2001:0db8:0003:0000::0080"],
      hijack_check: false,
    });
    expect(m.status).toBe("ok");
  });
});

describe("dns helpers", () => {
  test("resolv.conf nameservers: comments, options and scope ids", () => {
    expect(
      nameserversOf(
        "# x\nnameserver 192.0.2.1\n nameserver fe80::1%eth0\nnameserver bogus\noptions rotate\n",
      ),
    ).toEqual(["192.0.2.1", "fe80::1"]);
  });

  test.each([
    ["192.0.2.53", { address: "192.0.2.53", port: 53, family: 4 }],
    ["192.0.2.53:5353", { address: "192.0.2.53", port: 5353, family: 4 }],
    ["2001:db8::53", { address: "2001:db8::53", port: 53, family: 6 }],
    ["[2001:db8::53]:853", { address: "2001:db8::53", port: 853, family: 6 }],
    ["192.0.2.53:0", undefined],
    ["dns.example:53", undefined],
  ])("resolver %s", (spec, server) => {
    expect(parseResolver(spec)).toEqual(server);
  });
});

function refusedWithoutQuestion(q: ReceivedQuery): Buffer {
  return dnsPacket.encode({ id: q.packet.id, type: "response", flags: 5, questions: [] });
}
