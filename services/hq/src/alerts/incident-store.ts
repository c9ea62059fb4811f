// Where incidents live (docs/alerting.md, "Storage"): in memory for the engine, the API and
// /metrics (the interface is synchronous: the engine decides within one event), and written
// through to HQ's history store when there is one, so an HQ restart keeps open incidents open —
// their times, acknowledgements and notifications — instead of opening (and paging) them again.
import type { Logger } from "../../../contract/src/log.ts";
import type { IncidentHistory } from "../history/store.ts";
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

/**
 * The memory store written through to the history store: puts are queued and written in order, a
 * batch at a time, so the engine never waits on the database; a failed write is logged and kept
 * for the next one (the newest version of an incident wins).
 */
export class PersistentIncidentStore extends MemoryIncidentStore {
  readonly #history: IncidentHistory;
  readonly #log: Logger;
  readonly #pending = new Map<string, Incident>();
  #writing: Promise<void> | undefined;

  private constructor(history: IncidentHistory, log: Logger) {
    super();
    this.#history = history;
    this.#log = log;
  }

  /** Loads the stored open incidents and the latest resolved ones. */
  static async open(history: IncidentHistory, log: Logger): Promise<PersistentIncidentStore> {
    const s = new PersistentIncidentStore(history, log);
    const rows = await history.loadIncidents(RESOLVED_KEPT);
    // Oldest resolved first, so the memory store's order (last put = newest) holds.
    for (const r of [...rows].reverse()) MemoryIncidentStore.prototype.put.call(s, r.body as Incident);
    return s;
  }

  override put(incident: Incident): void {
    super.put(incident);
    this.#pending.set(incident.id, structuredClone(incident));
    this.#writing ??= this.#drain();
  }

  /** Resolves once everything put so far is written (or has failed and been logged). */
  async flush(): Promise<void> {
    while (this.#writing) await this.#writing;
  }

  async #drain(): Promise<void> {
    try {
      while (this.#pending.size > 0) {
        const batch = [...this.#pending.values()];
        this.#pending.clear();
        try {
          await this.#history.putIncidents(
            batch.map((i) => ({
              id: i.id,
              opened_at: i.opened_at,
              resolved_at: i.resolved_at,
              updated_at: i.updated_at,
              body: i,
            })),
          );
        } catch (err) {
          this.#log.error({ err: String(err), incidents: batch.length }, "incidents not stored; retrying");
          for (const i of batch) if (!this.#pending.has(i.id)) this.#pending.set(i.id, i);
          await new Promise((r) => setTimeout(r, 5000).unref());
        }
      }
    } finally {
      this.#writing = undefined;
    }
  }
}
