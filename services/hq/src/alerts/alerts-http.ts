// The alert routes of HQ's web server (docs/alerting.md, "HTTP API"): /metrics for Prometheus, the
// incidents, acknowledging one, and maintenance windows per site. Same access rules as the rest of
// the page (web-access.ts): every route needs a principal; reading is for any role, changing
// (acknowledge, maintenance) for `operator`. /metrics takes the bearer token Prometheus sends
// (`authorization.credentials_file` of its scrape config).
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Principal } from "../web-access.ts";
import type { Alerting } from "./alerting.ts";

/** Largest JSON body read on these routes. */
const MAX_BODY_BYTES = 4096;
/** Longest maintenance window the API sets (a forgotten one must not silence a site for ever). */
export const MAX_MAINTENANCE_S = 7 * 24 * 3600;

/** True for the paths alerts-http answers. */
export function isAlertRoute(pathname: string): boolean {
  return (
    pathname === "/metrics" ||
    pathname.startsWith("/api/incidents") ||
    pathname.startsWith("/api/maintenance")
  );
}

type Reply = (code: number, body: unknown, headers?: Record<string, string>) => void;

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new RangeError("body too large");
    chunks.push(chunk);
  }
  return JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
}

/**
 * Answers one alert route. `who` is null without credentials; `sameOrigin` false for a browser post
 * from another origin (refused: CSRF). Never throws; a bad body is a 400 naming the problem.
 */
export async function handleAlertRoute(
  alerting: Alerting,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  who: Principal | null,
  sameOrigin: boolean,
  reply: Reply,
): Promise<void> {
  if (!who)
    return reply(
      401,
      { error: "authentication required: Authorization: Bearer <token> (docs/alerting.md)" },
      { "www-authenticate": 'Bearer realm="netprobe-hq"' },
    );
  const method = req.method ?? "GET";
  const read = method === "GET" || method === "HEAD";
  if (!read) {
    if (who.role !== "operator")
      return reply(403, { error: "an operator token or user is needed to change alerts" });
    if (!sameOrigin) return reply(403, { error: "cross-origin request refused" });
  }
  const now = Date.now();
  const parts = url.pathname.split("/").filter((p) => p !== "");
  if (url.pathname === "/metrics") {
    if (!read) return reply(405, { error: "GET only" });
    res.writeHead(200, {
      "content-type": "text/plain; version=0.0.4; charset=utf-8",
      "cache-control": "no-store",
    });
    res.end(method === "HEAD" ? undefined : alerting.metrics());
    return;
  }
  if (parts[1] === "incidents") {
    if (parts.length === 2 && read) {
      const open = url.searchParams.get("open");
      const limit = Number(url.searchParams.get("limit") ?? 100);
      if (
        !Number.isInteger(limit) ||
        limit < 1 ||
        limit > 1000 ||
        (open !== null && open !== "true" && open !== "false")
      )
        return reply(400, { error: "open: true|false; limit: 1..1000" });
      const incidents = alerting.store.list({ limit, ...(open !== null ? { open: open === "true" } : {}) });
      return reply(200, { now, incidents });
    }
    if (parts.length === 4 && parts[3] === "ack" && method === "POST") {
      const ok = alerting.engine.acknowledge(parts[2]!, who.user, now);
      return ok
        ? reply(200, { incident: alerting.store.get(parts[2]!) })
        : reply(404, { error: "no open incident with that id" });
    }
    return reply(parts.length === 2 ? 405 : 404, {
      error: "GET /api/incidents, POST /api/incidents/<id>/ack",
    });
  }
  // /api/maintenance
  if (parts.length === 2 && read) return reply(200, { now, windows: alerting.engine.maintenance() });
  if (parts.length === 2 && method === "POST") {
    let body: unknown;
    try {
      body = await readJson(req);
    } catch (err) {
      return reply(err instanceof RangeError ? 413 : 400, {
        error: err instanceof RangeError ? "body too large" : "body: not JSON",
      });
    }
    const b = (body ?? {}) as Record<string, unknown>;
    const problems: string[] = [];
    const site = b.site;
    if (typeof site !== "string" || site.length === 0 || site.length > 256)
      problems.push("site: a site name");
    const duration = b.duration_s;
    if (typeof duration !== "number" || !(duration > 0) || duration > MAX_MAINTENANCE_S)
      problems.push(`duration_s: 1..${MAX_MAINTENANCE_S}`);
    const reason = b.reason ?? "";
    if (typeof reason !== "string" || reason.length > 512) problems.push("reason: text up to 512 characters");
    if (problems.length > 0) return reply(400, { error: problems.join("; ") });
    const w = alerting.engine.addMaintenance(
      {
        site: site as string,
        from: now,
        until: now + (duration as number) * 1000,
        reason: reason as string,
        by: who.user,
      },
      now,
    );
    return reply(201, { window: w });
  }
  if (parts.length === 3 && method === "DELETE")
    return alerting.engine.removeMaintenance(parts[2]!, now)
      ? reply(200, { removed: parts[2] })
      : reply(404, { error: "no such maintenance window" });
  return reply(405, { error: "GET|POST /api/maintenance, DELETE /api/maintenance/<id>" });
}
