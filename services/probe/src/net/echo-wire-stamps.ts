// Which captured frames are one echo series' requests and replies (net/wire-stamps.ts records
// their timestamps).

import type { EthernetFrame } from "./ethernet.ts";
import { ICMP_HEADER_BYTES, type IpFamily } from "./icmp-packet.ts";
import { decodeWireIp, type ClassifyFrame } from "./wire-stamps.ts";

/** An ICMP/ICMPv6 echo request or reply found in a captured frame. `payload` is a view into it. */
export interface WireEcho {
  family: IpFamily;
  direction: "request" | "reply";
  /** Canonical text (formatIpAddress). */
  source: string;
  destination: string;
  identifier: number;
  sequence: number;
  payload: Buffer;
}

const ICMP_PROTOCOLS: Readonly<Record<IpFamily, number>> = { 4: 1, 6: 58 };
const ECHO_TYPES: Readonly<Record<IpFamily, { request: number; reply: number }>> = {
  4: { request: 8, reply: 0 },
  6: { request: 128, reply: 129 },
};

/** Decodes the echo in an Ethernet frame, or undefined for anything else. Never throws. */
export function decodeWireEcho(eth: EthernetFrame): WireEcho | undefined {
  const ip = decodeWireIp(eth, ICMP_PROTOCOLS, ICMP_HEADER_BYTES);
  if (ip === undefined) return undefined;
  const icmp = ip.payload;
  const types = ECHO_TYPES[ip.family];
  if (icmp[1] !== 0) return undefined;
  const direction = icmp[0] === types.request ? "request" : icmp[0] === types.reply ? "reply" : undefined;
  if (direction === undefined) return undefined;
  return {
    ...ip,
    direction,
    identifier: icmp.readUInt16BE(4),
    sequence: icmp.readUInt16BE(6),
    payload: icmp.subarray(ICMP_HEADER_BYTES),
  };
}

/** What identifies one series' echoes on the wire. */
export interface EchoSeriesKey {
  family: IpFamily;
  /** The target, in canonical text form (normalizeIpLiteral). */
  peer: string;
  identifier: number;
  /** The first bytes of every request's payload (the run's cookie). */
  cookie: Buffer;
  /** Request index of a sequence number, undefined when the series never sent it. */
  indexOf(sequence: number): number | undefined;
}

/** Classifies frames as this series' requests (out) and replies (back). */
export function echoFrames(key: EchoSeriesKey): ClassifyFrame {
  return (eth) => {
    const echo = decodeWireEcho(eth);
    if (echo === undefined || echo.family !== key.family || echo.identifier !== key.identifier)
      return undefined;
    const cookie = key.cookie;
    if (
      echo.payload.length < cookie.length ||
      echo.payload.compare(cookie, 0, cookie.length, 0, cookie.length) !== 0
    )
      return undefined;
    const index = key.indexOf(echo.sequence);
    if (index === undefined) return undefined;
    if (echo.direction === "request")
      return echo.destination === key.peer ? { direction: "out", index } : undefined;
    return echo.source === key.peer ? { direction: "back", index } : undefined;
  };
}
