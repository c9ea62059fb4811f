import { describe, expect, it } from "vitest";
import type { Status } from "../../../services/probe/src/checks/check.ts";
import { AreaTracker } from "../../../services/probe/src/runner/area-state.ts";

function tracker(failAfter = 3, recoverAfter = 2) {
  const t = new AreaTracker(
    [
      { name: "gw", area: "lan" },
      { name: "wan1", area: "wan" },
      { name: "wan2", area: "wan" },
    ],
    { failAfter, recoverAfter },
  );
  let n = 0;
  const feed = (check: string, status: Status) =>
    t.update({
      check,
      area: check === "gw" ? "lan" : "wan",
      status,
      resultId: `r${++n}`,
      reason: `${check} ${status}`,
    });
  return { t, feed };
}

describe("area state with hysteresis", () => {
  it("starts as checking for configured areas and off for the others", () => {
    const { t } = tracker();
    expect(t.snapshot().lan.state).toBe("unknown");
    expect(t.snapshot().phone.state).toBe("off");
  });

  it("turns green on the first ok run", () => {
    const { t, feed } = tracker();
    expect(feed("gw", "ok")).toEqual([
      { area: "lan", from: "unknown", to: "ok", reason: "all checks ok", resultId: "r1" },
    ]);
    expect(t.snapshot().lan.state).toBe("ok");
  });

  it("needs fail_after consecutive failures to go red, and one ok in between resets the count", () => {
    const { t, feed } = tracker(3, 2);
    feed("gw", "ok");
    feed("gw", "fail");
    feed("gw", "fail");
    feed("gw", "ok");
    feed("gw", "fail");
    feed("gw", "fail");
    expect(t.snapshot().lan.state).toBe("ok");
    const tr = feed("gw", "error");
    expect(tr).toHaveLength(1);
    expect(tr[0]).toMatchObject({
      area: "lan",
      from: "ok",
      to: "failing",
      reason: "gw error",
      resultId: "r7",
    });
  });

  it("needs recover_after ok runs to go green again", () => {
    const { t, feed } = tracker(1, 2);
    feed("gw", "ok");
    feed("gw", "fail");
    expect(t.snapshot().lan.state).toBe("failing");
    feed("gw", "ok");
    expect(t.snapshot().lan.state).toBe("failing");
    feed("gw", "ok");
    expect(t.snapshot().lan.state).toBe("ok");
  });

  it("warnings make an area degraded (amber), failures failing (red)", () => {
    const { t, feed } = tracker(2, 1);
    feed("gw", "ok");
    feed("gw", "warn");
    feed("gw", "warn");
    expect(t.snapshot().lan.state).toBe("degraded");
    feed("gw", "fail");
    feed("gw", "fail");
    expect(t.snapshot().lan.state).toBe("failing");
    feed("gw", "warn");
    expect(t.snapshot().lan.state).toBe("degraded");
  });

  it("an area shows the worst of its checks", () => {
    const { t, feed } = tracker(1, 1);
    feed("wan1", "ok");
    expect(t.snapshot().wan.state).toBe("unknown"); // wan2 has no verdict yet
    feed("wan2", "ok");
    expect(t.snapshot().wan.state).toBe("ok");
    feed("wan2", "fail");
    expect(t.snapshot().wan.state).toBe("failing");
    feed("wan1", "ok");
    expect(t.snapshot().wan.state).toBe("failing");
    expect(t.snapshot().lan.state).toBe("unknown");
  });

  it("never flaps on alternating results", () => {
    const { feed } = tracker(3, 2);
    const transitions = [];
    feed("gw", "ok");
    for (let i = 0; i < 50; i++) transitions.push(...feed("gw", i % 2 ? "ok" : "fail"));
    expect(transitions).toEqual([]);
  });
});
