import { arp } from "./arp.ts";
import type { CheckKind } from "./check.ts";
import { dhcp } from "./dhcp.ts";
import { dns } from "./dns.ts";
import { gateway } from "./gateway.ts";
import { http } from "./http.ts";
import { icmp } from "./icmp.ts";
import { sipCall } from "./sip-call.ts";
import { sipOptions } from "./sip-options.ts";
import { sipRegister } from "./sip-register.ts";
import { link } from "./link.ts";
import { lldp } from "./lldp.ts";
import { ntp } from "./ntp.ts";
import { pathMtu } from "./path-mtu.ts";
import { tcp } from "./tcp.ts";
import { stamp } from "./stamp.ts";
import { tls } from "./tls.ts";
import { throughput } from "./throughput.ts";
import { traceroute } from "./traceroute.ts";

/** Every check kind by its config `kind` name; one literal map, no registration side effects. */
export const CHECK_KINDS: Readonly<Record<string, CheckKind>> = {
  icmp,
  "sip-options": sipOptions,
  "sip-register": sipRegister,
  "sip-call": sipCall,
  dns,
  tcp,
  http,
  tls,
  ntp,
  dhcp,
  link,
  lldp,
  gateway,
  arp,
  traceroute,
  "path-mtu": pathMtu,
  throughput,
  stamp,
};

/** Looks up a kind, or undefined when the name is not known. */
export function checkKind(kind: string): CheckKind | undefined {
  return Object.hasOwn(CHECK_KINDS, kind) ? CHECK_KINDS[kind] : undefined;
}
