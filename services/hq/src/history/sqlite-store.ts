// The embedded engine: one SQLite file under HQ's data directory, so `netprobe hq serve` needs no
// database server. WAL with synchronous=NORMAL: a commit survives HQ being killed (it is in the
// OS's page cache once write() returns); only a power cut can take the last commits, and those
// results were not yet acknowledged to the broker (ingest.ts acks after commit), so they come again.
import { copyFileSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import {
  RESULT_INSERT,
  resultRow,
  schemaStatements,
  SqlHistoryStore,
  type BulkInsert,
  type Db,
  type Dialect,
  type Row,
} from "./sql-store.ts";
import type { RetentionPolicy, StoredResult } from "./store.ts";

class SqliteDialect implements Dialect {
  readonly engine = "sqlite";
  readonly #db: Database.Database;
  readonly #statements = new Map<string, Database.Statement>();
  /** Transactions one after another: an async body must not interleave with another's BEGIN. */
  #queue: Promise<unknown> = Promise.resolve();
  readonly db: Db;

  constructor(file: string) {
    if (file !== ":memory:") mkdirSync(dirname(file), { recursive: true });
    this.#db = new Database(file);
    this.#db.pragma("journal_mode = WAL");
    this.#db.pragma("synchronous = NORMAL");
    // A second process on the file (backup, a report) waits rather than failing at once.
    this.#db.pragma("busy_timeout = 5000");
    const prepare = (sql: string) => {
      let st = this.#statements.get(sql);
      if (!st) {
        st = this.#db.prepare(sql);
        this.#statements.set(sql, st);
      }
      return st;
    };
    this.db = {
      query: (sql, params = []) => Promise.resolve(prepare(sql).all(...params.map(bind)) as Row[]),
      run: (sql, params = []) => Promise.resolve(prepare(sql).run(...params.map(bind)).changes),
      insertMany: (spec: BulkInsert, rows) => {
        const st = prepare(
          `INSERT INTO ${spec.table} (${spec.columns.map(([n]) => n).join(", ")}) VALUES (${spec.columns
            .map(() => "?")
            .join(", ")}) ${spec.conflict}`,
        );
        let n = 0;
        for (const r of rows) n += st.run(...r.map(bind)).changes;
        return Promise.resolve(n);
      },
    };
  }

  migrate(): Promise<void> {
    const results = `CREATE TABLE IF NOT EXISTS results (
      id TEXT PRIMARY KEY, site TEXT NOT NULL, probe TEXT NOT NULL, check_name TEXT NOT NULL,
      kind TEXT NOT NULL, area TEXT NOT NULL, target TEXT NOT NULL, status TEXT NOT NULL,
      at BIGINT NOT NULL, duration_ms DOUBLE PRECISION NOT NULL, value DOUBLE PRECISION,
      loss_pct DOUBLE PRECISION, metrics TEXT NOT NULL, error_code TEXT, error_message TEXT,
      seq BIGINT NOT NULL, boot_id TEXT NOT NULL, mono_ms DOUBLE PRECISION NOT NULL,
      received_at BIGINT NOT NULL)`;
    this.#db.transaction(() => {
      for (const s of schemaStatements(results)) this.#db.exec(s);
    })();
    return Promise.resolve();
  }

  tx<T>(fn: (db: Db) => Promise<T>): Promise<T> {
    const run = async () => {
      this.#db.exec("BEGIN IMMEDIATE");
      try {
        const out = await fn(this.db);
        this.#db.exec("COMMIT");
        return out;
      } catch (err) {
        if (this.#db.inTransaction) this.#db.exec("ROLLBACK");
        throw err;
      }
    };
    const p = this.#queue.then(run, run);
    this.#queue = p.catch(() => undefined);
    return p;
  }

  insertResults(db: Db, rows: readonly StoredResult[]): Promise<number> {
    return db.insertMany(RESULT_INSERT, rows.map(resultRow));
  }

  lockMaintenance(): Promise<void> {
    return Promise.resolve(); // BEGIN IMMEDIATE already holds the only write lock.
  }

  async dropResultsBefore(db: Db, cutoff: number): Promise<{ rows: number; partitions: number }> {
    return { rows: await db.run(`DELETE FROM results WHERE at < ?`, [cutoff]), partitions: 0 };
  }

  async backup(file: string): Promise<void> {
    // The online backup API: a consistent copy while ingest keeps writing.
    await this.#db.backup(file);
  }

  close(): Promise<void> {
    return this.#queue.then(() => {
      if (this.#db.open) this.#db.close();
    });
  }
}

/** better-sqlite3 binds numbers, strings, null; booleans are not used by the shared queries. */
function bind(v: unknown): unknown {
  return v === undefined ? null : v;
}

/** The SQLite history store on `file` (`:memory:` for tests). */
export function sqliteHistoryStore(
  file: string,
  retention: RetentionPolicy,
  now?: () => number,
): SqlHistoryStore {
  return new SqlHistoryStore(new SqliteDialect(file), retention, now);
}

/**
 * Puts a backup in place of the history file (HQ stopped): the backup is checked first
 * (integrity_check, the results table), copied beside the target, the target's WAL removed, and
 * renamed over it, so a failed restore leaves the old file as it was.
 */
export function restoreSqliteHistory(backup: string, target: string): { target: string; results: number } {
  const src = new Database(backup, { readonly: true, fileMustExist: true });
  let results: number;
  try {
    const ok = src.pragma("integrity_check", { simple: true });
    if (ok !== "ok") throw new Error(`${backup}: integrity_check says ${String(ok)}`);
    results = (src.prepare("SELECT count(*) AS n FROM results").get() as { n: number }).n;
  } finally {
    src.close();
  }
  mkdirSync(dirname(target), { recursive: true });
  const tmp = `${target}.restoring`;
  copyFileSync(backup, tmp);
  rmSync(`${target}-wal`, { force: true });
  rmSync(`${target}-shm`, { force: true });
  renameSync(tmp, target);
  return { target, results };
}
