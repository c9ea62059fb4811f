// Where incidents live. HQ's history store (services/hq/src/history/) is meant to persist them; until
// it is composed in, the memory store below keeps the open ones and the latest resolved ones, so
// the engine, the API and /metrics do not care which one they talk to (docs/alerting.md, "Storage").
import type { Incident, IncidentStore } from "./incidents.ts";

/** Resolved incidents kept by the memory store (open ones are always kept). */
export const RESOLVED_KEPT = 1000;

/** In-memory store: open incidents plus the last {@link RESOLVED_KEPT} resolved ones. */
export class MemoryIncidentStore implements IncidentStore {
  readonly #byId = new Map<string, Incident>();
  readonly #resolvedKept: number;

  constructor(resolvedKept: number = RESOLVED_KEPT) {
    this.#resolvedKept = resolvedKept;
  }

  put(incident: Incident): void {
    this.#byId.delete(incident.id);
    this.#byId.set(incident.id, structuredClone(incident));
    if (incident.resolved_at === null) return;
    const resolved = [...this.#byId.values()].filter((i) => i.resolved_at !== null);
    // Map order is the order of the last put: the first ones are the longest resolved.
    for (const old of resolved.slice(0, Math.max(0, resolved.length - this.#resolvedKept)))
      this.#byId.delete(old.id);
  }

  get(id: string): Incident | undefined {
    const i = this.#byId.get(id);
    return i && structuredClone(i);
  }

  list(opts: { open?: boolean; limit?: number } = {}): Incident[] {
    const all = [...this.#byId.values()];
    const open = all.filter((i) => i.resolved_at === null).sort((a, b) => a.opened_at - b.opened_at);
    const resolved = all
      .filter((i) => i.resolved_at !== null)
      .sort((a, b) => (b.resolved_at ?? 0) - (a.resolved_at ?? 0));
    const chosen = opts.open === true ? open : opts.open === false ? resolved : [...open, ...resolved];
    return chosen.slice(0, opts.limit ?? Infinity).map((i) => structuredClone(i));
  }
}
