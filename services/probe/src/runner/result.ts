import { ulid } from "ulid";
import type { ResultPayload } from "../../../contract/src/payloads.ts";
import { clockFlag } from "./clock-sync.ts";
import type { Run } from "./scheduler.ts";
import { applyThresholds, type Threshold } from "./thresholds.ts";

/** Who produced a result: the identity every envelope carries. */
export interface ProbeIdentity {
  site: string;
  probe: string;
  bootId: string;
  version: string;
}

/** A result envelope before the store assigns its `seq`. */
export type UnsequencedResult = Omit<ResultPayload, "seq">;

/** Wraps one run into the shared envelope (docs/architecture.md, "Result envelope"), thresholds applied. */
export function envelope(
  run: Run,
  thresholds: Readonly<Record<string, Threshold>>,
  who: ProbeIdentity,
): UnsequencedResult {
  const m = applyThresholds(run.measurement, thresholds);
  return {
    schema: 1,
    id: ulid(),
    site: who.site,
    probe: who.probe,
    check: run.check.name,
    kind: run.check.kind.kind,
    area: run.check.area,
    target: run.check.target,
    started_at: run.startedAt.toISOString(),
    boot_id: who.bootId,
    mono_ms: run.monoMs,
    ...(clockFlag(run.startedAt.getTime()) ? { clock: clockFlag(run.startedAt.getTime()) } : {}),
    duration_ms: run.durationMs,
    status: m.status,
    metrics: m.metrics,
    detail: m.detail ?? {},
    ...(m.error ? { error: m.error } : {}),
    version: who.version,
  };
}

/** One line a human reads: why a result is not ok. */
export function reasonOf(r: UnsequencedResult): string {
  if (r.status === "ok") return `${r.check}: ok`;
  return `${r.check}: ${r.error ? `${r.error.code}: ${r.error.message}` : r.status}`;
}
