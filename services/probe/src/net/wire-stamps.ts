// Kernel capture timestamps of a probe series (ICMP echo, STAMP test packets), taken from the
// shared pcap session (net/pcap-session.ts) on the interface the probes leave by.
//
// A user-space RTT (process.hrtime around sendto(2) and in the socket's readable callback) includes
// the event loop's wake-up latency; iputils ping reads kernel receive timestamps (SO_TIMESTAMP),
// which raw-socket cannot deliver. A Linux packet socket sees outgoing frames too (dev_queue_xmit_nit),
// so the capture timestamps of a probe leaving and its answer arriving bound the RTT at the
// device, with no event-loop time in it. The socket stays authoritative for what came back; these
// stamps only replace the timing of answers it accepted. What a series' frames look like is the
// series' business (net/echo-wire-stamps.ts, net/stamp-wire-stamps.ts); recording is shared here.

import type { EthernetFrame } from "./ethernet.ts";
import { formatIpAddress, type IpFamily } from "./icmp-packet.ts";
import { readSysfs } from "./interfaces.ts";
import type { CapturedFrame, FrameConsumer } from "./pcap-session.ts";
import { egressInterface } from "./routes.ts";

/** IPv4 and IPv6 EtherTypes: what a series tap subscribes to. */
export const IP_ETHER_TYPES: readonly number[] = [0x0800, 0x86dd];

/** The IP packet of one protocol in a captured frame; `payload` is a view into the frame. */
export interface WireIpPacket {
  family: IpFamily;
  /** Canonical text (formatIpAddress). */
  source: string;
  destination: string;
  payload: Buffer;
}

/**
 * Decodes the IP packet of an Ethernet frame carrying `protocol` (per family: 1 / 58 for ICMP,
 * 17 / 17 for UDP) with at least `minPayload` bytes, or undefined for anything else (other
 * protocols, IPv4 fragments, IPv6 extension headers — our probes carry none —, truncated or
 * inconsistent headers). Never throws.
 */
export function decodeWireIp(
  eth: EthernetFrame,
  protocol: Readonly<Record<IpFamily, number>>,
  minPayload: number,
): WireIpPacket | undefined {
  const packet = eth.payload;
  if (eth.etherType === 0x0800) {
    if (packet.length < 20) return undefined;
    const versionIhl = packet[0] ?? 0;
    const headerBytes = (versionIhl & 0x0f) * 4;
    if (versionIhl >> 4 !== 4 || headerBytes < 20) return undefined;
    const totalLength = packet.readUInt16BE(2);
    // Ethernet pads short frames, so the packet may be shorter than the frame, never longer.
    if (totalLength < headerBytes + minPayload || totalLength > packet.length) return undefined;
    // A fragment's timestamp is not the datagram's (the answer is complete only with its last one).
    if ((packet.readUInt16BE(6) & 0x3fff) !== 0 || packet[9] !== protocol[4]) return undefined;
    return {
      family: 4,
      source: formatIpAddress(packet.subarray(12, 16)),
      destination: formatIpAddress(packet.subarray(16, 20)),
      payload: packet.subarray(headerBytes, totalLength),
    };
  }
  if (eth.etherType === 0x86dd) {
    if (packet.length < 40 || (packet[0] ?? 0) >> 4 !== 6 || packet[6] !== protocol[6]) return undefined;
    const payloadLength = packet.readUInt16BE(4);
    if (payloadLength < minPayload || 40 + payloadLength > packet.length) return undefined;
    return {
      family: 6,
      source: formatIpAddress(packet.subarray(8, 24)),
      destination: formatIpAddress(packet.subarray(24, 40)),
      payload: packet.subarray(40, 40 + payloadLength),
    };
  }
  return undefined;
}

/** Which probe of the series a frame carries and which way it went, or undefined: not ours. */
export type ClassifyFrame = (eth: EthernetFrame) => { direction: "out" | "back"; index: number } | undefined;

/**
 * Records, per probe index, the capture time of the probe leaving and of the first answer to it
 * arriving (µs, wall clock). A frame tap consumer: it must not throw, and does not (classifiers
 * return undefined on bad input).
 */
export class WireStamps implements FrameConsumer {
  readonly etherTypes = IP_ETHER_TYPES;
  readonly #classify: ClassifyFrame;
  readonly #outUs = new Map<number, number>();
  readonly #backUs = new Map<number, number>();
  /** Called after each stamp is recorded (the series waits for late frames with it). */
  onStamp: () => void = () => {};

  constructor(classify: ClassifyFrame) {
    this.#classify = classify;
  }

  /** Probes whose departure was captured. */
  get outSeen(): number {
    return this.#outUs.size;
  }

  onFrame(frame: CapturedFrame, eth: EthernetFrame): void {
    const seen = this.#classify(eth);
    if (seen === undefined) return;
    const stamps = seen.direction === "out" ? this.#outUs : this.#backUs;
    if (stamps.has(seen.index)) return;
    stamps.set(seen.index, frame.wireUs);
    this.onStamp();
  }

  /** Capture time of probe `index` leaving, µs since the epoch. */
  outUs(index: number): number | undefined {
    return this.#outUs.get(index);
  }

  /** Capture time of the answer to probe `index` arriving, µs since the epoch. */
  backUs(index: number): number | undefined {
    return this.#backUs.get(index);
  }

  /** Whether both frames of probe `index` were captured. */
  hasBoth(index: number): boolean {
    return this.#outUs.has(index) && this.#backUs.has(index);
  }

  /**
   * The wire interval of probe `index` in ms, when both frames were captured and it is consistent
   * with the user-space interval `processMs` of the same exchange. The wire interval lies inside
   * the user-space one (the probe leaves after the pre-send stamp, the answer arrives before the
   * socket hands it over), so a wire interval ≤ 0 or above `processMs` is not to be trusted: a
   * wall-clock step (NTP) between the two captures, or one of the ~2 in 1,000 inconsistent pairs
   * seen in the lab around multi-millisecond stalls of the VM. Then undefined, and the caller keeps
   * the user-space timing. The slack covers the clocks' rate difference (slewing ≤ 500 ppm) and µs
   * rounding.
   */
  intervalMs(index: number, processMs: number): number | undefined {
    const out = this.#outUs.get(index);
    const back = this.#backUs.get(index);
    if (out === undefined || back === undefined) return undefined;
    const wireMs = (back - out) / 1000;
    if (wireMs <= 0 || wireMs > processMs * 1.001 + 0.01) return undefined;
    return wireMs;
  }
}

/** Where a series' frames can be captured: an Ethernet interface, or why there is none. */
export type CaptureInterface = { iface: string } | { reason: string };

/**
 * The interface probes to `address` leave by, when the shared pcap session can watch it: routing
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
