// LLDPDU decoding (IEEE 802.1AB-2016 §8), with the 802.1 (VLAN) and 802.3 (MAC/PHY, PoE)
// organisationally specific TLVs. The switch is not trusted: every length is checked against the
// frame, unknown TLVs are skipped, and a malformed LLDPDU decodes to undefined — never a throw.

import { formatIpv4, formatMac } from "./ethernet.ts";
import { printable } from "../../../contract/src/printable-text.ts";

/** The LLDP multicast destination (nearest bridge). */
export const LLDP_MULTICAST = "01:80:c2:00:00:0e";

/** What the probe reports about the switch port it is plugged into. */
export interface LldpNeighbor {
  chassisId: string;
  chassisIdSubtype: number;
  portId: string;
  portIdSubtype: number;
  /** Seconds the information stays valid; 0 = the neighbour is shutting LLDP down. */
  ttlS: number;
  portDescription?: string;
  systemName?: string;
  systemDescription?: string;
  /** Capability names the switch has enabled (bridge, router, telephone…). */
  capabilities: string[];
  managementAddresses: string[];
  /** 802.1 port VLAN id (PVID). */
  portVlanId?: number;
  /** 802.1 VLAN names by id. */
  vlans: Array<{ id: number; name: string }>;
  /** 802.3 MAC/PHY: autonegotiation supported/enabled on the switch port, operational MAU type. */
  autoneg?: { supported: boolean; enabled: boolean; mauType: number };
  /** 802.3 Power via MDI (PoE). */
  poe?: {
    portClass: "pse" | "pd";
    supported: boolean;
    enabled: boolean;
    powerClass: number;
    /** 802.3at type 2 extension, in watts, when present. */
    requestedW?: number;
    allocatedW?: number;
  };
  /** TLV types seen that the probe does not decode (counted, not an error). */
  unknownTlvs: number;
}

const CAPABILITY_NAMES = [
  "other",
  "repeater",
  "bridge",
  "wlan_access_point",
  "router",
  "telephone",
  "docsis_cable_device",
  "station_only",
  "c_vlan",
  "s_vlan",
  "two_port_mac_relay",
];

const OUI_8021 = "0080c2";
const OUI_8023 = "00120f";

/** Decodes an LLDPDU (the Ethernet payload of type 0x88cc); undefined when malformed. */
export function decodeLldp(pdu: Buffer): LldpNeighbor | undefined {
  const n: Partial<LldpNeighbor> & Pick<LldpNeighbor, "capabilities" | "managementAddresses" | "vlans"> = {
    capabilities: [],
    managementAddresses: [],
    vlans: [],
    unknownTlvs: 0,
  };
  let i = 0;
  let index = 0;
  let ended = false;
  while (i + 2 <= pdu.length) {
    const header = pdu.readUInt16BE(i);
    const type = header >> 9;
    const len = header & 0x1ff;
    const v = pdu.subarray(i + 2, i + 2 + len);
    if (v.length !== len) return undefined; // runs past the frame
    i += 2 + len;
    // §8.2: chassis id, port id and TTL are the first three TLVs, in that order.
    if (index < 3 && type !== index + 1) return undefined;
    index++;
    if (type === 0) {
      ended = true;
      break;
    }
    if (!decodeTlv(type, v, n)) return undefined;
  }
  if (index < 3) return undefined;
  if (!ended && i !== pdu.length && pdu.subarray(i).some((b) => b !== 0)) return undefined;
  if (n.chassisId === undefined || n.portId === undefined || n.ttlS === undefined) return undefined;
  return n as LldpNeighbor;
}

type Building = Partial<LldpNeighbor> & Pick<LldpNeighbor, "capabilities" | "managementAddresses" | "vlans">;

function decodeTlv(type: number, v: Buffer, n: Building): boolean {
  switch (type) {
    case 1:
    case 2: {
      if (v.length < 2 || v.length > 256) return false;
      const subtype = v[0] ?? 0;
      const id = formatId(type, subtype, v.subarray(1));
      if (type === 1) {
        n.chassisId = id;
        n.chassisIdSubtype = subtype;
      } else {
        n.portId = id;
        n.portIdSubtype = subtype;
      }
      return true;
    }
    case 3:
      if (v.length < 2) return false;
      n.ttlS = v.readUInt16BE(0);
      return true;
    case 4:
      n.portDescription = text(v);
      return true;
    case 5:
      n.systemName = text(v);
      return true;
    case 6:
      n.systemDescription = text(v);
      return true;
    case 7:
      if (v.length < 4) return false;
      n.capabilities = CAPABILITY_NAMES.filter((_, bit) => (v.readUInt16BE(2) & (1 << bit)) !== 0);
      return true;
    case 8: {
      const addrLen = v[0] ?? 0; // includes the subtype byte
      if (addrLen < 2 || v.length < 1 + addrLen) return false;
      const family = v[1];
      const addr = v.subarray(2, 1 + addrLen);
      if (family === 1 && addr.length === 4) n.managementAddresses.push(formatIpv4(addr));
      else if (family === 2 && addr.length === 16)
        n.managementAddresses.push(
          Array.from({ length: 8 }, (_, k) => addr.readUInt16BE(k * 2).toString(16)).join(":"),
        );
      else if (family === 6 && addr.length === 6) n.managementAddresses.push(formatMac(addr));
      return true;
    }
    case 127:
      return decodeOrgTlv(v, n);
    default:
      n.unknownTlvs = (n.unknownTlvs ?? 0) + 1;
      return true;
  }
}

function decodeOrgTlv(v: Buffer, n: Building): boolean {
  if (v.length < 4) return false;
  const oui = v.subarray(0, 3).toString("hex");
  const subtype = v[3];
  const info = v.subarray(4);
  if (oui === OUI_8021 && subtype === 1) {
    if (info.length < 2) return false;
    n.portVlanId = info.readUInt16BE(0);
  } else if (oui === OUI_8021 && subtype === 3) {
    if (info.length < 3) return false;
    const nameLen = info[2] ?? 0;
    if (info.length < 3 + nameLen) return false;
    if (n.vlans.length < 64)
      n.vlans.push({ id: info.readUInt16BE(0) & 0x0fff, name: text(info.subarray(3, 3 + nameLen)) });
  } else if (oui === OUI_8023 && subtype === 1) {
    if (info.length < 5) return false;
    const flags = info[0] ?? 0;
    n.autoneg = { supported: (flags & 1) !== 0, enabled: (flags & 2) !== 0, mauType: info.readUInt16BE(3) };
  } else if (oui === OUI_8023 && subtype === 2) {
    if (info.length < 3) return false;
    const support = info[0] ?? 0;
    n.poe = {
      portClass: (support & 1) !== 0 ? "pse" : "pd",
      supported: (support & 2) !== 0,
      enabled: (support & 4) !== 0,
      // IEEE 802.3 §79.3.2.4: the field carries class + 1 (1 = class 0 … 5 = class 4).
      powerClass: Math.max(0, (info[2] ?? 1) - 1),
    };
    if (info.length >= 8) {
      n.poe.requestedW = info.readUInt16BE(4) / 10;
      n.poe.allocatedW = info.readUInt16BE(6) / 10;
    }
  } else {
    n.unknownTlvs = (n.unknownTlvs ?? 0) + 1;
  }
  return true;
}

function formatId(tlv: number, subtype: number, id: Buffer): string {
  // Chassis subtype 4 / port subtype 3: MAC address; chassis 5 / port 4: network address.
  const macSubtype = tlv === 1 ? 4 : 3;
  const netSubtype = tlv === 1 ? 5 : 4;
  if (subtype === macSubtype && id.length === 6) return formatMac(id);
  if (subtype === netSubtype && id.length === 5 && id[0] === 1) return formatIpv4(id, 1);
  return text(id);
}

/** Printable text of a TLV string (control characters replaced, so a hostile switch cannot inject escapes). */
function text(v: Buffer): string {
  return printable(v.toString("utf8").replace(/\0+$/, ""));
}
