import type { CheckKind } from "../checks/check.ts";
import { checkKind } from "../checks/registry.ts";
import type { Config } from "../config/schema.ts";
import type { ScheduledCheck } from "./scheduler.ts";

/** Finds the implementation of a config `kind`: the registry, or a double in unit tests. */
export type KindLookup = (kind: string) => CheckKind | undefined;

/**
 * The enabled checks of a config, as the scheduler runs them and the envelope judges them: kind,
 * timing, options, thresholds and hysteresis overrides. The one list the service and
 * `netprobe check` both use, so a result means the same from either.
 */
export function scheduledChecks(c: Config, kinds: KindLookup = checkKind): ScheduledCheck[] {
  return c.checks
    .filter((ch) => ch.enabled)
    .map((ch) => {
      const kind = kinds(ch.kind);
      if (!kind) throw new Error(`checks: unknown kind ${ch.kind}`); // config validation rules this out
      const failAfter = ch.fail_after ?? kind.failAfter;
      return {
        name: ch.name,
        kind,
        target: ch.target,
        area: ch.area,
        intervalMs: ch.interval_ms,
        timeoutMs: ch.timeout_ms,
        jitter: ch.jitter,
        options: ch.options,
        thresholds: ch.thresholds,
        ...(failAfter ? { failAfter } : {}),
        ...(ch.recover_after === undefined ? {} : { recoverAfter: ch.recover_after }),
      };
    });
}
