// In-memory double of the DNS transport (docs/architecture.md, "Conventions"): unit tests script each resolver's answers
// (or silence, or errors, or junk first) and no packet reaches a real socket. Query times are
// exact: a reply scheduled `delayMs` after the query is stamped sentAt + delayMs.

import * as dnsPacket from "dns-packet";
import type { Answer, DecodedPacket, Packet } from "dns-packet";
import type {
  DnsExchangeRequest,
  DnsExchangeResult,
  DnsTransport,
} from "../../services/probe/src/net/dns-transport.ts";

/** A query as the fake resolver received it. */
export interface ReceivedQuery {
  server: string;
  port: number;
  protocol: "udp" | "tcp";
  packet: DecodedPacket;
}

/** What a fake resolver does with one query. */
export type FakeDnsBehaviour =
  | {
      /** Replies delivered in order (junk first, then the real one, say); each goes through `accept`. */
      replies: Buffer[];
      delayMs?: number;
      connectMs?: number;
    }
  | { silent: true }
  | { error: Extract<DnsExchangeResult, { kind: "error" }>["code"]; message?: string };

/** Decides a behaviour per query: `(query) => behaviour`. */
export type FakeDnsHandler = (query: ReceivedQuery) => FakeDnsBehaviour;

/** A scripted set of resolvers behind the DnsTransport interface. */
export class FakeDnsNetwork implements DnsTransport {
  /** Every query received, in order. */
  readonly queries: ReceivedQuery[] = [];
  handler: FakeDnsHandler;

  constructor(handler: FakeDnsHandler) {
    this.handler = handler;
  }

  exchange(req: DnsExchangeRequest): Promise<DnsExchangeResult> {
    if (req.signal.aborted) return Promise.resolve({ kind: "aborted" });
    const query: ReceivedQuery = {
      server: req.server.address,
      port: req.server.port,
      protocol: req.protocol,
      packet: dnsPacket.decode(req.query),
    };
    this.queries.push(query);
    const behaviour = this.handler(query);
    if ("error" in behaviour)
      return Promise.resolve({
        kind: "error",
        code: behaviour.error,
        message: behaviour.message ?? behaviour.error,
      });
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish({ kind: "timeout" }), req.waitMs);
      const onAbort = (): void => finish({ kind: "aborted" });
      req.signal.addEventListener("abort", onAbort, { once: true });
      let done = false;
      function finish(r: DnsExchangeResult): void {
        if (done) return;
        done = true;
        clearTimeout(timer);
        req.signal.removeEventListener("abort", onAbort);
        resolve(r);
      }
      if ("silent" in behaviour) return;
      const delayMs = behaviour.delayMs ?? 1;
      if (delayMs >= req.waitMs) return;
      setTimeout(() => {
        const sentAt = process.hrtime.bigint();
        for (const reply of behaviour.replies) {
          if (req.accept(reply)) {
            finish({
              kind: "reply",
              reply,
              sentAt,
              receivedAt: sentAt + BigInt(Math.round(delayMs * 1e6)),
              ...(behaviour.connectMs === undefined ? {} : { connectMs: behaviour.connectMs }),
            });
            return;
          }
        }
      }, 0);
    });
  }
}

/** Builds a response to `query` with the given RCODE, answers and flags (as a resolver would). */
export function replyTo(
  query: ReceivedQuery,
  opts: {
    rcode?: string;
    answers?: Answer[];
    authorities?: Answer[];
    flags?: number;
    id?: number;
    questionName?: string;
    edns?: boolean;
  } = {},
): Buffer {
  const q = query.packet.questions[0];
  const packet: Packet = {
    id: opts.id ?? query.packet.id,
    type: "response",
    flags:
      (opts.flags ?? dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE) |
      rcodeBits(opts.rcode ?? "NOERROR"),
    questions: q ? [{ ...q, name: opts.questionName ?? q.name }] : [],
    answers: opts.answers ?? [],
    authorities: opts.authorities ?? [],
    additionals:
      opts.edns === false ? [] : [{ name: ".", type: "OPT", udpPayloadSize: 1232, flags: 0, options: [] }],
  };
  return dnsPacket.encode(packet);
}

/** A records for a query's name. */
export function aRecords(query: ReceivedQuery, ...addresses: string[]): Answer[] {
  const name = query.packet.questions[0]?.name ?? ".";
  return addresses.map((data) => ({ name, type: addresses[0]?.includes(":") ? "AAAA" : "A", ttl: 60, data }));
}

const RCODES: Readonly<Record<string, number>> = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
};

function rcodeBits(rcode: string): number {
  return RCODES[rcode] ?? 0;
}
