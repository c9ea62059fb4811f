// The /api/config routes over real HTTP on 127.0.0.1 (services/hq/src/fleet-config/http.ts inside
// web.ts): who may read and change, bad bodies named, and 503 without a history store.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../../../services/contract/src/log.ts";
import { Fleet } from "../../../../services/hq/src/fleet.ts";
import type { LinkStatus } from "../../../../services/hq/src/fleet-link.ts";
import { FleetConfig } from "../../../../services/hq/src/fleet-config/service.ts";
import { MAX_CONFIG_BODY_BYTES } from "../../../../services/hq/src/fleet-config/http.ts";
import { configStateOf } from "../../../../services/hq/src/fleet-config/transport.ts";
import { sqliteHistoryStore } from "../../../../services/hq/src/history/sqlite-store.ts";
import { loadHqConfig } from "../../../../services/hq/src/hq-config.ts";
import { Access } from "../../../../services/hq/src/web-access.ts";
import { serveFleetWeb, type FleetWeb } from "../../../../services/hq/src/web.ts";

const OPERATOR = "operator-token-".repeat(3);
const VIEWER = "viewer-token-0123456789abcdef";
const tmp = mkdtempSync(join(tmpdir(), "netprobe-cfghttp-"));
const store = sqliteHistoryStore(":memory:", { raw_days: 30, rollup_days: 366, event_days: 366 });
let web: FleetWeb;
let bare: FleetWeb;

beforeAll(async () => {
  const viewerFile = join(tmp, "viewer.token");
  writeFileSync(viewerFile, `${VIEWER}\n`, { mode: 0o600 });
  const cfg = loadHqConfig({ url: "mqtt://192.0.2.5", host: "127.0.0.1", port: "0" }, {});
  cfg.auth.tokens = [{ name: "wall", role: "viewer", file: viewerFile }];
  const fleet = new Fleet();
  const link = (): LinkStatus => ({
    connected: true,
    url: "mqtt://192.0.2.5",
    subscription: "",
    subscriptions: [],
    client_id: "t",
    since: 0,
    last_error: null,
  });
  const log = silentLogger();
  await store.open();
  const fc = new FleetConfig(
    store,
    fleet,
    {
      command: () => Promise.resolve("timeout"),
      state: (k) => configStateOf(fleet, k),
      waitFor: () => Promise.resolve(false),
    },
    log,
  );
  const access = () => new Access(cfg, log, { NETPROBE_HQ_TOKEN: OPERATOR });
  web = await serveFleetWeb(fleet, link, cfg, log, access(), store, undefined, fc);
  bare = await serveFleetWeb(fleet, link, cfg, log, access());
});
afterAll(async () => {
  await web.close();
  await bare.close();
  await store.close();
  rmSync(tmp, { recursive: true, force: true });
});

function ask(
  base: FleetWeb,
  path: string,
  o: { method?: string; token?: string; body?: string; origin?: string } = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      new URL(path, base.url),
      {
        method: o.method ?? "GET",
        agent: false,
        headers: {
          ...(o.token ? { authorization: `Bearer ${o.token}` } : {}),
          ...(o.origin ? { origin: o.origin } : {}),
          ...(o.body !== undefined ? { "content-type": "application/json" } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode!,
            body: JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>,
          }),
        );
      },
    );
    req.on("error", reject);
    req.end(o.body);
  });
}

const TEMPLATE = JSON.stringify({ template: { config: { log_level: "debug" } }, comment: "why" });

describe("/api/config", () => {
  it("needs credentials; a viewer reads but cannot change", async () => {
    expect((await ask(web, "api/config/status")).status).toBe(401);
    expect((await ask(web, "api/config/status", { token: VIEWER })).status).toBe(200);
    const put = await ask(web, "api/config/templates/fleet/fleet", {
      method: "PUT",
      token: VIEWER,
      body: TEMPLATE,
    });
    expect(put.status).toBe(403);
    expect(put.body.error).toContain("operator");
    expect(
      (await ask(web, "api/config/rollouts", { method: "POST", token: VIEWER, body: "{}" })).status,
    ).toBe(403);
    expect((await store.templateVersions()).length).toBe(0);
  });

  it("an operator stores a template (author = the token's name); a cross-origin post is refused", async () => {
    const cross = await ask(web, "api/config/templates/fleet/fleet", {
      method: "PUT",
      token: OPERATOR,
      body: TEMPLATE,
      origin: "http://evil.example",
    });
    expect(cross.status).toBe(403);
    const put = await ask(web, "api/config/templates/fleet/fleet", {
      method: "PUT",
      token: OPERATOR,
      body: TEMPLATE,
    });
    expect(put.status).toBe(200);
    expect(put.body.version).toBe(1);
    const list = await ask(web, "api/config/templates", { token: VIEWER });
    expect(list.body.templates).toEqual([
      { level: "fleet", name: "fleet", body: { config: { log_level: "debug" } } },
    ]);
    const hist = await ask(web, "api/config/history?level=fleet&name=fleet", { token: VIEWER });
    expect(hist.body.versions).toMatchObject([{ version: 1, author: "operator", comment: "why" }]);
  });

  it("bad bodies and templates are named", async () => {
    const notJson = await ask(web, "api/config/templates/site/b7", {
      method: "PUT",
      token: OPERATOR,
      body: "{",
    });
    expect(notJson.status).toBe(400);
    expect(notJson.body.error).toContain("not JSON");
    const badLevel = await ask(web, "api/config/templates/planet/x", {
      method: "PUT",
      token: OPERATOR,
      body: TEMPLATE,
    });
    expect(badLevel.status).toBe(400);
    expect(badLevel.body.problems).toEqual([expect.stringContaining("level:")]);
    const big = await ask(web, "api/config/templates/site/b7", {
      method: "PUT",
      token: OPERATOR,
      body: JSON.stringify({ template: { config: { x: "y".repeat(MAX_CONFIG_BODY_BYTES) } } }),
    });
    expect(big.status).toBe(413);
    const stages = await ask(web, "api/config/rollouts", {
      method: "POST",
      token: OPERATOR,
      body: JSON.stringify({ stages: "1,lots" }),
    });
    expect(stages.status).toBe(400);
    expect(stages.body.error).toContain('"lots"');
    expect((await ask(web, "api/config/nothing", { token: OPERATOR })).status).toBe(404);
  });

  it("without a history store the routes say what is missing", async () => {
    const r = await ask(bare, "api/config/status", { token: OPERATOR });
    expect(r.status).toBe(503);
    expect(r.body.error).toContain("history.engine");
  });
});
