// FleetConfig over a real SQLite store and a real Fleet fed contract messages, with a scripted
// transport: a template that breaks a known probe is refused (nothing stored), drift follows the
// retained config, an invalid document stops a rollout at HQ before anything is sent.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { EXAMPLES } from "../../../../scripts/gen/mqtt-examples.ts";
import { silentLogger } from "../../../../services/contract/src/log.ts";
import type { ConfigPayload, StatePayload } from "../../../../services/contract/src/payloads.ts";
import { Fleet } from "../../../../services/hq/src/fleet.ts";
import { FleetConfig } from "../../../../services/hq/src/fleet-config/service.ts";
import type { RolloutTransport } from "../../../../services/hq/src/fleet-config/rollout.ts";
import { configStateOf } from "../../../../services/hq/src/fleet-config/transport.ts";
import { sqliteHistoryStore } from "../../../../services/hq/src/history/sqlite-store.ts";

const tmp = mkdtempSync(join(tmpdir(), "netprobe-fc-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const RET = { raw_days: 30, rollup_days: 366, event_days: 366 };
const state = EXAMPLES.state[0] as StatePayload;
const { document_hash: _exampleHash, ...configWithoutHash } = EXAMPLES.config[0] as ConfigPayload;

async function setup() {
  const store = sqliteHistoryStore(join(tmp, `s${Math.random()}.db`), RET);
  await store.open();
  const fleet = new Fleet();
  const sent: string[] = [];
  const tr: RolloutTransport = {
    command: (key, name) => {
      sent.push(`${key} ${name}`);
      return Promise.resolve("timeout");
    },
    state: (key) => configStateOf(fleet, key),
    waitFor: () => Promise.resolve(false),
  };
  const fc = new FleetConfig(store, fleet, tr, silentLogger());
  await fc.start();
  const hear = (site: string, probe: string, documentHash?: string) => {
    fleet.ingest(`netprobe/v1/${site}/${probe}/state`, JSON.stringify(state));
    fleet.ingest(
      `netprobe/v1/${site}/${probe}/config`,
      // Without a hash: a probe that does not report one (older software).
      JSON.stringify({ ...configWithoutHash, ...(documentHash ? { document_hash: documentHash } : {}) }),
    );
  };
  return { store, fleet, fc, sent, hear };
}

const FLEET = {
  vars: { count: 3 },
  config: {
    leds: { backend: "none" },
    checks: [{ name: "gw-icmp", kind: "icmp", target: "192.0.2.1", options: { count: "${count}" } }],
  },
};

describe("FleetConfig", () => {
  it("stores templates with history; refuses one that breaks a known probe's document", async () => {
    const { fc, hear, store } = await setup();
    hear("b7", "pi-01");
    const ok = await fc.setTemplate("fleet", "fleet", FLEET, "ann", "first");
    expect(ok.code).toBe(200);
    expect(ok.body).toMatchObject({
      version: 1,
      probes: [{ key: "b7/pi-01", hash: expect.any(String) as string }],
    });
    const bad = await fc.setTemplate("site", "b7", { vars: { count: 0 } }, "bob", "oops");
    expect(bad.code).toBe(422);
    expect(JSON.stringify(bad.body)).toContain("checks[0].options.count");
    // A probe HQ has not heard of yet is checked too.
    const unheard = await fc.setTemplate(
      "probe",
      "b9/pi-07",
      { config: { leds: { backend: "neon" } } },
      "bob",
      "",
    );
    expect(unheard.code).toBe(422);
    expect(JSON.stringify(unheard.body)).toContain("b9/pi-07");
    const unknown = await fc.setTemplate("site", "b7", { config: { log_level: "${level}" } }, "bob", "");
    expect(unknown.code).toBe(422);
    expect(JSON.stringify(unknown.body)).toContain("unknown variable ${level} at log_level");
    expect((await store.templateVersions()).map((v) => `${v.level}:${v.version}:${v.author}`)).toEqual([
      "fleet:1:ann",
    ]);
    // --force stores it anyway; the desired document then says why it is invalid.
    expect((await fc.setTemplate("site", "b7", { vars: { count: 0 } }, "bob", "forced", true)).code).toBe(
      200,
    );
    const d = await fc.desired("b7/pi-01");
    expect(d).toMatchObject({ ok: false, error: "invalid" });
    await store.close();
  });

  it("status: no template, unknown, drift and in sync follow the retained config", async () => {
    const { fc, hear, store } = await setup();
    hear("b7", "pi-01");
    expect((await fc.status())[0]).toMatchObject({ key: "b7/pi-01", drift: "no_template", online: true });
    await fc.setTemplate("fleet", "fleet", FLEET, "ann", "");
    const desired = await fc.desired("b7/pi-01");
    if (!desired.ok) throw new Error(desired.message);
    expect((await fc.status())[0]).toMatchObject({ drift: "unknown", desired_hash: desired.hash });
    hear("b7", "pi-01", "f".repeat(64));
    expect((await fc.status())[0]).toMatchObject({ drift: "drift", effective_hash: "f".repeat(64) });
    hear("b7", "pi-01", desired.hash);
    expect((await fc.status())[0]).toMatchObject({ drift: "in_sync" });
    const diff = await fc.diff("b7/pi-01");
    expect(diff.body).toMatchObject({ in_sync: true, against: "redacted_config" });
    await store.close();
  });

  it("a rollout with an invalid document is stopped at HQ: nothing sent, the refusal is history", async () => {
    const { fc, hear, sent, store } = await setup();
    hear("b7", "pi-01");
    hear("b9", "pi-01");
    await fc.setTemplate("fleet", "fleet", FLEET, "ann", "");
    await fc.setTemplate("site", "b9", { config: { leds: { backend: "neon" } } }, "ann", "", true);
    const r = await fc.startRollout({
      scope: "all",
      stages: "1,100%",
      confirm_s: 60,
      reply_timeout_s: 1,
      effective_timeout_s: 1,
      parallel: 1,
      comment: "try",
      author: "ann",
    });
    expect(r.code).toBe(422);
    expect(JSON.stringify(r.body)).toContain("leds.backend");
    expect(sent).toEqual([]);
    const [rollout] = await fc.rollouts();
    expect(rollout).toMatchObject({ state: "stopped", author: "ann" });
    expect(rollout!.reason).toContain("HQ validation: b9/pi-01");
    const probes = await store.rolloutProbes(rollout!.id);
    expect(probes).toMatchObject([{ probe: "pi-01", site: "b9", outcome: "failed", code: "invalid" }]);
    expect(probes[0]!.detail).toContain('leds.backend: must be one of "none"');
    await store.close();
  });

  it("a probe that does not answer stops the rollout with reply_timeout, recorded per probe", async () => {
    const { fc, hear, sent, store } = await setup();
    hear("b7", "pi-01");
    hear("b7", "pi-02");
    await fc.setTemplate("fleet", "fleet", FLEET, "ann", "");
    const r = await fc.startRollout({
      scope: "site:b7",
      stages: "1,100%",
      confirm_s: 60,
      reply_timeout_s: 0.05,
      effective_timeout_s: 0.05,
      parallel: 1,
      comment: "",
      author: "ann",
    });
    expect(r.code).toBe(202);
    expect(
      (
        await fc.startRollout({
          scope: "all",
          stages: "1",
          confirm_s: 60,
          reply_timeout_s: 1,
          effective_timeout_s: 1,
          parallel: 1,
          comment: "",
          author: "x",
        })
      ).code,
    ).toBe(409);
    await fc.current;
    expect(sent).toEqual(["b7/pi-01 apply_config"]);
    const got = await fc.rollout((r.body as { id: string }).id);
    expect(got.body).toMatchObject({
      state: "stopped",
      probes: [{ probe: "pi-01", outcome: "failed", code: "reply_timeout" }],
    });
    await store.close();
  });
});
