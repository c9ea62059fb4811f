// Fleet config's history on both engines (services/hq/src/history/sql-store.ts): an SQLite file
// and a real PostgreSQL server this file starts on a private socket and removes. Under CI=true a
// PostgreSQL that cannot start fails the suite; it never skips.
import { describe, expect, it } from "vitest";
import { historyEngines } from "../../../doubles/history-engines.ts";

const engines = historyEngines({ raw_days: 7, rollup_days: 365, event_days: 365 });

describe.each(engines)("config history on %s", (_engine, make) => {
  it("keeps every template version with author, time and comment; current skips deleted ones", async () => {
    const s = await make();
    await s.open();
    await s.open(); // the migration is idempotent
    try {
      expect(
        await s.putTemplate({
          level: "fleet",
          name: "fleet",
          body: { config: { a: 1 } },
          author: "ann",
          at: 1000,
          comment: "first",
        }),
      ).toBe(1);
      expect(
        await s.putTemplate({
          level: "fleet",
          name: "fleet",
          body: { config: { a: 2 } },
          author: "bob",
          at: 2000,
          comment: "second",
        }),
      ).toBe(2);
      expect(
        await s.putTemplate({
          level: "site",
          name: "b7",
          body: { vars: { x: "y" } },
          author: "ann",
          at: 3000,
          comment: "",
        }),
      ).toBe(1);
      expect(
        await s.putTemplate({
          level: "site",
          name: "b7",
          body: null,
          author: "bob",
          at: 4000,
          comment: "gone",
        }),
      ).toBe(2);
      const current = await s.currentTemplates();
      expect(current).toEqual([
        {
          level: "fleet",
          name: "fleet",
          version: 2,
          body: { config: { a: 2 } },
          author: "bob",
          at: 2000,
          comment: "second",
        },
      ]);
      const fleetVersions = await s.templateVersions({ level: "fleet", name: "fleet" });
      expect(fleetVersions.map((v) => [v.version, v.author, v.comment])).toEqual([
        [2, "bob", "second"],
        [1, "ann", "first"],
      ]);
      expect((await s.templateVersions()).map((v) => `${v.level}:${v.name}:${v.version}`)).toEqual([
        "site:b7:2",
        "site:b7:1",
        "fleet:fleet:2",
        "fleet:fleet:1",
      ]);
      const audit = await s.auditLog();
      expect(audit.map((a) => `${a.actor} ${a.action} ${a.subject}`)).toEqual([
        "bob template_delete site:b7",
        "ann template_set site:b7",
        "bob template_set fleet:fleet",
        "ann template_set fleet:fleet",
      ]);
    } finally {
      await s.close();
    }
  });

  it("keeps documents by hash once, rollouts and their per-probe outcomes", async () => {
    const s = await make();
    await s.open();
    try {
      const h = "a".repeat(64);
      await s.putDocument(h, { site: "s", checks: [{ name: "x" }] }, 10);
      await s.putDocument(h, { other: true }, 20); // the first one stays
      expect(await s.document(h)).toEqual({ site: "s", checks: [{ name: "x" }] });
      expect(await s.document("b".repeat(64))).toBeUndefined();
      const r = {
        id: "r-1",
        author: "ann",
        comment: "bump count",
        stages: "1,100%",
        scope: "all",
        state: "running" as const,
        reason: null,
        started_at: 100,
        finished_at: null,
      };
      await s.putRollout(r);
      await s.putRolloutProbe({
        rollout_id: "r-1",
        site: "s",
        probe: "p1",
        stage: 1,
        document_hash: h,
        outcome: "confirmed",
        code: null,
        detail: null,
        at: 110,
      });
      await s.putRolloutProbe({
        rollout_id: "r-1",
        site: "s",
        probe: "p2",
        stage: 2,
        document_hash: h,
        outcome: "failed",
        code: "refused",
        detail: "config_invalid: x",
        at: 120,
      });
      await s.putRollout({ ...r, state: "stopped", reason: "stage 2, s/p2: refused", finished_at: 130 });
      expect(await s.rollouts()).toEqual([
        { ...r, state: "stopped", reason: "stage 2, s/p2: refused", finished_at: 130 },
      ]);
      expect(
        (await s.rolloutProbes("r-1")).map((p) => `${p.probe}:${p.stage}:${p.outcome}:${p.code}`),
      ).toEqual(["p1:1:confirmed:null", "p2:2:failed:refused"]);
      await s.audit({ at: 200, actor: "ann", action: "rollback", subject: "s/p1", detail: "{}" });
      expect((await s.auditLog(1))[0]).toEqual({
        at: 200,
        actor: "ann",
        action: "rollback",
        subject: "s/p1",
        detail: "{}",
      });
    } finally {
      await s.close();
    }
  });
});
