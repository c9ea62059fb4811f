// HQ's bounds and access rules as logic (services/hq/src/fleet.ts, web-access.ts); the attacks
// against the real HQ in the lab are test/security/hq-*.test.ts.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import type { IncomingMessage } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { EXAMPLES } from "../../../scripts/gen/mqtt-examples.ts";
import type { ConfigPayload, ResultPayload } from "../../../services/contract/src/payloads.ts";
import { silentLogger } from "../../../services/contract/src/log.ts";
import { Fleet, MAX_KEPT_CONFIG_BYTES } from "../../../services/hq/src/fleet.ts";
import { loadHqConfig, HqConfigError } from "../../../services/hq/src/hq-config.ts";
import { Access, hashPassword, hostName, verifyPassword } from "../../../services/hq/src/web-access.ts";

const T = "netprobe/v1/branch-042/pi-01/";
const KEY = "branch-042/pi-01";
const base = EXAMPLES.result[0] as ResultPayload;
const configPayload = EXAMPLES.config[0] as ConfigPayload;
let n = 0;
const result = (over: Partial<ResultPayload>): string => JSON.stringify({ ...base, id: `r-${n++}`, ...over });

describe("HQ keeps what one probe sends bounded", () => {
  it("a restarted seq (new buffer, new boot) is shown, not dropped as old", () => {
    const f = new Fleet({ resultsPerCheck: 3 });
    const t0 = Date.parse(base.started_at);
    for (let s = 100; s < 103; s++)
      f.ingest(
        `${T}results/gateway-icmp`,
        result({
          seq: s,
          boot_id: "A",
          mono_ms: s * 1000,
          started_at: new Date(t0 + s * 1000).toISOString(),
        }),
      );
    // The probe rebooted with a new buffer: seq starts at 1 again, an hour later.
    f.ingest(
      `${T}results/gateway-icmp`,
      result({ seq: 1, boot_id: "B", mono_ms: 5000, started_at: new Date(t0 + 3600_000).toISOString() }),
    );
    const rs = f.get(KEY)!.checks[0]!.results;
    expect(rs.map((r) => `${r.boot_id}:${r.seq}`)).toEqual(["A:101", "A:102", "B:1"]);
    // Same boot, store replaced (seq restarts, mono_ms goes on): still in run order.
    f.ingest(
      `${T}results/gateway-icmp`,
      result({ seq: 1, boot_id: "B", mono_ms: 6000, started_at: new Date(t0 + 3601_000).toISOString() }),
    );
    expect(f.get(KEY)!.checks[0]!.results.at(-1)!.mono_ms).toBe(6000);
  });

  it("only checks of the retained config are kept; without one, at most checksPerProbe", () => {
    const f = new Fleet({ checksPerProbe: 5 });
    for (let i = 0; i < 20; i++) f.ingest(`${T}results/flood-${i}`, result({ check: `flood-${i}` }));
    expect(f.get(KEY)!.checks).toHaveLength(5);
    expect(f.counters.dropped_by_reason.too_many_checks).toBe(15);
    expect(f.ingest(`${T}config`, JSON.stringify(configPayload)).ok).toBe(true);
    expect(f.get(KEY)!.checks).toHaveLength(0); // flood-* are not in the config: gone
    expect(f.ingest(`${T}results/flood-99`, result({ check: "flood-99" }))).toMatchObject({
      ok: false,
      reason: "unknown_check",
    });
    expect(f.ingest(`${T}results/gateway-icmp`, result({})).ok).toBe(true);
    expect(f.get(KEY)!).toMatchObject({ dropped: 16, checks: [{ check: "gateway-icmp" }] });
  });

  it("oversize payloads, long strings, many metrics and floods are cut and counted", () => {
    const f = new Fleet({ payloadBytes: 64 * 1024, ratePerProbe: 10, burstPerProbe: 50 });
    expect(
      f.ingest(`${T}results/gateway-icmp`, result({ detail: { pad: "x".repeat(70_000) } })),
    ).toMatchObject({
      ok: false,
      reason: "too_large",
    });
    const metrics = Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`m${i}_ms`, i]));
    f.ingest(
      `${T}results/gateway-icmp`,
      result({ target: "t".repeat(5000), metrics, error: { code: "E", message: "m".repeat(9000) } }),
    );
    const r = f.get(KEY)!.checks[0]!.results[0]!;
    expect(r.target.length).toBe(256);
    expect(r.error!.message.length).toBe(1024);
    expect(Object.keys(r.metrics)).toHaveLength(48);
    expect(f.counters.dropped_by_reason.truncated).toBeGreaterThanOrEqual(3);
    const now = Date.now();
    let refused = 0;
    for (let i = 0; i < 200; i++) if (!f.ingest(`${T}results/gateway-icmp`, result({}), now).ok) refused++;
    expect(refused).toBeGreaterThan(140); // a burst of 50, then 10/s
    expect(f.counters.dropped_by_reason.rate_limited).toBe(refused);
  });

  it("every check keeps its whole history, the second and third as the first", () => {
    // get() once passed the array index as the result count: the second check showed 1 result.
    const f = new Fleet({ resultsPerCheck: 5 });
    for (const check of ["a-icmp", "b-icmp", "c-icmp"])
      for (let s = 1; s <= 3; s++) f.ingest(`${T}results/${check}`, result({ check, seq: s, mono_ms: s }));
    expect(f.get(KEY)!.checks.map((c) => [c.check, c.results.length])).toEqual([
      ["a-icmp", 3],
      ["b-icmp", 3],
      ["c-icmp", 3],
    ]);
    expect(f.page(KEY, { limit: 10, results: 0 })!.checks.map((c) => c.results.length)).toEqual([0, 0, 0]);
  });

  it("pages a probe's checks by name", () => {
    const f = new Fleet();
    for (const c of ["c", "a", "b", "d"]) f.ingest(`${T}results/${c}`, result({ check: c }));
    const p1 = f.page(KEY, { limit: 3, results: 1 })!;
    expect(p1.checks.map((c) => c.check)).toEqual(["a", "b", "c"]);
    expect(p1).toMatchObject({ checks_total: 4, next_cursor: "c" });
    const p2 = f.page(KEY, { limit: 3, results: 1, after: "c" })!;
    expect(p2.checks.map((c) => c.check)).toEqual(["d"]);
    expect(p2.next_cursor).toBeNull();
  });
});

describe("HQ access rules", () => {
  const dir = mkdtempSync(join(tmpdir(), "hq-access-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const req = (headers: Record<string, string>, remote = "192.0.2.9") =>
    ({ headers, socket: { remoteAddress: remote } }) as unknown as IncomingMessage;

  it("generates the operator token (mode 0600) and accepts only it, in constant time", async () => {
    const file = join(dir, "state", "hq-token");
    const cfg = loadHqConfig({ url: "mqtt://192.0.2.5" }, { NETPROBE_HQ_TOKEN_FILE: file });
    const a = new Access(cfg, silentLogger(), {});
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const token = readFileSync(file, "utf8").trim();
    expect(token.length).toBeGreaterThanOrEqual(32);
    expect(a.principal(req({ authorization: `Bearer ${token}` }))).toMatchObject({
      role: "operator",
      via: "token",
    });
    expect(a.principal(req({ authorization: `Bearer ${token}x` }))).toBeNull();
    expect(a.principal(req({}))).toBeNull();
    // The same file next time: the token stays.
    new Access(cfg, silentLogger(), {});
    expect(readFileSync(file, "utf8").trim()).toBe(token);
    const s = await a.login("192.0.2.9", "", token);
    expect(s.ok).toBe(true);
    if (s.ok)
      expect(a.principal(req({ cookie: `x=1; netprobe_hq_session=${s.session}` }))?.via).toBe("session");
    expect(a.cookie("abc")).toMatch(/HttpOnly; SameSite=Strict/);
  });

  it("users log in with scrypt hashes; ten failures from one address and it gets 429", async () => {
    const hash = await hashPassword("correct horse");
    expect(hash).toMatch(/^scrypt\$32768\$8\$1\$/);
    expect(await verifyPassword("correct horse", hash)).toBe(true);
    expect(await verifyPassword("wrong", hash)).toBe(false);
    const cfg = loadHqConfig({ url: "mqtt://192.0.2.5" }, {});
    cfg.auth.users = [{ name: "alice", role: "viewer", password_hash: hash }];
    const a = new Access(cfg, silentLogger(), { NETPROBE_HQ_TOKEN: "t".repeat(32) });
    expect(await a.login("192.0.2.7", "alice", "correct horse")).toMatchObject({
      ok: true,
      principal: { role: "viewer" },
    });
    for (let i = 0; i < 10; i++)
      expect(await a.login("192.0.2.8", "alice", "guess")).toMatchObject({ why: "denied" });
    expect(await a.login("192.0.2.8", "alice", "correct horse")).toMatchObject({ ok: false, why: "limited" });
    expect(await a.login("192.0.2.7", "alice", "correct horse")).toMatchObject({ ok: true }); // others unaffected
    expect(a.counters).toMatchObject({ login_failed: 10, login_rate_limited: 1, login_ok: 2 });
  });

  it("answers only to its own Host names; trusts the user header only from the proxy", () => {
    const cfg = loadHqConfig({ url: "mqtt://192.0.2.5", host: "192.0.2.10" }, {});
    cfg.http.allowed_hosts = ["hq.example.com"];
    cfg.http.trusted_proxy = { addresses: ["192.0.2.1"], user_header: "x-forwarded-user", role: "viewer" };
    const a = new Access(cfg, silentLogger(), { NETPROBE_HQ_TOKEN: "t".repeat(32) });
    for (const h of ["192.0.2.10:8080", "HQ.example.com", "localhost:8080", "[::1]:8080"])
      expect(a.hostAllowed(req({ host: h })), h).toBe(true);
    for (const h of ["evil.example", "192.0.2.10.evil.example", ""])
      expect(a.hostAllowed(req({ host: h })), h).toBe(false);
    expect(hostName("[2001:db8::1]:443")).toBe("2001:db8::1");
    expect(a.principal(req({ "x-forwarded-user": "bob" }, "::ffff:192.0.2.1"))).toMatchObject({
      user: "bob",
      via: "proxy",
    });
    expect(a.principal(req({ "x-forwarded-user": "bob" }, "192.0.2.66"))).toBeNull();
  });

  it("refuses a password on the command line and reads it from a file", () => {
    expect(() => loadHqConfig({ url: "mqtt://192.0.2.5", password: "s3cret" }, {})).toThrow(/ps/);
    const file = join(dir, "broker-password");
    writeFileSync(file, "from-file\n");
    expect(loadHqConfig({ url: "mqtt://192.0.2.5", passwordFile: file }, {}).broker.password).toBe(
      "from-file",
    );
    expect(() => loadHqConfig({ url: "mqtt://192.0.2.5", passwordFile: join(dir, "none") }, {})).toThrow(
      HqConfigError,
    );
  });
});

describe("Fleet: the retained config for fleet config", () => {
  it("keeps document_hash and pending always, the redacted config only up to MAX_KEPT_CONFIG_BYTES", () => {
    const f = new Fleet();
    const cfg = EXAMPLES.config[0] as ConfigPayload;
    const topic = "netprobe/v1/b7/pi-01/config";
    expect(f.ingest(topic, JSON.stringify(cfg)).ok).toBe(true);
    expect(f.configOf("b7/pi-01")).toEqual(cfg.config);
    expect(f.view("b7/pi-01")?.document_hash).toBe(cfg.document_hash ?? null);
    const base = cfg.config.checks[0]!;
    const big = {
      ...cfg,
      document_hash: "a".repeat(64),
      config: {
        ...cfg.config,
        checks: Array.from({ length: 400 }, (_, i) => ({ ...base, name: `check-${i}` })),
      },
    };
    const payload = JSON.stringify(big);
    expect(payload.length).toBeGreaterThan(MAX_KEPT_CONFIG_BYTES);
    expect(f.ingest(topic, payload).ok).toBe(true);
    expect(f.view("b7/pi-01")?.document_hash).toBe("a".repeat(64));
    expect(f.configOf("b7/pi-01")).toBeUndefined();
  });
});
