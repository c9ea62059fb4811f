// Cisco Discovery Protocol v1/v2 decoding. CDP rides in 802.3 frames with an LLC/SNAP header
// (DSAP/SSAP 0xaa, control 0x03, OUI 00:00:0c, protocol id 0x2000) to 01:00:0c:cc:cc:cc. The PDU is
// version (1), TTL (1), checksum (2), then type/length/value TLVs whose length includes their
// 4-byte header. Decoded into the same neighbour shape as LLDP so the lldp check reports both side
// by side. Like decodeLldp: every length is checked, unknown TLVs are skipped, a malformed PDU
// decodes to undefined — never a throw.

import { formatIpv4 } from "./ethernet.ts";
import type { LldpNeighbor } from "./lldp-tlv.ts";
import { printable } from "../../../contract/src/printable-text.ts";

/** CDP's multicast destination (Cisco's "CDP/VTP" group). */
export const CDP_MULTICAST = "01:00:0c:cc:cc:cc";

const SNAP_HEADER = Buffer.from([0xaa, 0xaa, 0x03, 0x00, 0x00, 0x0c, 0x20, 0x00]);

/** CDP capability bits (Cisco's CDP spec, TLV 0x0004) mapped onto the LLDP capability names. */
const CDP_CAPABILITIES: ReadonlyArray<[number, string]> = [
  [0x01, "router"],
  [0x02, "bridge"], // transparent bridge
  [0x04, "bridge"], // source-route bridge
  [0x08, "bridge"], // switch
  [0x10, "station_only"], // host
  [0x40, "repeater"],
  [0x80, "telephone"],
];

/** True when an 802.3 frame's LLC payload is a CDP PDU (SNAP OUI 00:00:0c, PID 0x2000). */
export function isCdpLlc(llc: Buffer): boolean {
  return llc.length >= SNAP_HEADER.length && llc.subarray(0, SNAP_HEADER.length).equals(SNAP_HEADER);
}

/** Decodes a CDP PDU from the LLC payload of an 802.3 frame; undefined when not CDP or malformed. */
export function decodeCdp(llc: Buffer): LldpNeighbor | undefined {
  if (!isCdpLlc(llc)) return undefined;
  const pdu = llc.subarray(SNAP_HEADER.length);
  if (pdu.length < 4) return undefined;
  const version = pdu[0] ?? 0;
  if (version !== 1 && version !== 2) return undefined;
  const n: LldpNeighbor = {
    protocol: "cdp",
    cdpVersion: version,
    chassisId: "",
    chassisIdSubtype: 7, // "locally assigned": CDP's device id is a free-form name
    portId: "",
    portIdSubtype: 5, // interface name
    ttlS: pdu[1] ?? 0,
    capabilities: [],
    managementAddresses: [],
    vlans: [],
    unknownTlvs: 0,
  };
  let i = 4;
  while (i + 4 <= pdu.length) {
    const type = pdu.readUInt16BE(i);
    const len = pdu.readUInt16BE(i + 2);
    if (len < 4 || i + len > pdu.length) return undefined;
    const v = pdu.subarray(i + 4, i + len);
    i += len;
    if (!decodeTlv(type, v, n)) return undefined;
  }
  if (i !== pdu.length) return undefined;
  // A CDP neighbour without a device id and port id cannot be told apart from another one.
  if (n.chassisId === "" || n.portId === "") return undefined;
  return n;
}

function decodeTlv(type: number, v: Buffer, n: LldpNeighbor): boolean {
  switch (type) {
    case 0x0001: // device id
      n.chassisId = text(v);
      n.systemName = n.chassisId;
      return true;
    case 0x0002: // addresses of the sending interface
    case 0x0016: {
      // management addresses
      const addrs = decodeAddresses(v);
      if (addrs === undefined) return false;
      for (const a of addrs) if (!n.managementAddresses.includes(a)) n.managementAddresses.push(a);
      return true;
    }
    case 0x0003:
      n.portId = text(v);
      return true;
    case 0x0004: {
      if (v.length < 4) return false;
      const bits = v.readUInt32BE(0);
      n.capabilities = [
        ...new Set(CDP_CAPABILITIES.filter(([bit]) => (bits & bit) !== 0).map(([, name]) => name)),
      ];
      return true;
    }
    case 0x0005:
      n.systemDescription = text(v);
      return true;
    case 0x0006:
      n.platform = text(v);
      return true;
    case 0x000a:
      if (v.length < 2) return false;
      n.portVlanId = v.readUInt16BE(0);
      return true;
    case 0x000b:
      if (v.length < 1) return false;
      n.duplex = v[0] === 1 ? "full" : "half";
      return true;
    case 0x000e: // VoIP VLAN reply: one data byte, then the voice VLAN id
      if (v.length < 3) return false;
      n.voiceVlanId = v.readUInt16BE(1);
      return true;
    default:
      n.unknownTlvs++;
      return true;
  }
}

/** CDP address list: count (4), then per address protocol type, length, protocol, address length, address. */
function decodeAddresses(v: Buffer): string[] | undefined {
  if (v.length < 4) return undefined;
  const count = v.readUInt32BE(0);
  const out: string[] = [];
  let i = 4;
  for (let k = 0; k < count; k++) {
    if (i + 2 > v.length) return undefined;
    const protoType = v[i] ?? 0;
    const protoLen = v[i + 1] ?? 0;
    const proto = v.subarray(i + 2, i + 2 + protoLen);
    i += 2 + protoLen;
    if (proto.length !== protoLen || i + 2 > v.length) return undefined;
    const addrLen = v.readUInt16BE(i);
    const addr = v.subarray(i + 2, i + 2 + addrLen);
    i += 2 + addrLen;
    if (addr.length !== addrLen) return undefined;
    // NLPID protocol 0xcc is IPv4 (the only family the probe reports from CDP).
    if (protoType === 1 && protoLen === 1 && proto[0] === 0xcc && addrLen === 4) out.push(formatIpv4(addr));
    if (out.length >= 8) break;
  }
  return out;
}

function text(v: Buffer): string {
  return printable(v.toString("utf8").replace(/\0+$/, ""));
}
