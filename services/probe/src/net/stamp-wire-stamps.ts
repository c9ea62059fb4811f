// Kernel capture timestamps of one STAMP session's test packets, from the shared pcap session of
// the egress interface (net/pcap-session.ts), as net/echo-wire-stamps.ts does for ICMP echo: the
// capture sees each test packet leave and each reflected packet arrive, so T1 and T4 carry no
// event-loop latency. The UDP socket stays authoritative for what came back; these stamps only
// replace the timing of replies it accepted.

import type { EthernetFrame } from "./ethernet.ts";
import { formatIpAddress, type IpFamily } from "./icmp-packet.ts";
import type { CapturedFrame, FrameConsumer } from "./pcap-session.ts";
import { STAMP_BASE_BYTES } from "./stamp-packet.ts";

/** A UDP datagram found in a captured frame; `payload` is a view into it. */
export interface WireUdp {
  family: IpFamily;
  source: string;
  destination: string;
  sourcePort: number;
  destinationPort: number;
  payload: Buffer;
}

/**
 * Decodes the UDP datagram of an Ethernet frame (IPv4 without fragmentation, IPv6 without
 * extension headers — our test packets carry none), or undefined. Never throws.
 */
export function decodeWireUdp(eth: EthernetFrame): WireUdp | undefined {
  const packet = eth.payload;
  let family: IpFamily;
  let udp: Buffer;
  let source: string;
  let destination: string;
  if (eth.etherType === 0x0800) {
    if (packet.length < 20) return undefined;
    const versionIhl = packet[0] ?? 0;
    const headerBytes = (versionIhl & 0x0f) * 4;
    if (versionIhl >> 4 !== 4 || headerBytes < 20) return undefined;
    const totalLength = packet.readUInt16BE(2);
    if (totalLength < headerBytes + 8 || totalLength > packet.length) return undefined;
    if ((packet.readUInt16BE(6) & 0x3fff) !== 0 || packet[9] !== 17) return undefined;
    family = 4;
    source = formatIpAddress(packet.subarray(12, 16));
    destination = formatIpAddress(packet.subarray(16, 20));
    udp = packet.subarray(headerBytes, totalLength);
  } else if (eth.etherType === 0x86dd) {
    if (packet.length < 48 || (packet[0] ?? 0) >> 4 !== 6 || packet[6] !== 17) return undefined;
    const payloadLength = packet.readUInt16BE(4);
    if (payloadLength < 8 || 40 + payloadLength > packet.length) return undefined;
    family = 6;
    source = formatIpAddress(packet.subarray(8, 24));
    destination = formatIpAddress(packet.subarray(24, 40));
    udp = packet.subarray(40, 40 + payloadLength);
  } else return undefined;
  const udpLength = udp.readUInt16BE(4);
  if (udpLength < 8 || udpLength > udp.length) return undefined;
  return {
    family,
    source,
    destination,
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

/**
 * Per test packet index: capture time (µs, wall clock) of the packet leaving and of the first
 * reflected packet for it arriving. A frame consumer: never throws.
 */
export class StampWireStamps implements FrameConsumer {
  readonly etherTypes: readonly number[] = [0x0800, 0x86dd];
  readonly #key: StampSessionKey;
  readonly #sentUs = new Map<number, number>();
  readonly #receivedUs = new Map<number, number>();
  /** Called after each stamp is recorded. */
  onStamp: () => void = () => {};

  constructor(key: StampSessionKey) {
    this.#key = key;
  }

  /** Test packets whose departure was captured. */
  get sentSeen(): number {
    return this.#sentUs.size;
  }

  onFrame(frame: CapturedFrame, eth: EthernetFrame): void {
    const udp = decodeWireUdp(eth);
    if (udp === undefined || udp.family !== this.#key.family || udp.payload.length < STAMP_BASE_BYTES) return;
    const k = this.#key;
    if (udp.destination === k.peer && udp.destinationPort === k.peerPort && udp.sourcePort === k.localPort) {
      const index = k.indexOf(udp.payload.readUInt32BE(0));
      if (index !== undefined && !this.#sentUs.has(index)) {
        this.#sentUs.set(index, frame.wireUs);
        this.onStamp();
      }
    } else if (
      udp.source === k.peer &&
      udp.sourcePort === k.peerPort &&
      udp.destinationPort === k.localPort
    ) {
      // RFC 8762 §4.3.1: the Session-Sender Sequence Number sits at offset 24 of the reply.
      const index = k.indexOf(udp.payload.readUInt32BE(24));
      if (index !== undefined && !this.#receivedUs.has(index)) {
        this.#receivedUs.set(index, frame.wireUs);
        this.onStamp();
      }
    }
  }

  /** Capture time of test packet `index` leaving, µs since the epoch. */
  sentUs(index: number): number | undefined {
    return this.#sentUs.get(index);
  }

  /** Capture time of the reply to test packet `index` arriving, µs since the epoch. */
  receivedUs(index: number): number | undefined {
    return this.#receivedUs.get(index);
  }
}
