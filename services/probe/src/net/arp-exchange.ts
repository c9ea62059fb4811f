// One ARP conversation over the shared pcap session: send `count` requests (or RFC 5227 probes)
// for an address and collect every host that claims it within the window. Used by the gateway
// check (who answers for the router, how fast) and the arp check (duplicate address detection).

import type { CheckError } from "../checks/check.ts";
import { ARP_OP, decodeArp, encodeArp } from "./arp-packet.ts";
import { BROADCAST_MAC, encodeEthernet, ETHERTYPE } from "./ethernet.ts";
import type { FrameIo } from "./pcap-session.ts";

/** One host that claimed the address. */
export interface ArpClaim {
  mac: string;
  /** ARP replies (or announcements) from it. */
  replies: number;
  /** Time from the latest request before its first reply, ms. */
  firstReplyMs: number | undefined;
  /** Every reply time, ms. */
  replyTimesMs: number[];
  /** It was probing for the same address itself (RFC 5227 §2.1.1 simultaneous probe). */
  probing: boolean;
}

/** What happened during the exchange. */
export interface ArpOutcome {
  /** The interface's MAC (the requests' sender). */
  ownMac: string;
  sent: number;
  claims: ArpClaim[];
  /** ARP frames that did not decode as Ethernet/IPv4 ARP. */
  malformed: number;
  aborted: boolean;
}

/** Parameters of one exchange. */
export interface ArpExchangeSpec {
  iface: string;
  targetIp: string;
  /** Sender IP of the requests; "0.0.0.0" makes them RFC 5227 probes. */
  senderIp: string;
  count: number;
  intervalMs: number;
  /** How long to keep listening after the last request. */
  waitMs: number;
  /** End as soon as a claim is seen (after `settleMs` more, to catch a second claimant). */
  stopOnClaim: boolean;
  settleMs: number;
}

/** Runs one exchange; failures to capture or send come back as a CheckError. */
export function arpExchange(
  io: FrameIo,
  spec: ArpExchangeSpec,
  signal: AbortSignal,
): Promise<ArpOutcome | CheckError> {
  const claims = new Map<string, ArpClaim>();
  const sentAt: bigint[] = [];
  let malformed = 0;
  let finish: () => void = () => {};
  let settleTimer: NodeJS.Timeout | undefined;
  let ownMac = "";
  const tap = io.open(spec.iface, {
    etherTypes: [ETHERTYPE.arp],
    onFrame: (frame, eth) => {
      const arp = decodeArp(eth.payload);
      if (arp === undefined) {
        malformed++;
        return;
      }
      if (arp.senderMac === ownMac) return; // our own kernel's ARP traffic
      const isClaim = arp.senderIp === spec.targetIp;
      const isProbe =
        arp.op === ARP_OP.request && arp.senderIp === "0.0.0.0" && arp.targetIp === spec.targetIp;
      if (!isClaim && !isProbe) return;
      let claim = claims.get(arp.senderMac);
      if (claim === undefined) {
        claim = { mac: arp.senderMac, replies: 0, firstReplyMs: undefined, replyTimesMs: [], probing: false };
        claims.set(arp.senderMac, claim);
      }
      if (isProbe) claim.probing = true;
      else {
        const last = [...sentAt].reverse().find((t) => t <= frame.receivedAt);
        claim.replies++;
        if (last !== undefined) {
          const ms = Number(frame.receivedAt - last) / 1e6;
          claim.replyTimesMs.push(ms);
          claim.firstReplyMs ??= ms;
        }
      }
      if (spec.stopOnClaim && settleTimer === undefined)
        settleTimer = setTimeout(() => finish(), spec.settleMs);
    },
  });
  if ("code" in tap) return Promise.resolve(tap);
  ownMac = tap.mac;
  return new Promise((resolve) => {
    let sendTimer: NodeJS.Timeout | undefined;
    let endTimer: NodeJS.Timeout | undefined;
    let done = false;
    let sendError: CheckError | undefined;
    const onAbort = (): void => finish();
    finish = () => {
      if (done) return;
      done = true;
      clearTimeout(sendTimer);
      clearTimeout(endTimer);
      clearTimeout(settleTimer);
      signal.removeEventListener("abort", onAbort);
      tap.close();
      if (sendError !== undefined) resolve(sendError);
      else
        resolve({
          ownMac,
          sent: sentAt.length,
          claims: [...claims.values()],
          malformed,
          aborted: signal.aborted,
        });
    };
    signal.addEventListener("abort", onAbort, { once: true });
    if (signal.aborted) return finish();
    const request = encodeEthernet(
      BROADCAST_MAC,
      ownMac,
      ETHERTYPE.arp,
      encodeArp({
        op: ARP_OP.request,
        senderMac: ownMac,
        senderIp: spec.senderIp,
        targetMac: "00:00:00:00:00:00",
        targetIp: spec.targetIp,
      }),
    );
    const sendNext = (): void => {
      if (done) return;
      sentAt.push(process.hrtime.bigint());
      const error = tap.inject(request);
      if (error !== undefined) {
        sendError = error;
        return finish();
      }
      if (sentAt.length < spec.count) sendTimer = setTimeout(sendNext, spec.intervalMs);
      else endTimer = setTimeout(() => finish(), spec.waitMs);
    };
    sendNext();
  });
}
