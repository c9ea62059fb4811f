import { AREAS, type Area, type CheckKind, type Status } from "../checks/check.ts";
import type { AreaStateName } from "../../../contract/src/payloads.ts";

/** Hysteresis: how many consecutive runs it takes to change a check's state. */
export interface Hysteresis {
  /** consecutive runs at warn-or-worse (fail-or-worse) before degraded (failing) */
  failAfter: number;
  /** consecutive better runs before the state improves */
  recoverAfter: number;
}

/** What the tracker needs from a result. */
export interface Verdict {
  check: string;
  area: Area;
  status: Status;
  resultId: string;
  reason: string;
}

/** The state of one area, as shown on its LED and in `health`. */
export interface AreaSnapshot {
  state: AreaStateName;
  /** wall-clock ms of the last change */
  since: number;
  reason: string;
  lastResultId: string | null;
}

/** One area changing state, published on `events`. */
export interface Transition {
  area: Area;
  from: AreaStateName;
  to: AreaStateName;
  reason: string;
  resultId: string | null;
}

interface CheckTrack {
  area: Area;
  /** This check's hysteresis (its overrides over the tracker's). */
  h: Hysteresis;
  state: AreaStateName;
  /** consecutive runs at level ≥ 1 and ≥ 2 */
  up: [number, number];
  /** consecutive runs better than the current state */
  down: number;
  reason: string;
  /** Runs only in windows (a `due` kind): until its first verdict it does not hold the area at "checking". */
  occasional: boolean;
}

const LEVEL: Record<Status, 0 | 1 | 2> = { ok: 0, warn: 1, fail: 2, error: 2 };
const STATE_OF_LEVEL: readonly AreaStateName[] = ["ok", "degraded", "failing"];
// Worst first: an area shows the worst of its checks; "checking" (unknown) hides only a green.
const SEVERITY: Record<AreaStateName, number> = { off: -1, ok: 0, unknown: 1, degraded: 2, failing: 3 };

function levelOf(state: AreaStateName): number {
  return state === "degraded" ? 1 : state === "failing" ? 2 : 0;
}

/**
 * Derives area states from check verdicts with hysteresis, per check, so one flaky check cannot
 * flap an LED: the area then shows the worst state among its checks.
 */
export class AreaTracker {
  readonly #checks = new Map<string, CheckTrack>();
  readonly #areas = new Map<Area, AreaSnapshot>();
  readonly #now: () => number;

  constructor(
    checks: ReadonlyArray<{
      name: string;
      area: Area;
      failAfter?: number;
      recoverAfter?: number;
      kind?: Pick<CheckKind, "due">;
    }>,
    h: Hysteresis,
    now: () => number = Date.now,
  ) {
    this.#now = now;
    for (const c of checks)
      this.#checks.set(c.name, {
        area: c.area,
        h: { failAfter: c.failAfter ?? h.failAfter, recoverAfter: c.recoverAfter ?? h.recoverAfter },
        state: "unknown",
        up: [0, 0],
        down: 0,
        reason: "",
        occasional: c.kind?.due !== undefined,
      });
    const t = now();
    for (const area of AREAS) {
      const configured = checks.some((c) => c.area === area);
      this.#areas.set(area, {
        state: configured ? "unknown" : "off",
        since: t,
        reason: configured ? "no verdict yet" : "not configured",
        lastResultId: null,
      });
    }
  }

  /** Feeds one verdict; returns the area transitions it caused (zero or one). */
  update(v: Verdict): Transition[] {
    const c = this.#checks.get(v.check);
    if (!c) return [];
    const level = LEVEL[v.status];
    c.up = [level >= 1 ? c.up[0] + 1 : 0, level >= 2 ? c.up[1] + 1 : 0];
    const cur = levelOf(c.state);
    if (c.state === "unknown") {
      if (level === 0) c.state = "ok";
      else if (c.up[1] >= c.h.failAfter) c.state = "failing";
      else if (c.up[0] >= c.h.failAfter) c.state = "degraded";
    } else if (level > cur) {
      c.down = 0;
      if (level >= 2 && c.up[1] >= c.h.failAfter) c.state = "failing";
      else if (cur < 1 && c.up[0] >= c.h.failAfter) c.state = "degraded";
    } else if (level < cur) {
      c.down += 1;
      if (c.down >= c.h.recoverAfter) {
        c.state = STATE_OF_LEVEL[level] ?? "ok";
        c.down = 0;
      }
    } else {
      c.down = 0;
    }
    c.reason = v.reason;
    return this.#recompute(v.area, v.resultId);
  }

  /** Current state of every area. */
  snapshot(): Record<Area, AreaSnapshot> {
    return Object.fromEntries(this.#areas) as Record<Area, AreaSnapshot>;
  }

  #recompute(area: Area, resultId: string): Transition[] {
    let worst: CheckTrack | undefined;
    for (const c of this.#checks.values()) {
      if (c.area !== area || (c.occasional && c.state === "unknown")) continue;
      if (!worst || SEVERITY[c.state] > SEVERITY[worst.state]) worst = c;
    }
    const prev = this.#areas.get(area);
    if (!worst || !prev) return [];
    const next = worst.state;
    const reason = next === "ok" ? "all checks ok" : worst.reason;
    if (next === prev.state) {
      this.#areas.set(area, {
        ...prev,
        lastResultId: resultId,
        reason: next === "ok" ? prev.reason : reason,
      });
      return [];
    }
    this.#areas.set(area, { state: next, since: this.#now(), reason, lastResultId: resultId });
    return [{ area, from: prev.state, to: next, reason, resultId }];
  }
}
