// Kernel timestamps of one echo series' requests and replies, taken from the shared pcap session
// (net/pcap-session.ts) on the interface the requests leave by.
//
// A user-space RTT (process.hrtime around sendto(2) and in the socket's readable callback) includes
// the event loop's wake-up latency; iputils ping reads kernel receive timestamps (SO_TIMESTAMP),
// which raw-socket cannot deliver. A Linux packet socket sees outgoing frames too (dev_queue_xmit_nit),
// so the capture timestamps of the request leaving and the reply arriving bound the RTT at the
// device, with no event-loop time in it. The raw socket stays authoritative for what came back;
// these stamps only replace the timing of replies it accepted.

import type { EthernetFrame } from "./ethernet.ts";
import { formatIpAddress, ICMP_HEADER_BYTES, type IpFamily } from "./icmp-packet.ts";
import { readSysfs } from "./interfaces.ts";
import type { CapturedFrame, FrameConsumer } from "./pcap-session.ts";
import { egressInterface } from "./routes.ts";

/** IPv4 and IPv6 EtherTypes: what the tap subscribes to. */
export const ECHO_ETHER_TYPES: readonly number[] = [0x0800, 0x86dd];

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

const ECHO_TYPES: Readonly<Record<IpFamily, { request: number; reply: number }>> = {
  4: { request: 8, reply: 0 },
  6: { request: 128, reply: 129 },
};

/**
 * Decodes the echo in an Ethernet frame, or undefined for anything else (other protocols, IPv4
 * fragments, IPv6 extension headers — our echoes carry none —, truncated or inconsistent headers).
 * Never throws.
 */
export function decodeWireEcho(eth: EthernetFrame): WireEcho | undefined {
  const packet = eth.payload;
  let family: IpFamily;
  let icmp: Buffer;
  let source: string;
  let destination: string;
  if (eth.etherType === 0x0800) {
    if (packet.length < 20) return undefined;
    const versionIhl = packet[0] ?? 0;
    const headerBytes = (versionIhl & 0x0f) * 4;
    if (versionIhl >> 4 !== 4 || headerBytes < 20) return undefined;
    const totalLength = packet.readUInt16BE(2);
    // Ethernet pads short frames, so the packet may be shorter than the frame, never longer.
    if (totalLength < headerBytes + ICMP_HEADER_BYTES || totalLength > packet.length) return undefined;
    // A fragment's timestamp is not the datagram's (the reply is complete only with its last one).
    if ((packet.readUInt16BE(6) & 0x3fff) !== 0 || packet[9] !== 1) return undefined;
    family = 4;
    source = formatIpAddress(packet.subarray(12, 16));
    destination = formatIpAddress(packet.subarray(16, 20));
    icmp = packet.subarray(headerBytes, totalLength);
  } else if (eth.etherType === 0x86dd) {
    if (packet.length < 40 || (packet[0] ?? 0) >> 4 !== 6 || packet[6] !== 58) return undefined;
    const payloadLength = packet.readUInt16BE(4);
    if (payloadLength < ICMP_HEADER_BYTES || 40 + payloadLength > packet.length) return undefined;
    family = 6;
    source = formatIpAddress(packet.subarray(8, 24));
    destination = formatIpAddress(packet.subarray(24, 40));
    icmp = packet.subarray(40, 40 + payloadLength);
  } else return undefined;
  const types = ECHO_TYPES[family];
  if (icmp[1] !== 0) return undefined;
  const direction = icmp[0] === types.request ? "request" : icmp[0] === types.reply ? "reply" : undefined;
  if (direction === undefined) return undefined;
  return {
    family,
    direction,
    source,
    destination,
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

/**
 * Records, per request index, the capture time of the request leaving and of the first matching
 * reply arriving (µs, wall clock). A frame tap consumer: it must not throw, and does not (every
 * decoder here returns undefined on bad input).
 */
export class EchoWireStamps implements FrameConsumer {
  readonly etherTypes = ECHO_ETHER_TYPES;
  readonly #key: EchoSeriesKey;
  readonly #requestUs = new Map<number, number>();
  readonly #replyUs = new Map<number, number>();
  /** Called after each stamp is recorded (the series waits for late frames with it). */
  onStamp: () => void = () => {};

  constructor(key: EchoSeriesKey) {
    this.#key = key;
  }

  /** Requests whose departure was captured. */
  get requestsSeen(): number {
    return this.#requestUs.size;
  }

  onFrame(frame: CapturedFrame, eth: EthernetFrame): void {
    const echo = decodeWireEcho(eth);
    if (echo === undefined || echo.family !== this.#key.family || echo.identifier !== this.#key.identifier)
      return;
    const cookie = this.#key.cookie;
    if (
      echo.payload.length < cookie.length ||
      echo.payload.compare(cookie, 0, cookie.length, 0, cookie.length) !== 0
    )
      return;
    const index = this.#key.indexOf(echo.sequence);
    if (index === undefined) return;
    if (echo.direction === "request") {
      if (echo.destination === this.#key.peer && !this.#requestUs.has(index)) {
        this.#requestUs.set(index, frame.wireUs);
        this.onStamp();
      }
    } else if (echo.source === this.#key.peer && !this.#replyUs.has(index)) {
      this.#replyUs.set(index, frame.wireUs);
      this.onStamp();
    }
  }

  /** Whether request `index` was captured leaving. */
  hasRequest(index: number): boolean {
    return this.#requestUs.has(index);
  }

  /** Whether the reply to request `index` was captured. */
  hasReply(index: number): boolean {
    return this.#replyUs.has(index);
  }

  /**
   * The wire RTT of request `index` in ms, when both frames were captured and the result is
   * consistent with the user-space RTT `processMs` of the same echo. The wire interval lies inside
   * the user-space one (the request leaves after the pre-send stamp, the reply arrives before the
   * socket hands it over), so a wire RTT ≤ 0 or above `processMs` is not to be trusted: a
   * wall-clock step (NTP) between the two captures, or one of the ~2 in 1,000 inconsistent pairs
   * seen in the lab around multi-millisecond stalls of the VM. Then undefined, and the caller keeps
   * the user-space RTT. The slack covers the clocks' rate difference (slewing ≤ 500 ppm) and µs
   * rounding.
   */
  rttMs(index: number, processMs: number): number | undefined {
    const out = this.#requestUs.get(index);
    const back = this.#replyUs.get(index);
    if (out === undefined || back === undefined) return undefined;
    const wireMs = (back - out) / 1000;
    if (wireMs <= 0 || wireMs > processMs * 1.001 + 0.01) return undefined;
    return wireMs;
  }
}

/** Where an echo series' frames can be captured: an Ethernet interface, or why there is none. */
export type CaptureInterface = { iface: string } | { reason: string };

/**
 * The interface echoes to `address` leave by, when the shared pcap session can watch it: routing
 * per net/routes.ts, and an Ethernet device (ARPHRD_ETHER, sysfs `type` 1), because the session
 * decodes Ethernet headers — loopback, tun/WireGuard (raw IP) and the like get process timestamps.
 */
export function ethernetEgress(address: string): CaptureInterface {
  const iface = egressInterface(address);
  if (iface === undefined) return { reason: `no route to ${address} with a known interface` };
  const type = readSysfs(iface, "type");
  if (type !== "1") return { reason: `${iface} is not an Ethernet interface (type ${type ?? "unknown"})` };
  return { iface };
}
