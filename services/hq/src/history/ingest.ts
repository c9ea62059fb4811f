// From the fleet's accepted messages to the history store, losing nothing and counting nothing
// twice (docs/hq.md, "History"): Fleet emits a `record` for each accepted message, ingest batches
// them and writes one transaction per batch; the caller's ack (the MQTT PUBACK) is released only
// after the batch that holds the message has committed. HQ killed in between: the broker still has
// the message (persistent session) and redelivers it; the store keeps one copy by result id.
import { homedir } from "node:os";
import { join } from "node:path";
import type { Logger } from "../../../contract/src/log.ts";
import type { Fleet, FleetRecord } from "../fleet.ts";
import type { HqConfig } from "../hq-config.ts";
import { postgresHistoryStore } from "./postgres-store.ts";
import { sqliteHistoryStore } from "./sqlite-store.ts";
import { mainMetric, type HistoryBatch, type HistoryStore } from "./store.ts";

/** A result whose wall clock is this far ahead of HQ's is placed at its receive time. */
const FUTURE_SLACK_MS = 86_400_000;

/** Where the SQLite file lives when `history.path` is not set (beside the token file). */
export function defaultHistoryFile(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.STATE_DIRECTORY?.split(":")[0];
  return dir ? join(dir, "hq-history.db") : join(homedir(), ".netprobe", "hq-history.db");
}

/** The configured store, not yet opened; null for engine `none`. */
export function historyStoreOf(cfg: HqConfig): HistoryStore | null {
  const h = cfg.history;
  const retention = { raw_days: h.raw_days, rollup_days: h.rollup_days, event_days: h.event_days };
  if (h.engine === "none") return null;
  if (h.engine === "postgres") return postgresHistoryStore(h.url!, retention);
  return sqliteHistoryStore(h.path ?? defaultHistoryFile(), retention);
}

/** Counters for the log and the page. */
export interface IngestCounters {
  written: number;
  duplicates: number;
  expired: number;
  batches: number;
  write_errors: number;
  pending: number;
}

/** Options of the ingest loop. */
export interface IngestOptions {
  /** Longest a record waits before its batch is written. */
  flushMs: number;
  /** A batch is written at once when it holds this many records. */
  batchRecords: number;
  /** Roll-ups and retention run this often. */
  maintenanceMs: number;
}

const DEFAULTS: IngestOptions = { flushMs: 100, batchRecords: 5000, maintenanceMs: 15_000 };

const empty = (): HistoryBatch => ({ results: [], events: [], states: [], health: [] });

/** Batches Fleet's records into the store; acks follow commits. start()/stop(). */
export class HistoryIngest {
  readonly counters: IngestCounters = {
    written: 0,
    duplicates: 0,
    expired: 0,
    batches: 0,
    write_errors: 0,
    pending: 0,
  };
  readonly #store: HistoryStore;
  readonly #fleet: Fleet;
  readonly #log: Logger;
  readonly #opts: IngestOptions;
  #batch = empty();
  #acks: Array<() => void> = [];
  #records = 0;
  #timer: NodeJS.Timeout | undefined;
  #maintenance: NodeJS.Timeout | undefined;
  #writing: Promise<void> | null = null;
  #recorded = false;
  readonly #onRecord = (r: FleetRecord) => this.#add(r);

  constructor(store: HistoryStore, fleet: Fleet, log: Logger, opts: Partial<IngestOptions> = {}) {
    this.#store = store;
    this.#fleet = fleet;
    this.#log = log;
    this.#opts = { ...DEFAULTS, ...opts };
  }

  get store(): HistoryStore {
    return this.#store;
  }

  async start(): Promise<void> {
    await this.#store.open();
    this.#fleet.on("record", this.#onRecord);
    this.#maintenance = setInterval(() => void this.#maintain(), this.#opts.maintenanceMs);
  }

  /**
   * Hands one MQTT message to Fleet and holds `ack` until what it produced is committed (at once
   * when it produced nothing to keep: a duplicate, a command, a malformed message).
   */
  take<T>(ingest: () => T, ack: () => void): T {
    this.#recorded = false;
    const out = ingest();
    if (this.#recorded) this.#acks.push(ack);
    else ack();
    return out;
  }

  #add(r: FleetRecord): void {
    this.#recorded = true;
    const b = this.#batch;
    switch (r.part) {
      case "result": {
        const p = r.point as typeof r.point & { wall?: number };
        let at = p.wall ?? Date.parse(p.started_at);
        if (!Number.isFinite(at) || at > p.received_at + FUTURE_SLACK_MS) at = p.received_at;
        b.results.push({
          id: p.id,
          site: r.site,
          probe: r.probe,
          check: p.check,
          kind: p.kind,
          area: p.area,
          target: p.target,
          status: p.status,
          at,
          duration_ms: p.duration_ms,
          value: mainMetric(p.metrics, p.duration_ms),
          loss_pct: p.metrics.loss_pct ?? null,
          metrics: p.metrics,
          error_code: p.error?.code ?? null,
          error_message: p.error?.message ?? null,
          seq: p.seq,
          boot_id: p.boot_id,
          mono_ms: p.mono_ms,
          received_at: p.received_at,
        });
        break;
      }
      case "event": {
        const e = r.event;
        const at = Date.parse(e.at);
        b.events.push({
          site: e.site,
          probe: e.probe,
          type: e.type,
          at: Number.isFinite(at) ? at : e.received_at,
          area: e.type === "area_transition" ? e.area : null,
          from: e.type === "area_transition" ? e.from : null,
          to: e.type === "area_transition" ? e.to : null,
          reason: e.reason,
          result_id: e.type === "area_transition" ? e.result_id : null,
          received_at: e.received_at,
          boot_id: e.boot_id,
          mono_ms: e.mono_ms,
        });
        break;
      }
      case "state":
        b.states.push({
          site: r.site,
          probe: r.probe,
          state: r.state.state,
          at: r.at,
          version: r.state.version,
          boot_id: r.state.boot_id,
        });
        break;
      case "health": {
        const areas: HistoryBatch["health"][number]["areas"] = {};
        for (const [name, a] of Object.entries(r.health.areas))
          areas[name] = { state: a.state, led: a.led, reason: a.reason };
        b.health.push({
          site: r.site,
          probe: r.probe,
          at: r.at,
          areas,
          outbox_rows: r.health.outbox.rows,
          evicted: r.health.outbox.evicted,
        });
        break;
      }
    }
    this.#records++;
    this.counters.pending = this.#records;
    if (this.#records >= this.#opts.batchRecords) void this.#flush();
    else this.#timer ??= setTimeout(() => void this.#flush(), this.#opts.flushMs);
  }

  /** Writes what is pending (one write at a time; a failed batch is retried, its acks held). */
  async #flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#writing) return this.#writing.then(() => this.#flush());
    if (this.#records === 0) return;
    const batch = this.#batch;
    const acks = this.#acks;
    this.#batch = empty();
    this.#acks = [];
    this.#records = 0;
    this.counters.pending = 0;
    this.#writing = (async () => {
      for (let attempt = 0; ; attempt++) {
        try {
          const out = await this.#store.write(batch);
          this.counters.written += out.inserted;
          this.counters.duplicates += out.duplicates;
          this.counters.expired += out.expired;
          this.counters.batches++;
          for (const ack of acks) ack();
          return;
        } catch (err) {
          this.counters.write_errors++;
          // Unacknowledged messages stay at the broker; keep trying rather than drop them.
          if (attempt % 10 === 0) this.#log.error({ err: String(err), attempt }, "history write failed");
          await new Promise((r) => setTimeout(r, Math.min(5000, 100 * 2 ** Math.min(attempt, 6))));
        }
      }
    })().finally(() => {
      this.#writing = null;
    });
    return this.#writing;
  }

  async #maintain(): Promise<void> {
    const now = Date.now();
    try {
      await this.#store.rollUp(now);
      await this.#store.retain(now);
    } catch (err) {
      this.#log.warn({ err: String(err) }, "history roll-up or retention failed");
    }
  }

  /** Writes what is pending, rolls up, and closes the store. */
  async stop(): Promise<void> {
    this.#fleet.off("record", this.#onRecord);
    clearInterval(this.#maintenance);
    await this.#flush();
    await this.#maintain();
    await this.#store.close();
  }
}
