// The fleet's web page: one self-contained HTML file (no external assets, so a wall screen without
// internet works), a JSON API and server-sent events. Changes are coalesced: a probe's tile is
// pushed at most every PUSH_MS (state, health and events at once; result-only changes at most
// every RESULT_PUSH_MS, so 1,000 probes × 1 result/s do not flood a browser).
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "../../probe/src/log.ts";
import type { Fleet, FleetChange } from "./fleet.ts";
import type { LinkStatus } from "./fleet-link.ts";

const PAGE = readFileSync(new URL("./page.html", import.meta.url));
/** Longest a state/health/event change waits before it is pushed to browsers. */
export const PUSH_MS = 150;
/** Longest a result-only change (last seen, counters) waits. */
export const RESULT_PUSH_MS = 2000;
const SNAPSHOT_EVERY_MS = 30_000;

/** The running web server. */
export interface FleetWeb {
  server: Server;
  /** `http://host:port/` */
  url: string;
  close(): Promise<void>;
}

/** Starts the web server on host:port (port 0: any free one). */
export async function serveFleetWeb(
  fleet: Fleet,
  link: () => LinkStatus,
  host: string,
  port: number,
  log: Logger,
): Promise<FleetWeb> {
  const clients = new Set<ServerResponse>();
  const dirtyNow = new Set<string>();
  const dirtyLater = new Set<string>();
  const newEvents: string[] = [];
  let fastTimer: NodeJS.Timeout | undefined;
  let slowTimer: NodeJS.Timeout | undefined;

  const send = (event: string, data: unknown): void => {
    const frame = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const c of clients) c.write(frame);
  };
  const meta = () => ({ now: Date.now(), link: link(), counters: fleet.counters, probes: fleet.size });
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
      for (const e of newEvents.splice(0)) for (const cl of clients) cl.write(`event: event\ndata: ${e}\n\n`);
      flush(dirtyNow);
    }, PUSH_MS);
  };
  fleet.on("change", onChange);
  const snapshot = () => ({ now: Date.now(), probes: fleet.list(), events: fleet.latestEvents(50) });
  const periodic = setInterval(() => {
    // Area LEDs change with time alone (a failure stops blinking after 5 min): resend everything.
    if (clients.size > 0) send("snapshot", snapshot());
  }, SNAPSHOT_EVERY_MS);
  periodic.unref();

  const json = (res: ServerResponse, code: number, body: unknown): void => {
    res.writeHead(code, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" });
    res.end(JSON.stringify(body));
  };
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? "/", "http://hq");
    if (req.method !== "GET" && req.method !== "HEAD") return json(res, 405, { error: "GET only" });
    switch (url.pathname) {
      case "/":
      case "/index.html":
        res.writeHead(200, {
          "content-type": "text/html; charset=utf-8",
          "cache-control": "no-store",
          "content-security-policy":
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:",
        });
        res.end(PAGE);
        return;
      case "/api/fleet":
        return json(res, 200, { ...meta(), probes: fleet.list(), events: fleet.latestEvents(50) });
      case "/api/probe": {
        const p = fleet.get(url.searchParams.get("key") ?? "");
        return p ? json(res, 200, p) : json(res, 404, { error: "no such probe" });
      }
      case "/healthz":
        return json(res, link().connected ? 200 : 503, meta());
      case "/events": {
        res.writeHead(200, {
          "content-type": "text/event-stream",
          "cache-control": "no-store",
          connection: "keep-alive",
        });
        res.write("retry: 1000\n\n");
        res.write(`event: snapshot\ndata: ${JSON.stringify(snapshot())}\n\n`);
        res.write(`event: meta\ndata: ${JSON.stringify(meta())}\n\n`);
        clients.add(res);
        req.on("close", () => clients.delete(res));
        return;
      }
      default:
        return json(res, 404, { error: "not found" });
    }
  };
  const server = createServer((req, res) => {
    try {
      handle(req, res);
    } catch (err) {
      log.error({ err: String(err) }, "web request failed");
      if (!res.headersSent) json(res, 500, { error: "internal" });
      else res.end();
    }
  });
  const keepalive = setInterval(() => {
    for (const c of clients) c.write(": keepalive\n\n");
  }, 15_000);
  keepalive.unref();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const shownHost = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
  return {
    server,
    url: `http://${shownHost}:${addr.port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        fleet.off("change", onChange);
        clearInterval(periodic);
        clearInterval(keepalive);
        clearTimeout(fastTimer);
        clearTimeout(slowTimer);
        for (const c of clients) c.end();
        server.close(() => resolve());
      }),
  };
}
