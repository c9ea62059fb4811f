// ARP hosts on an in-memory LAN (FakeFrameIo responders) for the gateway and arp check tests.
import { ARP_OP, decodeArp, encodeArp } from "../../services/probe/src/net/arp-packet.ts";
import { decodeEthernet, encodeEthernet, ETHERTYPE } from "../../services/probe/src/net/ethernet.ts";
import type { Responder } from "./fake-frame-io.ts";

/** Hosts that answer ARP for `ip` (requests and RFC 5227 probes alike). */
export function answering(ip: string, ...macs: string[]): Responder {
  return (frame) => {
    const eth = decodeEthernet(frame);
    const arp = eth && decodeArp(eth.payload);
    if (!arp || arp.op !== ARP_OP.request || arp.targetIp !== ip) return [];
    return macs.map((mac) => ({
      frame: encodeEthernet(
        arp.senderMac,
        mac,
        ETHERTYPE.arp,
        encodeArp({
          op: ARP_OP.reply,
          senderMac: mac,
          senderIp: ip,
          targetMac: arp.senderMac,
          targetIp: arp.senderIp,
        }),
      ),
      delayMs: 1,
    }));
  };
}
