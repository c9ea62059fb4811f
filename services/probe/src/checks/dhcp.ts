// DHCP (dhcp area): DISCOVER from the probe's interface as a raw Ethernet broadcast through the
// shared pcap session (works with or without an address of its own), every OFFER within the window
// collected and listed, optionally REQUEST→ACK and RELEASE so no lease is kept. Offered options are
// checked against expectations; a server outside the allow-list is a rogue DHCP server.
//
// A server is who sent the frame — its source MAC and source IP — never option 54: the server
// identifier is just bytes a rogue can set to the real server's address (docs/lan-security.md).
// The ACK must come from the MAC and IP the REQUEST chose; one from anywhere else is a forgery,
// rejected and reported, and the RELEASE goes to the chosen server only.
//
// Latency is measured on the probe's monotonic clock from just before the DISCOVER is handed to
// the kernel to the moment the OFFER reaches the probe's code (libpcap immediate mode).

import { randomInt } from "node:crypto";
import { Type, type Static } from "@sinclair/typebox";
import type { CheckContext, CheckError, CheckKind, Measurement, Status } from "./check.ts";
import {
  DHCP_CLIENT_PORT,
  DHCP_SERVER_PORT,
  DHCP_TYPE,
  dhcpTypeName,
  encodeDhcp,
  parseDhcp,
  type DhcpClientMessage,
  type DhcpMessage,
} from "../net/dhcp-message.ts";
import {
  BROADCAST_MAC,
  decodeIpv4Udp,
  encodeEthernet,
  encodeIpv4Udp,
  ETHERTYPE,
  normalizeMac,
  type EthernetFrame,
} from "../net/ethernet.ts";
import { isInterfaceName } from "../net/interfaces.ts";
import { latencyFromWireMs, wallMinusMonoUs } from "../../../contract/src/net/wall-clock.ts";
import { sharedPcap, type CapturedFrame, type FrameIo, type FrameTap } from "../net/pcap-session.ts";
import { round } from "./common/round.ts";
import { lldp } from "./lldp.ts";

const ipv4 = { pattern: "^(\\d{1,3}\\.){3}\\d{1,3}$" };
const ipv4OrEmpty = { pattern: "^((\\d{1,3}\\.){3}\\d{1,3})?$" };

const options = Type.Object(
  {
    wait_ms: Type.Integer({
      minimum: 100,
      maximum: 60000,
      default: 2000,
      description:
        "how long to collect OFFERs after the DISCOVER (every server that answers within it is listed); " +
        "also the wait for the ACK",
    }),
    client_mac: Type.String({
      default: "",
      pattern: "^(([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2})?$",
      description:
        "client hardware address in the DISCOVER; empty = the interface's own MAC. A fixed one keeps " +
        "the probe to one lease (one pool entry) whatever interface it runs on",
    }),
    request: Type.Boolean({
      default: false,
      description: "complete REQUEST→ACK with the chosen server (ack_latency_ms), then RELEASE the lease",
    }),
    release: Type.Boolean({
      default: true,
      description: "after an ACK, send RELEASE so the probe holds no lease (request: true only)",
    }),
    broadcast_flag: Type.Boolean({
      default: true,
      description: "set the BOOTP broadcast flag so servers broadcast their answers (RFC 2131 §4.1)",
    }),
    allowed_servers: Type.Array(
      Type.String({ pattern: "^((\\d{1,3}\\.){3}\\d{1,3}|([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2})$" }),
      {
        default: [],
        description:
          "source IPs or MACs of the legitimate DHCP servers (or of the relay, for a relayed LAN); " +
          "an answer from any other frame source is a rogue (fail), whatever server id (option 54) " +
          "it claims. Empty: no allow-list, but two or more servers warn",
      },
    ),
    expect_router: Type.String({
      ...ipv4OrEmpty,
      default: "",
      description: "option 3 must list this router first; empty = not checked",
    }),
    expect_dns: Type.Array(Type.String(ipv4), {
      default: [],
      description: "option 6 must include each of these DNS servers",
    }),
    expect_domain: Type.String({
      default: "",
      description: "option 15 must be this domain; empty = not checked",
    }),
    expect_ntp: Type.Array(Type.String(ipv4), {
      default: [],
      description: "option 42 must include each of these NTP servers",
    }),
    expect_subnet_mask: Type.String({
      ...ipv4OrEmpty,
      default: "",
      description: "option 1 must be this mask; empty = not checked",
    }),
    expect_tftp: Type.String({
      default: "",
      description:
        "option 66 (TFTP server name) or 150 (TFTP addresses) must carry this; empty = not checked",
    }),
    min_lease_s: Type.Integer({
      minimum: 0,
      default: 0,
      description: "option 51 lease time must be at least this many seconds; 0 = not checked",
    }),
    vlan: Type.Union([Type.Integer({ minimum: 0, maximum: 4094 }), Type.Literal("auto-voice")], {
      default: 0,
      description:
        "802.1Q VLAN to test on a trunk port: the DISCOVER goes out tagged with it and only answers tagged " +
        "with it count (no VLAN interface needed: the frames are tagged in user space). 0 = the untagged LAN; " +
        "auto-voice = the voice VLAN the switch or phone advertises (CDP / LLDP-MED), as the lldp check on " +
        "this interface last heard it",
    }),
    vendor_class: Type.String({
      default: "",
      maxLength: 255,
      description: "option 60 vendor class sent with the DISCOVER (e.g. to get phone options 43/66/150)",
    }),
  },
  { additionalProperties: false },
);

/** Options of a dhcp check, defaults filled in by the config loader. */
export type DhcpOptions = Static<typeof options>;

/** The I/O a dhcp check uses; tests pass a fake LAN. */
export interface DhcpDependencies {
  io: FrameIo;
  /** The voice VLAN advertised on an interface (the lldp check's), for `vlan: auto-voice`. */
  voiceVlan?: (iface: string) => number | undefined;
}

/** Builds the dhcp check over the given I/O (docs/architecture.md, "Conventions"). */
export function createDhcpCheck(deps: DhcpDependencies): CheckKind<typeof options> {
  return {
    kind: "dhcp",
    needs: ["net_raw"],
    defaultArea: "dhcp",
    options,
    run: (target, opts, ctx, signal) => {
      const iface = target.trim();
      let vlan = opts.vlan;
      if (vlan === "auto-voice") {
        const advertised = deps.voiceVlan?.(iface);
        if (advertised === undefined)
          return Promise.resolve(
            errorResult(
              "no_voice_vlan",
              `no voice VLAN advertised on ${iface} (CDP or LLDP-MED, as the lldp check hears it): ` +
                "add an lldp check on this interface, or set vlan to the voice VLAN's number",
            ),
          );
        vlan = advertised;
      }
      return new DhcpExchange(deps.io, iface, { ...opts, vlan }, ctx, signal).run();
    },
  };
}

/** DHCP discovery over the process-wide pcap session of the interface. */
export const dhcp: CheckKind<typeof options> = createDhcpCheck({
  io: sharedPcap,
  voiceVlan: (iface) => lldp.voiceVlan(iface),
});

/** One server's answer, as reported in `detail.servers`. */
interface ServerAnswer {
  /** option 54 as the message claims it: not trusted, reported */
  server_id: string | null;
  /** option 54 names another address than the frame's source (and no relay is involved) */
  server_id_mismatch: boolean;
  mac: string;
  ip: string;
  offered_address: string;
  latency_ms: number;
  /** which clock timed latency_ms: the OFFER's kernel capture stamp, or its delivery to user space */
  timestamps: "wire" | "user";
  wire_us: number;
  allowed: boolean | null;
  relay: string | null;
  lease_s: number | null;
  subnet_mask: string | null;
  router: string[];
  dns: string[];
  domain: string | null;
  ntp: string[];
  vendor_specific_hex: string | null;
  tftp_server: string | null;
  tftp_servers: string[];
  duplicates: number;
}

type Phase = "offers" | "ack" | "done";

class DhcpExchange {
  readonly #io: FrameIo;
  readonly #iface: string;
  readonly #opts: DhcpOptions & { vlan: number };
  readonly #ctx: CheckContext;
  readonly #signal: AbortSignal;
  readonly #xid = randomInt(0, 0xffffffff);
  readonly #servers: ServerAnswer[] = [];
  #clientMac = "";
  #tap: FrameTap | undefined;
  #phase: Phase = "offers";
  #sentAt = 0n;
  #requestSentAt = 0n;
  /** wall − monotonic clock (µs), measured right before each send: turns capture stamps into latencies */
  #wallOffsetUs = 0;
  #ack: { message: DhcpMessage; latencyMs: number; mac: string } | undefined;
  #nak: DhcpMessage | undefined;
  #chosen: ServerAnswer | undefined;
  /** ACK/NAK for our REQUEST from a source other than the chosen server's MAC and IP */
  readonly #forged: Array<{ type: string; mac: string; ip: string; server_id: string | null }> = [];
  #malformed = 0;
  #ignored = 0;
  #otherTypes = 0;
  #aborted = false;
  #wake: () => void = () => {};
  #released = false;
  #sendError: CheckError | undefined;

  constructor(
    io: FrameIo,
    iface: string,
    opts: DhcpOptions & { vlan: number },
    ctx: CheckContext,
    signal: AbortSignal,
  ) {
    this.#io = io;
    this.#iface = iface;
    this.#opts = opts;
    this.#ctx = ctx;
    this.#signal = signal;
  }

  /** The interface, and the VLAN when testing one: where the message says it looked. */
  get #segment(): string {
    return this.#opts.vlan > 0 ? `${this.#iface} VLAN ${this.#opts.vlan}` : this.#iface;
  }

  async run(): Promise<Measurement> {
    if (!isInterfaceName(this.#iface)) {
      return errorResult(
        "invalid_target",
        `target must be an interface name such as eth0, got "${this.#iface}"`,
      );
    }
    const tap = this.#io.open(this.#iface, {
      etherTypes: [ETHERTYPE.ipv4],
      onFrame: (frame, eth) => this.#onFrame(frame, eth),
    });
    if ("code" in tap) return errorResult(tap.code, tap.message);
    this.#tap = tap;
    const onAbort = (): void => {
      this.#aborted = true;
      this.#wake();
    };
    this.#signal.addEventListener("abort", onAbort, { once: true });
    try {
      this.#clientMac = normalizeMac(this.#opts.client_mac) ?? tap.mac;
      if (normalizeMac(this.#clientMac) === undefined) {
        return errorResult("interface_missing", `interface ${this.#iface} has no MAC address`);
      }
      if (this.#signal.aborted) this.#aborted = true;
      else {
        const sent = this.#send({ type: DHCP_TYPE.discover });
        this.#sentAt = sent.at;
        this.#sendError = sent.error;
        if (this.#sendError === undefined) await this.#sleep(this.#opts.wait_ms);
        if (this.#opts.request && !this.#aborted && this.#sendError === undefined) await this.#request();
      }
      return this.#measure();
    } finally {
      this.#phase = "done";
      this.#signal.removeEventListener("abort", onAbort);
      tap.close();
    }
  }

  async #request(): Promise<void> {
    const chosen = this.#servers.find((s) => s.allowed !== false) ?? undefined;
    if (chosen === undefined) return;
    this.#chosen = chosen;
    this.#phase = "ack";
    const { at, error } = this.#send({
      type: DHCP_TYPE.request,
      requestedIp: chosen.offered_address,
      serverId: chosen.server_id ?? chosen.ip,
    });
    this.#requestSentAt = at;
    if (error !== undefined) {
      this.#sendError = error;
      return;
    }
    await this.#sleep(this.#opts.wait_ms, () => this.#ack !== undefined || this.#nak !== undefined);
    const ack = this.#ack;
    if (ack !== undefined && this.#opts.release) {
      // RFC 2131 §4.4.6: RELEASE is unicast from the leased address to the server; no answer comes.
      // Option 54 carries what the server calls itself; the frame goes to the chosen server's
      // own IP and MAC (a forged ACK never gets this far).
      const server = chosen.server_id ?? chosen.ip;
      const payload = encodeDhcp({
        type: DHCP_TYPE.release,
        xid: randomInt(0, 0xffffffff),
        chaddr: this.#clientMac,
        broadcast: false,
        ciaddr: ack.message.yiaddr,
        serverId: server,
      });
      const ip = encodeIpv4Udp({
        srcIp: ack.message.yiaddr,
        dstIp: chosen.ip,
        srcPort: DHCP_CLIENT_PORT,
        dstPort: DHCP_SERVER_PORT,
        payload,
      });
      this.#released =
        this.#tap?.inject(encodeEthernet(ack.mac, this.#clientMac, ETHERTYPE.ipv4, ip, this.#opts.vlan)) ===
        undefined;
    }
  }

  /** Encodes and injects one message; `at` is the hrtime right before the inject. */
  #send(fields: Pick<DhcpClientMessage, "type" | "requestedIp" | "serverId">): {
    at: bigint;
    error: CheckError | undefined;
  } {
    const payload = encodeDhcp({
      ...fields,
      xid: this.#xid,
      chaddr: this.#clientMac,
      broadcast: this.#opts.broadcast_flag,
      ...(this.#opts.vendor_class === "" ? {} : { vendorClass: this.#opts.vendor_class }),
    });
    const ip = encodeIpv4Udp({
      srcIp: "0.0.0.0",
      dstIp: "255.255.255.255",
      srcPort: DHCP_CLIENT_PORT,
      dstPort: DHCP_SERVER_PORT,
      payload,
    });
    const frame = encodeEthernet(BROADCAST_MAC, this.#clientMac, ETHERTYPE.ipv4, ip, this.#opts.vlan);
    this.#wallOffsetUs = wallMinusMonoUs();
    const at = process.hrtime.bigint();
    return { at, error: this.#tap?.inject(frame) };
  }

  /** Waits `ms`, or less when aborted or when `done()` turns true after a frame. */
  #sleep(ms: number, done: () => boolean = () => false): Promise<void> {
    if (this.#aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(finish, ms);
      function finish(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = () => {
        if (this.#aborted || done()) finish();
      };
    });
  }

  #onFrame(frame: CapturedFrame, eth: EthernetFrame): void {
    if (this.#phase === "done") return;
    // A frame of another VLAN (or untagged, when testing a VLAN) is not this segment's. VLAN id 0 is
    // a priority tag (802.1p) on the untagged LAN.
    if ((eth.vlan ?? 0) !== this.#opts.vlan) {
      this.#ignored++;
      return;
    }
    // The shared session also captures ICMP echoes (for the icmp check's timestamps): well-formed
    // IPv4 that is not UDP is someone else's traffic, not a malformed DHCP frame.
    if (eth.payload.length >= 20 && (eth.payload[0] ?? 0) >> 4 === 4 && eth.payload[9] !== 17) {
      this.#ignored++;
      return;
    }
    const udp = decodeIpv4Udp(eth.payload);
    if (udp === undefined) {
      this.#malformed++;
      return;
    }
    if (udp.srcPort !== DHCP_SERVER_PORT || udp.dstPort !== DHCP_CLIENT_PORT) {
      this.#ignored++; // our own requests echoed by a capture double, other UDP on 67/68
      return;
    }
    const m = parseDhcp(udp.payload);
    if (m === undefined) {
      this.#malformed++;
      return;
    }
    if (m.op !== 2 || m.xid !== this.#xid || m.chaddr !== this.#clientMac) {
      this.#ignored++; // another client's exchange
      return;
    }
    if (m.type === DHCP_TYPE.offer && this.#phase === "offers")
      this.#addOffer(m, eth, udp.srcIp, latencyFromWireMs(this.#sentAt, this.#wallOffsetUs, frame), frame);
    else if (
      (m.type === DHCP_TYPE.ack || m.type === DHCP_TYPE.nak) &&
      this.#phase === "ack" &&
      (eth.src !== this.#chosen?.mac || udp.srcIp !== this.#chosen.ip)
    ) {
      if (this.#forged.length < 16)
        this.#forged.push({
          type: dhcpTypeName(m.type),
          mac: eth.src,
          ip: udp.srcIp,
          server_id: m.serverId ?? null,
        });
    } else if (m.type === DHCP_TYPE.ack && this.#phase === "ack" && this.#ack === undefined) {
      this.#ack = {
        message: m,
        latencyMs: latencyFromWireMs(this.#requestSentAt, this.#wallOffsetUs, frame).ms,
        mac: eth.src,
      };
    } else if (m.type === DHCP_TYPE.nak && this.#phase === "ack") this.#nak = m;
    else {
      this.#otherTypes++;
      this.#ctx.log.debug(
        { xid: m.xid, type: dhcpTypeName(m.type), from: eth.src },
        "dhcp: unexpected message",
      );
    }
    this.#wake();
  }

  #addOffer(
    m: DhcpMessage,
    eth: EthernetFrame,
    srcIp: string,
    latency: { ms: number; stamps: "wire" | "user" },
    frame: CapturedFrame,
  ): void {
    const serverId = m.serverId ?? null;
    const same = this.#servers.find((s) => s.ip === srcIp && s.mac === eth.src);
    if (same !== undefined) {
      same.duplicates++;
      return;
    }
    this.#servers.push({
      server_id: serverId,
      server_id_mismatch: serverId !== null && serverId !== srcIp && m.giaddr === "0.0.0.0",
      mac: eth.src,
      ip: srcIp,
      offered_address: m.yiaddr,
      latency_ms: round(latency.ms),
      timestamps: latency.stamps,
      wire_us: frame.wireUs,
      allowed: this.#allowed(srcIp, eth.src),
      relay: m.giaddr === "0.0.0.0" ? null : m.giaddr,
      lease_s: m.leaseS ?? null,
      subnet_mask: m.subnetMask ?? null,
      router: m.router,
      dns: m.dns,
      domain: m.domain ?? null,
      ntp: m.ntp,
      vendor_specific_hex: m.vendorSpecificHex ?? null,
      tftp_server: m.tftpServer ?? null,
      tftp_servers: m.tftpServers,
      duplicates: 0,
    });
  }

  /** Whether the frame's source is on the allow-list: by MAC, or by source IP (never option 54). */
  #allowed(ip: string, mac: string): boolean | null {
    const list = this.#opts.allowed_servers;
    if (list.length === 0) return null;
    return list.some((entry) => {
      const e = entry.trim().toLowerCase();
      const asMac = normalizeMac(e);
      return asMac !== undefined ? asMac === mac : e === ip;
    });
  }

  #measure(): Measurement {
    const servers = this.#servers;
    const first = servers.reduce<ServerAnswer | undefined>(
      (a, s) => (a === undefined || s.latency_ms < a.latency_ms ? s : a),
      undefined,
    );
    const rogues = servers.filter((s) => s.allowed === false);
    const metrics: Record<string, number> = {
      offers: servers.length + servers.reduce((n, s) => n + s.duplicates, 0),
      servers: servers.length,
      rogue_servers: rogues.length,
      forged_replies: this.#forged.length,
      malformed_frames: this.#malformed,
    };
    if (first !== undefined) metrics.offer_latency_ms = first.latency_ms;
    const legit = servers.find((s) => s.allowed !== false);
    if (legit?.lease_s !== null && legit?.lease_s !== undefined) metrics.lease_s = legit.lease_s;
    if (this.#ack !== undefined) metrics.ack_latency_ms = round(this.#ack.latencyMs);
    const detail: Record<string, unknown> = {
      interface: this.#iface,
      client_mac: this.#clientMac,
      xid: this.#xid,
      wait_ms: this.#opts.wait_ms,
      servers,
      ignored_frames: this.#ignored,
    };
    if (this.#opts.vlan > 0) detail.vlan = this.#opts.vlan;
    if (this.#otherTypes > 0) detail.unexpected_messages = this.#otherTypes;
    if (this.#forged.length > 0) detail.forged_replies = this.#forged;
    if (this.#ack !== undefined) {
      detail.ack = {
        server_id: this.#ack.message.serverId ?? null,
        address: this.#ack.message.yiaddr,
        lease_s: this.#ack.message.leaseS ?? null,
        released: this.#released,
      };
    }
    if (this.#nak !== undefined)
      detail.nak = { server_id: this.#nak.serverId ?? null, message: this.#nak.message ?? null };
    if (this.#aborted) detail.aborted = true;
    const failure = this.#failure(servers, rogues, legit);
    if (failure === undefined) return { status: "ok", metrics, detail };
    if (failure.mismatches !== undefined) detail.mismatches = failure.mismatches;
    return { status: failure.status, metrics, detail, error: failure.error };
  }

  #failure(
    servers: ServerAnswer[],
    rogues: ServerAnswer[],
    legit: ServerAnswer | undefined,
  ): { status: Status; error: CheckError; mismatches?: string[] } | undefined {
    if (this.#sendError !== undefined) return { status: "error", error: this.#sendError };
    if (servers.length === 0) {
      const how = this.#aborted ? "before the run was aborted" : `within ${this.#opts.wait_ms} ms`;
      return {
        status: "fail",
        error: {
          code: "no_offer",
          message:
            `no DHCP server answered the DISCOVER on ${this.#segment} ${how}: the DHCP server is down or ` +
            `unreachable, DHCP is blocked (switch port, VLAN, snooping), or its address pool is exhausted`,
        },
      };
    }
    if (rogues.length > 0) {
      const list = rogues.map((r) => `${describeServer(r)} offering ${r.offered_address}`).join("; ");
      return {
        status: "fail",
        error: {
          code: "rogue_dhcp",
          message: `rogue DHCP server${rogues.length > 1 ? "s" : ""} on ${this.#opts.vlan > 0 ? `VLAN ${this.#opts.vlan}` : "the LAN"}: ${list}; allowed: ${this.#opts.allowed_servers.join(", ")}`,
        },
      };
    }
    const forged = this.#forged[0];
    if (forged !== undefined) {
      const chosen = this.#chosen;
      return {
        status: "fail",
        error: {
          code: "forged_dhcp_reply",
          message:
            `a DHCP${forged.type} for the probe's REQUEST came from IP ${forged.ip} MAC ${forged.mac}` +
            `${forged.server_id !== null ? ` (claiming server id ${forged.server_id})` : ""}, not from the chosen server ` +
            `${chosen === undefined ? "" : describeServer(chosen)}: rejected — a rogue DHCP server is answering`,
        },
      };
    }
    if (this.#nak !== undefined) {
      return {
        status: "fail",
        error: {
          code: "nak",
          message: `server ${this.#nak.serverId ?? "?"} refused the REQUEST (DHCPNAK${this.#nak.message ? `: ${this.#nak.message}` : ""})`,
        },
      };
    }
    if (this.#opts.request && this.#ack === undefined && !this.#aborted && legit !== undefined) {
      return {
        status: "fail",
        error: {
          code: "no_ack",
          message: `server ${legit.server_id ?? legit.ip} offered ${legit.offered_address} but did not ACK the REQUEST within ${this.#opts.wait_ms} ms`,
        },
      };
    }
    const mismatches = legit === undefined ? [] : this.#mismatches(legit);
    if (mismatches.length > 0) {
      return {
        status: "fail",
        error: {
          code: "option_mismatch",
          message: `DHCP server ${legit?.server_id ?? legit?.ip} hands out unexpected settings: ${mismatches.join("; ")}`,
        },
        mismatches,
      };
    }
    if (this.#opts.allowed_servers.length === 0 && servers.length > 1) {
      return {
        status: "warn",
        error: {
          code: "multiple_dhcp_servers",
          message: `${servers.length} DHCP servers answered (${servers.map(describeServer).join(", ")}); set allowed_servers to flag rogues`,
        },
      };
    }
    return undefined;
  }

  #mismatches(s: ServerAnswer): string[] {
    const o = this.#opts;
    const out: string[] = [];
    const list = (v: string[]): string => (v.length === 0 ? "none" : v.join(", "));
    if (o.expect_router !== "" && s.router[0] !== o.expect_router)
      out.push(`router is ${list(s.router)}, expected ${o.expect_router}`);
    const missingDns = o.expect_dns.filter((d) => !s.dns.includes(d));
    if (missingDns.length > 0) out.push(`DNS servers are ${list(s.dns)}, missing ${missingDns.join(", ")}`);
    if (o.expect_domain !== "" && s.domain !== o.expect_domain)
      out.push(`domain is ${s.domain ?? "none"}, expected ${o.expect_domain}`);
    const missingNtp = o.expect_ntp.filter((d) => !s.ntp.includes(d));
    if (missingNtp.length > 0) out.push(`NTP servers are ${list(s.ntp)}, missing ${missingNtp.join(", ")}`);
    if (o.expect_subnet_mask !== "" && s.subnet_mask !== o.expect_subnet_mask)
      out.push(`subnet mask is ${s.subnet_mask ?? "none"}, expected ${o.expect_subnet_mask}`);
    if (o.expect_tftp !== "" && s.tftp_server !== o.expect_tftp && !s.tftp_servers.includes(o.expect_tftp))
      out.push(`TFTP server (66/150) is ${s.tftp_server ?? list(s.tftp_servers)}, expected ${o.expect_tftp}`);
    if (o.min_lease_s > 0 && (s.lease_s === null || s.lease_s < o.min_lease_s))
      out.push(`lease is ${s.lease_s ?? "missing"} s, expected at least ${o.min_lease_s} s`);
    return out;
  }
}

/** A server by what the frame proves (source IP and MAC), with the option 54 it claims when that differs. */
function describeServer(s: ServerAnswer): string {
  const claim = s.server_id_mismatch ? ` claiming server id ${s.server_id ?? ""}` : "";
  return `${s.ip} (MAC ${s.mac}${claim})`;
}

function errorResult(code: string, message: string): Measurement {
  return { status: "error", metrics: {}, error: { code, message } };
}
