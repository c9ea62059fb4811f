// A scripted SIP far end behind the SipConnection interface (services/probe/src/sip/transport.ts),
// for unit tests of the sip checks: every request the probe sends is parsed, recorded and handed
// to the script, which answers (or stays silent, to make the probe retransmit). The lab tests run
// the same checks against kamailio and SIPp.
import {
  parseSipMessage,
  responseHeadersFor,
  serializeResponse,
  type SipRequest,
} from "../../services/probe/src/sip/message.ts";
import type { ConnectSip } from "../../services/probe/src/sip/transport.ts";

/**
 * Answers a received request; the To gets the far end's tag on every final and provisional answer
 * above 100. `headers` are added; `edit` may change any header on the way (a SIP ALG).
 */
export type Respond = (
  to: SipRequest,
  status: number,
  reason: string,
  opts?: { headers?: [string, string][]; edit?: (name: string, value: string) => string },
) => void;

/** What the far end does with each request it receives (`seen` includes this one). */
export type Script = (request: SipRequest, respond: Respond, seen: SipRequest[]) => void;

/** The far end's address as the probe sees it. */
export const FAR_END = { address: "203.0.113.60", family: 4 as const };

/** A connect function for the checks' dependencies, and every request received. */
export function scriptedSip(script: Script): { connect: ConnectSip; seen: SipRequest[] } {
  const seen: SipRequest[] = [];
  const connect: ConnectSip = (_options, events) =>
    Promise.resolve({
      transport: "udp",
      local: { address: "192.0.2.10", port: 5062 },
      reliable: false,
      close: () => {},
      send: (data: Buffer) => {
        const m = parseSipMessage(data);
        if ("error" in m || m.kind !== "request") throw new Error("the probe sent something unparsable");
        seen.push(m);
        const respond: Respond = (to, status, reason, opts = {}) => {
          const headers = [...responseHeadersFor(to), ...(opts.headers ?? [])].map(
            ([n, v]): [string, string] => {
              const tagged =
                n.toLowerCase() === "to" && status > 100 && !v.includes("tag=") ? `${v};tag=far1` : v;
              return [n, opts.edit ? opts.edit(n, tagged) : tagged];
            },
          );
          setImmediate(() => events.message(serializeResponse(status, reason, headers)));
        };
        script(m, respond, seen);
      },
    });
  return { connect, seen };
}
