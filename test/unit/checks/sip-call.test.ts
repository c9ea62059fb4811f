// A failed test call must end its INVITE transaction the RFC 3261 way, or the PBX retransmits its
// final response for 32 s and logs the probe as broken: every non-2xx final response is ACKed
// (§17.1.1.3, again for each retransmission), and a call that rings too long is CANCELled, the
// CANCEL retransmitted over UDP until it is answered, and the 487 that follows ACKed (§9.1).
// The far end here is a scripted UAS (test/doubles/scripted-sip.ts); test/lab/sip-sipp.test.ts
// runs the same cases against SIPp.
import { Value } from "@sinclair/typebox/value";
import { describe, expect, test } from "vitest";
import {
  createSipCallCheck,
  sipCall,
  type SipCallOptions,
} from "../../../services/probe/src/checks/sip-call.ts";
import { silentLogger } from "../../../services/contract/src/log.ts";
import type { MediaSockets } from "../../../services/probe/src/sip/media.ts";
import { headerValue, type SipRequest } from "../../../services/probe/src/sip/message.ts";
import { FAR_END, scriptedSip, type Script } from "../../doubles/scripted-sip.ts";

function fakePbx(script: Script, options: Partial<SipCallOptions> = {}) {
  const { connect, seen } = scriptedSip(script);
  const media: MediaSockets = {
    rtpPort: 20000,
    sendRtp: () => {},
    sendRtcp: () => {},
    onRtp: () => {},
    onRtcp: () => {},
    close: () => {},
  };
  const check = createSipCallCheck({
    connect,
    resolve: () => Promise.resolve(FAR_END),
    openMedia: () => Promise.resolve(media),
  });
  const opts = Value.Default(sipCall.options, {
    t1_ms: 50,
    answer_timeout_ms: 300,
    ...options,
  }) as SipCallOptions;
  const run = (timeoutMs = 5000) =>
    check.run("203.0.113.60", opts, { log: silentLogger() }, AbortSignal.timeout(timeoutMs));
  return { run, seen };
}

const methods = (seen: SipRequest[]) => seen.map((r) => `${r.method} ${headerValue(r, "cseq")}`);
const branchOf = (r: SipRequest | undefined) => /branch=([^;]+)/.exec(headerValue(r!, "via") ?? "")?.[1];

describe("sip-call failure endings", () => {
  for (const [status, reason, code] of [
    [486, "Busy Here", "busy"],
    [404, "Not Found", "rejected"],
    [503, "Service Unavailable", "server_error"],
    [603, "Decline", "rejected"],
  ] as const) {
    test(`${status} ${reason} → ${code}, ACKed in the INVITE's transaction, and again when retransmitted`, async () => {
      let finals = 0;
      const pbx = fakePbx((r, respond) => {
        if (r.method !== "INVITE") return;
        respond(r, 100, "Trying");
        // The final response twice: the second one is the retransmission a lost ACK causes.
        respond(r, status, reason);
        respond(r, status, reason);
        finals += 2;
      });
      const m = await pbx.run();
      expect(m).toMatchObject({ status: "fail", error: { code } });
      expect(m.error?.message).toContain(`${status} ${reason}`);
      await new Promise((r) => setTimeout(r, 20));
      expect(finals).toBe(2);
      const [invite, ...acks] = pbx.seen;
      expect(methods(pbx.seen)).toEqual(["INVITE 1 INVITE", "ACK 1 ACK", "ACK 1 ACK"]);
      for (const ack of acks) {
        // §17.1.1.3: the INVITE's branch, Request-URI, From and Call-ID; the To of the response.
        expect(branchOf(ack)).toBe(branchOf(invite));
        expect(ack.uri).toBe(invite!.uri);
        expect(headerValue(ack, "from")).toBe(headerValue(invite!, "from"));
        expect(headerValue(ack, "call-id")).toBe(headerValue(invite!, "call-id"));
        expect(headerValue(ack, "to")).toContain("tag=far1");
      }
    });
  }

  test("ringing past answer_timeout_ms → CANCEL, retransmitted until answered, then the 487 is ACKed", async () => {
    const pbx = fakePbx((r, respond, seen) => {
      if (r.method === "INVITE") return respond(r, 180, "Ringing");
      // The first CANCEL is "lost": only its retransmission is answered, then the INVITE's 487.
      if (r.method !== "CANCEL" || seen.filter((s) => s.method === "CANCEL").length < 2) return;
      respond(r, 200, "OK");
      respond(seen[0]!, 487, "Request Terminated");
    });
    const m = await pbx.run();
    expect(m).toMatchObject({ status: "fail", error: { code: "no_answer" }, detail: { cancel: "200 OK" } });
    expect(m.error?.message).toContain("within 300 ms");
    expect(m.error?.message).toContain("487 Request Terminated");
    expect(methods(pbx.seen)).toEqual(["INVITE 1 INVITE", "CANCEL 1 CANCEL", "CANCEL 1 CANCEL", "ACK 1 ACK"]);
    const [invite, cancel, , ack] = pbx.seen;
    // §9.1: the CANCEL has the INVITE's branch, Request-URI, From, To (no tag), Call-ID and CSeq number.
    expect(branchOf(cancel)).toBe(branchOf(invite));
    expect(cancel!.uri).toBe(invite!.uri);
    expect(headerValue(cancel!, "to")).toBe(headerValue(invite!, "to"));
    expect(branchOf(ack)).toBe(branchOf(invite));
    expect(headerValue(ack!, "to")).toContain("tag=far1");
  });

  test("no response at all → timeout, and no CANCEL (nothing to cancel before a provisional)", async () => {
    const pbx = fakePbx(() => {});
    const m = await pbx.run();
    expect(m.error?.code).toBe("timeout");
    expect(pbx.seen.every((r) => r.method === "INVITE")).toBe(true);
  });

  test("the check's own deadline while ringing also CANCELs, and the check ends within 2 s of it", async () => {
    const pbx = fakePbx((r, respond) => {
      if (r.method === "INVITE") return respond(r, 180, "Ringing");
      if (r.method === "CANCEL") respond(r, 200, "OK"); // …and never the 487
    });
    const t0 = performance.now();
    const m = await pbx.run(150);
    expect(performance.now() - t0).toBeLessThan(2600);
    expect(m).toMatchObject({ error: { code: "no_answer" }, detail: { cancel: "200 OK" } });
    expect(m.error?.message).toContain("no final response");
  });

  test("CANCELled on answer_timeout_ms and no 487 ever: the check's deadline still ends it within 2 s", async () => {
    // T1 500 ms: left alone, the wait for the 487 would last 64·T1 = 32 s.
    const pbx = fakePbx(
      (r, respond) => {
        if (r.method === "INVITE") return respond(r, 180, "Ringing");
        if (r.method === "CANCEL") respond(r, 200, "OK");
      },
      { t1_ms: 500 },
    );
    const t0 = performance.now();
    const m = await pbx.run(800);
    expect(performance.now() - t0).toBeLessThan(3300);
    expect(m).toMatchObject({ error: { code: "no_answer" }, detail: { cancel: "200 OK" } });
    expect(m.error?.message).toContain("within 300 ms");
  });

  test("a PBX that sends the 487 but never answers the CANCEL: the check does not wait 64·T1 for it", async () => {
    const pbx = fakePbx(
      (r, respond, seen) => {
        if (r.method === "INVITE") return respond(r, 180, "Ringing");
        if (r.method === "CANCEL" && seen.filter((s) => s.method === "CANCEL").length === 1)
          respond(seen[0]!, 487, "Request Terminated");
      },
      { t1_ms: 500 },
    );
    const t0 = performance.now();
    const m = await pbx.run(10_000);
    expect(performance.now() - t0).toBeLessThan(2800);
    expect(m).toMatchObject({ error: { code: "no_answer" }, detail: { cancel: "aborted" } });
    expect(m.error?.message).toContain("487 Request Terminated");
    expect(pbx.seen.some((r) => r.method === "ACK")).toBe(true);
  });
});
