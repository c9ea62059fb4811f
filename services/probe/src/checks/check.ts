import type { TSchema, Static } from "@sinclair/typebox";
import type { Logger } from "../../../contract/src/log.ts";

// The vocabulary a check speaks is the contract's, shared with HQ; re-exported so a check kind
// imports everything it needs from this one file.
export {
  AREAS,
  type Area,
  type CheckError,
  type Measurement,
  type Status,
} from "../../../contract/src/vocabulary.ts";
import type { Area, Measurement } from "../../../contract/src/vocabulary.ts";

/** The I/O a check may use, injected so unit tests can pass doubles. */
export interface CheckContext {
  log: Logger;
  /**
   * Set when someone asked for this run by name (HQ `cmd/run`, `netprobe check --force`) rather than
   * the schedule or the button's "run everything": checks that load the network (throughput) run
   * outside their windows only then.
   */
  onDemand?: boolean;
}

/** One check kind: a config `kind`, its options schema and its run function (docs/architecture.md, "Conventions"). */
export interface CheckKind<S extends TSchema = TSchema> {
  kind: string;
  /** Area a check of this kind reports into unless the config says otherwise. */
  defaultArea: Area;
  /** Check-specific options; defaults live in the schema. */
  options: S;
  /** Never throws for a network failure; resolves promptly once `signal` aborts. */
  run(target: string, options: Static<S>, ctx: CheckContext, signal: AbortSignal): Promise<Measurement>;
  /**
   * Consecutive failing runs before this kind's checks turn red, unless the check's config sets
   * `fail_after`; default `areas.fail_after`. `link` uses 1: a lost link is not a flaky packet.
   */
  failAfter?: number;
  /**
   * Optional: whether a scheduled run may start at `now`; false skips the tick without a result.
   * Omitted: always. The throughput test loads the link, so it is due only inside its windows.
   */
  due?(options: Static<S>, now: Date): boolean;
  /**
   * Optional: watches between runs for an event that warrants a run now (a carrier change) and
   * calls `onChange`; the scheduler then runs the check at once. Started by the scheduler, stopped
   * when `signal` aborts; must not keep the process alive (unref its timers).
   */
  watch?(
    target: string,
    options: Static<S>,
    ctx: CheckContext,
    signal: AbortSignal,
    onChange: () => void,
  ): void;
}
