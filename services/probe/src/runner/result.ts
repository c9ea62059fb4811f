import { ulid } from "ulid";
import type { ResultPayload } from "../../../contract/src/payloads.ts";
import type { Verdict } from "./area-state.ts";
import { clockFlag, correctedStart, type ClockStep } from "./clock-sync.ts";
import type { Run } from "./scheduler.ts";
import { applyThresholds } from "./thresholds.ts";

/** Who produced a result: the identity every envelope carries. */
export interface ProbeIdentity {
  site: string;
  probe: string;
  bootId: string;
  version: string;
}

/**
 * Wraps one run into the shared envelope (docs/architecture.md, "Result envelope"): the check's
 * thresholds applied, and, when the wall clock stepped after the run started (`clockStep`, the
 * last step seen), `started_at` recomputed from `mono_ms` and flagged `corrected` — the same rule
 * the rows already in the outbox get (clock-sync.ts). Everything but `seq`, which the store
 * assigns in the transaction that keeps the result. `configHash` is the hash of the running config
 * (as in the retained `config`), so HQ can tell which results came after a config change.
 */
export function envelope(
  run: Run,
  who: ProbeIdentity,
  clockStep?: ClockStep,
  configHash?: string,
): Omit<ResultPayload, "seq"> {
  const m = applyThresholds(run.measurement, run.check.thresholds ?? {});
  const startedAt = run.startedAt.toISOString();
  const corrected = clockStep
    ? correctedStart(
        { boot_id: who.bootId, mono_ms: run.monoMs, started_at: startedAt },
        who.bootId,
        clockStep,
      )
    : null;
  const clock = corrected === null ? clockFlag(run.startedAt.getTime()) : "corrected";
  return {
    schema: 1,
    id: ulid(),
    site: who.site,
    probe: who.probe,
    check: run.check.name,
    kind: run.check.kind.kind,
    area: run.check.area,
    target: run.check.target,
    started_at: corrected ?? startedAt,
    boot_id: who.bootId,
    mono_ms: run.monoMs,
    ...(clock ? { clock } : {}),
    duration_ms: run.durationMs,
    status: m.status,
    metrics: m.metrics,
    detail: m.detail ?? {},
    ...(configHash ? { config_hash: configHash } : {}),
    ...(m.error ? { error: m.error } : {}),
    version: who.version,
  };
}

/** One line a human reads: why a result is not ok. */
export function reasonOf(r: Pick<ResultPayload, "check" | "status" | "error">): string {
  if (r.status === "ok") return `${r.check}: ok`;
  return `${r.check}: ${r.error ? `${r.error.code}: ${r.error.message}` : r.status}`;
}

/** What the area tracker takes of a result (area-state.ts). */
export function verdictOf(r: Omit<ResultPayload, "seq">): Verdict {
  return { check: r.check, area: r.area, status: r.status, resultId: r.id, reason: reasonOf(r) };
}
