import type Database from "better-sqlite3";

/** One schema step: `up` moves a database from `version - 1` to `version`; it must keep every row. */
export interface Migration {
  version: number;
  description: string;
  up(db: Database.Database): void;
}

/**
 * Every schema version in order. Append new steps; never edit a released one. A step that changes
 * `outbox` must copy its rows (undelivered results are the one thing an update may not drop).
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "outbox, latest result per check, counters, key/value state",
    up(db) {
      db.exec(`
        -- One row per message not yet acknowledged by the broker. The id is assigned by the Store
        -- (monotonic, never reused: see counters.outbox_id_hwm), so no AUTOINCREMENT and no
        -- sqlite_sequence page to rewrite on every insert. No secondary index either: eviction
        -- walks the rowid order with an in-memory cursor per priority, and every index page
        -- would be one more 4 KiB page written per result.
        CREATE TABLE outbox (
          id         INTEGER PRIMARY KEY,
          priority   INTEGER NOT NULL CHECK (priority IN (0, 1, 2)),
          bytes      INTEGER NOT NULL,             -- UTF-8 length of payload, what maxBytes counts
          created_at INTEGER NOT NULL,             -- wall clock ms when stored (may predate NTP sync)
          qos        INTEGER NOT NULL CHECK (qos IN (0, 1)),
          retain     INTEGER NOT NULL CHECK (retain IN (0, 1)),
          topic      TEXT NOT NULL,                -- relative to the probe's base topic
          payload    TEXT NOT NULL
        ) STRICT;

        -- The last result of each check, for \`netprobe status\`. Also the persistent seq
        -- high-water mark: the next seq is max(seq) + 1, so never delete a row here without first
        -- saving max(seq) elsewhere. WITHOUT ROWID keeps the per-result upsert to one page while
        -- summaries stay small (under ~1 KB).
        CREATE TABLE latest_results (
          check_name TEXT PRIMARY KEY,
          seq        INTEGER NOT NULL,
          at         INTEGER NOT NULL,
          summary    TEXT NOT NULL
        ) STRICT, WITHOUT ROWID;

        -- Persistent integers: outbox_id_hwm, evicted_rows, evicted_bytes.
        CREATE TABLE counters (
          name  TEXT PRIMARY KEY,
          value INTEGER NOT NULL
        ) STRICT, WITHOUT ROWID;

        -- Small JSON values: area states, boot bookkeeping.
        CREATE TABLE state (
          key        TEXT PRIMARY KEY,
          value      TEXT NOT NULL,
          updated_at INTEGER NOT NULL
        ) STRICT, WITHOUT ROWID;
      `);
    },
  },
];

/** The schema version this build writes; a database with a higher `user_version` is refused. */
export const SCHEMA_VERSION: number = MIGRATIONS.length;

/** Why `migrate` refused or failed; `store.ts` turns it into a StoreError naming the file. */
export class MigrationError extends Error {
  readonly kind: "too_new" | "failed";
  constructor(kind: "too_new" | "failed", message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "MigrationError";
    this.kind = kind;
  }
}

/** Reads the schema version from the database header (`PRAGMA user_version`). */
export function schemaVersion(db: Database.Database): number {
  return db.pragma("user_version", { simple: true }) as number;
}

/**
 * Brings the database to the last version of `migrations`, one transaction per step (a failed step
 * leaves the previous version intact). Refuses, without writing, a database newer than this build.
 */
export function migrate(
  db: Database.Database,
  migrations: readonly Migration[] = MIGRATIONS,
): { from: number; to: number } {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migration #${i} has version ${m.version}, expected ${i + 1}`);
  });
  const latest = migrations.length;
  const from = schemaVersion(db);
  if (from > latest) {
    throw new MigrationError(
      "too_new",
      `schema version ${from} is newer than this netprobe understands (${latest}); ` +
        "upgrade netprobe or move the file aside (it was not modified)",
    );
  }
  for (const m of migrations.slice(from)) {
    // IMMEDIATE takes the write lock before re-reading the version, so two processes opening the
    // same file at once cannot both run a step.
    db.transaction(() => {
      if (schemaVersion(db) >= m.version) return;
      try {
        m.up(db);
      } catch (err) {
        throw new MigrationError("failed", `migration to version ${m.version} (${m.description}) failed`, {
          cause: err,
        });
      }
      // user_version lives in the database header and is written inside this transaction.
      db.pragma(`user_version = ${m.version}`);
    }).immediate();
  }
  return { from, to: Math.max(from, latest) };
}
