// The RTP/RTCP socket pair of a test call (RFC 3550 §11: RTP on an even port, RTCP on the next
// one), behind a small interface so unit tests can use an in-memory far end.

import { createSocket, type Socket } from "node:dgram";
import { randomInt } from "node:crypto";

/** A bound RTP + RTCP pair. */
export interface MediaSockets {
  /** Local RTP port (even); RTCP is rtpPort + 1. */
  readonly rtpPort: number;
  sendRtp(data: Buffer, port: number, address: string): void;
  sendRtcp(data: Buffer, port: number, address: string): void;
  /** Receivers; `at` is process.hrtime.bigint() when the datagram was read. */
  onRtp: (data: Buffer, from: { address: string; port: number }, at: bigint) => void;
  onRtcp: (data: Buffer, from: { address: string; port: number }, at: bigint) => void;
  close(): void;
}

/** Opens a media socket pair on `localAddress`; rejects only when no port pair can be bound. */
export type OpenMedia = (localAddress: string) => Promise<MediaSockets>;

const PORT_MIN = 16384;
const PORT_MAX = 32766;

function bind(socket: Socket, port: number, address: string): Promise<boolean> {
  return new Promise((resolve) => {
    const onError = (): void => resolve(false);
    socket.once("error", onError);
    socket.bind(port, address, () => {
      socket.off("error", onError);
      resolve(true);
    });
  });
}

/** Real UDP sockets on a random even port pair in 16384–32767 (the usual RTP range). */
export const openMediaSockets: OpenMedia = async (localAddress) => {
  const type = localAddress.includes(":") ? "udp6" : "udp4";
  for (let attempt = 0; attempt < 32; attempt++) {
    const port = PORT_MIN + 2 * randomInt((PORT_MAX - PORT_MIN) / 2);
    const rtp = createSocket({ type });
    const rtcp = createSocket({ type });
    if (!(await bind(rtp, port, localAddress))) {
      rtp.close();
      rtcp.close();
      continue;
    }
    if (!(await bind(rtcp, port + 1, localAddress))) {
      rtp.close();
      rtcp.close();
      continue;
    }
    let open = true;
    // The pacing timers of a call may fire once more after close(); send() on a closed socket throws.
    const send = (socket: Socket, data: Buffer, p: number, a: string): void => {
      if (open) socket.send(data, p, a, () => undefined);
    };
    const sockets: MediaSockets = {
      rtpPort: port,
      sendRtp: (data, p, a) => send(rtp, data, p, a),
      sendRtcp: (data, p, a) => send(rtcp, data, p, a),
      onRtp: () => {},
      onRtcp: () => {},
      close: () => {
        open = false;
        for (const s of [rtp, rtcp]) {
          try {
            s.close();
          } catch {
            // already closed
          }
        }
      },
    };
    // ICMP errors for sends to a dead far end surface as socket errors: they mean nothing here
    // (the call's own accounting sees the missing packets).
    rtp.on("error", () => undefined);
    rtcp.on("error", () => undefined);
    rtp.on("message", (data, rinfo) => sockets.onRtp(data, rinfo, process.hrtime.bigint()));
    rtcp.on("message", (data, rinfo) => sockets.onRtcp(data, rinfo, process.hrtime.bigint()));
    return sockets;
  }
  throw new Error(`no free RTP port pair on ${localAddress}`);
};
