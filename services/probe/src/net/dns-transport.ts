// DNS over UDP and TCP (RFC 1035 §4.2, RFC 7766) for the dns check: one exchange = one query and
// the first reply the caller accepts. Timestamps are taken right after the query is handed to the
// kernel and first thing in the receive callback, so the query time is as close to the wire as
// userspace gets (scripts/bench/dns-accuracy.ts compares it with pcap timestamps).

import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { Socket as TcpSocket } from "node:net";
import { MAX_MESSAGE_BYTES } from "./dns-message.ts";
import { connectDatagram, socketFailure, type SocketFailureCode } from "./socket-failure.ts";

/** A DNS server to ask. */
export interface DnsServer {
  address: string;
  port: number;
  family: 4 | 6;
}

/** One exchange: `accept` says whether a reply answers the query (id, question); others are ignored. */
export interface DnsExchangeRequest {
  server: DnsServer;
  protocol: "udp" | "tcp";
  query: Buffer;
  waitMs: number;
  signal: AbortSignal;
  accept: (reply: Buffer) => boolean;
}

/** How an exchange ended; failures are data. */
export type DnsExchangeResult =
  | {
      kind: "reply";
      reply: Buffer;
      /** process.hrtime.bigint() right before the query was sent, and when the reply arrived. */
      sentAt: bigint;
      receivedAt: bigint;
      /** TCP only: time to establish the connection, not part of the query time. */
      connectMs?: number;
    }
  | { kind: "timeout" }
  | { kind: "aborted" }
  | { kind: "error"; code: DnsTransportErrorCode; message: string };

/** Transport failures, as stable codes. */
export type DnsTransportErrorCode = SocketFailureCode;

/** Sends DNS queries; the real one uses sockets, unit tests a double. */
export interface DnsTransport {
  exchange(request: DnsExchangeRequest): Promise<DnsExchangeResult>;
}

/** The real transport: a fresh socket (so a fresh random source port) per exchange. */
export const socketDnsTransport: DnsTransport = {
  exchange: (request) => (request.protocol === "udp" ? exchangeUdp(request) : exchangeTcp(request)),
};

function transportError(err: unknown, server: DnsServer): DnsExchangeResult {
  const peer =
    server.family === 6 ? `[${server.address}]:${server.port}` : `${server.address}:${server.port}`;
  return { kind: "error", ...socketFailure(err, peer) };
}

/** Settles once: the first of reply, timeout, abort or error wins; cleanup runs exactly once. */
function settleOnce(
  signal: AbortSignal,
  waitMs: number,
  cleanup: () => void,
): { done: Promise<DnsExchangeResult>; settle: (r: DnsExchangeResult) => void; settled: () => boolean } {
  let resolveDone: (r: DnsExchangeResult) => void = () => {};
  const done = new Promise<DnsExchangeResult>((resolve) => (resolveDone = resolve));
  let finished = false;
  const onAbort = (): void => settle({ kind: "aborted" });
  const timer = setTimeout(() => settle({ kind: "timeout" }), waitMs);
  signal.addEventListener("abort", onAbort, { once: true });
  function settle(r: DnsExchangeResult): void {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    signal.removeEventListener("abort", onAbort);
    cleanup();
    resolveDone(r);
  }
  return { done, settle, settled: () => finished };
}

function exchangeUdp(req: DnsExchangeRequest): Promise<DnsExchangeResult> {
  if (req.signal.aborted) return Promise.resolve({ kind: "aborted" });
  const socket: UdpSocket = createSocket({ type: req.server.family === 6 ? "udp6" : "udp4" });
  const { done, settle, settled } = settleOnce(req.signal, req.waitMs, () => {
    try {
      socket.close();
    } catch {
      // already closed
    }
  });
  let sentAt = 0n;
  socket.on("error", (err) => settle(transportError(err, req.server)));
  socket.on("message", (msg) => {
    const receivedAt = process.hrtime.bigint();
    if (settled() || sentAt === 0n) return;
    if (req.accept(msg)) settle({ kind: "reply", reply: msg, sentAt, receivedAt });
  });
  // A connected socket: the kernel drops datagrams from any other address/port (off-path spoofing),
  // an ICMP port unreachable surfaces as ECONNREFUSED, and send() skips the per-datagram lookup.
  connectDatagram(socket, req.server.port, req.server.address, (error) => {
    if (settled()) return;
    if (error) return settle(transportError(error, req.server));
    socket.send(req.query, (err) => {
      if (err) settle(transportError(err, req.server));
    });
    // Stamped when send() returns, not before: on a connected socket Node hands the datagram to
    // libuv synchronously and libuv calls sendmsg(2) at once when its queue is empty, so the packet
    // is on the wire by now. Stamping before send() added its ~0.1 ms of JS to every query time
    // (scripts/bench/dns-accuracy.ts).
    sentAt = process.hrtime.bigint();
  });
  return done;
}

function exchangeTcp(req: DnsExchangeRequest): Promise<DnsExchangeResult> {
  if (req.signal.aborted) return Promise.resolve({ kind: "aborted" });
  const socket = new TcpSocket();
  const { done, settle, settled } = settleOnce(req.signal, req.waitMs, () => socket.destroy());
  const startedAt = process.hrtime.bigint();
  let sentAt = 0n;
  let connectMs: number | undefined;
  let pending: Buffer = Buffer.alloc(0);
  socket.setNoDelay(true);
  socket.on("error", (err) => settle(transportError(err, req.server)));
  socket.on("close", () => {
    if (!settled())
      settle({
        kind: "error",
        code: "connection_closed",
        message: "server closed the connection without an answer",
      });
  });
  socket.on("data", (chunk: Buffer) => {
    const receivedAt = process.hrtime.bigint();
    if (settled()) return;
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    // RFC 1035 §4.2.2: each message is preceded by its 16-bit length.
    while (pending.length >= 2) {
      const length = pending.readUInt16BE(0);
      if (pending.length < 2 + length) break;
      const message = pending.subarray(2, 2 + length);
      pending = pending.subarray(2 + length);
      if (req.accept(message)) {
        settle({
          kind: "reply",
          reply: Buffer.from(message),
          sentAt,
          receivedAt,
          ...(connectMs === undefined ? {} : { connectMs }),
        });
        return;
      }
    }
    if (pending.length > MAX_MESSAGE_BYTES + 2)
      settle({ kind: "error", code: "socket_error", message: "oversized TCP frame" });
  });
  socket.connect({ host: req.server.address, port: req.server.port, family: req.server.family }, () => {
    if (settled()) return;
    const prefix = Buffer.alloc(2);
    prefix.writeUInt16BE(req.query.length);
    const connectedAt = process.hrtime.bigint();
    connectMs = Number(connectedAt - startedAt) / 1e6;
    socket.write(Buffer.concat([prefix, req.query]));
    // As for UDP: libuv writes at once when nothing is queued, so the query has left when write() returns.
    sentAt = process.hrtime.bigint();
  });
  return done;
}
