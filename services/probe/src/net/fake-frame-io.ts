// An in-memory LAN for unit tests of the Ethernet-level checks: records what a check injects,
// lets a scripted responder answer, and delivers frames to the subscribed consumers exactly as
// the shared pcap session does (decoded Ethernet header, per-EtherType dispatch).

import type { CheckError } from "../checks/check.ts";
import { decodeEthernet } from "./ethernet.ts";
import type { CapturedFrame, FrameConsumer, FrameIo, FrameTap } from "./pcap-session.ts";

/** Answers an injected frame with zero or more frames (delivered after `delayMs`). */
export type Responder = (frame: Buffer) => Array<{ frame: Buffer; delayMs?: number }>;

/** A fake FrameIo: one interface MAC, a responder, and counters. */
export class FakeFrameIo implements FrameIo {
  readonly injected: Buffer[] = [];
  readonly #consumers = new Set<FrameConsumer>();
  readonly #mac: string;
  responder: Responder;
  openError: CheckError | undefined;
  /** Consumers that threw (the real session counts and logs them). */
  consumerErrors = 0;

  constructor(mac: string, responder: Responder = () => []) {
    this.#mac = mac;
    this.responder = responder;
  }

  get consumers(): number {
    return this.#consumers.size;
  }

  open(_iface: string, consumer: FrameConsumer): FrameTap | CheckError {
    if (this.openError !== undefined) return this.openError;
    this.#consumers.add(consumer);
    return {
      mac: this.#mac,
      inject: (frame) => {
        this.injected.push(Buffer.from(frame));
        for (const r of this.responder(frame)) {
          if (r.delayMs === undefined) this.deliver(r.frame);
          else setTimeout(() => this.deliver(r.frame), r.delayMs);
        }
        return undefined;
      },
      close: () => this.#consumers.delete(consumer),
    };
  }

  /**
   * Delivers one frame to every consumer of its EtherType, captured at `wireUs` (default: now);
   * returns false when it has no Ethernet header.
   */
  deliver(data: Buffer, wireUs = Date.now() * 1000): boolean {
    const eth = decodeEthernet(data);
    if (eth === undefined) return false;
    const frame: CapturedFrame = { data, receivedAt: process.hrtime.bigint(), wireUs };
    for (const c of [...this.#consumers]) {
      if (!c.etherTypes.includes(eth.etherType)) continue;
      try {
        c.onFrame(frame, eth);
      } catch {
        this.consumerErrors++;
      }
    }
    return true;
  }
}
