// runner/result.ts: one run into the envelope, thresholds from the scheduled check, the clock step.
import { Type } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { describe, expect, it } from "vitest";
import { ResultPayload } from "../../../services/contract/src/payloads.ts";
import { envelope, reasonOf, verdictOf } from "../../../services/probe/src/runner/result.ts";
import type { Run } from "../../../services/probe/src/runner/scheduler.ts";

const who = { site: "branch-1", probe: "probe-1", bootId: "boot-a", version: "1.2.3" };
const T = Date.parse("2026-03-01T12:00:00Z");

function run(over: Partial<Run> = {}, thresholds = {}): Run {
  return {
    check: {
      name: "gw-icmp",
      kind: {
        kind: "icmp",
        defaultArea: "lan",
        options: Type.Object({}),
        run: () => Promise.resolve({ status: "ok", metrics: {} }),
      },
      target: "192.0.2.1",
      area: "lan",
      intervalMs: 60_000,
      timeoutMs: 5000,
      jitter: 0,
      options: {},
      thresholds,
    },
    startedAt: new Date(T),
    monoMs: 50_000,
    durationMs: 12.5,
    measurement: { status: "ok", metrics: { rtt_avg_ms: 30 } },
    ...over,
  };
}

describe("envelope", () => {
  it("carries the run, the check and the identity; with a seq it is a valid result payload", () => {
    const e = envelope(run(), who);
    expect(e).toMatchObject({
      check: "gw-icmp",
      kind: "icmp",
      area: "lan",
      target: "192.0.2.1",
      site: "branch-1",
      probe: "probe-1",
      boot_id: "boot-a",
      version: "1.2.3",
      started_at: "2026-03-01T12:00:00.000Z",
      mono_ms: 50_000,
      duration_ms: 12.5,
      status: "ok",
    });
    expect(e.clock).toBeUndefined();
    expect(Value.Check(ResultPayload, { ...e, seq: 1 })).toBe(true);
    expect(envelope(run(), who).id).not.toBe(e.id);
  });

  it("applies the thresholds the scheduled check carries", () => {
    const e = envelope(run({}, { rtt_avg_ms: { warn: 20, fail: 100 } }), who);
    expect(e.status).toBe("warn");
    expect(e.error).toEqual({ code: "threshold", message: "rtt_avg_ms 30 > warn 20" });
  });

  it("a run started before a clock step gets started_at from mono_ms, flagged corrected; one after does not", () => {
    const step = { fromOffsetMs: 0, toOffsetMs: T + 86_400_000 - 60_000, atMonoMs: 60_000 };
    const before = envelope(run({ startedAt: new Date(1000), monoMs: 50_000 }), who, step);
    expect(before.clock).toBe("corrected");
    expect(Date.parse(before.started_at)).toBe(50_000 + step.toOffsetMs);
    const after = envelope(run({ monoMs: 70_000 }), who, step);
    expect(after.clock).toBeUndefined();
    expect(after.started_at).toBe("2026-03-01T12:00:00.000Z");
    // Already within the step threshold of the corrected time: left as it is.
    const close = { fromOffsetMs: 0, toOffsetMs: T - 50_000 + 500, atMonoMs: 60_000 };
    expect(envelope(run(), who, close).clock).toBeUndefined();
  });

  it("a run while the wall clock reads 1970 is flagged unsynced", () => {
    const e = envelope(run({ startedAt: new Date(5000) }), who);
    expect(e.clock).toBe("unsynced");
  });
});

describe("reasonOf and verdictOf", () => {
  it("name the check and its error; the verdict is what the area tracker needs", () => {
    const bad = envelope(
      run({ measurement: { status: "fail", metrics: {}, error: { code: "timeout", message: "no reply" } } }),
      who,
    );
    expect(reasonOf(bad)).toBe("gw-icmp: timeout: no reply");
    expect(reasonOf(envelope(run(), who))).toBe("gw-icmp: ok");
    expect(verdictOf(bad)).toEqual({
      check: "gw-icmp",
      area: "lan",
      status: "fail",
      resultId: bad.id,
      reason: "gw-icmp: timeout: no reply",
    });
  });
});
