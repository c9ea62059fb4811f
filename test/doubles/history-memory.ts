// An in-memory HistoryReader for unit tests of what reads history (reports, web routes): rows
// are handed in as the engines would return them. Not a third engine: the engines' own suite runs
// on SQLite and PostgreSQL; availability() and incidents() are theirs and are not imitated here.
import type {
  AreaAvailability,
  CheckInfo,
  EventQuery,
  HistoryReader,
  Incident,
  RangeQuery,
  ResultQuery,
  RollupQuery,
  RollupRow,
  StoreStats,
  StoredEvent,
  StoredResult,
  StoredStateChange,
} from "../../services/hq/src/history/store.ts";
import { pickResolution } from "../../services/hq/src/history/store.ts";

const inRange = (
  q: Partial<RangeQuery>,
  r: { site: string; probe: string; check?: string; area?: string | null },
  at?: number,
) =>
  (q.site === undefined || r.site === q.site) &&
  (q.probe === undefined || r.probe === q.probe) &&
  (q.check === undefined || r.check === q.check) &&
  (q.area === undefined || r.area === q.area) &&
  (at === undefined || ((q.from === undefined || at >= q.from) && (q.to === undefined || at < q.to)));

/** The rows a MemoryHistory answers from. */
export interface Rows {
  results?: StoredResult[];
  events?: StoredEvent[];
  states?: StoredStateChange[];
  rollups?: RollupRow[];
  checks?: CheckInfo[];
}

/** Rows in, queries out; every query is logged in `queries` for assertions on bounds. */
export class MemoryHistory implements HistoryReader {
  readonly queries: Array<{ op: string; q: unknown }> = [];
  readonly rows: Rows;
  constructor(rows: Rows = {}) {
    this.rows = rows;
  }

  results(q: ResultQuery): Promise<StoredResult[]> {
    this.queries.push({ op: "results", q });
    return Promise.resolve(
      (this.rows.results ?? [])
        .filter((r) => inRange(q, r, r.at))
        .sort((a, b) => a.at - b.at)
        .slice(0, q.limit ?? 10_000),
    );
  }
  events(q: EventQuery): Promise<StoredEvent[]> {
    this.queries.push({ op: "events", q });
    return Promise.resolve(
      (this.rows.events ?? [])
        .filter((e) => inRange(q, e, e.at))
        .sort((a, b) => a.at - b.at)
        .slice(0, q.limit ?? 10_000),
    );
  }
  states(q: Omit<EventQuery, "area">): Promise<StoredStateChange[]> {
    this.queries.push({ op: "states", q });
    return Promise.resolve(
      (this.rows.states ?? []).filter((s) => inRange(q, s, s.at)).sort((a, b) => a.at - b.at),
    );
  }
  rollups(q: RollupQuery): Promise<RollupRow[]> {
    this.queries.push({ op: "rollups", q });
    const res = q.resolution === "auto" ? pickResolution(q.from, q.to) : q.resolution;
    return Promise.resolve(
      (this.rows.rollups ?? [])
        .filter((r) => r.resolution === res && inRange(q, r, r.bucket))
        .sort((a, b) => a.bucket - b.bucket),
    );
  }
  availability(_q: RangeQuery): Promise<AreaAvailability[]> {
    return Promise.reject(new Error("availability() is the engines' (not imitated by the memory double)"));
  }
  incidents(_q: RangeQuery): Promise<Incident[]> {
    return Promise.reject(new Error("incidents() is the engines' (not imitated by the memory double)"));
  }
  checks(q: Partial<RangeQuery>): Promise<CheckInfo[]> {
    this.queries.push({ op: "checks", q });
    return Promise.resolve((this.rows.checks ?? []).filter((c) => inRange(q, c)));
  }
  stats(): Promise<StoreStats> {
    return Promise.resolve({
      engine: "sqlite",
      results: this.rows.results?.length ?? 0,
      events: this.rows.events?.length ?? 0,
      rollups_1m: 0,
      rollups_1h: 0,
      oldest_result_at: null,
    });
  }
}
