// ARP watch between runs (the gateway check's, as `link` watches the carrier): every ARP frame on
// the interface is looked at for the addresses being watched, so a spoofer is seen whatever its
// period, not only when it happens to answer inside a run's listening window.
//
// A "claim" is an ARP frame whose sender protocol address is a watched IPv4 address. It is read
// loosely on purpose: a frame with a wrong hardware type, protocol type or lengths still poisons
// the Linux ARP cache when its addresses are where the kernel looks (the kernel accepts IEEE 802
// hardware type on Ethernet, for one), so such a frame claiming the gateway counts as an attack
// (`malformed`), not as noise to skip. Tagged frames belong to another VLAN and are not looked at.
//
// Bounded: at most MAX_CLAIMANTS MACs per watched address between two runs (the rest are counted
// as dropped), so a flood of forged senders costs a counter, not memory.

import { ARP_OP } from "./arp-packet.ts";
import { ETHERTYPE, formatIpv4, type EthernetFrame } from "./ethernet.ts";
import type { FrameConsumer, FrameIo } from "./pcap-session.ts";

/** MACs remembered per watched address between two runs. */
export const MAX_CLAIMANTS = 32;

/** One sender claiming a watched address since the last look. */
export interface ArpClaimant {
  /** The ARP sender hardware address (what a cache learns), as aa:bb:… (any length). */
  mac: string;
  /** The Ethernet source, when it differs from the ARP sender (a forged frame). */
  ethernetSource?: string;
  frames: number;
  /** Frames among them that are not well-formed Ethernet/IPv4 ARP. */
  malformed: number;
  /** Hardware type of the last malformed one. */
  htype?: number;
  /** ms (the watch's clock). */
  firstAt: number;
  lastAt: number;
}

/** A claim as read from one ARP payload. */
export interface ArpClaimFrame {
  senderMac: string;
  senderIp: string;
  wellFormed: boolean;
  htype: number;
}

/**
 * Reads the sender of an ARP payload wherever its own length fields put it; undefined when it
 * carries no IPv4 sender address (protocol length not 4, or too short for its lengths).
 */
export function readArpClaim(payload: Buffer): ArpClaimFrame | undefined {
  if (payload.length < 8) return undefined;
  const htype = payload.readUInt16BE(0);
  const ptype = payload.readUInt16BE(2);
  const hlen = payload[4]!;
  const plen = payload[5]!;
  const op = payload.readUInt16BE(6);
  if (plen !== 4 || hlen === 0 || payload.length < 8 + 2 * hlen + 2 * plen) return undefined;
  const senderMac = [...payload.subarray(8, 8 + hlen)].map((b) => b.toString(16).padStart(2, "0")).join(":");
  const senderIp = formatIpv4(payload, 8 + hlen);
  const wellFormed =
    htype === 1 && ptype === 0x0800 && hlen === 6 && (op === ARP_OP.request || op === ARP_OP.reply);
  return { senderMac, senderIp, wellFormed, htype };
}

/** The watch on one interface. */
export class ArpWatch {
  readonly #now: () => number;
  readonly #claims = new Map<string, Map<string, ArpClaimant>>();
  /** Watched address → its known owner (claims by it are not news). */
  readonly #owners = new Map<string, string | undefined>();
  readonly #onForeign = new Set<(ip: string) => void>();
  #ownMac = "";
  /** ARP frames seen, and those dropped by the claimant bound, since the watch started. */
  frames = 0;
  dropped = 0;
  readonly consumer: FrameConsumer;

  constructor(now: () => number) {
    this.#now = now;
    this.consumer = {
      etherTypes: [ETHERTYPE.arp],
      onFrame: (_frame, eth) => this.#onFrame(eth),
    };
  }

  /** Opens (or re-opens, after a link bounce) the capture; the error when it cannot. */
  open(io: FrameIo, iface: string): { code: string; message: string } | undefined {
    const tap = io.open(iface, this.consumer);
    if ("code" in tap) return tap;
    this.#ownMac = tap.mac;
    return undefined;
  }

  /** Watches `ip`, whose owner is `mac` (undefined: not known yet, every claimant is kept). */
  watch(ip: string, mac: string | undefined): void {
    this.#owners.set(ip, mac);
  }

  /** Called with the address when a claimant other than its owner is heard. */
  onForeign(f: (ip: string) => void): () => void {
    this.#onForeign.add(f);
    return () => this.#onForeign.delete(f);
  }

  /** The claimants of `ip` other than its owner (and any malformed claim) since the last take; forgets them. */
  take(ip: string): ArpClaimant[] {
    const c = this.#claims.get(ip);
    this.#claims.delete(ip);
    return c === undefined ? [] : [...c.values()];
  }

  #onFrame(eth: EthernetFrame): void {
    if (eth.vlan !== undefined) return;
    this.frames++;
    // Most ARP on a LAN is about other addresses: look at the sender address before decoding more.
    const p = eth.payload;
    if (p.length < 8 || p[5] !== 4 || p.length < 8 + (p[4] ?? 0) + 4) return;
    if (!this.#owners.has(formatIpv4(p, 8 + (p[4] ?? 0)))) return;
    const claim = readArpClaim(p);
    if (claim === undefined) return;
    if (claim.senderMac === this.#ownMac) return; // our own kernel
    const owner = this.#owners.get(claim.senderIp);
    if (claim.wellFormed && claim.senderMac === owner) return; // the gateway itself: not news
    let byMac = this.#claims.get(claim.senderIp);
    if (byMac === undefined) this.#claims.set(claim.senderIp, (byMac = new Map<string, ArpClaimant>()));
    let c = byMac.get(claim.senderMac);
    if (c === undefined) {
      if (byMac.size >= MAX_CLAIMANTS) {
        this.dropped++;
        return;
      }
      const now = this.#now();
      c = { mac: claim.senderMac, frames: 0, malformed: 0, firstAt: now, lastAt: now };
      byMac.set(claim.senderMac, c);
    }
    c.frames++;
    c.lastAt = this.#now();
    if (eth.src !== claim.senderMac) c.ethernetSource = eth.src;
    if (!claim.wellFormed) {
      c.malformed++;
      c.htype = claim.htype;
    }
    if (owner !== undefined) for (const f of this.#onForeign) f(claim.senderIp);
  }
}

/** The kernel's ARP cache entry for `ip` on `iface` (/proc/net/arp), when complete. */
export function parseProcNetArp(text: string, ip: string, iface: string): string | undefined {
  for (const line of text.split("\n").slice(1)) {
    const [addr, , flags, mac, , dev] = line.trim().split(/\s+/);
    if (addr !== ip || dev !== iface || mac === undefined) continue;
    // ATF_COM (0x2): the entry is complete; an incomplete one has 00:00:00:00:00:00.
    if ((Number.parseInt(flags ?? "0", 16) & 0x2) === 0) return undefined;
    return mac.toLowerCase();
  }
  return undefined;
}
