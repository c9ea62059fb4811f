// sip-options against a scripted far end (test/doubles/scripted-sip.ts): what a technician reads
// from the verdict — alive or not, how fast, after how many retransmissions, which status counts,
// and a SIP ALG rewriting the probe's headers. test/lab/phone.test.ts runs it against kamailio.
import { Value } from "@sinclair/typebox/value";
import { describe, expect, test } from "vitest";
import {
  createSipOptionsCheck,
  sipOptions,
  type SipOptionsOptions,
} from "../../../services/probe/src/checks/sip-options.ts";
import { silentLogger } from "../../../services/contract/src/log.ts";
import { headerValue } from "../../../services/probe/src/sip/message.ts";
import { FAR_END, scriptedSip, type Script } from "../../doubles/scripted-sip.ts";

function run(script: Script, options: Partial<SipOptionsOptions> = {}, timeoutMs = 5000) {
  const { connect, seen } = scriptedSip(script);
  const check = createSipOptionsCheck({ connect, resolve: () => Promise.resolve(FAR_END) });
  const opts = Value.Default(sipOptions.options, { t1_ms: 20, ...options }) as SipOptionsOptions;
  return {
    seen,
    result: check.run(FAR_END.address, opts, { log: silentLogger() }, AbortSignal.timeout(timeoutMs)),
  };
}

describe("sip-options", () => {
  test("200 OK: ok, the status, no retransmission, the server's Server and Allow in the detail", async () => {
    const { result, seen } = run((r, respond) =>
      respond(r, 200, "OK", {
        headers: [
          ["Server", "kamailio (5.7)"],
          ["Allow", "INVITE, ACK, OPTIONS, BYE"],
        ],
      }),
    );
    const m = await result;
    expect(m.status).toBe("ok");
    expect(m.metrics).toMatchObject({ status_code: 200, retransmissions: 0 });
    expect(m.metrics.response_ms).toBeGreaterThanOrEqual(0);
    expect(m.detail).toMatchObject({ server: "kamailio (5.7)", allow: "INVITE, ACK, OPTIONS, BYE" });
    expect(seen.map((s) => s.method)).toEqual(["OPTIONS"]);
    expect(seen[0]!.uri).toBe(`sip:${FAR_END.address}`);
  });

  test("the first request lost: answered on the retransmission, ok with retransmissions 1 (same transaction)", async () => {
    const { result, seen } = run((r, respond, all) => {
      if (all.length >= 2) respond(r, 200, "OK");
    });
    const m = await result;
    expect(m.status).toBe("ok");
    expect(m.metrics.retransmissions).toBe(1);
    const branch = (i: number) => /branch=([^;]+)/.exec(headerValue(seen[i]!, "via") ?? "")?.[1];
    expect(branch(1)).toBe(branch(0));
  });

  test("a 404 still proves the server alive (default); with accept_codes [200] it is unexpected_status; a 503 is server_error", async () => {
    const notFound: Script = (r, respond) => respond(r, 404, "Not Found");
    expect((await run(notFound).result).status).toBe("ok");
    const strict = await run(notFound, { accept_codes: [200] }).result;
    expect(strict).toMatchObject({ status: "fail", error: { code: "unexpected_status" } });
    expect(strict.error?.message).toContain("answered OPTIONS with 404 Not Found");
    const down = await run((r, respond) => respond(r, 503, "Service Unavailable")).result;
    expect(down).toMatchObject({
      status: "fail",
      error: { code: "server_error" },
      metrics: { status_code: 503 },
    });
  });

  test("silence: timeout after 64×T1 with every retransmission counted", async () => {
    const { result, seen } = run(() => {});
    const m = await result;
    expect(m).toMatchObject({ status: "fail", error: { code: "timeout" } });
    expect(m.error?.message).toContain("within 64×T1 (1280 ms)");
    // Timer A doubles from T1 until 64×T1 (RFC 3261 §17.1.2.2): 20, 40, …, 640 ms → 6 retransmissions.
    expect(m.metrics.retransmissions).toBe(seen.length - 1);
    expect(seen.length).toBeGreaterThanOrEqual(6);
  });

  test("a SIP ALG rewriting the Via sent-by to the router's public address: warn sip_alg naming the header", async () => {
    const m = await run((r, respond) =>
      respond(r, 200, "OK", {
        edit: (name, value) =>
          name.toLowerCase() === "via" ? value.replace("192.0.2.10", "198.51.100.1") : value,
      }),
    ).result;
    expect(m).toMatchObject({ status: "warn", error: { code: "sip_alg" } });
    expect(m.error?.message).toContain("via");
    expect(m.detail?.rewritten_headers).toEqual(["via"]);
  });
});
