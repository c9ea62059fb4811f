// The fleet's web page: one self-contained HTML file (no external assets, so a wall screen without
// internet works), a JSON API and server-sent events. Changes are coalesced: a probe's tile is
// pushed at most every PUSH_MS (state, health and events at once; result-only changes at most
// every RESULT_PUSH_MS, so 1,000 probes × 1 result/s do not flood a browser).
// Hostile by default (docs/hq.md, "Access"): a request naming another Host is refused (DNS
// rebinding), everything but /login and a bare /healthz needs a token, a session or the trusted
// proxy's word; every /events client is bounded (a count, and bytes queued: one that does not read
// is dropped), and API answers are paged.
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createTlsServer } from "node:https";
import type { AddressInfo } from "node:net";
import type { Logger } from "../../contract/src/log.ts";
import type { Alerting } from "./alerts/alerting.ts";
import { handleAlertRoute, isAlertRoute } from "./alerts/alerts-http.ts";
import { handleConfigRoute, isConfigRoute } from "./fleet-config/http.ts";
import type { FleetConfig } from "./fleet-config/service.ts";
import type { Fleet, FleetChange } from "./fleet.ts";
import type { LinkStatus } from "./fleet-link.ts";
import type { HistoryReader } from "./history/store.ts";
import type { HqConfig } from "./hq-config.ts";
import { historyRoute } from "./web-history.ts";
import { Access, cookie, hostName, normalAddress, SESSION_COOKIE, type Principal } from "./web-access.ts";

const PAGE = readFileSync(new URL("./page.html", import.meta.url));
const LOGIN_PAGE = readFileSync(new URL("./login.html", import.meta.url), "utf8");
/** Largest login form body read. */
const MAX_FORM_BYTES = 4096;
/** Probes per /api/fleet page, and checks per /api/probe page: defaults and maxima. */
export const FLEET_PAGE = 1000;
export const CHECKS_PAGE = 100;
/** Longest a state/health/event change waits before it is pushed to browsers. */
export const PUSH_MS = 150;
/** Longest a result-only change (last seen, counters) waits. */
export const RESULT_PUSH_MS = 2000;
const SNAPSHOT_EVERY_MS = 30_000;

/** Counters of the /events clients. */
export interface StreamCounters {
  sse_clients: number;
  /** Dropped because their queue passed http.sse_buffer_bytes (they did not read). */
  sse_dropped_slow: number;
  /** Refused because http.sse_clients were connected. */
  sse_refused: number;
}
// (meta also reports sse_queued_bytes: what the connected clients have not read yet.)

/** The running web server. */
export interface FleetWeb {
  server: Server;
  /** `http://host:port/` (https with http.tls) */
  url: string;
  access: Access;
  close(): Promise<void>;
}

const SECURITY_HEADERS = {
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  // not no-referrer: with it Chromium sends `Origin: null` on the login form post.
  "referrer-policy": "same-origin",
};
const PAGE_CSP =
  "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; " +
  "img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/** Starts the web server on cfg.http (port 0: any free one). */
export async function serveFleetWeb(
  fleet: Fleet,
  link: () => LinkStatus,
  cfg: HqConfig,
  log: Logger,
  access: Access = new Access(cfg, log),
  /** The store the history routes read (web-history.ts); without it they answer 404. */
  history?: HistoryReader,
  alerting?: Alerting,
  /** Fleet config (fleet-config/); without it /api/config answers 503. */
  fleetConfig?: FleetConfig,
): Promise<FleetWeb> {
  const { host, port, sse_clients: maxClients, sse_buffer_bytes: bufferCap } = cfg.http;
  const clients = new Map<ServerResponse, Principal>();
  const streams: StreamCounters = { sse_clients: 0, sse_dropped_slow: 0, sse_refused: 0 };
  // A client may queue one snapshot (the whole fleet, written at once) plus bufferCap.
  let snapshotBytes = 0;
  const dirtyNow = new Set<string>();
  const dirtyLater = new Set<string>();
  const newEvents: string[] = [];
  let fastTimer: NodeJS.Timeout | undefined;
  let slowTimer: NodeJS.Timeout | undefined;

  /** Writes to one client unless it stopped reading: then it is dropped (it will reconnect). */
  const push = (c: ServerResponse, frame: string): void => {
    if (c.writableLength > bufferCap + snapshotBytes) {
      clients.delete(c);
      streams.sse_dropped_slow++;
      c.destroy();
      return;
    }
    c.write(frame);
  };
  const queued = (): number => {
    let n = 0;
    for (const c of clients.keys()) n += c.writableLength;
    return n;
  };
  const pushAll = (frame: string): void => {
    for (const c of [...clients.keys()]) push(c, frame);
  };
  const send = (event: string, data: unknown): void =>
    pushAll(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  const meta = () => ({
    now: Date.now(),
    link: link(),
    counters: fleet.counters,
    web: { ...access.counters, ...streams, sse_clients: clients.size, sse_queued_bytes: queued() },
    probes: fleet.size,
  });
  const flush = (keys: Set<string>): void => {
    const now = Date.now();
    for (const key of keys) {
      const p = fleet.get(key, now);
      if (p) {
        const { checks: _checks, ...view } = p;
        send("probe", view);
      } else send("probe", { key, removed: true });
      dirtyLater.delete(key);
    }
    keys.clear();
    send("meta", meta());
  };
  const onChange = (c: FleetChange): void => {
    if (clients.size === 0) return;
    if (c.part === "event") {
      const ev = fleet.get(c.key)?.events[0];
      if (ev) newEvents.push(JSON.stringify(ev));
    }
    if (c.part === "result" || c.part === "reply" || c.part === "config") {
      dirtyLater.add(c.key);
      slowTimer ??= setTimeout(() => {
        slowTimer = undefined;
        flush(dirtyLater);
      }, RESULT_PUSH_MS);
      return;
    }
    dirtyNow.add(c.key);
    fastTimer ??= setTimeout(() => {
      fastTimer = undefined;
      for (const e of newEvents.splice(0)) pushAll(`event: event\ndata: ${e}\n\n`);
      flush(dirtyNow);
    }, PUSH_MS);
  };
  fleet.on("change", onChange);
  const snapshotFrame = (): string => {
    const frame = `event: snapshot\ndata: ${JSON.stringify({ now: Date.now(), probes: fleet.list(), events: fleet.latestEvents(50) })}\n\n`;
    snapshotBytes = Buffer.byteLength(frame);
    return frame;
  };
  const periodic = setInterval(() => {
    // A session that ended (logout, expiry) ends its streams too.
    for (const [c, who] of clients)
      if (!access.stillValid(who)) {
        clients.delete(c);
        c.end();
      }
    // Area LEDs change with time alone (a failure stops blinking after 5 min): resend everything.
    if (clients.size > 0) pushAll(snapshotFrame());
  }, SNAPSHOT_EVERY_MS);
  periodic.unref();

  const json = (
    res: ServerResponse,
    code: number,
    body: unknown,
    headers: Record<string, string> = {},
  ): void => {
    res.writeHead(code, {
      "content-type": "application/json; charset=utf-8",
      ...SECURITY_HEADERS,
      ...headers,
    });
    res.end(JSON.stringify(body));
  };
  const html = (
    res: ServerResponse,
    code: number,
    body: string | Buffer,
    headers: Record<string, string> = {},
  ) => {
    res.writeHead(code, {
      "content-type": "text/html; charset=utf-8",
      "content-security-policy": PAGE_CSP,
      ...SECURITY_HEADERS,
      ...headers,
    });
    res.end(body);
  };
  const loginPage = (message: string): string =>
    LOGIN_PAGE.replace("<!--message-->", message === "" ? "" : `<p class="error">${message}</p>`);
  const secure = cfg.http.tls !== undefined;
  const hsts: Record<string, string> = secure ? { "strict-transport-security": "max-age=31536000" } : {};
  /** `limit`/`cursor` of a paged endpoint; null when malformed. */
  const paging = (url: URL, max: number): { limit: number; cursor?: string } | null => {
    const l = url.searchParams.get("limit");
    const limit = l === null ? max : Number(l);
    if (!Number.isInteger(limit) || limit < 1 || limit > max) return null;
    const cursor = url.searchParams.get("cursor") ?? undefined;
    return cursor !== undefined && cursor.length > 512
      ? null
      : { limit, ...(cursor !== undefined ? { cursor } : {}) };
  };
  // A form post from another origin (login CSRF) is refused; browsers send Origin on every POST.
  const sameOrigin = (req: IncomingMessage): boolean => {
    const origin = req.headers.origin;
    if (origin === undefined) return true;
    try {
      return hostName(new URL(origin).host) === hostName(req.headers.host);
    } catch {
      return false;
    }
  };

  const login = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (!sameOrigin(req)) return json(res, 403, { error: "cross-origin login refused" }, hsts);
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_FORM_BYTES)
        return json(res, 413, { error: "form too large" }, { ...hsts, connection: "close" });
      chunks.push(chunk);
    }
    const form = new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
    const user = (form.get("user") ?? "").trim().slice(0, 64);
    const password = (form.get("password") ?? "").slice(0, 1024);
    const out = await access.login(normalAddress(req.socket.remoteAddress), user, password);
    if (out.ok) {
      log.info({ user: out.principal.user, role: out.principal.role }, "logged in");
      res.writeHead(303, {
        location: "./",
        "set-cookie": access.cookie(out.session),
        ...SECURITY_HEADERS,
        ...hsts,
      });
      res.end();
      return;
    }
    if (out.why === "limited")
      return html(res, 429, loginPage("Too many attempts: wait a few minutes."), {
        "retry-after": "300",
        ...hsts,
      });
    log.warn({ user: user === "" ? "(token)" : user, source: req.socket.remoteAddress }, "login failed");
    html(res, 401, loginPage(user === "" ? "Wrong access token." : "Wrong user or password."), hsts);
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    if (!access.hostAllowed(req))
      return json(
        res,
        421,
        { error: "this server does not answer to that Host name (see http.allowed_hosts)" },
        hsts,
      );
    const url = new URL(req.url ?? "/", "http://hq");
    if (url.pathname === "/login" && req.method === "POST") {
      login(req, res).catch((err: unknown) => {
        log.error({ err: String(err) }, "login failed with an error");
        if (!res.headersSent) json(res, 500, { error: "internal" });
      });
      return;
    }
    if (url.pathname === "/logout" && req.method === "POST") {
      if (!sameOrigin(req)) return json(res, 403, { error: "cross-origin logout refused" }, hsts);
      access.logout(cookie(req.headers.cookie, SESSION_COOKIE));
      res.writeHead(303, { location: "./", "set-cookie": access.cookie(""), ...SECURITY_HEADERS, ...hsts });
      res.end();
      return;
    }
    // /metrics and the alert API (docs/alerting.md): their own methods and role checks.
    if (alerting && isAlertRoute(url.pathname)) {
      const who = access.principal(req);
      if (!who) access.counters.unauthorized++;
      handleAlertRoute(alerting, req, res, url, who, sameOrigin(req), (code, body, headers = {}) =>
        json(res, code, body, { ...hsts, ...headers }),
      ).catch((err: unknown) => {
        log.error({ err: String(err) }, "alert request failed");
        if (!res.headersSent) json(res, 500, { error: "internal" });
      });
      return;
    }
    // Fleet config (docs/fleet-config.md): reads for any role, changes for operators.
    if (isConfigRoute(url.pathname)) {
      const who = access.principal(req);
      if (!who) access.counters.unauthorized++;
      handleConfigRoute(fleetConfig, req, url, who, sameOrigin(req), (code, body) =>
        json(res, code, body, hsts),
      ).catch((err: unknown) => {
        log.error({ err: String(err), path: url.pathname }, "config request failed");
        if (!res.headersSent) json(res, 500, { error: "internal" }, hsts);
      });
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") return json(res, 405, { error: "GET only" }, hsts);
    if (url.pathname === "/login") return html(res, 200, loginPage(""), hsts);
    const who = access.principal(req);
    if (!who) {
      // A load balancer may ask whether HQ is up without credentials, and learns nothing else.
      if (url.pathname === "/healthz")
        return json(res, link().connected ? 200 : 503, { connected: link().connected }, hsts);
      access.counters.unauthorized++;
      if (url.pathname === "/" || url.pathname === "/index.html") return html(res, 401, loginPage(""), hsts);
      return json(
        res,
        401,
        { error: "authentication required: a session (/login) or Authorization: Bearer <token>" },
        {
          "www-authenticate": 'Bearer realm="netprobe-hq"',
          ...hsts,
        },
      );
    }
    switch (url.pathname) {
      case "/":
      case "/index.html":
        return html(res, 200, PAGE, hsts);
      case "/api/session":
        return json(res, 200, { user: who.user, role: who.role, via: who.via }, hsts);
      case "/api/fleet": {
        const pg = paging(url, FLEET_PAGE);
        if (!pg) return json(res, 400, { error: `limit: 1..${FLEET_PAGE}; cursor: a probe key` }, hsts);
        const probes = fleet.list(Date.now(), pg.cursor, pg.limit + 1);
        const more = probes.length > pg.limit;
        if (more) probes.length = pg.limit;
        return json(
          res,
          200,
          {
            ...meta(),
            probes,
            events: fleet.latestEvents(50),
            next_cursor: more ? probes.at(-1)!.key : null,
          },
          hsts,
        );
      }
      case "/api/probe": {
        const pg = paging(url, CHECKS_PAGE);
        const r = url.searchParams.get("results");
        const results = r === null ? Infinity : Number(r);
        if (!pg || !(results === Infinity || (Number.isInteger(results) && results >= 0)))
          return json(
            res,
            400,
            { error: `limit: 1..${CHECKS_PAGE}; cursor: a check name; results: ≥ 0` },
            hsts,
          );
        const p = fleet.page(url.searchParams.get("key") ?? "", {
          limit: pg.limit,
          results,
          ...(pg.cursor !== undefined ? { after: pg.cursor } : {}),
        });
        return p ? json(res, 200, p, hsts) : json(res, 404, { error: "no such probe" }, hsts);
      }
      case "/healthz":
        return json(res, link().connected ? 200 : 503, meta(), hsts);
      case "/events": {
        if (clients.size >= maxClients) {
          streams.sse_refused++;
          return json(
            res,
            503,
            { error: `${maxClients} live-update clients already connected` },
            {
              "retry-after": "10",
              ...hsts,
            },
          );
        }
        res.writeHead(200, {
          "content-type": "text/event-stream",
          ...SECURITY_HEADERS,
          ...hsts,
          connection: "keep-alive",
        });
        res.write("retry: 1000\n\n");
        res.write(snapshotFrame());
        res.write(`event: meta\ndata: ${JSON.stringify(meta())}\n\n`);
        clients.set(res, who);
        // res, not req: a bodyless request ends (and closes) at once; the response closes with the socket.
        res.on("close", () => clients.delete(res));
        return;
      }
      default:
        if (url.pathname.startsWith("/api/history/") || url.pathname === "/api/report") {
          historyRoute(history, url).then(
            (a) => {
              if (!a) return json(res, 404, { error: "not found" }, hsts);
              if ("document" in a) {
                const headers = { "content-type": a.type, ...SECURITY_HEADERS, ...hsts };
                // The HTML report has no script; the page's CSP keeps it that way.
                if (a.type.startsWith("text/html"))
                  res.writeHead(200, { ...headers, "content-security-policy": PAGE_CSP });
                else
                  res.writeHead(200, {
                    ...headers,
                    "content-disposition": `attachment; filename="${a.filename}"`,
                  });
                return res.end(a.document);
              }
              json(res, a.code, a.body, hsts);
            },
            (err: unknown) => {
              log.error({ err: String(err), path: url.pathname }, "history request failed");
              if (!res.headersSent) json(res, 500, { error: "internal" }, hsts);
            },
          );
          return;
        }
        return json(res, 404, { error: "not found" }, hsts);
    }
  };
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    try {
      handle(req, res);
    } catch (err) {
      log.error({ err: String(err) }, "web request failed");
      if (!res.headersSent) json(res, 500, { error: "internal" });
      else res.end();
    }
  };
  const tls = cfg.http.tls;
  const server: Server = tls
    ? createTlsServer({ cert: readFileSync(tls.cert_file), key: readFileSync(tls.key_file) }, onRequest)
    : createServer(onRequest);
  // Slow or idle clients may not hold sockets forever (the /events streams are counted apart).
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.maxConnections = maxClients + 256;
  const keepalive = setInterval(() => pushAll(": keepalive\n\n"), 15_000);
  keepalive.unref();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const shownHost = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
  return {
    server,
    url: `${tls ? "https" : "http"}://${shownHost}:${addr.port}/`,
    access,
    close: () =>
      new Promise<void>((resolve) => {
        fleet.off("change", onChange);
        clearInterval(periodic);
        clearInterval(keepalive);
        clearTimeout(fastTimer);
        clearTimeout(slowTimer);
        // destroy, not end: a client that stopped reading would hold close() open.
        for (const c of clients.keys()) c.destroy();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
