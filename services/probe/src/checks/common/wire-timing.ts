// Kernel timestamps for a series check (icmp, stamp): the tap on the egress interface's shared
// pcap session, why there is none, and the short wait for frames still due when the series ends.

import type { Logger } from "../../../../contract/src/log.ts";
import type { FrameIo, FrameTap } from "../../net/pcap-session.ts";
import { WireStamps, type CaptureInterface, type ClassifyFrame } from "../../net/wire-stamps.ts";
import { errorMessage } from "./failure.ts";

/** Where kernel timestamps of a series come from: frame capture on the egress interface. */
export interface WireTimestampSource {
  io: FrameIo;
  /** The Ethernet interface probes to the IP literal `address` leave by, or why there is none. */
  captureInterface(address: string): CaptureInterface;
}

/**
 * How long a finished series waits for frames the capture has not delivered yet: the socket and
 * the pcap session are separate file descriptors, so an answer can reach the series an event-loop
 * turn before its frames. Only waited when such a frame is missing.
 */
const WIRE_GRACE_MS = 10;

/** One series' capture: absent stamps just mean process timestamps, `unavailable` says why. */
export class WireTiming {
  /** The recorded stamps, undefined when there is no capture. */
  stamps: WireStamps | undefined;
  /** Why there are no wire timestamps (for `detail.wire_unavailable`), when there are none. */
  unavailable: string | undefined;
  #tap: FrameTap | undefined;
  #graceTimer: NodeJS.Timeout | undefined;
  #settled = false;

  /** Subscribes to the frames towards `address`; any failure just means process timestamps. */
  open(source: WireTimestampSource | undefined, address: string, classify: ClassifyFrame, log: Logger): void {
    if (source === undefined) return;
    const where = source.captureInterface(address);
    if ("reason" in where) {
      this.unavailable = where.reason;
      return;
    }
    const stamps = new WireStamps(classify);
    let tap: FrameTap | { code: string; message: string };
    try {
      tap = source.io.open(where.iface, stamps);
    } catch (error) {
      tap = { code: "capture_failed", message: errorMessage(error) };
    }
    if ("code" in tap) {
      this.unavailable = `${tap.code}: ${tap.message}`;
      log.debug({ iface: where.iface, err: tap.message }, "no wire timestamps");
      return;
    }
    this.#tap = tap;
    this.stamps = stamps;
  }

  /**
   * Whether an answer the socket accepted (`indices`) still lacks one of its two frames, while the
   * capture works (it has seen some probe leave). On a fast path the whole last exchange can be
   * done before the capture's poll callback runs for either frame.
   */
  framesPending(indices: Iterable<number>): boolean {
    const stamps = this.stamps;
    if (stamps === undefined || stamps.outSeen === 0) return false;
    for (const index of indices) if (!stamps.hasBoth(index)) return true;
    return false;
  }

  /**
   * Calls `done` once: at once when `wait` is false or no frame is pending, else when the pending
   * frames have arrived or the grace time is over. The grace timer is followed by one more turn
   * (setImmediate runs after the poll phase), so frames the kernel had already captured are read
   * even if the event loop was late for the timer.
   */
  settle(wait: boolean, pending: () => boolean, done: () => void): void {
    const finish = (): void => {
      if (this.#settled) return;
      this.#settled = true;
      if (this.#graceTimer !== undefined) clearTimeout(this.#graceTimer);
      this.#tap?.close();
      done();
    };
    const stamps = this.stamps;
    if (stamps === undefined || !wait || !pending()) return finish();
    stamps.onStamp = () => {
      if (!pending()) finish();
    };
    this.#graceTimer = setTimeout(() => setImmediate(finish), WIRE_GRACE_MS);
    this.#finishNow = finish;
  }

  /** Ends a grace wait at once (the run was aborted while waiting for late frames). */
  finishNow(): void {
    this.#finishNow();
  }

  #finishNow: () => void = () => {};
}
