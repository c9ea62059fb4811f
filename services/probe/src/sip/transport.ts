// SIP transports (RFC 3261 §18): one connected UDP socket, or one TCP / TLS connection, per check
// run. The interface is small so unit tests can put an in-memory SIP server behind it.

import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { isIPv6 } from "node:net";
import { connect as netConnect, type Socket as TcpSocket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { connectDatagram, socketFailure, type SocketFailureCode } from "../net/socket-failure.ts";
import { SipStreamFramer } from "./message.ts";
import { errorMessage } from "../checks/common/failure.ts";

/** Transport of the SIP signalling. */
export type SipTransportName = "udp" | "tcp" | "tls";

/** Where to connect. */
export interface SipConnectOptions {
  transport: SipTransportName;
  /** An IP address (resolution happens before). */
  address: string;
  port: number;
  /** Local port to bind (0: any). */
  localPort: number;
  /** TLS: server name for SNI and certificate check, and whether to verify the certificate. */
  servername?: string;
  verifyCertificate?: boolean;
}

/** A failure to connect or a failure of an open connection, as check error codes. */
export interface SipTransportFailure {
  code: SocketFailureCode | "tls_failed";
  message: string;
}

/** Callbacks from an open connection. */
export interface SipConnectionEvents {
  /** One complete message (a datagram, or a frame cut from the stream). */
  message(data: Buffer): void;
  /** The connection failed (ICMP port unreachable, reset, TLS alert…); no more messages follow. */
  failed(failure: SipTransportFailure): void;
}

/** An open signalling connection. */
export interface SipConnection {
  readonly transport: SipTransportName;
  /** The probe's own address and port on this connection (what goes into Via and Contact). */
  readonly local: { address: string; port: number };
  /** Whether the transport is reliable (TCP/TLS: no retransmissions, RFC 3261 §17.1.1.2). */
  readonly reliable: boolean;
  send(data: Buffer): void;
  close(): void;
}

/** Opens a connection; resolves with a failure instead of throwing. */
export type ConnectSip = (
  options: SipConnectOptions,
  events: SipConnectionEvents,
  signal: AbortSignal,
) => Promise<SipConnection | SipTransportFailure>;

/**
 * Maps a socket error to a check code. A refused port is `unreachable` here: for SIP over UDP it is
 * an ICMP port unreachable, i.e. no SIP server at that address.
 */
export function failureOf(error: unknown, peer: string): SipTransportFailure {
  const code = (error as { code?: unknown }).code;
  const message = errorMessage(error);
  if (code === "ECONNREFUSED") return { code: "unreachable", message };
  if (
    typeof code === "string" &&
    (code.startsWith("ERR_TLS") || code.startsWith("ERR_SSL") || code.includes("CERT"))
  )
    return { code: "tls_failed", message };
  return socketFailure(error, peer);
}

/** The real transports over node:dgram, node:net and node:tls. */
export const connectSip: ConnectSip = (options, events, signal) =>
  options.transport === "udp" ? connectUdp(options, events, signal) : connectStream(options, events, signal);

function connectUdp(
  options: SipConnectOptions,
  events: SipConnectionEvents,
  signal: AbortSignal,
): Promise<SipConnection | SipTransportFailure> {
  return new Promise((resolve) => {
    const socket: UdpSocket = createSocket({ type: isIPv6(options.address) ? "udp6" : "udp4" });
    let open = false;
    let settled = false;
    const settle = (value: SipConnection | SipTransportFailure): void => {
      if (settled) return;
      settled = true;
      signal.removeEventListener("abort", onAbort);
      if ("code" in value) socket.close();
      resolve(value);
    };
    const onAbort = (): void => settle({ code: "timeout", message: "aborted while opening the UDP socket" });
    signal.addEventListener("abort", onAbort, { once: true });
    const peer = isIPv6(options.address)
      ? `[${options.address}]:${options.port}`
      : `${options.address}:${options.port}`;
    socket.on("error", (error) => {
      if (!open) settle(failureOf(error, peer));
      else events.failed(failureOf(error, peer));
    });
    socket.on("message", (data) => {
      if (open) events.message(data);
    });
    socket.bind(options.localPort, () => {
      // connect(): the kernel picks the source address, filters other senders and reports ICMP port
      // unreachable back to us as ECONNREFUSED on the next operation.
      connectDatagram(socket, options.port, options.address, (error) => {
        if (settled) return;
        if (error) return settle(failureOf(error, peer));
        open = true;
        const local = socket.address();
        settle({
          transport: "udp",
          local: { address: local.address, port: local.port },
          reliable: false,
          send: (data) => {
            // A retransmission timer may fire after close(); send() on a closed socket throws.
            if (!open) return;
            socket.send(data, (error) => error && events.failed(failureOf(error, peer)));
          },
          close: () => {
            open = false;
            try {
              socket.close();
            } catch {
              // already closed
            }
          },
        });
      });
    });
  });
}

function connectStream(
  options: SipConnectOptions,
  events: SipConnectionEvents,
  signal: AbortSignal,
): Promise<SipConnection | SipTransportFailure> {
  return new Promise((resolve) => {
    const tls = options.transport === "tls";
    const socket: TcpSocket = tls
      ? tlsConnect({
          host: options.address,
          port: options.port,
          ...(options.localPort ? { localPort: options.localPort } : {}),
          // SNI only for names, never for IP literals (RFC 6066 §3).
          ...(options.servername && !/^[\d.:]+$/.test(options.servername)
            ? { servername: options.servername }
            : {}),
          rejectUnauthorized: options.verifyCertificate ?? true,
        })
      : netConnect({
          host: options.address,
          port: options.port,
          ...(options.localPort ? { localPort: options.localPort } : {}),
        });
    const framer = new SipStreamFramer();
    let open = false;
    let settled = false;
    const settle = (value: SipConnection | SipTransportFailure): void => {
      if (settled) return;
      settled = true;
      signal.removeEventListener("abort", onAbort);
      if ("code" in value) socket.destroy();
      resolve(value);
    };
    const onAbort = (): void =>
      settle({
        code: "timeout",
        message: `no ${options.transport.toUpperCase()} connection before the timeout`,
      });
    signal.addEventListener("abort", onAbort, { once: true });
    const peer = isIPv6(options.address)
      ? `[${options.address}]:${options.port}`
      : `${options.address}:${options.port}`;
    socket.on("error", (error) => {
      if (!open) settle(failureOf(error, peer));
      else events.failed(failureOf(error, peer));
    });
    socket.on("close", () => {
      if (open) events.failed({ code: "socket_error", message: "the server closed the connection" });
      open = false;
    });
    socket.on("data", (chunk: Buffer) => {
      if (!open) return;
      const framed = framer.push(chunk);
      if ("error" in framed) {
        open = false;
        socket.destroy();
        events.failed({ code: "socket_error", message: `unframeable SIP stream: ${framed.error}` });
        return;
      }
      for (const m of framed.messages) events.message(m);
    });
    socket.once(tls ? "secureConnect" : "connect", () => {
      open = true;
      settle({
        transport: options.transport,
        local: { address: socket.localAddress ?? "", port: socket.localPort ?? 0 },
        reliable: true,
        send: (data) => {
          if (open) socket.write(data);
        },
        close: () => {
          open = false;
          socket.destroy();
        },
      });
    });
  });
}
