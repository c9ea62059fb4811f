import { describe, expect, it } from "vitest";
import { Type } from "@sinclair/typebox";
import type { CheckKind, Measurement } from "../../../services/probe/src/checks/check.ts";
import { silentLogger } from "../../../services/contract/src/log.ts";
import { runningCheck } from "../../../services/probe/src/crash-guard.ts";
import { Scheduler, type Run, type ScheduledCheck } from "../../../services/probe/src/runner/scheduler.ts";

function kind(run: CheckKind["run"]): CheckKind {
  return { kind: "fake", defaultArea: "lan", options: Type.Object({}), run };
}

function scheduled(name: string, k: CheckKind, intervalMs: number, timeoutMs: number): ScheduledCheck {
  return { name, kind: k, target: "192.0.2.1", area: "lan", intervalMs, timeoutMs, jitter: 0, options: {} };
}

async function runFor(checks: ScheduledCheck[], ms: number): Promise<Run[]> {
  const runs: Run[] = [];
  const s = new Scheduler(checks, { log: silentLogger() }, (r) => runs.push(r), silentLogger());
  s.start();
  await new Promise((r) => setTimeout(r, ms));
  await s.stop();
  return runs;
}

const ok: Measurement = { status: "ok", metrics: { rtt_avg_ms: 1 } };

describe("scheduler", () => {
  it("never overlaps two runs of the same check", async () => {
    let active = 0;
    let maxActive = 0;
    const slow = kind(async () => {
      maxActive = Math.max(maxActive, ++active);
      await new Promise((r) => setTimeout(r, 120));
      active--;
      return ok;
    });
    const runs = await runFor([scheduled("slow", slow, 50, 1000)], 400);
    expect(maxActive).toBe(1);
    expect(runs.length).toBeGreaterThanOrEqual(2);
  });

  it("aborts a run at its timeout through the signal", async () => {
    const waits = kind(
      (_t, _o, _c, signal) =>
        new Promise((resolve) =>
          signal.addEventListener("abort", () =>
            resolve({ status: "fail", metrics: {}, error: { code: "timeout", message: "aborted" } }),
          ),
        ),
    );
    const runs = await runFor([scheduled("w", waits, 10_000, 50)], 200);
    expect(runs).toHaveLength(1);
    expect(runs[0]?.measurement.error?.code).toBe("timeout");
    expect(runs[0]?.durationMs).toBeLessThan(1000);
  });

  it("reports a check that ignores its signal as a timeout and keeps the others running", async () => {
    const hangs = kind(() => new Promise<Measurement>(() => undefined));
    const fine = kind(() => Promise.resolve(ok));
    const runs = await runFor([scheduled("hang", hangs, 10_000, 50), scheduled("fine", fine, 100, 50)], 1300);
    const hung = runs.filter((r) => r.check.name === "hang");
    expect(hung).toHaveLength(1);
    expect(hung[0]?.measurement).toMatchObject({ status: "fail", error: { code: "timeout" } });
    expect(runs.filter((r) => r.check.name === "fine").length).toBeGreaterThanOrEqual(5);
  });

  it("turns a throwing check into an error result instead of crashing", async () => {
    const throws = kind(() => Promise.reject(new Error("bug")));
    const runs = await runFor([scheduled("t", throws, 10_000, 100)], 100);
    expect(runs[0]?.measurement).toEqual({
      status: "error",
      metrics: {},
      error: { code: "internal", message: "check t (fake) failed inside the probe: bug" },
    });
  });

  it("a check that throws synchronously (not from a promise) is an error result too", async () => {
    const throws = kind(() => {
      throw new TypeError("cannot read properties of undefined");
    });
    const runs = await runFor([scheduled("sync", throws, 10_000, 100)], 100);
    expect(runs[0]?.measurement.error).toEqual({
      code: "internal",
      message: "check sync (fake) failed inside the probe: cannot read properties of undefined",
    });
  });

  it("a failing result handler (store) neither stops the schedule nor escapes as a rejection", async () => {
    let calls = 0;
    const s = new Scheduler(
      [
        scheduled(
          "fine",
          kind(() => Promise.resolve({ status: "ok", metrics: {} })),
          20,
          100,
        ),
      ],
      { log: silentLogger() },
      () => {
        calls++;
        throw new Error("SQLITE_FULL");
      },
      silentLogger(),
    );
    s.start();
    await new Promise((r) => setTimeout(r, 110));
    await s.stop();
    expect(calls).toBeGreaterThanOrEqual(3);
  });

  it("a run and what it schedules later carry the check's name (for the crash guard)", async () => {
    const seen: (string | undefined)[] = [];
    const later = kind(
      () =>
        new Promise((resolve) => {
          seen.push(runningCheck());
          setTimeout(() => {
            seen.push(runningCheck());
            resolve({ status: "ok", metrics: {} });
          }, 5);
        }),
    );
    await runFor([scheduled("named", later, 10_000, 100)], 50);
    expect(seen).toEqual(["named", "named"]);
    expect(runningCheck()).toBeUndefined();
  });

  it("runNow starts a check outside its schedule", async () => {
    const runs: Run[] = [];
    const s = new Scheduler(
      [
        scheduled(
          "a",
          kind(() => Promise.resolve(ok)),
          60_000,
          100,
        ),
      ],
      { log: silentLogger() },
      (r) => runs.push(r),
      silentLogger(),
    );
    expect(s.runNow("a")).toEqual(["a"]);
    expect(s.runNow("nope")).toEqual([]);
    await new Promise((r) => setTimeout(r, 50));
    await s.stop();
    expect(runs).toHaveLength(1);
  });
});
