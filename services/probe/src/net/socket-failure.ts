// Socket failures as check results: one errno → code/message table for every check that opens a
// socket (node:dgram, node:net, node:tls, raw-socket), so "the probe lost its address" reads the
// same in every result (the README's "Checks" section lists the codes). The messages name the likely cause on a
// probe in the field, where ENETUNREACH usually means dhcpcd dropped the lease after a pulled cable.

import type { Socket as UdpSocket } from "node:dgram";

/** Stable codes of a failed socket operation. */
export type SocketFailureCode =
  | "no_route"
  | "unreachable"
  | "no_address"
  | "interface_missing"
  | "interface_down"
  | "connection_refused"
  | "connection_closed"
  | "timeout"
  | "no_permission"
  | "socket_error";

/** A socket failure as data: a stable code and a message a technician understands. */
export interface SocketFailure {
  code: SocketFailureCode;
  message: string;
}

// raw-socket throws Error(strerror(errno)) without a `code`: the text is all there is to go on.
const STRERROR: ReadonlyArray<readonly [RegExp, string]> = [
  [/network is unreachable/i, "ENETUNREACH"],
  [/no route to host/i, "EHOSTUNREACH"],
  [/cannot assign requested address/i, "EADDRNOTAVAIL"],
  [/no such device or address/i, "ENXIO"],
  [/no such device/i, "ENODEV"],
  [/network is down/i, "ENETDOWN"],
  [/connection refused/i, "ECONNREFUSED"],
  [/operation not permitted/i, "EPERM"],
  [/permission denied/i, "EACCES"],
  [/message too long/i, "EMSGSIZE"],
];

/** The errno name of an error: Node's `code`, else recognised from raw-socket's strerror text. */
export function errnoOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  if (typeof code === "string") return code;
  const text = error instanceof Error ? error.message : String(error);
  return STRERROR.find(([pattern]) => pattern.test(text))?.[1];
}

/**
 * Maps a socket error to a code and a message; `peer` (an address, `host:port`) names what the
 * probe was talking to. The system's own text follows in parentheses for the record.
 */
export function socketFailure(error: unknown, peer: string): SocketFailure {
  const text = error instanceof Error ? error.message : String(error);
  const errno = errnoOf(error);
  const why = (code: SocketFailureCode, message: string): SocketFailure => ({
    code,
    message: `${message} (${text})`,
  });
  switch (errno) {
    case "ENETUNREACH":
      return why("no_route", `no route to ${peer}: the probe has no address or default route for it`);
    case "EHOSTUNREACH":
      return why(
        "unreachable",
        `${peer} is unreachable: nothing answers for it on the local link, or a router reported it unreachable`,
      );
    case "EADDRNOTAVAIL":
      return why("no_address", `cannot talk to ${peer}: the probe's source address is gone`);
    case "ENODEV":
    case "ENXIO":
      return why("interface_missing", `cannot talk to ${peer}: the network interface is gone`);
    case "ENETDOWN":
      return why("interface_down", `cannot talk to ${peer}: the network interface is down`);
    case "ECONNREFUSED":
      return why("connection_refused", `${peer} refused the connection: nothing listens on that port`);
    case "ECONNRESET":
    case "EPIPE":
      return why("connection_closed", `${peer} closed the connection`);
    case "ETIMEDOUT":
      return why("timeout", `${peer} did not answer in time`);
    case "EPERM":
    case "EACCES":
      return why(
        "no_permission",
        `not allowed to talk to ${peer}: a local firewall rule or a missing capability (CAP_NET_RAW)`,
      );
    case undefined:
    default:
      return { code: "socket_error", message: `socket error with ${peer}: ${text}` };
  }
}

/**
 * Connects a UDP socket and reports the outcome. Node's dgram `connect` hands a failure (no route,
 * no address) to the callback as its argument instead of emitting `error` (lib/dgram.js
 * doConnect); a callback that ignores it and sends anyway makes `send` throw ERR_SOCKET_BAD_PORT
 * from a nextTick, which no handler of the caller can catch and which ends the process.
 */
export function connectDatagram(
  socket: UdpSocket,
  port: number,
  address: string,
  done: (error: Error | undefined) => void,
): void {
  try {
    // The typings declare the callback without its error argument; Node passes it.
    socket.connect(port, address, done as () => void);
  } catch (error) {
    // Already connected, closed, or an invalid port: synchronous throws of the same call.
    queueMicrotask(() => done(error instanceof Error ? error : new Error(String(error))));
  }
}
