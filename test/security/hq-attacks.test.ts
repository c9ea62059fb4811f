// Attacks on the real headquarters in the lab (docs/hq.md, "Access" and "Bounds"): `netprobe hq
// serve` in the hq namespace with the lab's mosquitto over TLS, the real probe (probe-1) in the
// probe namespace as the honest fleet, and probe-2's credentials as the compromised probe. Every
// request comes from inside the hq namespace (curl, test/security/hq-tools.ts). What is asserted is
// what an operator would check: no data without credentials, no answer to a foreign Host name, HQ's
// memory (VmRSS from /proc/<pid>/status, printed) flat under clients that never read and under a
// probe's flood, the honest probe's data still there, and results after a seq restart shown.
import type { ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, describe, expect, it } from "vitest";
import { credentialsFile, labCredentials, tlsDir } from "../../scripts/lab/broker-tls.ts";
import { ADDR } from "../../scripts/lab/lab.ts";
import { EXAMPLES } from "../../scripts/gen/mqtt-examples.ts";
import type { ConfigPayload, EventPayload, ResultPayload } from "../../services/contract/src/payloads.ts";
import type { ProbePage } from "../../services/hq/src/fleet.ts";
import { hashPassword } from "../../services/hq/src/web-access.ts";
import { useLab } from "../lab/lab-fixture.ts";
import { exited, startProbe, waitFor } from "../lab/probe-harness.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const CLI = join(ROOT, "services/probe/src/cli.ts");
const TOOLS = join(ROOT, "test/security/hq-tools.ts");
const PORT = 8080;
const HQ = `http://${ADDR.hq4}:${PORT}`;
const MiB = 1024 * 1024;

const rssOf = (pid: number): number => {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? NaN) * 1024;
};
const mib = (b: number) => `${(b / MiB).toFixed(1)} MiB`;

/** Polls an async condition every 250 ms until it holds. */
async function until(what: string, timeoutMs: number, fn: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await fn().catch(() => false))) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe("HQ under attack", () => {
  const lab = useLab();
  const children: ChildProcess[] = [];
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGTERM");
    await Promise.all(children.map((c) => exited(c)));
  });
  let hq: ChildProcess;
  const hqLog: string[] = [];
  let headerFile = "";

  /** curl inside the hq namespace; returns status, body and response size. */
  const curl = async (path: string, args: string[] = [], withToken = true) => {
    const r = await lab().exec(
      "hq",
      [
        "curl",
        ...["-s", "--max-time", "5", "-o", "-", "-w", "\n%{http_code} %{size_download}"],
        ...(withToken ? ["-H", `@${headerFile}`] : []),
        ...args,
        `${HQ}${path}`,
      ],
      { timeoutMs: 8000 },
    );
    const cut = r.stdout.lastIndexOf("\n");
    const [status = "0", size = "0"] = r.stdout.slice(cut + 1).split(" ");
    return { status: Number(status), body: r.stdout.slice(0, cut), size: Number(size) };
  };
  const api = async <T>(path: string): Promise<T> => {
    const r = await curl(path);
    if (r.status !== 200) throw new Error(`${path}: ${r.status} ${r.body.slice(0, 200)}`);
    return JSON.parse(r.body) as T;
  };
  let plans = 0;
  const publish = async (user: "probe-1" | "probe-2", steps: unknown[]) => {
    // The plan goes in a file: a 1 MiB payload does not fit in argv (E2BIG).
    const plan = join(lab().info.dir, `hq-attack-plan-${plans++}.json`);
    writeFileSync(plan, JSON.stringify({ steps }));
    const r = await lab().exec(
      "probe",
      [
        process.execPath,
        TOOLS,
        "publish",
        labCredentials(lab().info.dir, user).url,
        credentialsFile(lab().info.dir, user),
        plan,
      ],
      { timeoutMs: 170_000 },
    );
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout.trim().split("\n").at(-1)!) as { published: number; refused: number };
  };
  const P2 = "netprobe/v1/lab/probe-2/";
  const result = (over: Partial<ResultPayload>): string =>
    JSON.stringify({
      ...(EXAMPLES.result[0] as ResultPayload),
      site: "lab",
      probe: "probe-2",
      id: "p2-{i}",
      ...over,
    });

  it("HQ starts with a token file; the honest probe reaches it", async () => {
    const c = labCredentials(lab().info.dir, "hq");
    const tokenFile = join(lab().info.dir, "hq-token");
    const config = join(lab().info.dir, "hq.yaml");
    writeFileSync(
      config,
      JSON.stringify({
        broker: { url: c.url, username: c.username, password: c.password, ca_file: c.ca_file },
        auth: { token_file: tokenFile },
      }),
      { mode: 0o600 },
    );
    hq = lab().spawn(
      "hq",
      [
        process.execPath,
        CLI,
        "hq",
        "serve",
        "--config",
        config,
        "--cert",
        c.cert_file,
        "--key",
        c.key_file,
        "--host",
        ADDR.hq4,
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    children.push(hq);
    createInterface({ input: hq.stderr! }).on("line", (l) => hqLog.push(l));
    await waitFor(
      "HQ serving and connected",
      15_000,
      () =>
        hqLog.some((l) => l.includes("serving the fleet page")) &&
        hqLog.some((l) => l.includes("connected to the fleet broker")),
    );
    // `ip netns exec` execs in place: the child's pid is HQ's node process.
    expect(readFileSync(`/proc/${hq.pid}/cmdline`, "utf8")).toContain("hq\0serve");
    headerFile = join(lab().info.dir, "hq-auth-header");
    writeFileSync(headerFile, `Authorization: Bearer ${readFileSync(tokenFile, "utf8").trim()}\n`, {
      mode: 0o600,
    });
    children.push(startProbe(lab()));
    await until("probe-1's results at HQ", 60_000, async () => {
      const p = await curl("/api/probe?key=lab/probe-1&results=0");
      return p.status === 200 && (JSON.parse(p.body) as ProbePage).results_total > 3;
    });
  });

  it("without credentials the page and every API and SSE endpoint answer 401", async () => {
    for (const path of [
      "/",
      "/index.html",
      "/api/fleet",
      "/api/probe?key=lab/probe-1",
      "/api/session",
      "/events",
      "/nope",
    ]) {
      const anon = await curl(path, [], false);
      expect(anon.status, path).toBe(401);
      expect(anon.body, path).not.toContain("probe-1");
      // A wrong token and a forged session cookie are no better.
      expect(
        (await curl(path, ["-H", "Authorization: Bearer not-the-token-at-all"], false)).status,
        path,
      ).toBe(401);
      expect((await curl(path, ["-H", "Cookie: netprobe_hq_session=forged"], false)).status, path).toBe(401);
    }
    // A load balancer's probe learns only whether HQ is up.
    const health = await curl("/healthz", [], false);
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body)).toEqual({ connected: true });
    // The user header is believed from the configured proxy only (none here).
    expect((await curl("/api/fleet", ["-H", "X-Forwarded-User: admin"], false)).status).toBe(401);
    // Guessing the token through the login form: after ten failures, 429.
    const codes: number[] = [];
    for (let i = 0; i < 12; i++)
      codes.push((await curl("/login", ["-X", "POST", "--data", `user=&password=guess-${i}`], false)).status);
    console.log(`login guesses answered ${codes.join(" ")}`);
    expect(codes.slice(0, 10).every((s) => s === 401)).toBe(true);
    expect(codes.slice(10)).toEqual([429, 429]);
  });

  it("a request naming another Host (DNS rebinding) is refused even with the token", async () => {
    for (const host of ["evil.example", "203.0.113.50.nip.example", "hq.lab.example"]) {
      const r = await curl("/api/fleet", ["-H", `Host: ${host}`]);
      expect(r.status, host).toBe(421);
      expect(r.body).not.toContain("probe-1");
    }
    expect((await curl("/api/fleet", ["-H", `Host: ${ADDR.hq4}:${PORT}`])).status).toBe(200);
  });

  it("ten /events clients that never read leave HQ's RSS flat while the fleet publishes", async () => {
    const before = rssOf(hq.pid!);
    const stall = lab().spawn("hq", [process.execPath, TOOLS, "stall", HQ, headerFile, "10"], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    children.push(stall);
    const said: Array<Record<string, unknown>> = [];
    createInterface({ input: stall.stdout! }).on("line", (l) =>
      said.push(JSON.parse(l) as Record<string, unknown>),
    );
    await waitFor("ten streams open", 10_000, () => said.some((m) => m.open === 10));
    // A busy fleet: area transitions (each pushed to every stream as it comes) with long reasons,
    // 400/s for 45 s from probe-2's credentials — about 0.6 MB/s for each stream.
    const ev = EXAMPLES.event[0] as EventPayload;
    const event = JSON.stringify({ ...ev, reason: `{i} ${"r".repeat(1000)}` });
    const sent = await publish("probe-2", [
      { topic: `${P2}events`, payload: event, count: 18_000, per_s: 400 },
    ]);
    const after = rssOf(hq.pid!);
    const meta = await api<{ web: Record<string, number>; counters: Record<string, unknown> }>(
      "/api/fleet?limit=1",
    );
    console.log(
      `HQ RSS ${mib(before)} → ${mib(after)} (+${mib(after - before)}) with 10 non-reading /events clients; ` +
        `${sent.published} events published; web ${JSON.stringify(meta.web)}; fleet ${JSON.stringify(meta.counters)}`,
    );
    stall.kill("SIGTERM");
    expect(sent.published).toBe(18_000);
    // HQ hung up on every one (they cannot tell: a client that does not read never sees the FIN).
    expect(meta.web.sse_clients).toBe(0);
    expect(meta.web.sse_dropped_slow).toBeGreaterThanOrEqual(10);
    expect(after - before).toBeLessThan(48 * MiB);
    // A client that reads still gets the stream.
    const live = await curl("/events", ["--max-time", "2"]);
    expect(live.body).toContain("event: snapshot");
  });

  // The payloads are 512 KiB: over HQ's 128 KiB cap, under the shipped broker's message_size_limit
  // (1 MiB), so they reach HQ; the broker's own refusal of larger ones is probe-broker-limits.test.ts's.
  it("a compromised probe's flood of check names and 512 KiB payloads leaves HQ bounded and probe-1 intact", async () => {
    const p1Before = await api<ProbePage>("/api/probe?key=lab/probe-1&results=0");
    const before = rssOf(hq.pid!);
    const big = result({ check: "big-{i}", detail: { pad: "x".repeat(MiB / 2) } });
    const sent = await publish("probe-2", [
      // Before any config: new check names, each one a history HQ would keep for ever.
      { topic: `${P2}results/flood-{i}`, payload: result({ check: "flood-{i}", id: "a-{i}" }), count: 3000 },
      { topic: `${P2}results/big-{i}`, payload: big, count: 100 },
      // Its config names one check; then thousands more names.
      {
        topic: `${P2}config`,
        payload: JSON.stringify({ ...(EXAMPLES.config[0] as ConfigPayload) }),
        count: 1,
        retain: true,
      },
      { topic: `${P2}results/more-{i}`, payload: result({ check: "more-{i}", id: "b-{i}" }), count: 3000 },
    ]);
    await new Promise((r) => setTimeout(r, 3000)); // HQ works through its queue
    const after = rssOf(hq.pid!);
    const fleet = await api<{
      counters: { malformed_by_reason: Record<string, number>; dropped_by_reason: Record<string, number> };
    }>("/api/fleet?limit=1");
    const p2 = await curl("/api/probe?key=lab/probe-2");
    const p2page = JSON.parse(p2.body) as ProbePage;
    console.log(
      `HQ RSS ${mib(before)} → ${mib(after)} (+${mib(after - before)}) after probe-2 published ${sent.published} ` +
        `(${sent.refused} refused by the broker); HQ keeps ${p2page.checks_total} checks of probe-2, /api/probe ${p2.size} bytes; ` +
        `too_large ${fleet.counters.malformed_by_reason.too_large}, dropped ${JSON.stringify(fleet.counters.dropped_by_reason)}`,
    );
    expect(sent.published + sent.refused).toBe(6101);
    expect(p2page.checks_total).toBeLessThanOrEqual(1); // only the config's check survives
    expect(p2.size).toBeLessThan(64 * 1024);
    expect(fleet.counters.dropped_by_reason.too_many_checks).toBeGreaterThan(2800);
    expect(fleet.counters.dropped_by_reason.unknown_check).toBeGreaterThan(2900);
    // The 512 KiB payloads: counted as too_large here (or refused by a stricter broker).
    expect(sent.refused + (fleet.counters.malformed_by_reason.too_large ?? 0)).toBeGreaterThanOrEqual(100);
    expect(after - before).toBeLessThan(64 * MiB);
    // The honest probe: its checks still there, its results still coming in.
    await until("probe-1's next results", 30_000, async () => {
      const p = await api<ProbePage>("/api/probe?key=lab/probe-1&results=0");
      return p.results_total > p1Before.results_total && p.checks_total === p1Before.checks_total;
    });
  });

  it("a probe whose buffer restarts at seq 1 has its new results shown", async () => {
    const t0 = Date.now() - 600_000;
    const at = (s: number) => new Date(t0 + s * 1000).toISOString();
    const steps = [];
    // 120 results (a full ring) of the old buffer, seq 5000…, then the new buffer from seq 1.
    for (let s = 0; s < 120; s++)
      steps.push({
        topic: `${P2}results/gateway-icmp`,
        payload: result({
          id: `old-${s}`,
          seq: 5000 + s,
          boot_id: "boot-old",
          mono_ms: s * 1000,
          started_at: at(s),
        }),
        count: 1,
      });
    for (let s = 1; s <= 5; s++)
      steps.push({
        topic: `${P2}results/gateway-icmp`,
        payload: result({
          id: `new-${s}`,
          seq: s,
          boot_id: "boot-new",
          mono_ms: s * 1000,
          started_at: at(300 + s),
        }),
        count: 1,
      });
    await publish("probe-2", steps);
    await until("the new buffer's results at HQ", 10_000, async () => {
      const p = await api<ProbePage>("/api/probe?key=lab/probe-2");
      const last = p.checks.find((c) => c.check === "gateway-icmp")?.results.slice(-5) ?? [];
      return (
        last.map((r) => `${r.boot_id}:${r.seq}`).join(",") ===
        "boot-new:1,boot-new:2,boot-new:3,boot-new:4,boot-new:5"
      );
    });
    expect(hq.exitCode).toBeNull();
  });

  it("over TLS a user logs in with a Secure session cookie, by the configured name only", async () => {
    // A second HQ serving HTTPS with the lab's server certificate (SAN hq.lab.example), one user.
    const c = labCredentials(lab().info.dir, "hq");
    const tls = tlsDir(lab().info.dir);
    const config = join(lab().info.dir, "hq-tls.yaml");
    writeFileSync(
      config,
      JSON.stringify({
        broker: { url: c.url, username: c.username, password: c.password, ca_file: c.ca_file },
        http: {
          host: ADDR.hq4,
          port: 8443,
          allowed_hosts: ["hq.lab.example"],
          tls: { cert_file: join(tls, "broker.pem"), key_file: join(tls, "broker.key") },
        },
        auth: {
          token_file: join(lab().info.dir, "hq-tls-token"),
          users: [
            { name: "alice", role: "viewer", password_hash: await hashPassword("correct horse battery") },
          ],
        },
      }),
      { mode: 0o600 },
    );
    const log: string[] = [];
    const hqTls = lab().spawn(
      "hq",
      [process.execPath, CLI, "hq", "serve", "--config", config, "--cert", c.cert_file, "--key", c.key_file],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    children.push(hqTls);
    createInterface({ input: hqTls.stderr! }).on("line", (l) => log.push(l));
    await waitFor("HTTPS HQ serving", 15_000, () => log.some((l) => l.includes("serving the fleet page")));
    const https = async (path: string, args: string[] = []) => {
      const r = await lab().exec(
        "hq",
        [
          "curl",
          ...["-s", "--max-time", "5", "-D", "-", "--cacert", c.ca_file],
          ...["--resolve", `hq.lab.example:8443:${ADDR.hq4}`],
          ...args,
          `https://hq.lab.example:8443${path}`,
        ],
        { timeoutMs: 8000 },
      );
      return { status: Number(/^HTTP\/[\d.]+ (\d+)/.exec(r.stdout)?.[1] ?? 0), text: r.stdout };
    };
    expect((await https("/api/fleet")).status).toBe(401);
    const bad = await https("/login", ["--data", "user=alice&password=wrong"]);
    expect(bad.status).toBe(401);
    const ok = await https("/login", ["--data", "user=alice&password=correct%20horse%20battery"]);
    expect(ok.status).toBe(303);
    const setCookie = /^set-cookie: (.*)$/im.exec(ok.text)?.[1] ?? "";
    console.log(`HTTPS login: ${setCookie.replace(/=[^;]+;/, "=…;")}`);
    expect(setCookie).toMatch(/HttpOnly; SameSite=Strict; Max-Age=\d+; Secure/);
    expect(ok.text).toMatch(/^strict-transport-security: max-age=/im);
    const session = setCookie.split(";")[0]!;
    const me = await https("/api/session", ["-H", `Cookie: ${session}`]);
    expect(me.status).toBe(200);
    expect(me.text).toContain('{"user":"alice","role":"viewer","via":"session"}');
    // A valid cookie does not make a foreign Host name acceptable.
    expect(
      (await https("/api/session", ["-H", `Cookie: ${session}`, "-H", "Host: evil.example"])).status,
    ).toBe(421);
    // Logged out, the cookie is worthless.
    expect((await https("/logout", ["-X", "POST", "-H", `Cookie: ${session}`])).status).toBe(303);
    expect((await https("/api/session", ["-H", `Cookie: ${session}`])).status).toBe(401);
  });
});
