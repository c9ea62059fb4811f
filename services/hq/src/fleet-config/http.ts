// The fleet config routes of HQ's web server (docs/fleet-config.md, "HTTP API"), under
// /api/config/. Same access rules as the rest (web-access.ts): every route needs a principal;
// reading is for any role, changing (templates, rollouts, rollback) for `operator`, and a browser
// post from another origin is refused. Never throws; a bad body is a 400 naming the problem.
import type { IncomingMessage } from "node:http";
import type { Principal } from "../web-access.ts";
import { ROLLOUT_DEFAULTS, type Answer, type FleetConfig } from "./service.ts";

/** Largest body read (a template). */
export const MAX_CONFIG_BODY_BYTES = 256 * 1024;

type Reply = (code: number, body: unknown) => void;

/** True for the paths this file answers. */
export function isConfigRoute(pathname: string): boolean {
  return pathname === "/api/config" || pathname.startsWith("/api/config/");
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_CONFIG_BODY_BYTES) throw new RangeError(`body larger than ${MAX_CONFIG_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  return JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

function text(v: unknown, max = 500): string {
  return typeof v === "string" ? v.slice(0, max) : "";
}

/** Answers one /api/config route. */
export async function handleConfigRoute(
  fc: FleetConfig | undefined,
  req: IncomingMessage,
  url: URL,
  who: Principal | null,
  sameOrigin: boolean,
  reply: Reply,
): Promise<void> {
  if (!who) return reply(401, { error: "authentication required: Authorization: Bearer <token>" });
  const method = req.method ?? "GET";
  const read = method === "GET" || method === "HEAD";
  if (!read) {
    if (who.role !== "operator")
      return reply(403, { error: "an operator token or user is needed to change fleet config" });
    if (!sameOrigin) return reply(403, { error: "cross-origin request refused" });
  }
  if (!fc)
    return reply(503, {
      error: "fleet config needs the history store: set history.engine to sqlite or postgres (docs/hq.md)",
    });
  const parts = url.pathname
    .split("/")
    .filter((p) => p !== "")
    .slice(2)
    .map((p) => decodeURIComponent(p));
  const [what, ...rest] = parts;
  const send = (a: Answer) => reply(a.code, a.body);
  let body: Record<string, unknown> = {};
  if (!read) {
    let parsed: unknown;
    try {
      parsed = await readJson(req);
    } catch (err) {
      return reply(err instanceof RangeError ? 413 : 400, {
        error: err instanceof RangeError ? err.message : `body: not JSON (${(err as Error).message})`,
      });
    }
    if (!isObject(parsed)) return reply(400, { error: "body: a JSON object" });
    body = parsed;
  }
  const author = who.user;
  switch (what) {
    case "templates": {
      const [level, ...name] = rest;
      if (level === undefined) {
        if (!read) return reply(405, { error: "GET only" });
        return reply(200, { templates: await fc.templates() });
      }
      const n = name.join("/");
      if (read) {
        const t = (await fc.templates()).find((x) => x.level === level && x.name === n);
        return t ? reply(200, t) : reply(404, { error: `no template ${level}:${n}` });
      }
      if (method === "PUT")
        return send(
          await fc.setTemplate(level, n, body.template, author, text(body.comment), body.force === true),
        );
      if (method === "DELETE") return send(await fc.deleteTemplate(level, n, author, text(body.comment)));
      return reply(405, { error: "GET, PUT or DELETE" });
    }
    case "history":
      if (!read) return reply(405, { error: "GET only" });
      return send(
        await fc.history(
          url.searchParams.get("level") ?? undefined,
          url.searchParams.get("name") ?? undefined,
        ),
      );
    case "status":
      if (!read) return reply(405, { error: "GET only" });
      return reply(200, { probes: await fc.status() });
    case "probes": {
      if (!read) return reply(405, { error: "GET only" });
      const key = rest.join("/");
      const d = await fc.desired(key);
      return reply(d.ok || d.error !== "no_template" ? 200 : 404, { key, ...d });
    }
    case "diff":
      if (!read) return reply(405, { error: "GET only" });
      return send(await fc.diff(rest.join("/")));
    case "rollouts": {
      if (read) {
        if (rest.length === 0) return reply(200, { rollouts: await fc.rollouts() });
        return send(await fc.rollout(rest.join("/")));
      }
      if (method !== "POST" || rest.length > 0) return reply(405, { error: "POST /api/config/rollouts" });
      const num = (k: string, d: number): number => (body[k] === undefined ? d : Number(body[k]));
      const secs = (k: string, d: number, max: number): number | null => {
        const v = num(k, d);
        return Number.isFinite(v) && v > 0 && v <= max ? v : null;
      };
      const replyS = secs("reply_timeout_s", ROLLOUT_DEFAULTS.reply_timeout_s, 600);
      const effectiveS = secs("effective_timeout_s", ROLLOUT_DEFAULTS.effective_timeout_s, 3600);
      if (replyS === null || effectiveS === null)
        return reply(400, { error: "reply_timeout_s: 0..600, effective_timeout_s: 0..3600 seconds" });
      return send(
        await fc.startRollout({
          scope: text(body.scope) || "all",
          stages: text(body.stages) || ROLLOUT_DEFAULTS.stages,
          confirm_s: num("confirm_s", ROLLOUT_DEFAULTS.confirm_s),
          reply_timeout_s: replyS,
          effective_timeout_s: effectiveS,
          parallel: num("parallel", ROLLOUT_DEFAULTS.parallel),
          comment: text(body.comment),
          author,
        }),
      );
    }
    case "rollback":
      if (method !== "POST") return reply(405, { error: "POST /api/config/rollback/<site>/<probe>" });
      return send(await fc.rollback(rest.join("/"), author));
    case undefined:
    default:
      return reply(404, { error: "not found" });
  }
}
