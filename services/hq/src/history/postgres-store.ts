// The fleet engine: PostgreSQL 15+ through `pg`. Results are partitioned by day on `at`, so
// retention drops whole partitions instead of deleting rows. A primary key on a partitioned table
// must contain the partition key, and a result's `at` is not its identity (an unsynced probe's
// result is placed at HQ's receive time, which differs between deliveries): uniqueness by id is
// kept in `result_ids` (id, at), the one table retention deletes from row by row.
// Bulk inserts are one statement per table: unnest() of one array per column.
import { spawn } from "node:child_process";
import pg from "pg";
import {
  RESULT_INSERT,
  resultRow,
  schemaStatements,
  SqlHistoryStore,
  type BulkInsert,
  type ColumnType,
  type Db,
  type Dialect,
  type Row,
} from "./sql-store.ts";
import type { RetentionPolicy, StoredResult } from "./store.ts";

const DAY_MS = 86_400_000;
/** pg_advisory_xact_lock key of roll-ups and retention ("np" "hq"). */
const MAINTENANCE_LOCK = 0x6e706871;

const PG_TYPE: Record<ColumnType, string> = { text: "text", bigint: "bigint", double: "float8" };

/** `?` placeholders (the shared queries') to PostgreSQL's `$n`. No query has a `?` in a literal. */
function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

// int8 and numeric (sum() of bigint) as JS numbers: counts and ms timestamps stay below 2^53.
const TYPES = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === 20 || oid === 1700
      ? (v: string) => Number(v)
      : (pg.types.getTypeParser(oid, format as "text") as (
          v: string,
        ) => unknown)) as pg.CustomTypesConfig["getTypeParser"],
};

function dbOf(c: pg.Pool | pg.PoolClient): Db {
  const db: Db = {
    query: async (sql, params = []) => (await c.query(numbered(sql), [...params])).rows as Row[],
    run: async (sql, params = []) => (await c.query(numbered(sql), [...params])).rowCount ?? 0,
    insertMany: async (spec: BulkInsert, rows) => {
      if (rows.length === 0) return 0;
      const cols = spec.columns.map(([n]) => n);
      const arrays = spec.columns.map((_, i) => rows.map((r) => r[i] ?? null));
      const sql =
        `INSERT INTO ${spec.table} (${cols.join(", ")}) SELECT * FROM unnest(` +
        spec.columns.map(([, t], i) => `$${i + 1}::${PG_TYPE[t]}[]`).join(", ") +
        `) ${spec.conflict}`;
      return (await c.query(sql, arrays)).rowCount ?? 0;
    },
  };
  return db;
}

class PostgresDialect implements Dialect {
  readonly engine = "postgres";
  readonly #pool: pg.Pool;
  readonly #url: string;
  /** Day partitions known to exist (created on demand). */
  readonly #partitions = new Set<number>();
  readonly db: Db;

  constructor(url: string) {
    this.#url = url;
    this.#pool = new pg.Pool({ connectionString: url, max: 4, types: TYPES });
    // An idle client's error (the server restarted) must not become an uncaught exception.
    this.#pool.on("error", () => undefined);
    this.db = dbOf(this.#pool);
  }

  async migrate(): Promise<void> {
    const results = `CREATE TABLE IF NOT EXISTS results (
      id TEXT NOT NULL, site TEXT NOT NULL, probe TEXT NOT NULL, check_name TEXT NOT NULL,
      kind TEXT NOT NULL, area TEXT NOT NULL, target TEXT NOT NULL, status TEXT NOT NULL,
      at BIGINT NOT NULL, duration_ms DOUBLE PRECISION NOT NULL, value DOUBLE PRECISION,
      loss_pct DOUBLE PRECISION, metrics TEXT NOT NULL, error_code TEXT, error_message TEXT,
      seq BIGINT NOT NULL, boot_id TEXT NOT NULL, mono_ms DOUBLE PRECISION NOT NULL,
      received_at BIGINT NOT NULL) PARTITION BY RANGE (at)`;
    await this.tx(async (db) => {
      // Two instances starting at once: one creates, the other waits here and finds it done.
      await db.query(`SELECT pg_advisory_xact_lock(?)`, [MAINTENANCE_LOCK]);
      for (const s of schemaStatements(results)) await db.run(s);
      await db.run(`CREATE TABLE IF NOT EXISTS result_ids (id TEXT PRIMARY KEY, at BIGINT NOT NULL)`);
      await db.run(`CREATE INDEX IF NOT EXISTS result_ids_at ON result_ids (at)`);
    });
    for (const day of await this.#existingPartitions()) this.#partitions.add(day);
  }

  async #existingPartitions(): Promise<number[]> {
    const rows = await this.db.query(
      `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'results'::regclass`,
    );
    return rows.flatMap((r) => {
      const m = /^results_d(\d+)$/.exec(String(r.relname));
      return m ? [Number(m[1])] : [];
    });
  }

  async #ensurePartitions(days: Iterable<number>): Promise<void> {
    for (const day of days) {
      if (this.#partitions.has(day)) continue;
      // Outside the batch's transaction: a partition created by a failed batch is harmless, and
      // a concurrent instance creating the same one must not abort our transaction.
      const c = await this.#pool.connect();
      try {
        await c.query(`SELECT pg_advisory_lock($1)`, [MAINTENANCE_LOCK + 1]);
        await c.query(
          `CREATE TABLE IF NOT EXISTS results_d${day} PARTITION OF results FOR VALUES FROM (${day * DAY_MS}) TO (${(day + 1) * DAY_MS})`,
        );
      } finally {
        await c.query(`SELECT pg_advisory_unlock($1)`, [MAINTENANCE_LOCK + 1]).catch(() => undefined);
        c.release();
      }
      this.#partitions.add(day);
    }
  }

  async tx<T>(fn: (db: Db) => Promise<T>): Promise<T> {
    const c = await this.#pool.connect();
    try {
      await c.query("BEGIN");
      const out = await fn(dbOf(c));
      await c.query("COMMIT");
      return out;
    } catch (err) {
      await c.query("ROLLBACK").catch(() => undefined);
      throw err;
    } finally {
      c.release();
    }
  }

  async insertResults(db: Db, rows: readonly StoredResult[]): Promise<number> {
    await this.#ensurePartitions(new Set(rows.map((r) => Math.floor(r.at / DAY_MS))));
    const ids = await db.query(
      `INSERT INTO result_ids (id, at) SELECT * FROM unnest(?::text[], ?::bigint[])
       ON CONFLICT (id) DO NOTHING RETURNING id`,
      [rows.map((r) => r.id), rows.map((r) => Math.round(r.at))],
    );
    if (ids.length === 0) return 0;
    const fresh = new Set(ids.map((r) => String(r.id)));
    const inserted = rows.filter((r) => fresh.has(r.id));
    await db.insertMany({ ...RESULT_INSERT, conflict: "" }, inserted.map(resultRow));
    return inserted.length;
  }

  async lockMaintenance(db: Db): Promise<void> {
    await db.query(`SELECT pg_advisory_xact_lock(?)`, [MAINTENANCE_LOCK]);
  }

  async dropResultsBefore(db: Db, cutoff: number): Promise<{ rows: number; partitions: number }> {
    let partitions = 0;
    let rows = 0;
    for (const day of (await this.#existingPartitions()).sort((a, b) => a - b)) {
      if ((day + 1) * DAY_MS > cutoff) continue;
      const [n] = await db.query(`SELECT count(*) AS n FROM results_d${day}`);
      rows += Number(n?.n ?? 0);
      await db.run(`DROP TABLE results_d${day}`);
      this.#partitions.delete(day);
      partitions++;
    }
    // The partial day at the horizon keeps its partition; its rows go row by row.
    rows += await db.run(`DELETE FROM results WHERE at < ?`, [cutoff]);
    await db.run(`DELETE FROM result_ids WHERE at < ?`, [cutoff]);
    return { rows, partitions };
  }

  /** pg_dump in its custom format (restore with pg_restore; docs/hq.md, "Backup and restore"). */
  backup(file: string): Promise<void> {
    return new Promise((resolve, reject) => {
      // The URL may hold a password: it goes to pg_dump through libpq's environment, not argv.
      const p = spawn("pg_dump", ["--format=custom", `--file=${file}`], {
        stdio: ["ignore", "ignore", "pipe"],
        env: { ...process.env, ...libpqEnv(this.#url) },
      });
      let err = "";
      p.stderr.on("data", (d: Buffer) => (err += d.toString()));
      p.on("error", reject);
      p.on("close", (code) =>
        code === 0 ? resolve() : reject(new Error(`pg_dump exited ${code}: ${err.trim()}`)),
      );
    });
  }

  close(): Promise<void> {
    return this.#pool.end();
  }
}

/** libpq's variables for a postgresql:// URL (a socket directory comes as `?host=/dir`). */
export function libpqEnv(url: string): Record<string, string> {
  const u = new URL(url);
  const env: Record<string, string> = {};
  const host = u.searchParams.get("host") ?? decodeURIComponent(u.hostname);
  if (host) env.PGHOST = host;
  if (u.port) env.PGPORT = u.port;
  if (u.username) env.PGUSER = decodeURIComponent(u.username);
  if (u.password) env.PGPASSWORD = decodeURIComponent(u.password);
  const db = decodeURIComponent(u.pathname.replace(/^\//, ""));
  if (db) env.PGDATABASE = db;
  return env;
}

/** The PostgreSQL history store at `url` (postgresql://… or a socket directory in `host=`). */
export function postgresHistoryStore(
  url: string,
  retention: RetentionPolicy,
  now?: () => number,
): SqlHistoryStore {
  return new SqlHistoryStore(new PostgresDialect(url), retention, now);
}
