// Fuzz of the DNS response parser and of the dns check's reply handling: malformed answers from a
// resolver (or an attacker racing it) must be counted and ignored, never thrown out of the check.
import * as dnsPacket from "dns-packet";
import type { Answer } from "dns-packet";
import { Value } from "@sinclair/typebox/value";
import { describe, expect, test } from "vitest";
import { createDnsCheck, dns, type DnsOptions } from "../../../services/probe/src/checks/dns.ts";
import { silentLogger } from "../../../services/contract/src/log.ts";
import { parseResponse, rdataText } from "../../../services/probe/src/net/dns-message.ts";
import type {
  DnsExchangeRequest,
  DnsExchangeResult,
  DnsTransport,
} from "../../../services/probe/src/net/dns-transport.ts";
import { prng } from "../../fixtures/prng.ts";

const SEED = 0x5eed_d115;
const CASES = 100_000;
/** Through the whole check (slower per case: each accepted mutation ends a run). */
const CHECK_CASES = 20_000;

const RECORDS: Answer[] = [
  { name: "www.example.net", type: "A", ttl: 60, data: "203.0.113.80" },
  { name: "www.example.net", type: "AAAA", ttl: 60, data: "2001:db8:3::80" },
  { name: "alias.example.net", type: "CNAME", ttl: 60, data: "www.example.net" },
  { name: "example.net", type: "MX", ttl: 60, data: { preference: 10, exchange: "mail.example.net" } },
  { name: "example.net", type: "TXT", ttl: 60, data: ["v=spf1 -all", "hello"] },
  {
    name: "_sip._udp.example.net",
    type: "SRV",
    ttl: 60,
    data: { priority: 1, weight: 2, port: 5060, target: "pbx.example.net" },
  },
  { name: "example.net", type: "CAA", ttl: 60, data: { flags: 0, tag: "issue", value: "ca.example" } },
];

/** Valid responses the mutations start from: every record type, compression, SOA, OPT. */
function seeds(id: number): Buffer[] {
  const base = {
    id,
    type: "response" as const,
    flags: dnsPacket.RECURSION_AVAILABLE | dnsPacket.RECURSION_DESIRED,
  };
  const question = [{ name: "www.example.net", type: "A", class: "IN" }];
  const opt: Answer = {
    name: ".",
    type: "OPT",
    udpPayloadSize: 1232,
    flags: dnsPacket.DNSSEC_OK,
    options: [],
  };
  const soa: Answer = {
    name: "example.net",
    type: "SOA",
    ttl: 60,
    data: {
      mname: "ns.example.net",
      rname: "hostmaster.example.net",
      serial: 1,
      refresh: 2,
      retry: 3,
      expire: 4,
      minimum: 5,
    },
  };
  return [
    dnsPacket.encode({ ...base, questions: question, answers: RECORDS, additionals: [opt] }),
    dnsPacket.encode({
      ...base,
      flags: base.flags | 3,
      questions: question,
      authorities: [soa],
      additionals: [opt],
    }),
    dnsPacket.encode({ ...base, questions: question, answers: [RECORDS[0]!] }),
  ];
}

/** One malformed (or merely odd) response derived from a seed. */
function mutate(random: () => number, seed: Buffer): Buffer {
  const pick = (n: number) => Math.floor(random() * n);
  const buf = Buffer.from(seed);
  switch (pick(7)) {
    case 0: // flip bits
      for (let i = 1 + pick(8); i > 0; i--) buf[pick(buf.length)]! ^= 1 << pick(8);
      return buf;
    case 1: // cut short anywhere
      return buf.subarray(0, pick(buf.length));
    case 2: // absurd section counts
      buf.writeUInt16BE(pick(0x10000), 4 + 2 * pick(4));
      return buf;
    case 3: // compression pointers forward, to themselves, past the end
      {
        const at = 12 + pick(Math.max(1, buf.length - 13));
        buf.writeUInt16BE(0xc000 | pick(0x4000), Math.min(at, buf.length - 2));
      }
      return buf;
    case 4: // random garbage of any length, header included
      return Buffer.from(Array.from({ length: pick(600) }, () => pick(256)));
    case 5: // a record length (RDLENGTH / label length) set to nonsense
      buf[12 + pick(Math.max(1, buf.length - 12))] = [0, 63, 64, 0xbf, 0xff][pick(5)]!;
      return buf;
    default: // good header, random body
      return Buffer.concat([
        buf.subarray(0, 12),
        Buffer.from(Array.from({ length: pick(300) }, () => pick(256))),
      ]);
  }
}

describe("DNS response fuzz", () => {
  test(`parseResponse survives ${CASES} malformed responses and always answers ok or a reason`, () => {
    const random = prng(SEED);
    const bases = seeds(0x1234);
    let parsed = 0;
    let rejected = 0;
    for (let i = 0; i < CASES; i++) {
      const input = mutate(random, bases[i % bases.length]!);
      let result: ReturnType<typeof parseResponse>;
      try {
        result = parseResponse(input);
      } catch (err) {
        throw new Error(`case ${i} (seed ${SEED}) threw: ${String(err)}; input ${input.toString("hex")}`, {
          cause: err,
        });
      }
      if (result.ok) {
        parsed++;
        // Whatever came out is plain data a check can print (plain ifs: expect() per case is slow).
        const printable =
          typeof result.response.rcode === "string" &&
          result.response.answers.every((r) => typeof r.data === "string");
        if (!printable) throw new Error(`case ${i}: non-text record data from ${input.toString("hex")}`);
      } else {
        rejected++;
        if (result.reason === "") throw new Error(`case ${i}: rejected without a reason`);
      }
    }
    expect(parsed + rejected).toBe(CASES);
    // The mutations must actually exercise both paths.
    expect(parsed).toBeGreaterThan(CASES / 20);
    expect(rejected).toBeGreaterThan(CASES / 4);
  }, 60_000);

  test("rdataText never throws on odd record data", () => {
    const odd: unknown[] = [
      null,
      undefined,
      5,
      Buffer.from([1, 2]),
      [Buffer.from("a"), 7],
      { a: 1n },
      { preference: "x" },
    ];
    for (const type of ["A", "AAAA", "MX", "SRV", "SOA", "CAA", "TXT", "TYPE65"])
      for (const data of odd) expect(typeof rdataText(type, data)).toBe("string");
  });

  test(`the dns check survives ${CHECK_CASES} malformed replies racing the real answer`, async () => {
    const random = prng(SEED + 1);
    let delivered = 0;
    let runs = 0;
    // Every query gets a burst of mutated copies of the correct reply (same id and question, so
    // they reach every step of the matching), then the correct reply.
    const transport: DnsTransport = {
      exchange(req: DnsExchangeRequest): Promise<DnsExchangeResult> {
        const id = req.query.readUInt16BE(0);
        const bases = seeds(id);
        const sentAt = process.hrtime.bigint();
        for (let i = 0; i < 1000; i++) {
          const reply = mutate(random, bases[i % bases.length]!);
          delivered++;
          if (req.accept(reply))
            return Promise.resolve({ kind: "reply", reply, sentAt, receivedAt: sentAt + 1000n });
        }
        const good = bases[2]!;
        if (req.accept(good))
          return Promise.resolve({ kind: "reply", reply: good, sentAt, receivedAt: sentAt + 1000n });
        return Promise.resolve({ kind: "timeout" });
      },
    };
    const check = createDnsCheck({ transport, readResolvConf: () => Promise.resolve("") });
    const opts: DnsOptions = {
      ...(Value.Default(dns.options, {}) as DnsOptions),
      resolvers: ["192.0.2.53"],
      hijack_check: false,
    };
    const statuses = new Set<string>();
    while (delivered < CHECK_CASES) {
      runs++;
      const m = await check.run(
        "www.example.net",
        opts,
        { log: silentLogger() },
        new AbortController().signal,
      );
      if (m.status !== "ok" && m.status !== "fail") throw new Error(`run ${runs}: ${JSON.stringify(m)}`);
      statuses.add(m.error?.code ?? m.status);
    }
    expect(delivered).toBeGreaterThanOrEqual(CHECK_CASES);
    expect(runs).toBeGreaterThan(1);
    // The real answer, or a mutation that still parsed and matched the question, settled each run.
    expect(statuses.has("ok") || statuses.has("wrong_answer") || statuses.has("no_answer")).toBe(true);
  }, 60_000);
});
