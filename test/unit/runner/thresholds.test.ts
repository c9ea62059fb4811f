import { describe, expect, it } from "vitest";
import { applyThresholds } from "../../../services/probe/src/runner/thresholds.ts";

describe("thresholds", () => {
  const m = { status: "ok" as const, metrics: { rtt_avg_ms: 120, loss_pct: 0, mos: 3.9 } };

  it("a metric above warn warns, above fail fails, with the breach named", () => {
    expect(applyThresholds(m, { rtt_avg_ms: { warn: 100, fail: 200 } })).toMatchObject({
      status: "warn",
      error: { code: "threshold", message: "rtt_avg_ms 120 > warn 100" },
    });
    expect(applyThresholds(m, { rtt_avg_ms: { warn: 50, fail: 100 } }).status).toBe("fail");
  });

  it("lower-is-worse metrics use *_below", () => {
    expect(applyThresholds(m, { mos: { warn_below: 4, fail_below: 3.5 } }).status).toBe("warn");
    expect(applyThresholds(m, { mos: { warn_below: 4.2, fail_below: 4 } }).status).toBe("fail");
  });

  it("within bounds or a missing metric leaves the verdict alone", () => {
    expect(applyThresholds(m, { rtt_avg_ms: { warn: 500 }, jitter_ms: { fail: 1 } })).toEqual(m);
  });

  it("never turns a failed or errored run into a better one", () => {
    const failed = {
      status: "fail" as const,
      metrics: { loss_pct: 100 },
      error: { code: "timeout", message: "x" },
    };
    expect(applyThresholds(failed, { loss_pct: { warn: 1000 } }).status).toBe("fail");
    const errored = {
      status: "error" as const,
      metrics: { rtt_avg_ms: 1 },
      error: { code: "no_permission", message: "x" },
    };
    expect(applyThresholds(errored, { rtt_avg_ms: { fail: 0 } })).toBe(errored);
  });
});
