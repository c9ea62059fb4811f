// The rollout's logic against a scripted transport: stages, the commit-confirmed steps per probe,
// stop at the first failure, skip probes already on the desired document.
import { describe, expect, it } from "vitest";
import type { ReplyPayload } from "../../../../services/contract/src/payloads.ts";
import {
  parseStages,
  runRollout,
  stageSizes,
  type ProbeConfigState,
  type RolloutTransport,
} from "../../../../services/hq/src/fleet-config/rollout.ts";

const H = (c: string) => c.repeat(64);
const OLD = H("0");
const NEW = H("a");
const OPTS = { stages: "1,50%,100%", confirmS: 60, replyTimeoutMs: 50, effectiveTimeoutMs: 50 };

type Behaviour = "ok" | "refuse" | "silent" | "not_applied" | "rolls_back" | "confirm_refused" | "offline";

/** Probes that answer as told; `sent` records every command in order. */
function fakeFleet(behaviours: Record<string, Behaviour>, initial: Record<string, string> = {}) {
  const states = new Map<string, ProbeConfigState>();
  for (const k of Object.keys(behaviours))
    states.set(k, {
      online: behaviours[k] !== "offline",
      document_hash: initial[k] ?? OLD,
      pending: null,
      rolled_back: null,
    });
  const sent: string[] = [];
  const reply = (key: string, ok: boolean, extra: Pick<ReplyPayload, "error"> = {}): ReplyPayload => ({
    schema: 1,
    request_id: "r",
    command: "apply_config",
    ok,
    at: new Date().toISOString(),
    site: key.split("/")[0]!,
    probe: key.split("/")[1]!,
    ...extra,
  });
  const tr: RolloutTransport = {
    command: (key, name, payload) => {
      sent.push(`${key} ${name}`);
      const b = behaviours[key]!;
      const s = states.get(key)!;
      if (name === "apply_config") {
        if (b === "silent") return Promise.resolve("timeout");
        if (b === "refuse")
          return Promise.resolve(
            reply(key, false, {
              error: {
                code: "config_invalid",
                message: "2 problems",
                problems: ["checks.0.options.count: >= 1", "x: y"],
              },
            }),
          );
        if (b === "rolls_back")
          states.set(key, {
            ...s,
            rolled_back: { document_hash: payload.document_hash as string, at: "t1" },
          });
        else if (b !== "not_applied")
          states.set(key, {
            ...s,
            document_hash: payload.document_hash as string,
            pending: { document_hash: NEW },
          });
        return Promise.resolve(reply(key, true));
      }
      if (name === "confirm_config") {
        if (b === "confirm_refused")
          return Promise.resolve(
            reply(key, false, { error: { code: "not_pending", message: "nothing pending" } }),
          );
        states.set(key, { ...s, pending: null });
        return Promise.resolve(reply(key, true));
      }
      return Promise.resolve("timeout");
    },
    state: (key) => states.get(key),
    waitFor: async (key, until, timeoutMs) => {
      const t0 = Date.now();
      while (Date.now() - t0 < timeoutMs) {
        if (until(states.get(key)!)) return true;
        await new Promise((r) => setTimeout(r, 5));
      }
      return false;
    },
  };
  return { tr, sent, states };
}

const targets = (keys: string[]) => keys.map((key) => ({ key, document: { site: key }, hash: NEW }));

describe("stages", () => {
  it("are cumulative, capped, without empty stages, and always end at every probe", () => {
    expect(stageSizes("1,10%,100%", 100)).toEqual([1, 10, 100]);
    expect(stageSizes("1,10%,100%", 5)).toEqual([1, 5]); // 10% of 5 is 1: no stage of its own
    expect(stageSizes("1,10%", 30)).toEqual([1, 3, 30]); // the scope is always covered
    expect(stageSizes("5,2", 10)).toEqual([5, 10]);
    expect(stageSizes("1", 0)).toEqual([]);
  });
  it("a bad stage is refused naming it", () => {
    expect(() => parseStages("1,ten%")).toThrow('"ten%"');
    expect(() => parseStages("0")).toThrow('"0"');
    expect(() => parseStages("150%")).toThrow('"150%"');
    expect(() => parseStages("1,,2")).toThrow("empty stage");
  });
});

describe("runRollout", () => {
  it("applies, waits for the new hash, confirms — stage by stage, in key order", async () => {
    const keys = ["s/p4", "s/p1", "s/p3", "s/p2"];
    const { tr, sent, states } = fakeFleet(Object.fromEntries(keys.map((k) => [k, "ok" as const])));
    const stages: number[][] = [];
    const out = await runRollout(targets(keys), tr, OPTS, {
      onStage: (n, k) => void stages.push([n, k.length]),
    });
    expect(out.state).toBe("done");
    expect(stages).toEqual([
      [1, 1],
      [2, 1],
      [3, 2],
    ]);
    expect(sent).toEqual([
      "s/p1 apply_config",
      "s/p1 confirm_config",
      "s/p2 apply_config",
      "s/p2 confirm_config",
      "s/p3 apply_config",
      "s/p3 confirm_config",
      "s/p4 apply_config",
      "s/p4 confirm_config",
    ]);
    expect(out.probes.map((p) => `${p.key}:${p.stage}:${p.outcome}`)).toEqual([
      "s/p1:1:confirmed",
      "s/p2:2:confirmed",
      "s/p3:3:confirmed",
      "s/p4:3:confirmed",
    ]);
    for (const k of keys) expect(states.get(k)).toMatchObject({ document_hash: NEW, pending: null });
  });

  it("skips probes already on the desired document (not counted in the stages)", async () => {
    const { tr, sent } = fakeFleet({ "s/p1": "ok", "s/p2": "ok", "s/p3": "ok" }, { "s/p1": NEW });
    const out = await runRollout(targets(["s/p1", "s/p2", "s/p3"]), tr, OPTS);
    expect(out.probes.map((p) => `${p.key}:${p.stage}:${p.outcome}`)).toEqual([
      "s/p1:0:skipped",
      "s/p2:1:confirmed",
      "s/p3:2:confirmed",
    ]);
    expect(sent.some((s) => s.startsWith("s/p1"))).toBe(false);
  });

  const stopCases: Array<[Behaviour, string, string[]]> = [
    ["refuse", "refused", ["s/p2 apply_config"]],
    ["silent", "reply_timeout", ["s/p2 apply_config"]],
    ["not_applied", "not_applied", ["s/p2 apply_config"]],
    ["rolls_back", "rolled_back", ["s/p2 apply_config"]],
    ["confirm_refused", "confirm_failed", ["s/p2 apply_config", "s/p2 confirm_config"]],
    ["offline", "offline", []],
  ];
  for (const [behaviour, code, p2Sent] of stopCases)
    it(`stops at the first failure: ${behaviour} → ${code}, nothing sent to later probes`, async () => {
      const { tr, sent } = fakeFleet({ "s/p1": "ok", "s/p2": behaviour, "s/p3": "ok", "s/p4": "ok" });
      const out = await runRollout(targets(["s/p1", "s/p2", "s/p3", "s/p4"]), tr, {
        ...OPTS,
        stages: "1,100%",
      });
      expect(out.state).toBe("stopped");
      expect(out.reason).toContain(`stage 2, s/p2: ${code}`);
      expect(out.probes.map((p) => `${p.key}:${p.outcome}`)).toEqual(["s/p1:confirmed", "s/p2:failed"]);
      expect(sent).toEqual(["s/p1 apply_config", "s/p1 confirm_config", ...p2Sent]);
    });

  it("parallel within a stage: after a failure none starts, those in flight finish", async () => {
    const { tr, sent } = fakeFleet({
      "s/p1": "ok",
      "s/p2": "refuse",
      "s/p3": "ok",
      "s/p4": "ok",
      "s/p5": "ok",
    });
    const out = await runRollout(targets(["s/p1", "s/p2", "s/p3", "s/p4", "s/p5"]), tr, {
      ...OPTS,
      stages: "1,100%",
      parallel: 2,
    });
    expect(out.state).toBe("stopped");
    expect(out.reason).toContain("stage 2, s/p2: refused");
    // p2 and p3 started together; p3 (in flight) was confirmed; p4 and p5 never heard of it.
    expect(out.probes.map((p) => `${p.key}:${p.outcome}`).sort()).toEqual([
      "s/p1:confirmed",
      "s/p2:failed",
      "s/p3:confirmed",
    ]);
    expect(sent.filter((x) => x.startsWith("s/p4") || x.startsWith("s/p5"))).toEqual([]);
    const all = fakeFleet({ "s/p1": "ok", "s/p2": "ok", "s/p3": "ok", "s/p4": "ok" });
    const ok = await runRollout(targets(["s/p1", "s/p2", "s/p3", "s/p4"]), all.tr, { ...OPTS, parallel: 3 });
    expect(ok.state).toBe("done");
    expect(ok.probes.filter((p) => p.outcome === "confirmed")).toHaveLength(4);
  });

  it("keeps the probe's refusal with every problem", async () => {
    const { tr } = fakeFleet({ "s/p1": "refuse" });
    const out = await runRollout(targets(["s/p1"]), tr, OPTS);
    expect(out.probes[0]).toMatchObject({
      code: "refused",
      detail: "config_invalid: 2 problems",
      problems: ["checks.0.options.count: >= 1", "x: y"],
    });
  });
});
