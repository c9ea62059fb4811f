// The one SQL history store: every query here runs unchanged on SQLite and PostgreSQL (`?`
// placeholders, CASE instead of boolean sums, integer division for buckets, ON CONFLICT upserts).
// What differs — connecting, bulk inserts, partitions, locking, backup — is the Dialect's
// (sqlite-store.ts, postgres-store.ts), as in Gatus' storage/store/sql.
import type { AreaStateName } from "../../../contract/src/payloads.ts";
import {
  AREA_ORDER,
  BUCKET_MS,
  pickResolution,
  type AreaAvailability,
  type CheckInfo,
  type EventQuery,
  type HistoryBatch,
  type HistoryStore,
  type Incident,
  type RangeQuery,
  type ResultQuery,
  type RetentionOutcome,
  type RetentionPolicy,
  type RollupQuery,
  type ConfigAuditEntry,
  type RolloutProbeRecord,
  type RolloutRecord,
  type RollupRow,
  type StoredEvent,
  type StoredIncident,
  type TemplateVersion,
  type StoredResult,
  type StoredStateChange,
  type StoreStats,
  type WriteOutcome,
} from "./store.ts";

/** A row as the driver returns it. */
export type Row = Record<string, unknown>;

/** Column types a bulk insert needs (PostgreSQL casts unnest() arrays to them). */
export type ColumnType = "text" | "bigint" | "double";

/** One table's bulk insert: columns, their types and the conflict clause. */
export interface BulkInsert {
  table: string;
  columns: ReadonlyArray<readonly [name: string, type: ColumnType]>;
  /** e.g. `ON CONFLICT (id) DO NOTHING`; the same text on both engines. */
  conflict: string;
}

/** The connection, inside or outside a transaction. */
export interface Db {
  query(sql: string, params?: readonly unknown[]): Promise<Row[]>;
  /** Rows changed. */
  run(sql: string, params?: readonly unknown[]): Promise<number>;
  /** Inserts rows (arrays in `columns` order); returns rows actually inserted. */
  insertMany(spec: BulkInsert, rows: readonly unknown[][]): Promise<number>;
}

/** What one engine provides beneath the shared queries. */
export interface Dialect {
  readonly engine: "sqlite" | "postgres";
  /** Creates the tables; idempotent. */
  migrate(): Promise<void>;
  /** Runs `fn` in one transaction (serialised with the store's other transactions). */
  tx<T>(fn: (db: Db) => Promise<T>): Promise<T>;
  /** Outside a transaction, for reads. */
  readonly db: Db;
  /** Inserts results whose id is new; returns the ids inserted. */
  insertResults(db: Db, rows: readonly StoredResult[]): Promise<number>;
  /** Takes the store-wide lock for roll-ups and retention (two HQ instances on one database). */
  lockMaintenance(db: Db): Promise<void>;
  /** Drops raw results older than `cutoff`; PostgreSQL drops whole partitions. */
  dropResultsBefore(db: Db, cutoff: number): Promise<{ rows: number; partitions: number }>;
  backup(file: string): Promise<void>;
  close(): Promise<void>;
}

const RESULT_COLUMNS = [
  ["id", "text"],
  ["site", "text"],
  ["probe", "text"],
  ["check_name", "text"],
  ["kind", "text"],
  ["area", "text"],
  ["target", "text"],
  ["status", "text"],
  ["at", "bigint"],
  ["duration_ms", "double"],
  ["value", "double"],
  ["loss_pct", "double"],
  ["metrics", "text"],
  ["error_code", "text"],
  ["error_message", "text"],
  ["seq", "bigint"],
  ["boot_id", "text"],
  ["mono_ms", "double"],
  ["received_at", "bigint"],
] as const;
/** Column list of `results`, in insert order. */
export const RESULT_COLUMN_NAMES = RESULT_COLUMNS.map(([n]) => n);
/** The bulk insert of results (both dialects use its column order). */
export const RESULT_INSERT: BulkInsert = {
  table: "results",
  columns: RESULT_COLUMNS,
  conflict: "ON CONFLICT (id) DO NOTHING",
};

/** A result as an insert row, in RESULT_COLUMNS order. */
export function resultRow(r: StoredResult): unknown[] {
  return [
    r.id,
    r.site,
    r.probe,
    r.check,
    r.kind,
    r.area,
    r.target,
    r.status,
    Math.round(r.at),
    r.duration_ms,
    r.value,
    r.loss_pct,
    JSON.stringify(r.metrics),
    r.error_code,
    r.error_message,
    r.seq,
    r.boot_id,
    r.mono_ms,
    Math.round(r.received_at),
  ];
}

const ROLLUP_COLUMNS = [
  ["site", "text"],
  ["probe", "text"],
  ["check_name", "text"],
  ["bucket", "bigint"],
  ["kind", "text"],
  ["area", "text"],
  ["count", "bigint"],
  ["ok", "bigint"],
  ["warn", "bigint"],
  ["fail", "bigint"],
  ["error", "bigint"],
  ["value_min", "double"],
  ["value_sum", "double"],
  ["value_count", "bigint"],
  ["value_p95", "double"],
  ["loss_sum", "double"],
  ["loss_count", "bigint"],
] as const;
const ROLLUP_UPDATE = ROLLUP_COLUMNS.slice(4)
  .map(([n]) => `${n} = excluded.${n}`)
  .join(", ");

/**
 * The schema, one statement per entry; `%BIGINT%`-style words are the only engine differences
 * (SQLite takes any type name; PostgreSQL's results table is partitioned, see postgres-store.ts).
 */
export function schemaStatements(results: string): string[] {
  const rollup = (t: string) =>
    `CREATE TABLE IF NOT EXISTS ${t} (
      site TEXT NOT NULL, probe TEXT NOT NULL, check_name TEXT NOT NULL, bucket BIGINT NOT NULL,
      kind TEXT NOT NULL, area TEXT NOT NULL,
      count BIGINT NOT NULL, ok BIGINT NOT NULL, warn BIGINT NOT NULL, fail BIGINT NOT NULL, error BIGINT NOT NULL,
      value_min DOUBLE PRECISION, value_sum DOUBLE PRECISION, value_count BIGINT NOT NULL,
      value_p95 DOUBLE PRECISION, loss_sum DOUBLE PRECISION, loss_count BIGINT NOT NULL,
      PRIMARY KEY (site, probe, check_name, bucket))`;
  return [
    results,
    `CREATE INDEX IF NOT EXISTS results_series ON results (site, probe, check_name, at)`,
    `CREATE INDEX IF NOT EXISTS results_at ON results (at)`,
    `CREATE TABLE IF NOT EXISTS events (
      site TEXT NOT NULL, probe TEXT NOT NULL, type TEXT NOT NULL, at BIGINT NOT NULL,
      boot_id TEXT NOT NULL, mono_ms DOUBLE PRECISION NOT NULL,
      area TEXT, from_state TEXT, to_state TEXT, reason TEXT NOT NULL, result_id TEXT,
      received_at BIGINT NOT NULL,
      PRIMARY KEY (site, probe, boot_id, mono_ms, type))`,
    `CREATE INDEX IF NOT EXISTS events_at ON events (at)`,
    `CREATE INDEX IF NOT EXISTS events_probe ON events (site, probe, at)`,
    `CREATE TABLE IF NOT EXISTS state_changes (
      site TEXT NOT NULL, probe TEXT NOT NULL, state TEXT NOT NULL, at BIGINT NOT NULL,
      version TEXT NOT NULL, boot_id TEXT NOT NULL,
      PRIMARY KEY (site, probe, boot_id, state))`,
    `CREATE INDEX IF NOT EXISTS state_changes_at ON state_changes (at)`,
    `CREATE TABLE IF NOT EXISTS health (
      site TEXT NOT NULL, probe TEXT NOT NULL, at BIGINT NOT NULL, areas TEXT NOT NULL,
      outbox_rows BIGINT NOT NULL, evicted BIGINT NOT NULL,
      PRIMARY KEY (site, probe, at))`,
    `CREATE TABLE IF NOT EXISTS checks (
      site TEXT NOT NULL, probe TEXT NOT NULL, check_name TEXT NOT NULL,
      kind TEXT NOT NULL, area TEXT NOT NULL, target TEXT NOT NULL,
      first_at BIGINT NOT NULL, last_at BIGINT NOT NULL,
      PRIMARY KEY (site, probe, check_name))`,
    `CREATE TABLE IF NOT EXISTS rollup_dirty (
      site TEXT NOT NULL, probe TEXT NOT NULL, check_name TEXT NOT NULL, bucket BIGINT NOT NULL,
      touched BIGINT NOT NULL,
      PRIMARY KEY (site, probe, check_name, bucket))`,
    rollup("rollup_1m"),
    rollup("rollup_1h"),
    rollup("rollup_1d"),
    `CREATE INDEX IF NOT EXISTS rollup_1m_bucket ON rollup_1m (bucket)`,
    `CREATE INDEX IF NOT EXISTS rollup_1h_bucket ON rollup_1h (bucket)`,
    `CREATE INDEX IF NOT EXISTS rollup_1d_bucket ON rollup_1d (bucket)`,
    // Fleet config (docs/fleet-config.md). Added after the first release: CREATE … IF NOT EXISTS
    // is their migration on an existing store, on both engines.
    `CREATE TABLE IF NOT EXISTS config_templates (
      level TEXT NOT NULL, name TEXT NOT NULL, version BIGINT NOT NULL, body TEXT,
      author TEXT NOT NULL, at BIGINT NOT NULL, comment TEXT NOT NULL,
      PRIMARY KEY (level, name, version))`,
    `CREATE TABLE IF NOT EXISTS config_documents (
      hash TEXT PRIMARY KEY, document TEXT NOT NULL, first_at BIGINT NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS config_rollouts (
      id TEXT PRIMARY KEY, author TEXT NOT NULL, comment TEXT NOT NULL, stages TEXT NOT NULL,
      scope TEXT NOT NULL, state TEXT NOT NULL, reason TEXT, started_at BIGINT NOT NULL,
      finished_at BIGINT)`,
    `CREATE TABLE IF NOT EXISTS config_rollout_probes (
      rollout_id TEXT NOT NULL, site TEXT NOT NULL, probe TEXT NOT NULL, stage BIGINT NOT NULL,
      document_hash TEXT NOT NULL, outcome TEXT NOT NULL, code TEXT, detail TEXT, at BIGINT NOT NULL,
      PRIMARY KEY (rollout_id, site, probe))`,
    `CREATE TABLE IF NOT EXISTS config_audit (
      at BIGINT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, subject TEXT NOT NULL,
      detail TEXT NOT NULL)`,
    `CREATE INDEX IF NOT EXISTS config_audit_at ON config_audit (at)`,
    // Alert incidents (docs/alerting.md, "Storage"), whole documents by id; added after the first
    // release like the fleet config tables.
    `CREATE TABLE IF NOT EXISTS alert_incidents (
      id TEXT PRIMARY KEY, opened_at BIGINT NOT NULL, resolved_at BIGINT, updated_at BIGINT NOT NULL,
      body TEXT NOT NULL)`,
    `CREATE INDEX IF NOT EXISTS alert_incidents_resolved ON alert_incidents (resolved_at)`,
  ];
}

const num = (v: unknown): number => (typeof v === "number" ? v : Number(v));
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
const strOrNull = (v: unknown): string | null =>
  v === null || v === undefined ? null : typeof v === "string" ? v : JSON.stringify(v);

/** WHERE clauses for the common filters of a range query (column names as in every table). */
function filters(q: Partial<RangeQuery>, opts: { check?: boolean; area?: boolean; time?: string } = {}) {
  const where: string[] = [];
  const params: unknown[] = [];
  const add = (clause: string, v: unknown) => {
    where.push(clause);
    params.push(v);
  };
  if (q.site !== undefined) add("site = ?", q.site);
  if (q.probe !== undefined) add("probe = ?", q.probe);
  if (opts.check !== false && q.check !== undefined) add("check_name = ?", q.check);
  if (opts.area !== false && q.area !== undefined) add("area = ?", q.area);
  if (opts.time && q.from !== undefined && q.to !== undefined) {
    where.push(`${opts.time} >= ? AND ${opts.time} < ?`);
    params.push(Math.floor(q.from), Math.ceil(q.to));
  }
  return { where: where.length ? `WHERE ${where.join(" AND ")}` : "", params };
}

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

const DAY_MS = 86_400_000;

function templateOf(r: Row): TemplateVersion {
  return {
    level: String(r.level),
    name: String(r.name),
    version: num(r.version),
    body: typeof r.body === "string" ? (JSON.parse(r.body) as unknown) : null,
    author: String(r.author),
    at: num(r.at),
    comment: String(r.comment),
  };
}

/** The shared store over one Dialect. */
export class SqlHistoryStore implements HistoryStore {
  readonly #d: Dialect;
  readonly #retention: RetentionPolicy;
  readonly #now: () => number;

  constructor(dialect: Dialect, retention: RetentionPolicy, now: () => number = Date.now) {
    this.#d = dialect;
    this.#retention = retention;
    this.#now = now;
  }

  get engine(): "sqlite" | "postgres" {
    return this.#d.engine;
  }

  // Fleet config history (ConfigHistory): plain rows, the same SQL on both engines.

  async putTemplate(t: Omit<TemplateVersion, "version">): Promise<number> {
    return this.#d.tx(async (db) => {
      const [row] = await db.query(
        `SELECT COALESCE(MAX(version), 0) AS v FROM config_templates WHERE level = ? AND name = ?`,
        [t.level, t.name],
      );
      const version = num(row?.v ?? 0) + 1;
      await db.run(
        `INSERT INTO config_templates (level, name, version, body, author, at, comment) VALUES (?, ?, ?, ?, ?, ?, ?)`,
        [
          t.level,
          t.name,
          version,
          t.body === null ? null : JSON.stringify(t.body),
          t.author,
          Math.round(t.at),
          t.comment,
        ],
      );
      await db.run(`INSERT INTO config_audit (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)`, [
        Math.round(t.at),
        t.author,
        t.body === null ? "template_delete" : "template_set",
        `${t.level}:${t.name}`,
        JSON.stringify({ version, comment: t.comment }),
      ]);
      return version;
    });
  }

  async currentTemplates(): Promise<TemplateVersion[]> {
    const rows = await this.#d.db.query(
      `SELECT t.* FROM config_templates t JOIN (
         SELECT level, name, MAX(version) AS version FROM config_templates GROUP BY level, name
       ) m ON t.level = m.level AND t.name = m.name AND t.version = m.version
       WHERE t.body IS NOT NULL ORDER BY t.level, t.name`,
    );
    return rows.map(templateOf);
  }

  async templateVersions(
    q: { level?: string; name?: string; limit?: number } = {},
  ): Promise<TemplateVersion[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (q.level !== undefined) {
      where.push("level = ?");
      params.push(q.level);
    }
    if (q.name !== undefined) {
      where.push("name = ?");
      params.push(q.name);
    }
    params.push(q.limit ?? 100);
    const rows = await this.#d.db.query(
      `SELECT * FROM config_templates ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
        ORDER BY at DESC, version DESC LIMIT ?`,
      params,
    );
    return rows.map(templateOf);
  }

  async putDocument(hash: string, document: unknown, at: number): Promise<void> {
    await this.#d.db.run(
      `INSERT INTO config_documents (hash, document, first_at) VALUES (?, ?, ?) ON CONFLICT (hash) DO NOTHING`,
      [hash, JSON.stringify(document), Math.round(at)],
    );
  }

  async document(hash: string): Promise<unknown> {
    const [row] = await this.#d.db.query(`SELECT document FROM config_documents WHERE hash = ?`, [hash]);
    return row ? (JSON.parse(String(row.document)) as unknown) : undefined;
  }

  async putRollout(r: RolloutRecord): Promise<void> {
    await this.#d.db.run(
      `INSERT INTO config_rollouts (id, author, comment, stages, scope, state, reason, started_at, finished_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET state = excluded.state, reason = excluded.reason,
           finished_at = excluded.finished_at`,
      [r.id, r.author, r.comment, r.stages, r.scope, r.state, r.reason, r.started_at, r.finished_at],
    );
  }

  async putRolloutProbe(p: RolloutProbeRecord): Promise<void> {
    await this.#d.db.run(
      `INSERT INTO config_rollout_probes (rollout_id, site, probe, stage, document_hash, outcome, code, detail, at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (rollout_id, site, probe) DO UPDATE SET outcome = excluded.outcome,
           code = excluded.code, detail = excluded.detail, at = excluded.at`,
      [
        p.rollout_id,
        p.site,
        p.probe,
        p.stage,
        p.document_hash,
        p.outcome,
        p.code,
        p.detail,
        Math.round(p.at),
      ],
    );
  }

  async rollouts(limit = 50): Promise<RolloutRecord[]> {
    const rows = await this.#d.db.query(
      `SELECT * FROM config_rollouts ORDER BY started_at DESC, id DESC LIMIT ?`,
      [limit],
    );
    return rows.map((r) => ({
      id: String(r.id),
      author: String(r.author),
      comment: String(r.comment),
      stages: String(r.stages),
      scope: String(r.scope),
      state: String(r.state) as RolloutRecord["state"],
      reason: strOrNull(r.reason),
      started_at: num(r.started_at),
      finished_at: numOrNull(r.finished_at),
    }));
  }

  async rolloutProbes(id: string): Promise<RolloutProbeRecord[]> {
    const rows = await this.#d.db.query(
      `SELECT * FROM config_rollout_probes WHERE rollout_id = ? ORDER BY stage, at, site, probe`,
      [id],
    );
    return rows.map((r) => ({
      rollout_id: String(r.rollout_id),
      site: String(r.site),
      probe: String(r.probe),
      stage: num(r.stage),
      document_hash: String(r.document_hash),
      outcome: String(r.outcome) as RolloutProbeRecord["outcome"],
      code: strOrNull(r.code),
      detail: strOrNull(r.detail),
      at: num(r.at),
    }));
  }

  async audit(e: ConfigAuditEntry): Promise<void> {
    await this.#d.db.run(
      `INSERT INTO config_audit (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)`,
      [Math.round(e.at), e.actor, e.action, e.subject, e.detail],
    );
  }

  async auditLog(limit = 100): Promise<ConfigAuditEntry[]> {
    const rows = await this.#d.db.query(`SELECT * FROM config_audit ORDER BY at DESC LIMIT ?`, [limit]);
    return rows.map((r) => ({
      at: num(r.at),
      actor: String(r.actor),
      action: String(r.action),
      subject: String(r.subject),
      detail: String(r.detail),
    }));
  }

  async putIncidents(list: readonly StoredIncident[]): Promise<void> {
    if (list.length === 0) return;
    await this.#d.tx(async (db) => {
      for (const i of list)
        await db.run(
          `INSERT INTO alert_incidents (id, opened_at, resolved_at, updated_at, body) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (id) DO UPDATE SET opened_at = excluded.opened_at, resolved_at = excluded.resolved_at,
           updated_at = excluded.updated_at, body = excluded.body`,
          [
            i.id,
            Math.round(i.opened_at),
            i.resolved_at === null ? null : Math.round(i.resolved_at),
            Math.round(i.updated_at),
            JSON.stringify(i.body),
          ],
        );
    });
  }

  async loadIncidents(resolved: number): Promise<StoredIncident[]> {
    const open = await this.#d.db.query(
      `SELECT * FROM alert_incidents WHERE resolved_at IS NULL ORDER BY opened_at`,
    );
    const done = await this.#d.db.query(
      `SELECT * FROM alert_incidents WHERE resolved_at IS NOT NULL ORDER BY resolved_at DESC LIMIT ?`,
      [Math.max(0, Math.floor(resolved))],
    );
    return [...open, ...done].map((r) => ({
      id: String(r.id),
      opened_at: num(r.opened_at),
      resolved_at: numOrNull(r.resolved_at),
      updated_at: num(r.updated_at),
      body: JSON.parse(String(r.body)) as unknown,
    }));
  }

  async open(): Promise<void> {
    await this.#d.migrate();
  }

  async write(batch: HistoryBatch): Promise<WriteOutcome> {
    const horizon = this.#now() - this.#retention.raw_days * DAY_MS;
    // One id once per batch: a redelivery may sit in the same batch as the original.
    const unique = new Map<string, StoredResult>();
    let duplicates = 0;
    let expired = 0;
    for (const r of batch.results) {
      if (unique.has(r.id)) duplicates++;
      else if (r.at < horizon) expired++;
      else unique.set(r.id, r);
    }
    const results = [...unique.values()];
    return this.#d.tx(async (db) => {
      const inserted = results.length ? await this.#d.insertResults(db, results) : 0;
      duplicates += results.length - inserted;
      // Every touched minute is recomputed by rollUp(); `touched` lets it notice a write it missed.
      const dirty = new Map<string, unknown[]>();
      const series = new Map<string, unknown[]>();
      for (const r of results) {
        const bucket = Math.floor(r.at / 60_000) * 60_000;
        const k = `${r.site}\0${r.probe}\0${r.check}`;
        dirty.set(`${k}\0${bucket}`, [r.site, r.probe, r.check, bucket, 1]);
        const s = series.get(k);
        const at = Math.round(r.at);
        if (!s) series.set(k, [r.site, r.probe, r.check, r.kind, r.area, r.target, at, at]);
        else {
          s[6] = Math.min(s[6] as number, at);
          s[7] = Math.max(s[7] as number, at);
          s[3] = r.kind;
          s[4] = r.area;
          s[5] = r.target;
        }
      }
      if (dirty.size)
        await db.insertMany(
          {
            table: "rollup_dirty",
            columns: [
              ["site", "text"],
              ["probe", "text"],
              ["check_name", "text"],
              ["bucket", "bigint"],
              ["touched", "bigint"],
            ],
            conflict:
              "ON CONFLICT (site, probe, check_name, bucket) DO UPDATE SET touched = rollup_dirty.touched + 1",
          },
          [...dirty.values()],
        );
      if (series.size)
        await db.insertMany(
          {
            table: "checks",
            columns: [
              ["site", "text"],
              ["probe", "text"],
              ["check_name", "text"],
              ["kind", "text"],
              ["area", "text"],
              ["target", "text"],
              ["first_at", "bigint"],
              ["last_at", "bigint"],
            ],
            conflict:
              "ON CONFLICT (site, probe, check_name) DO UPDATE SET kind = excluded.kind, area = excluded.area, " +
              "target = excluded.target, first_at = CASE WHEN excluded.first_at < checks.first_at THEN excluded.first_at ELSE checks.first_at END, " +
              "last_at = CASE WHEN excluded.last_at > checks.last_at THEN excluded.last_at ELSE checks.last_at END",
          },
          [...series.values()],
        );
      const events = batch.events.length
        ? await db.insertMany(
            {
              table: "events",
              columns: [
                ["site", "text"],
                ["probe", "text"],
                ["type", "text"],
                ["at", "bigint"],
                ["boot_id", "text"],
                ["mono_ms", "double"],
                ["area", "text"],
                ["from_state", "text"],
                ["to_state", "text"],
                ["reason", "text"],
                ["result_id", "text"],
                ["received_at", "bigint"],
              ],
              conflict: "ON CONFLICT (site, probe, boot_id, mono_ms, type) DO NOTHING",
            },
            uniqueBy(batch.events, (e) => `${e.site}\0${e.probe}\0${e.boot_id}\0${e.mono_ms}\0${e.type}`).map(
              (e) => [
                e.site,
                e.probe,
                e.type,
                Math.round(e.at),
                e.boot_id,
                e.mono_ms,
                e.area,
                e.from,
                e.to,
                e.reason,
                e.result_id,
                Math.round(e.received_at),
              ],
            ),
          )
        : 0;
      if (batch.states.length)
        await db.insertMany(
          {
            table: "state_changes",
            columns: [
              ["site", "text"],
              ["probe", "text"],
              ["state", "text"],
              ["at", "bigint"],
              ["version", "text"],
              ["boot_id", "text"],
            ],
            conflict: "ON CONFLICT (site, probe, boot_id, state) DO NOTHING",
          },
          uniqueBy(batch.states, (s) => `${s.site}\0${s.probe}\0${s.boot_id}\0${s.state}`).map((s) => [
            s.site,
            s.probe,
            s.state,
            Math.round(s.at),
            s.version,
            s.boot_id,
          ]),
        );
      if (batch.health.length)
        await db.insertMany(
          {
            table: "health",
            columns: [
              ["site", "text"],
              ["probe", "text"],
              ["at", "bigint"],
              ["areas", "text"],
              ["outbox_rows", "bigint"],
              ["evicted", "bigint"],
            ],
            conflict: "ON CONFLICT (site, probe, at) DO NOTHING",
          },
          uniqueBy(batch.health, (h) => `${h.site}\0${h.probe}\0${Math.round(h.at)}`).map((h) => [
            h.site,
            h.probe,
            Math.round(h.at),
            JSON.stringify(h.areas),
            h.outbox_rows,
            h.evicted,
          ]),
        );
      return { inserted, duplicates, events, expired };
    });
  }

  async rollUp(now: number): Promise<number> {
    // A minute is rolled up once it is over (a late result marks it dirty again).
    const cutoff = Math.floor(now / 60_000) * 60_000 - 60_000;
    return this.#d.tx(async (db) => {
      await this.#d.lockMaintenance(db);
      const dirty = await db.query(
        `SELECT site, probe, check_name, bucket, touched FROM rollup_dirty WHERE bucket <= ?`,
        [cutoff],
      );
      if (dirty.length === 0) return 0;
      const raw = await db.query(
        `SELECT r.site, r.probe, r.check_name, r.kind, r.area, r.status, r.value, r.loss_pct, d.bucket
           FROM rollup_dirty d JOIN results r
             ON r.site = d.site AND r.probe = d.probe AND r.check_name = d.check_name
            AND r.at >= d.bucket AND r.at < d.bucket + 60000
          WHERE d.bucket <= ?`,
        [cutoff],
      );
      const buckets = new Map<string, { row: unknown[]; values: number[] }>();
      for (const r of raw) {
        const key = `${String(r.site)}\0${String(r.probe)}\0${String(r.check_name)}\0${num(r.bucket)}`;
        let b = buckets.get(key);
        if (!b) {
          b = {
            row: [
              r.site,
              r.probe,
              r.check_name,
              num(r.bucket),
              r.kind,
              r.area,
              0,
              0,
              0,
              0,
              0,
              null,
              0,
              0,
              null,
              0,
              0,
            ],
            values: [],
          };
          buckets.set(key, b);
        }
        const row = b.row as [unknown, unknown, unknown, number, unknown, unknown, ...Array<number | null>];
        row[6] = (row[6] as number) + 1;
        const col = { ok: 7, warn: 8, fail: 9, error: 10 }[String(r.status)] ?? 10;
        row[col] = (row[col] as number) + 1;
        const v = numOrNull(r.value);
        if (v !== null) {
          b.values.push(v);
          row[11] = row[11] === null ? v : Math.min(row[11] as number, v);
          row[12] = (row[12] as number) + v;
          row[13] = (row[13] as number) + 1;
        }
        const loss = numOrNull(r.loss_pct);
        if (loss !== null) {
          row[15] = (row[15] as number) + loss;
          row[16] = (row[16] as number) + 1;
        }
      }
      const rows = [...buckets.values()].map(({ row, values }) => {
        values.sort((a, b) => a - b);
        row[14] = percentile(values, 0.95);
        return row;
      });
      if (rows.length)
        await db.insertMany(
          {
            table: "rollup_1m",
            columns: ROLLUP_COLUMNS,
            conflict: `ON CONFLICT (site, probe, check_name, bucket) DO UPDATE SET ${ROLLUP_UPDATE}`,
          },
          rows,
        );
      // Coarser buckets from the finer ones: sums add up, min of mins, p95 = max of p95s (an upper bound).
      for (const [fine, coarse, width] of [
        ["rollup_1m", "rollup_1h", BUCKET_MS["1h"]],
        ["rollup_1h", "rollup_1d", BUCKET_MS["1d"]],
      ] as const)
        await db.run(
          `INSERT INTO ${coarse} (${ROLLUP_COLUMNS.map(([n]) => n).join(", ")})
           SELECT m.site, m.probe, m.check_name, (m.bucket / ${width}) * ${width}, max(m.kind), max(m.area),
                  sum(m.count), sum(m.ok), sum(m.warn), sum(m.fail), sum(m.error),
                  min(m.value_min), sum(m.value_sum), sum(m.value_count), max(m.value_p95),
                  sum(m.loss_sum), sum(m.loss_count)
             FROM ${fine} m
             JOIN (SELECT DISTINCT site, probe, check_name, (bucket / ${width}) * ${width} AS cb
                     FROM rollup_dirty WHERE bucket <= ?) c
               ON m.site = c.site AND m.probe = c.probe AND m.check_name = c.check_name
              AND m.bucket >= c.cb AND m.bucket < c.cb + ${width}
            WHERE true
            GROUP BY m.site, m.probe, m.check_name, (m.bucket / ${width}) * ${width}
           ON CONFLICT (site, probe, check_name, bucket) DO UPDATE SET ${ROLLUP_UPDATE}`,
          [cutoff],
        );
      for (const d of dirty)
        await db.run(
          `DELETE FROM rollup_dirty WHERE site = ? AND probe = ? AND check_name = ? AND bucket = ? AND touched = ?`,
          [d.site, d.probe, d.check_name, num(d.bucket), num(d.touched)],
        );
      return rows.length;
    });
  }

  async retain(now: number): Promise<RetentionOutcome> {
    const p = this.#retention;
    return this.#d.tx(async (db) => {
      await this.#d.lockMaintenance(db);
      const dropped = await this.#d.dropResultsBefore(db, now - p.raw_days * DAY_MS);
      let rollups = 0;
      for (const t of ["rollup_1m", "rollup_1h", "rollup_1d"])
        rollups += await db.run(`DELETE FROM ${t} WHERE bucket < ?`, [now - p.rollup_days * DAY_MS]);
      const eventCut = now - p.event_days * DAY_MS;
      const events = await db.run(`DELETE FROM events WHERE at < ?`, [eventCut]);
      await db.run(`DELETE FROM state_changes WHERE at < ?`, [eventCut]);
      await db.run(`DELETE FROM health WHERE at < ?`, [eventCut]);
      await db.run(`DELETE FROM alert_incidents WHERE resolved_at IS NOT NULL AND resolved_at < ?`, [
        eventCut,
      ]);
      return {
        results_deleted: dropped.rows,
        partitions_dropped: dropped.partitions,
        rollups_deleted: rollups,
        events_deleted: events,
      };
    });
  }

  async results(q: ResultQuery): Promise<StoredResult[]> {
    const f = filters(q, { time: "at" });
    let where = f.where;
    const params = [...f.params];
    if (q.after) {
      where += " AND (at > ? OR (at = ? AND id > ?))";
      params.push(q.after.at, q.after.at, q.after.id);
    }
    params.push(Math.min(q.limit ?? 10_000, 100_000));
    const rows = await this.#d.db.query(
      `SELECT ${RESULT_COLUMN_NAMES.join(", ")} FROM results ${where} ORDER BY at, id LIMIT ?`,
      params,
    );
    return rows.map((r) => ({
      id: String(r.id),
      site: String(r.site),
      probe: String(r.probe),
      check: String(r.check_name),
      kind: String(r.kind),
      area: String(r.area),
      target: String(r.target),
      status: String(r.status) as StoredResult["status"],
      at: num(r.at),
      duration_ms: num(r.duration_ms),
      value: numOrNull(r.value),
      loss_pct: numOrNull(r.loss_pct),
      metrics: JSON.parse(String(r.metrics)) as Record<string, number>,
      error_code: strOrNull(r.error_code),
      error_message: strOrNull(r.error_message),
      seq: num(r.seq),
      boot_id: String(r.boot_id),
      mono_ms: num(r.mono_ms),
      received_at: num(r.received_at),
    }));
  }

  async events(q: EventQuery): Promise<StoredEvent[]> {
    const f = filters(q, { check: false, time: "at" });
    const rows = await this.#d.db.query(
      `SELECT * FROM events ${f.where} ORDER BY at, site, probe, mono_ms LIMIT ?`,
      [...f.params, Math.min(q.limit ?? 10_000, 100_000)],
    );
    return rows.map(eventOf);
  }

  async states(q: Omit<EventQuery, "area">): Promise<StoredStateChange[]> {
    const f = filters(q, { check: false, area: false, time: "at" });
    const rows = await this.#d.db.query(`SELECT * FROM state_changes ${f.where} ORDER BY at LIMIT ?`, [
      ...f.params,
      Math.min(q.limit ?? 10_000, 100_000),
    ]);
    return rows.map((r) => ({
      site: String(r.site),
      probe: String(r.probe),
      state: String(r.state) as StoredStateChange["state"],
      at: num(r.at),
      version: String(r.version),
      boot_id: String(r.boot_id),
    }));
  }

  async rollups(q: RollupQuery): Promise<RollupRow[]> {
    const resolution = q.resolution === "auto" ? pickResolution(q.from, q.to) : q.resolution;
    const width = BUCKET_MS[resolution];
    // A bucket counts when it overlaps the range.
    const f = filters({ ...q, from: Math.floor(q.from / width) * width }, { time: "bucket" });
    const rows = await this.#d.db.query(
      `SELECT * FROM rollup_${resolution} ${f.where} ORDER BY site, probe, check_name, bucket`,
      f.params,
    );
    return rows.map((r) => {
      const valueCount = num(r.value_count);
      const lossCount = num(r.loss_count);
      return {
        site: String(r.site),
        probe: String(r.probe),
        check: String(r.check_name),
        kind: String(r.kind),
        area: String(r.area),
        resolution,
        bucket: num(r.bucket),
        count: num(r.count),
        ok: num(r.ok),
        warn: num(r.warn),
        fail: num(r.fail),
        error: num(r.error),
        value_min: numOrNull(r.value_min),
        value_avg: valueCount > 0 ? num(r.value_sum) / valueCount : null,
        value_p95: numOrNull(r.value_p95),
        loss_avg: lossCount > 0 ? num(r.loss_sum) / lossCount : null,
      };
    });
  }

  /** Transitions in [from, to) plus, per probe and area, the last one before `from`. */
  async #transitions(q: RangeQuery): Promise<StoredEvent[]> {
    const f = filters(q, { check: false });
    const and = f.where ? `${f.where} AND` : "WHERE";
    const before = await this.#d.db.query(
      `SELECT * FROM (
         SELECT e.*, row_number() OVER (PARTITION BY site, probe, area ORDER BY at DESC, mono_ms DESC) AS rn
           FROM events e ${and} type = 'area_transition' AND at < ?) x
        WHERE rn = 1`,
      [...f.params, Math.floor(q.from)],
    );
    const within = await this.#d.db.query(
      `SELECT * FROM events ${and} type = 'area_transition' AND at >= ? AND at < ? ORDER BY at, mono_ms`,
      [...f.params, Math.floor(q.from), Math.ceil(q.to)],
    );
    return [...before.map(eventOf).sort((a, b) => a.at - b.at), ...within.map(eventOf)];
  }

  async availability(q: RangeQuery): Promise<AreaAvailability[]> {
    const out = new Map<string, AreaAvailability & { state: AreaStateName; since: number }>();
    const entry = (site: string, probe: string, area: string) => {
      const k = `${site}\0${probe}\0${area}`;
      let a = out.get(k);
      if (!a) {
        a = {
          site,
          probe,
          area,
          ms: { unknown: 0, ok: 0, degraded: 0, failing: 0, off: 0 },
          availability_pct: null,
          results_ok_pct: null,
          results: 0,
          state: "unknown",
          since: q.from,
        };
        out.set(k, a);
      }
      return a;
    };
    for (const e of await this.#transitions(q)) {
      if (e.area === null || e.to === null) continue;
      const a = entry(e.site, e.probe, e.area);
      const at = Math.max(q.from, e.at);
      a.ms[a.state] += at - a.since;
      a.state = e.to;
      a.since = at;
    }
    for (const a of out.values()) a.ms[a.state] += Math.max(0, q.to - a.since);
    // Results per area from the roll-ups (hours for a day or more, else minutes).
    const resolution = q.to - q.from >= DAY_MS ? "1h" : "1m";
    const width = BUCKET_MS[resolution];
    const f = filters({ ...q, from: Math.floor(q.from / width) * width }, { check: false, time: "bucket" });
    const rows = await this.#d.db.query(
      `SELECT site, probe, area, sum(count) AS n, sum(ok) + sum(warn) AS good
         FROM rollup_${resolution} ${f.where} GROUP BY site, probe, area`,
      f.params,
    );
    for (const r of rows) {
      const a = entry(String(r.site), String(r.probe), String(r.area));
      a.results = num(r.n);
      a.results_ok_pct = a.results > 0 ? (100 * num(r.good)) / a.results : null;
    }
    return [...out.values()]
      .map(({ state: _s, since: _t, ...a }) => {
        const verdict = a.ms.ok + a.ms.degraded + a.ms.failing;
        return { ...a, availability_pct: verdict > 0 ? (100 * (verdict - a.ms.failing)) / verdict : null };
      })
      .sort((x, y) => cmp(x.site, y.site) || cmp(x.probe, y.probe) || areaRank(x.area) - areaRank(y.area));
  }

  async incidents(q: RangeQuery): Promise<Incident[]> {
    // The root area needs every area of the probe, whatever `area` filters the answer to.
    const transitions = await this.#transitions({ ...q, area: undefined });
    const failingSince = new Map<string, Map<string, StoredEvent>>();
    const open = new Map<string, Incident>();
    const done: Incident[] = [];
    const close = (inc: Incident, end: number | null) => {
      inc.end = end;
      inc.duration_ms = Math.max(0, (end ?? q.to) - Math.max(inc.start, q.from));
      done.push(inc);
    };
    for (const e of transitions) {
      if (e.area === null) continue;
      const pk = `${e.site}\0${e.probe}`;
      let failing = failingSince.get(pk);
      if (!failing) failingSince.set(pk, (failing = new Map<string, StoredEvent>()));
      const k = `${pk}\0${e.area}`;
      if (e.to === "failing" && !failing.has(e.area)) {
        failing.set(e.area, e);
        const root = [...failing.keys()].sort((a, b) => areaRank(a) - areaRank(b))[0] ?? e.area;
        open.set(k, {
          site: e.site,
          probe: e.probe,
          area: e.area,
          start: e.at,
          end: null,
          duration_ms: 0,
          root_area: root,
          reason: e.reason,
          result_id: e.result_id,
        });
      } else if (e.to !== "failing" && failing.has(e.area)) {
        failing.delete(e.area);
        const inc = open.get(k);
        open.delete(k);
        if (inc && e.at >= q.from) close(inc, e.at);
      }
    }
    for (const inc of open.values()) close(inc, null);
    return done
      .filter((i) => q.area === undefined || i.area === q.area)
      .sort((a, b) => a.start - b.start || cmp(a.site, b.site) || cmp(a.probe, b.probe));
  }

  async checks(q: Partial<RangeQuery>): Promise<CheckInfo[]> {
    const f = filters(q);
    const rows = await this.#d.db.query(
      `SELECT * FROM checks ${f.where} ORDER BY site, probe, check_name`,
      f.params,
    );
    return rows.map((r) => ({
      site: String(r.site),
      probe: String(r.probe),
      check: String(r.check_name),
      kind: String(r.kind),
      area: String(r.area),
      target: String(r.target),
      first_at: num(r.first_at),
      last_at: num(r.last_at),
    }));
  }

  async stats(): Promise<StoreStats> {
    const [r] = await this.#d.db.query(
      `SELECT (SELECT count(*) FROM results) AS results, (SELECT count(*) FROM events) AS events,
              (SELECT count(*) FROM rollup_1m) AS r1m, (SELECT count(*) FROM rollup_1h) AS r1h,
              (SELECT min(at) FROM results) AS oldest`,
    );
    return {
      engine: this.engine,
      results: num(r?.results),
      events: num(r?.events),
      rollups_1m: num(r?.r1m),
      rollups_1h: num(r?.r1h),
      oldest_result_at: numOrNull(r?.oldest),
    };
  }

  backup(file: string): Promise<void> {
    return this.#d.backup(file);
  }

  close(): Promise<void> {
    return this.#d.close();
  }
}

function eventOf(r: Row): StoredEvent {
  return {
    site: String(r.site),
    probe: String(r.probe),
    type: String(r.type) as StoredEvent["type"],
    at: num(r.at),
    boot_id: String(r.boot_id),
    mono_ms: num(r.mono_ms),
    area: strOrNull(r.area),
    from: strOrNull(r.from_state) as AreaStateName | null,
    to: strOrNull(r.to_state) as AreaStateName | null,
    reason: String(r.reason),
    result_id: strOrNull(r.result_id),
    received_at: num(r.received_at),
  };
}

function uniqueBy<T>(items: readonly T[], key: (t: T) => string): T[] {
  const m = new Map<string, T>();
  for (const i of items) if (!m.has(key(i))) m.set(key(i), i);
  return [...m.values()];
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const areaRank = (a: string): number => {
  const i = (AREA_ORDER as readonly string[]).indexOf(a);
  return i < 0 ? AREA_ORDER.length : i;
};
