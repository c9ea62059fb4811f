// An in-memory LAN for unit tests of the Ethernet-level checks: records what a check injects,
// lets a scripted responder answer, and delivers frames to the subscribed consumers exactly as
// the shared pcap session does (decoded Ethernet header, per-EtherType dispatch).

import type { CheckError } from "../../services/probe/src/checks/check.ts";
import { decodeEthernet } from "../../services/probe/src/net/ethernet.ts";
import { wallMinusMonoUs } from "../../services/contract/src/net/wall-clock.ts";
import type {
  CapturedFrame,
  FrameConsumer,
  FrameIo,
  FrameTap,
} from "../../services/probe/src/net/pcap-session.ts";

/**
 * Answers an injected frame with zero or more frames, captured `delayMs` after the injection and
 * handed to user space `lateMs` after that (a busy event loop), or stamped `wireUs` outright.
 */
export type Responder = (
  frame: Buffer,
) => Array<{ frame: Buffer; delayMs?: number; lateMs?: number; wireUs?: number }>;

/** A fake FrameIo: one interface MAC, a responder, and counters. */
export class FakeFrameIo implements FrameIo {
  readonly injected: Buffer[] = [];
  readonly #consumers = new Set<FrameConsumer>();
  readonly #mac: string;
  responder: Responder;
  openError: CheckError | undefined;
  /** Consumers that threw (the real session counts and logs them). */
  consumerErrors = 0;
  readonly #wallOffsetUs = wallMinusMonoUs();
  readonly #wallNowUs = (): number => Number(process.hrtime.bigint()) / 1000 + this.#wallOffsetUs;

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
          if (r.delayMs === undefined && r.lateMs === undefined) this.deliver(r.frame, r.wireUs);
          else {
            const delayMs = r.delayMs ?? 0;
            const wireUs = r.wireUs ?? this.#wallNowUs() + delayMs * 1000;
            setTimeout(() => this.deliver(r.frame, wireUs), delayMs + (r.lateMs ?? 0));
          }
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
  deliver(data: Buffer, wireUs?: number): boolean {
    const eth = decodeEthernet(data);
    if (eth === undefined) return false;
    // Stamped as the kernel would: the wall clock at arrival, to the microsecond.
    const frame: CapturedFrame = {
      data,
      receivedAt: process.hrtime.bigint(),
      wireUs: wireUs ?? this.#wallNowUs(),
    };
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
