// Which captured frames are one STAMP session's test packets and reflected packets
// (net/wire-stamps.ts records their timestamps, so T1 and T4 carry no event-loop latency).

import type { EthernetFrame } from "./ethernet.ts";
import type { IpFamily } from "./icmp-packet.ts";
import { STAMP_BASE_BYTES } from "../../../contract/src/net/stamp-packet.ts";
import { decodeWireIp, type ClassifyFrame } from "./wire-stamps.ts";

/** A UDP datagram found in a captured frame; `payload` is a view into it. */
export interface WireUdp {
  family: IpFamily;
  source: string;
  destination: string;
  sourcePort: number;
  destinationPort: number;
  payload: Buffer;
}

const UDP_PROTOCOLS: Readonly<Record<IpFamily, number>> = { 4: 17, 6: 17 };

/** Decodes the UDP datagram of an Ethernet frame, or undefined. Never throws. */
export function decodeWireUdp(eth: EthernetFrame): WireUdp | undefined {
  const ip = decodeWireIp(eth, UDP_PROTOCOLS, 8);
  if (ip === undefined) return undefined;
  const udp = ip.payload;
  const udpLength = udp.readUInt16BE(4);
  if (udpLength < 8 || udpLength > udp.length) return undefined;
  return {
    ...ip,
    sourcePort: udp.readUInt16BE(0),
    destinationPort: udp.readUInt16BE(2),
    payload: udp.subarray(8, udpLength),
  };
}

/** What identifies one STAMP session on the wire. */
export interface StampSessionKey {
  family: IpFamily;
  /** Reflector address, canonical text (normalizeIpLiteral). */
  peer: string;
  peerPort: number;
  localPort: number;
  /** Index of a sender sequence number, undefined when this session never sent it. */
  indexOf(sequence: number): number | undefined;
}

/** Classifies frames as this session's test packets (out) and reflected packets (back). */
export function stampFrames(k: StampSessionKey): ClassifyFrame {
  return (eth) => {
    const udp = decodeWireUdp(eth);
    if (udp === undefined || udp.family !== k.family || udp.payload.length < STAMP_BASE_BYTES)
      return undefined;
    if (udp.destination === k.peer && udp.destinationPort === k.peerPort && udp.sourcePort === k.localPort) {
      const index = k.indexOf(udp.payload.readUInt32BE(0));
      return index === undefined ? undefined : { direction: "out", index };
    }
    if (udp.source === k.peer && udp.sourcePort === k.peerPort && udp.destinationPort === k.localPort) {
      // RFC 8762 §4.3.1: the Session-Sender Sequence Number sits at offset 24 of the reply.
      const index = k.indexOf(udp.payload.readUInt32BE(24));
      return index === undefined ? undefined : { direction: "back", index };
    }
    return undefined;
  };
}
