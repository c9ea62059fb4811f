// Windows of the throughput check (local time, end exclusive, across midnight) and how the
// scheduler uses them: a tick outside every window starts no run and leaves no result; a run asked
// for by name (HQ cmd/run) is on demand; the button's "run everything" is not.
import { describe, expect, it } from "vitest";
import { Value } from "@sinclair/typebox/value";
import type { CheckContext, CheckKind, Measurement } from "../../../services/probe/src/checks/check.ts";
import {
  activeWindow,
  inWindow,
  parseWindow,
  throughput,
} from "../../../services/probe/src/checks/throughput.ts";
import { validateConfig } from "../../../services/probe/src/config/validate.ts";
import { silentLogger } from "../../../services/contract/src/log.ts";
import { AreaTracker } from "../../../services/probe/src/runner/area-state.ts";
import { Scheduler, type Run } from "../../../services/probe/src/runner/scheduler.ts";

const at = (hm: string): Date => {
  const [h = 0, m = 0] = hm.split(":").map(Number);
  return new Date(2026, 11, 3, h, m, 30); // local time, as the check reads it
};

describe("throughput windows", () => {
  it("parses HH:MM-HH:MM into minutes since local midnight", () => {
    expect(parseWindow("02:00-04:00")).toEqual({ startMin: 120, endMin: 240 });
    expect(parseWindow("22:30-01:15")).toEqual({ startMin: 1350, endMin: 75 });
    expect(parseWindow("00:00-24:00")).toEqual({ startMin: 0, endMin: 1440 });
  });

  it("rejects malformed and empty windows with the offending text", () => {
    for (const bad of [
      "2:00-4:00",
      "02:00",
      "02:00-24:01",
      "24:00-02:00",
      "02:60-03:00",
      "02:00 - 04:00",
      "",
    ])
      expect(parseWindow(bad), bad).toEqual({
        problem: `window "${bad}" is not HH:MM-HH:MM (e.g. 02:00-04:00)`,
      });
    expect(parseWindow("03:00-03:00")).toEqual({
      problem: 'window "03:00-03:00" is empty (start = end); all day is 00:00-24:00',
    });
  });

  it("a window includes its start minute and excludes its end minute", () => {
    const w = { startMin: 120, endMin: 240 };
    expect(inWindow(w, at("01:59"))).toBe(false);
    expect(inWindow(w, at("02:00"))).toBe(true);
    expect(inWindow(w, at("03:59"))).toBe(true);
    expect(inWindow(w, at("04:00"))).toBe(false);
  });

  it("a window across midnight covers both sides of it", () => {
    const w = parseWindow("23:00-01:00");
    if ("problem" in w) throw new Error(w.problem);
    expect(inWindow(w, at("22:59"))).toBe(false);
    expect(inWindow(w, at("23:00"))).toBe(true);
    expect(inWindow(w, at("00:00"))).toBe(true);
    expect(inWindow(w, at("00:59"))).toBe(true);
    expect(inWindow(w, at("01:00"))).toBe(false);
    expect(inWindow(w, at("12:00"))).toBe(false);
  });

  it("00:00-24:00 is all day; the first matching window is the active one", () => {
    expect(activeWindow(["00:00-24:00"], at("23:59"))).toBe("00:00-24:00");
    expect(activeWindow(["02:00-04:00", "12:00-13:00"], at("12:30"))).toBe("12:00-13:00");
    expect(activeWindow(["02:00-04:00"], at("12:30"))).toBeUndefined();
    expect(activeWindow([], at("03:00"))).toBeUndefined();
  });

  it("the config schema rejects a malformed window", () => {
    const withWindows = (windows: string[]) => Value.Default(throughput.options, { windows });
    expect(Value.Check(throughput.options, withWindows(["02:00-04:00", "23:00-01:00"]))).toBe(true);
    expect(Value.Check(throughput.options, withWindows(["2am-4am"]))).toBe(false);
  });

  it("a config with a malformed window names the path and the expected form", () => {
    const r = validateConfig({
      site: "s",
      probe: "p",
      broker: { url: "mqtt://192.0.2.5" },
      checks: [{ kind: "throughput", target: "192.0.2.9", options: { windows: ["02:00-04:00", "2am-4am"] } }],
    });
    expect(r.ok).toBe(false);
    expect(r.ok ? [] : r.problems).toEqual([
      "checks[0].options.windows[1]: must be a local-time window HH:MM-HH:MM, e.g. 02:00-04:00 (24:00 only as an end)",
    ]);
  });

  it("is due only inside a window, and never without windows", () => {
    const due = (windows: string[], hm: string) =>
      throughput.due?.(Value.Default(throughput.options, { windows }) as never, at(hm));
    expect(due([], "03:00")).toBe(false);
    expect(due(["02:00-04:00"], "03:00")).toBe(true);
    expect(due(["02:00-04:00"], "05:00")).toBe(false);
    expect(due(["22:00-02:00"], "01:30")).toBe(true);
  });
});

describe("scheduler and windowed checks", () => {
  function recording(due: boolean): { kind: CheckKind; contexts: CheckContext[] } {
    const contexts: CheckContext[] = [];
    const kind: CheckKind = {
      kind: "fake-windowed",
      defaultArea: "wan",
      options: throughput.options,
      due: () => due,
      run: (_t, _o, ctx): Promise<Measurement> => {
        contexts.push(ctx);
        return Promise.resolve({ status: "ok", metrics: {} });
      },
    };
    return { kind, contexts };
  }
  const scheduled = (kind: CheckKind) => ({
    name: "tp",
    kind,
    target: "192.0.2.1",
    area: "wan" as const,
    intervalMs: 30,
    timeoutMs: 1000,
    jitter: 0,
    options: {},
  });

  it("a tick outside every window starts no run and publishes no result", async () => {
    const { kind, contexts } = recording(false);
    const runs: Run[] = [];
    const s = new Scheduler([scheduled(kind)], { log: silentLogger() }, (r) => runs.push(r), silentLogger());
    s.start();
    await new Promise((r) => setTimeout(r, 150));
    await s.stop();
    expect(runs).toHaveLength(0);
    expect(contexts).toHaveLength(0);
  });

  it("inside a window the schedule runs it, not on demand; a run by name is on demand, run-all is not", async () => {
    const { kind, contexts } = recording(true);
    const runs: Run[] = [];
    const s = new Scheduler([scheduled(kind)], { log: silentLogger() }, (r) => runs.push(r), silentLogger());
    s.start();
    await new Promise((r) => setTimeout(r, 100));
    expect(contexts.length).toBeGreaterThanOrEqual(2);
    expect(contexts.every((c) => c.onDemand === undefined)).toBe(true);
    await s.stop();

    const { kind: k2, contexts: c2 } = recording(false);
    const s2 = new Scheduler(
      [{ ...scheduled(k2), intervalMs: 86_400_000 }],
      { log: silentLogger() },
      () => undefined,
      silentLogger(),
    );
    s2.runNow("tp");
    await new Promise((r) => setTimeout(r, 20));
    s2.runNow();
    await new Promise((r) => setTimeout(r, 20));
    await s2.stop();
    expect(c2.map((c) => c.onDemand === true)).toEqual([true, false]);
  });
});

describe("area state with a windowed check", () => {
  it("a throughput check that has not run yet does not hold its area at checking", () => {
    const tracker = new AreaTracker(
      [
        { name: "icmp", area: "wan" },
        { name: "tp", area: "wan", kind: throughput },
      ],
      { failAfter: 1, recoverAfter: 1 },
    );
    const verdict = (check: string, status: "ok" | "fail") =>
      tracker.update({
        check,
        area: "wan",
        status,
        resultId: `${check}-${status}`,
        reason: `${check}: ${status}`,
      });
    expect(verdict("icmp", "ok")).toMatchObject([{ from: "unknown", to: "ok" }]);
    // Once it has run, it counts like any check.
    expect(verdict("tp", "fail")).toMatchObject([{ from: "ok", to: "failing", reason: "tp: fail" }]);
  });

  it("an ordinary check without a verdict still holds a green area at checking", () => {
    const tracker = new AreaTracker(
      [
        { name: "icmp", area: "wan" },
        { name: "http", area: "wan" },
      ],
      { failAfter: 1, recoverAfter: 1 },
    );
    expect(tracker.update({ check: "icmp", area: "wan", status: "ok", resultId: "1", reason: "" })).toEqual(
      [],
    );
    expect(tracker.snapshot().wan.state).toBe("unknown");
  });
});
