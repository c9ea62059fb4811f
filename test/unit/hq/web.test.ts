// HQ's web server (services/hq/src/web.ts) over real HTTP on 127.0.0.1, an ephemeral port: who is
// refused and how, the JSON API and its paging, the live-update stream and its client bound. The
// fleet is fed in memory; the attacks on HQ in the lab are test/security/hq-attacks.test.ts.
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXAMPLES } from "../../../scripts/gen/mqtt-examples.ts";
import { silentLogger } from "../../../services/contract/src/log.ts";
import type { ResultPayload } from "../../../services/contract/src/payloads.ts";
import { Fleet } from "../../../services/hq/src/fleet.ts";
import type { LinkStatus } from "../../../services/hq/src/fleet-link.ts";
import { loadHqConfig } from "../../../services/hq/src/hq-config.ts";
import { Access } from "../../../services/hq/src/web-access.ts";
import {
  CHECKS_PAGE,
  FLEET_PAGE,
  PUSH_MS,
  serveFleetWeb,
  type FleetWeb,
} from "../../../services/hq/src/web.ts";

const TOKEN = "t0ken-".repeat(8);
const SITES = ["branch-001", "branch-002", "branch-003"];
const SSE_CLIENTS = 2;

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

let web: FleetWeb;
let fleet: Fleet;
let connected = false;

beforeAll(async () => {
  const cfg = loadHqConfig({ url: "mqtt://192.0.2.5", host: "127.0.0.1", port: "0" }, {});
  cfg.http.sse_clients = SSE_CLIENTS;
  fleet = new Fleet();
  for (const site of SITES)
    fleet.ingest(`netprobe/v1/${site}/pi-01/state`, JSON.stringify(EXAMPLES.state[0]));
  const base = `netprobe/v1/${SITES[0]}/pi-01/`;
  fleet.ingest(`${base}config`, JSON.stringify(EXAMPLES.config[0]));
  fleet.ingest(
    `${base}results/gateway-icmp`,
    JSON.stringify({ ...(EXAMPLES.result[0] as ResultPayload), site: SITES[0] }),
  );
  const link = (): LinkStatus => ({
    connected,
    url: "mqtt://192.0.2.5",
    subscription: "netprobe/v1/+/+/#",
    subscriptions: ["netprobe/v1/+/+/#"],
    client_id: "hq-test",
    since: Date.now(),
    last_error: null,
  });
  const log = silentLogger();
  web = await serveFleetWeb(fleet, link, cfg, log, new Access(cfg, log, { NETPROBE_HQ_TOKEN: TOKEN }));
});
afterAll(() => web.close());

function ask(
  path: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      new URL(path, web.url),
      { method: opts.method ?? "GET", headers: opts.headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode!,
            headers: res.headers,
            body: Buffer.concat(chunks).toString("utf8"),
          }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(opts.body);
  });
}
const bearer = { authorization: `Bearer ${TOKEN}` };
const json = (a: Answer) => JSON.parse(a.body) as Record<string, unknown>;

/** An open /events stream: what it has received so far, and a way to wait for more. */
interface Stream {
  res: IncomingMessage;
  received: () => string;
  until: (text: string, ms?: number) => Promise<void>;
  close: () => void;
}
function openEvents(): Promise<Stream | Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(new URL("/events", web.url), { headers: bearer, agent: false }, (res) => {
      if (res.statusCode !== 200) {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }),
        );
        return;
      }
      let text = "";
      const waiters: Array<() => void> = [];
      res.on("data", (c: Buffer) => {
        text += c.toString("utf8");
        for (const w of waiters.splice(0)) w();
      });
      const until = (wanted: string, ms = 5000) =>
        new Promise<void>((ok, fail) => {
          const timer = setTimeout(
            () => fail(new Error(`no "${wanted}" within ${ms} ms: ${text.slice(-300)}`)),
            ms,
          );
          const check = () => {
            if (text.includes(wanted)) {
              clearTimeout(timer);
              ok();
            } else waiters.push(check);
          };
          check();
        });
      resolve({ res, received: () => text, until, close: () => req.destroy() });
    });
    req.on("error", reject);
    req.end();
  });
}

describe("HQ's web server refuses", () => {
  it("a request naming another Host (DNS rebinding): 421, even with the token", async () => {
    const a = await ask("/api/fleet", { headers: { ...bearer, host: "evil.example" } });
    expect(a.status).toBe(421);
    expect(json(a).error).toMatch(/allowed_hosts/);
  });

  it("the API without credentials or with a wrong token: 401 with a Bearer challenge, nothing of the fleet", async () => {
    const attempts: Record<string, string>[] = [
      {},
      { authorization: `Bearer ${TOKEN}x` },
      { authorization: "Basic dXNlcjpwYXNz" },
    ];
    for (const headers of attempts) {
      const a = await ask("/api/fleet", { headers });
      expect(a.status, JSON.stringify(headers)).toBe(401);
      expect(a.headers["www-authenticate"]).toBe('Bearer realm="netprobe-hq"');
      expect(a.body).not.toContain("branch-001");
    }
    const page = await ask("/");
    expect(page.status).toBe(401);
    expect(page.headers["content-type"]).toMatch(/^text\/html/);
    expect(page.headers["content-security-policy"]).toContain("default-src 'none'");
    expect(page.body).toContain("<form"); // the login page, not the fleet page
  });

  it("/healthz without credentials tells up or down and nothing else", async () => {
    connected = false;
    const down = await ask("/healthz");
    expect([down.status, json(down)]).toEqual([503, { connected: false }]);
    connected = true;
    const up = await ask("/healthz");
    expect([up.status, json(up)]).toEqual([200, { connected: true }]);
    const full = await ask("/healthz", { headers: bearer });
    expect(full.status).toBe(200);
    expect(json(full)).toMatchObject({ probes: SITES.length, link: { connected: true } });
  });

  it("methods other than GET, a cross-origin login, an oversized login form", async () => {
    expect((await ask("/api/fleet", { method: "PUT", headers: bearer })).status).toBe(405);
    const cross = await ask("/login", {
      method: "POST",
      headers: { origin: "http://evil.example", "content-type": "application/x-www-form-urlencoded" },
      body: `password=${TOKEN}`,
    });
    expect(cross.status).toBe(403);
    expect(cross.headers["set-cookie"]).toBeUndefined();
    const big = await ask("/login", { method: "POST", body: `password=${"x".repeat(10_000)}` });
    expect(big.status).toBe(413);
    const wrong = await ask("/login", { method: "POST", body: "password=nope" });
    expect(wrong.status).toBe(401);
    expect(wrong.body).toContain("Wrong access token.");
  });
});

describe("HQ's web server answers", () => {
  it("the token as a login: a session cookie that then opens the API; logout ends it", async () => {
    const login = await ask("/login", { method: "POST", body: `password=${encodeURIComponent(TOKEN)}` });
    expect(login.status).toBe(303);
    const cookie = String(login.headers["set-cookie"]).split(";")[0]!;
    expect(cookie).toMatch(/^netprobe_hq_session=./);
    const session = await ask("/api/session", { headers: { cookie } });
    expect([session.status, json(session)]).toEqual([
      200,
      { user: "operator", role: "operator", via: "session" },
    ]);
    expect((await ask("/", { headers: { cookie } })).status).toBe(200);
    expect((await ask("/logout", { method: "POST", headers: { cookie } })).status).toBe(303);
    expect((await ask("/api/session", { headers: { cookie } })).status).toBe(401);
  });

  it("/api/fleet in pages: limit and next_cursor walk every probe once", async () => {
    const first = json(await ask("/api/fleet?limit=2", { headers: bearer }));
    const keys1 = (first.probes as { key: string }[]).map((p) => p.key);
    expect(keys1).toEqual([`${SITES[0]}/pi-01`, `${SITES[1]}/pi-01`]);
    expect(first.next_cursor).toBe(keys1[1]);
    const second = json(
      await ask(`/api/fleet?limit=2&cursor=${encodeURIComponent(String(first.next_cursor))}`, {
        headers: bearer,
      }),
    );
    expect((second.probes as { key: string }[]).map((p) => p.key)).toEqual([`${SITES[2]}/pi-01`]);
    expect(second.next_cursor).toBeNull();
    const all = json(await ask("/api/fleet", { headers: bearer }));
    expect((all.probes as unknown[]).length).toBe(SITES.length);
    for (const bad of [
      "limit=0",
      `limit=${FLEET_PAGE + 1}`,
      "limit=1.5",
      "limit=x",
      `cursor=${"k".repeat(513)}`,
    ]) {
      const a = await ask(`/api/fleet?${bad}`, { headers: bearer });
      expect(a.status, bad).toBe(400);
    }
  });

  it("/api/probe: one probe's checks and results, paged; 404 for an unknown probe; 400 for bad paging", async () => {
    const key = encodeURIComponent(`${SITES[0]}/pi-01`);
    const a = await ask(`/api/probe?key=${key}`, { headers: bearer });
    expect(a.status).toBe(200);
    const body = json(a) as { checks: { check: string; results: unknown[] }[] };
    expect(body.checks.map((c) => c.check)).toEqual(["gateway-icmp"]);
    expect(body.checks[0]!.results).toHaveLength(1);
    const none = json(await ask(`/api/probe?key=${key}&results=0`, { headers: bearer })) as typeof body;
    expect(none.checks[0]!.results).toHaveLength(0);
    expect((await ask("/api/probe?key=nowhere/pi-99", { headers: bearer })).status).toBe(404);
    for (const bad of ["results=-1", "results=x", `limit=${CHECKS_PAGE + 1}`, "limit=0"])
      expect((await ask(`/api/probe?key=${key}&${bad}`, { headers: bearer })).status, bad).toBe(400);
    expect((await ask("/nothing-here", { headers: bearer })).status).toBe(404);
  });
});

describe("HQ's live updates (/events)", () => {
  it("a stream starts with a snapshot, then pushes a probe's change; past http.sse_clients a client gets 503", async () => {
    const streams: Stream[] = [];
    try {
      for (let i = 0; i < SSE_CLIENTS; i++) {
        const s = await openEvents();
        if (!("res" in s)) throw new Error(`stream ${i} refused: ${s.status} ${s.body}`);
        streams.push(s);
        expect(s.res.headers["content-type"]).toBe("text/event-stream");
        await s.until("event: meta");
        expect(s.received()).toMatch(/^retry: 1000\n\nevent: snapshot\ndata: /);
        expect(s.received()).toContain(`${SITES[2]}/pi-01`);
      }
      const refused = await openEvents();
      expect("res" in refused).toBe(false);
      if (!("res" in refused)) {
        expect(refused.status).toBe(503);
        expect(refused.headers["retry-after"]).toBe("10");
      }
      const meta = json(await ask("/healthz", { headers: bearer })) as { web: Record<string, number> };
      expect(meta.web).toMatchObject({ sse_clients: SSE_CLIENTS, sse_refused: 1 });

      // A state change reaches every open stream within PUSH_MS (plus scheduling).
      const t0 = Date.now();
      fleet.ingest(`netprobe/v1/${SITES[1]}/pi-01/state`, JSON.stringify(EXAMPLES.state[1]));
      for (const s of streams) await s.until('"state":"offline"', PUSH_MS + 2000);
      expect(Date.now() - t0).toBeLessThan(PUSH_MS + 2000);
      expect(streams[0]!.received()).toContain("event: probe\ndata: ");
    } finally {
      for (const s of streams) s.close();
    }
    // A closed stream frees its place.
    await new Promise((r) => setTimeout(r, 100));
    const again = await openEvents();
    expect("res" in again).toBe(true);
    if ("res" in again) again.close();
  });
});
