// One long-lived pcap session per interface, shared by every Ethernet-level check of the process
// (DHCP, ARP, LLDP) and by the icmp check's wire timestamps. node_pcap (pcap 3.1) is unmaintained
// and crashes when sessions are created and destroyed repeatedly (docs/architecture.md, "Field lessons"), so a session,
// once opened, stays open until closeAll() — called by ProbeService.stop(). A closed node_pcap
// session keeps its libuv poll handle (and so the process) alive until one more packet arrives;
// the CLI exits explicitly after stop().
//
// Consumers subscribe per EtherType; each captured frame is decoded once (Ethernet header) and
// handed to the consumers that asked for its type. A consumer that throws is counted and logged,
// never allowed to reach node_pcap's callback (an exception there is a FatalException).

import { createRequire } from "node:module";
import type { CheckError } from "../checks/check.ts";
import type { Logger } from "../../../contract/src/log.ts";
import { decodeEthernet, type EthernetFrame } from "./ethernet.ts";
import { readInterfaceMac, readSysfs } from "./interfaces.ts";

/** A frame as captured, with both clocks. */
export interface CapturedFrame {
  /** The whole frame from the destination MAC on (a private copy). */
  data: Buffer;
  /** process.hrtime.bigint() when the probe's code got the frame. */
  receivedAt: bigint;
  /** Kernel capture timestamp (wall clock), microseconds since the epoch. */
  wireUs: number;
}

/** One subscriber of an interface's frames. */
export interface FrameConsumer {
  /** EtherTypes this consumer wants (after any 802.1Q tag). */
  etherTypes: readonly number[];
  onFrame(frame: CapturedFrame, eth: EthernetFrame): void;
}

/** A consumer's handle on an interface: send frames, stop receiving. */
export interface FrameTap {
  /** Sends one whole Ethernet frame; a failure is returned as data. */
  inject(frame: Buffer): CheckError | undefined;
  /** Hardware address of the interface ("" if unknown). */
  readonly mac: string;
  /** Stops delivering frames to this consumer; the session itself stays open. */
  close(): void;
}

/** What an Ethernet-level check needs: the real one is {@link sharedPcap}, tests pass a double. */
export interface FrameIo {
  open(iface: string, consumer: FrameConsumer): FrameTap | CheckError;
}

/**
 * Capture filter of the shared session: the union of what every consumer may need. ICMP/ICMPv6
 * echo request and reply (both directions: packet sockets see outgoing frames too) are for the
 * icmp check's kernel timestamps; `ip6[40]` assumes no extension header, as its decoder does.
 * UDP port 862 is STAMP (checks/stamp.ts takes T1/T4 from these frames).
 */
export const CAPTURE_FILTER =
  "arp or ether proto 0x88cc or ether dst 01:00:0c:cc:cc:cc or (udp and (port 67 or port 68))" +
  " or (icmp and (icmp[0]=0 or icmp[0]=8)) or (icmp6 and (ip6[40]=128 or ip6[40]=129))" +
  " or (udp and port 862)";

interface PcapPacket {
  buf: Buffer;
  header: Buffer;
}
interface PcapSessionHandle {
  on(event: "packet", cb: (p: PcapPacket) => void): void;
  inject(data: Buffer): void;
  close(): void;
  stats(): { ps_recv: number; ps_drop: number; ps_ifdrop: number };
}
interface PcapModule {
  warningHandler: (message: string) => void;
  createSession(
    device: string,
    options: { filter: string; buffer_timeout: number; promiscuous: boolean; buffer_size: number },
  ): PcapSessionHandle;
}

interface OpenSession {
  iface: string;
  session: PcapSessionHandle;
  consumers: Set<FrameConsumer>;
  mac: string;
  /** The interface's ifindex when the session opened: a new one means the interface was re-created. */
  ifindex: string | undefined;
  /** The interface's carrier_changes when the session opened: another value means the link bounced. */
  linkEpoch: string | undefined;
}

/** What the shared sessions read about an interface; sysfs for real, a double in tests. */
export interface InterfaceFacts {
  mac(iface: string): string;
  /** undefined: unknown (the interface is gone, or a test that does not care). */
  ifindex(iface: string): string | undefined;
  /** A counter that changes whenever the link goes down or up (sysfs carrier_changes). */
  linkEpoch(iface: string): string | undefined;
  /** Whether the interface is up with carrier (a session opened on a dead link goes blind the same way). */
  carrier(iface: string): boolean;
}

let pcapModule: PcapModule | undefined;
let lastWarning = "";

function loadPcap(): PcapModule {
  if (pcapModule === undefined) {
    // Loaded on first use: processes without an Ethernet-level check never load the native addon.
    const mod = createRequire(import.meta.url)("pcap") as PcapModule;
    // node_pcap prints libpcap warnings with console.warn by default; the probe logs its own way.
    mod.warningHandler = (message: string) => {
      lastWarning = message;
    };
    pcapModule = mod;
  }
  return pcapModule;
}

/** Counters of the shared sessions (for tests, the bench and diagnostics). */
export interface PcapCounters {
  frames: number;
  /** frames too short for an Ethernet header */
  malformed: number;
  /** consumers that threw */
  consumerErrors: number;
}

/** The process-wide pcap sessions, one per interface. */
export class PcapSessions implements FrameIo {
  readonly #sessions = new Map<string, OpenSession>();
  readonly counters: PcapCounters = { frames: 0, malformed: 0, consumerErrors: 0 };
  #log: Logger | undefined;
  readonly #facts: InterfaceFacts;

  constructor(facts: InterfaceFacts) {
    this.#facts = facts;
  }

  /** Where consumer errors are logged (the service sets it; otherwise they are only counted). */
  setLogger(log: Logger): void {
    this.#log = log;
  }

  open(iface: string, consumer: FrameConsumer): FrameTap | CheckError {
    let s = this.#sessions.get(iface);
    if (
      s !== undefined &&
      (this.#facts.ifindex(iface) !== s.ifindex || this.#facts.linkEpoch(iface) !== s.linkEpoch)
    ) {
      // The interface was removed (a USB adapter unplugged) and maybe re-created, or its link went
      // down and up. Either way the session may be blind for good: a down link makes the packet
      // socket report POLLERR, libuv then stops the poll handle (uv__poll_io) and node_pcap never
      // reads again, with no error to see (measured: 0 frames after an `ip link set down/up`).
      // Every Ethernet-level check would stay falsely red. One close per link event is not the
      // create/destroy churn node_pcap cannot take; while the link is down none is opened (below).
      this.#retire(s);
      s = undefined;
    }
    if (s === undefined) {
      const opened = this.#start(iface);
      if ("code" in opened) return opened;
      s = opened;
    }
    const session = s;
    session.consumers.add(consumer);
    let closed = false;
    return {
      mac: session.mac,
      inject: (frame) => {
        if (closed) return { code: "capture_failed", message: "frame tap already closed" };
        try {
          session.session.inject(frame);
          return undefined;
        } catch (err) {
          return { code: "send_failed", message: `cannot send on ${iface}: ${describe(err)}` };
        }
      },
      close: () => {
        closed = true;
        session.consumers.delete(consumer);
      },
    };
  }

  /** Closes every session (service stop); the process should exit soon after (see the file comment). */
  closeAll(): void {
    for (const s of this.#sessions.values()) {
      s.consumers.clear();
      try {
        s.session.close();
      } catch {
        // already closed
      }
    }
    this.#sessions.clear();
  }

  #retire(s: OpenSession): void {
    this.#sessions.delete(s.iface);
    s.consumers.clear();
    try {
      s.session.close();
    } catch {
      // already closed
    }
    this.#log?.warn({ iface: s.iface }, "interface re-created, gone or bounced; pcap session closed");
  }

  #start(iface: string): OpenSession | CheckError {
    const ifindex = this.#facts.ifindex(iface);
    const linkEpoch = this.#facts.linkEpoch(iface);
    const mac = this.#facts.mac(iface);
    if (mac === "") {
      return { code: "interface_missing", message: `interface ${iface} does not exist` };
    }
    if (!this.#facts.carrier(iface)) {
      return { code: "interface_down", message: `interface ${iface} is down or has no carrier` };
    }
    let pcap: PcapModule;
    try {
      pcap = loadPcap();
    } catch (err) {
      return { code: "capture_failed", message: `the pcap module cannot be loaded: ${describe(err)}` };
    }
    let session: PcapSessionHandle;
    try {
      // buffer_timeout 0 = libpcap immediate mode: every frame is delivered at once, which the
      // latency measurements rely on. Promiscuous: DHCP answers to a configured client MAC that is
      // not the interface's own, and LLDP multicast, must reach the probe.
      session = pcap.createSession(iface, {
        filter: CAPTURE_FILTER,
        buffer_timeout: 0,
        promiscuous: true,
        // The kernel ring: frames wait here until the loop reads them. 512 KiB holds thousands of
        // the filtered frames (DHCP, ARP, LLDP, echoes); a larger ring is resident memory for nothing.
        buffer_size: 512 * 1024,
      });
    } catch (err) {
      const text = describe(err);
      const code = /permission|not permitted|EPERM/i.test(text) ? "no_permission" : "capture_failed";
      const hint = code === "no_permission" ? " (the probe needs CAP_NET_RAW)" : "";
      return { code, message: `cannot capture on ${iface}: ${text}${hint}` };
    }
    const s: OpenSession = { iface, session, consumers: new Set(), mac, ifindex, linkEpoch };
    session.on("packet", (p) => this.#dispatch(s, p));
    this.#sessions.set(iface, s);
    this.#log?.debug({ iface, warning: lastWarning || undefined }, "pcap session opened");
    return s;
  }

  #dispatch(s: OpenSession, p: PcapPacket): void {
    // Everything in here runs inside node_pcap's native callback: nothing may throw out of it.
    try {
      const receivedAt = process.hrtime.bigint();
      this.counters.frames++;
      const caplen = p.header.readUInt32LE(8);
      const wireUs = p.header.readUInt32LE(0) * 1e6 + p.header.readUInt32LE(4);
      // node_pcap reuses one buffer for every packet: copy before anyone keeps a reference.
      const data = Buffer.from(p.buf.subarray(0, Math.min(caplen, p.buf.length)));
      const eth = decodeEthernet(data);
      if (eth === undefined) {
        this.counters.malformed++;
        return;
      }
      const frame: CapturedFrame = { data, receivedAt, wireUs };
      for (const c of s.consumers) {
        if (!c.etherTypes.includes(eth.etherType)) continue;
        try {
          c.onFrame(frame, eth);
        } catch (err) {
          this.counters.consumerErrors++;
          this.#log?.error({ iface: s.iface, err: describe(err) }, "pcap consumer threw");
        }
      }
    } catch (err) {
      this.counters.consumerErrors++;
      this.#log?.error({ iface: s.iface, err: describe(err) }, "pcap dispatch failed");
    }
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The process-wide sessions used by the real checks. */
export const sharedPcap = new PcapSessions({
  mac: (iface) => readInterfaceMac(iface),
  ifindex: (iface) => readSysfs(iface, "ifindex"),
  linkEpoch: (iface) => readSysfs(iface, "carrier_changes"),
  // operstate "unknown" is what drivers without carrier reporting say: treat it as up.
  carrier: (iface) =>
    !["down", "lowerlayerdown", "notpresent"].includes(readSysfs(iface, "operstate") ?? "down"),
});
