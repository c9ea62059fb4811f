// Typings for raw-socket 1.8 (nospaceships/node-raw-socket), which ships none. Only what netprobe
// uses is declared; names and semantics follow its index.js and src/raw.cc.
declare module "raw-socket" {
  import type { EventEmitter } from "node:events";

  /** `addressFamily` values for createSocket. */
  export const AddressFamily: { readonly IPv4: 1; readonly IPv6: 2 };
  /** `protocol` values for createSocket (IP protocol numbers). */
  export const Protocol: {
    readonly None: 0;
    readonly ICMP: 1;
    readonly TCP: 6;
    readonly UDP: 17;
    readonly ICMPv6: 58;
  };
  /** setsockopt levels the addon exports (others may be passed as plain numbers). */
  export const SocketLevel: {
    readonly SOL_SOCKET: number;
    readonly IPPROTO_IP: number;
    readonly IPPROTO_IPV6: number;
  };
  /** setsockopt option names the addon exports. */
  export const SocketOption: Readonly<Record<string, number>>;

  /** createSocket options; bufferSize is the single receive buffer (longer datagrams are truncated). */
  export interface SocketOptions {
    protocol?: number;
    addressFamily?: number;
    bufferSize?: number;
  }

  /**
   * A raw socket. The fd is opened in the constructor (which throws `Error(strerror(errno))`, e.g.
   * "Operation not permitted", without an errno `code`); a libuv poll handle keeps the event loop
   * alive until close(). Events: `message` (buffer, source) where buffer is a view of the socket's
   * one receive buffer, valid only during the call; `error` (Error), after which the socket closes
   * itself (receive errors are emitted without closing); `close`.
   */
  export class Socket extends EventEmitter {
    recvPaused: boolean;
    sendPaused: boolean;
    /**
     * Queues a datagram; it is sent from the poll callback once the socket is writable.
     * `beforeCallback` runs synchronously right before sendto(2), `afterCallback` right after it
     * (or immediately with an error for an invalid address or length). Sending on a closed socket
     * silently re-opens the fd inside the addon: never do it.
     */
    send(
      buffer: Buffer,
      offset: number,
      length: number,
      address: string,
      beforeCallback: () => void,
      afterCallback: (error: Error | null, bytes: number) => void,
    ): this;
    send(
      buffer: Buffer,
      offset: number,
      length: number,
      address: string,
      afterCallback: (error: Error | null, bytes: number) => void,
    ): this;
    /** Throws `Error(strerror(errno))` when setsockopt(2) fails. */
    setOption(level: number, option: number, value: number): void;
    setOption(level: number, option: number, value: Buffer, length: number): void;
    getOption(level: number, option: number, value: Buffer, length: number): number;
    close(): this;
    pauseRecv(): this;
    resumeRecv(): this;
    pauseSend(): this;
    resumeSend(): this;
  }

  export function createSocket(options?: SocketOptions): Socket;
  /** Ones'-complement checksum over buffers (or {buffer, offset, length} slices). */
  export function createChecksum(
    ...parts: (Buffer | { buffer: Buffer; offset: number; length: number })[]
  ): number;
  export function writeChecksum(buffer: Buffer, offset: number, checksum: number): Buffer;
}
