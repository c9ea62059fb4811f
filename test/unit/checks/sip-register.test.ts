// sip-register against a scripted registrar (test/doubles/scripted-sip.ts) that checks the digest
// itself, computed here with node:crypto from RFC 2617/7616 rather than with the probe's own code:
// challenge → authenticated REGISTER → binding → unregister; wrong password, 403, 423 with
// Min-Expires, a server error, and silence. test/lab/phone.test.ts runs it against kamailio.
import { createHash } from "node:crypto";
import { Value } from "@sinclair/typebox/value";
import { describe, expect, test } from "vitest";
import {
  createSipRegisterCheck,
  sipRegister,
  type SipRegisterOptions,
} from "../../../services/probe/src/checks/sip-register.ts";
import { silentLogger } from "../../../services/contract/src/log.ts";
import { headerValue, type SipRequest } from "../../../services/probe/src/sip/message.ts";
import { FAR_END, scriptedSip, type Respond } from "../../doubles/scripted-sip.ts";

const REALM = "branch.example";
const NONCE = "5f0e3c9a1b";

/** Whether the request's Authorization answers our challenge for user/password (qop=auth). */
function digestValid(r: SipRequest, user: string, password: string, algorithm: "MD5" | "SHA-256"): boolean {
  const auth = headerValue(r, "authorization");
  if (auth === undefined) return false;
  const p: Record<string, string | undefined> = Object.fromEntries(
    [...auth.matchAll(/(\w+)=("([^"]*)"|[^,\s]+)/g)].map((m): [string, string] => [m[1]!, m[3] ?? m[2]!]),
  );
  const h = (s: string) =>
    createHash(algorithm === "MD5" ? "md5" : "sha256")
      .update(s)
      .digest("hex");
  const ha1 = h(`${user}:${REALM}:${password}`);
  const ha2 = h(`${r.method}:${p.uri}`);
  const expected = h(`${ha1}:${NONCE}:${p.nc}:${p.cnonce}:auth:${ha2}`);
  return p.username === user && p.realm === REALM && p.nonce === NONCE && p.response === expected;
}

/** A registrar with one account; `minExpires` answers 423 below it. */
function registrar(opts: {
  user: string;
  password: string;
  algorithm?: "MD5" | "SHA-256";
  minExpires?: number;
}) {
  const algorithm = opts.algorithm ?? "MD5";
  const bindings = new Map<string, number>();
  const script = (r: SipRequest, respond: Respond) => {
    if (r.method !== "REGISTER") return;
    if (!digestValid(r, opts.user, opts.password, algorithm)) {
      const stale = headerValue(r, "authorization") !== undefined;
      return respond(r, stale ? 403 : 401, stale ? "Forbidden" : "Unauthorized", {
        headers: stale
          ? []
          : [
              [
                "WWW-Authenticate",
                `Digest realm="${REALM}", nonce="${NONCE}", algorithm=${algorithm}, qop="auth"`,
              ],
            ],
      });
    }
    const expires = Number(headerValue(r, "expires"));
    const contact = /<([^>]+)>/.exec(headerValue(r, "contact") ?? "")?.[1] ?? "";
    if (expires > 0 && opts.minExpires !== undefined && expires < opts.minExpires)
      return respond(r, 423, "Interval Too Brief", { headers: [["Min-Expires", String(opts.minExpires)]] });
    if (expires === 0) bindings.delete(contact);
    else bindings.set(contact, expires);
    respond(r, 200, "OK", {
      headers: expires === 0 ? [] : [["Contact", `<${contact}>;expires=${expires}`]],
    });
  };
  return { script, bindings };
}

function run(script: (r: SipRequest, respond: Respond) => void, options: Partial<SipRegisterOptions> = {}) {
  const { connect, seen } = scriptedSip(script);
  const check = createSipRegisterCheck({ connect, resolve: () => Promise.resolve(FAR_END) });
  const opts = Value.Default(sipRegister.options, {
    t1_ms: 20,
    username: "1001",
    password: "s3cret",
    ...options,
  });
  return {
    seen,
    result: check.run(
      FAR_END.address,
      opts as SipRegisterOptions,
      { log: silentLogger() },
      AbortSignal.timeout(5000),
    ),
  };
}

describe("sip-register", () => {
  for (const algorithm of ["MD5", "SHA-256"] as const)
    test(`401 ${algorithm} challenge → authenticated REGISTER → bound, then unregistered (binding gone)`, async () => {
      const reg = registrar({ user: "1001", password: "s3cret", algorithm });
      const { result, seen } = run(reg.script);
      const m = await result;
      expect(m.status, JSON.stringify(m.error)).toBe("ok");
      expect(m.metrics).toMatchObject({ status_code: 200 });
      expect(m.detail).toMatchObject({ algorithm, realm: REALM, unregistered: true, expires_s: 60 });
      // REGISTER (challenged), REGISTER with credentials, REGISTER Expires: 0 (challenged or not).
      expect(seen.filter((r) => headerValue(r, "expires") === "60")).toHaveLength(2);
      expect(seen.at(-1) && headerValue(seen.at(-1)!, "expires")).toBe("0");
      expect(reg.bindings.size).toBe(0);
      // CSeq grows within the Call-ID (RFC 3261 §10.2.4).
      const cseqs = seen.map((r) => Number(headerValue(r, "cseq")?.split(" ")[0]));
      expect(cseqs).toEqual([...cseqs].sort((a, b) => a - b));
      expect(new Set(seen.map((r) => headerValue(r, "call-id"))).size).toBe(1);
    });

  test("a wrong password: auth_failed saying the registrar refused the credentials", async () => {
    const m = await run(registrar({ user: "1001", password: "other" }).script).result;
    expect(m).toMatchObject({ status: "fail", error: { code: "auth_failed" } });
    expect(m.error?.message).toMatch(/403 Forbidden|refused the credentials/);
  });

  test("no password configured: auth_failed that says so", async () => {
    const m = await run(registrar({ user: "1001", password: "s3cret" }).script, { password: "" }).result;
    expect(m.error?.code, m.error?.message).toBe("auth_failed");
    expect(m.error?.message).toContain("no password configured");
  });

  test("423 Interval Too Brief: retried once with Min-Expires, bound for that long", async () => {
    const reg = registrar({ user: "1001", password: "s3cret", minExpires: 300 });
    const { result, seen } = run(reg.script, { expires_s: 60 });
    const m = await result;
    expect(m.status, JSON.stringify(m.error)).toBe("ok");
    expect(m.detail?.expires_s).toBe(300);
    expect(seen.some((r) => headerValue(r, "expires") === "300")).toBe(true);
  });

  test("503 → server_error; silence → timeout after 64×T1", async () => {
    const busy = await run((r, respond) => respond(r, 503, "Service Unavailable")).result;
    expect(busy).toMatchObject({
      status: "fail",
      error: { code: "server_error" },
      metrics: { status_code: 503 },
    });
    const silent = await run(() => {}).result;
    expect(silent.error?.code).toBe("timeout");
    expect(silent.error?.message).toContain("within 64×T1 (1280 ms)");
  });

  test("no username: an error result, nothing sent", async () => {
    const { result, seen } = run(() => {}, { username: "" });
    expect(await result).toMatchObject({ status: "error", error: { code: "invalid_options" } });
    expect(seen).toHaveLength(0);
  });
});
