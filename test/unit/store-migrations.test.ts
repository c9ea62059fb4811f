import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  MIGRATIONS,
  MigrationError,
  SCHEMA_VERSION,
  migrate,
  schemaVersion,
  type Migration,
} from "../../services/probe/src/store/migrations.ts";
import { Store } from "../../services/probe/src/store/store.ts";

let dir: string;
let file: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "netprobe-migrate-"));
  file = join(dir, "netprobe.db");
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function tables(db: Database.Database): string[] {
  return db
    .prepare<[], string>("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
    .pluck()
    .all();
}

/** A Store-written database holding three undelivered results. */
function databaseWithBacklog(): void {
  const s = new Store(file, { maxRows: 100, maxBytes: 1_000_000, syncIntervalMs: 0 });
  s.open();
  for (let i = 0; i < 3; i++) {
    s.appendResult("gw-icmp", (seq) => ({
      message: {
        topic: "results/gw-icmp",
        payload: JSON.stringify({ seq }),
        qos: 1,
        retain: false,
        priority: 0,
      },
      summary: { seq },
    }));
  }
  s.close();
}

describe("schema migrations", () => {
  it("are numbered 1..N without gaps", () => {
    expect(MIGRATIONS.map((m) => m.version)).toEqual(MIGRATIONS.map((_, i) => i + 1));
    expect(SCHEMA_VERSION).toBe(MIGRATIONS.length);
  });

  it("bring an empty database to the current version, then do nothing on reopen", () => {
    const db = new Database(file);
    expect(migrate(db)).toEqual({ from: 0, to: SCHEMA_VERSION });
    expect(schemaVersion(db)).toBe(SCHEMA_VERSION);
    expect(tables(db)).toEqual(expect.arrayContaining(["counters", "latest_results", "outbox", "state"]));
    expect(migrate(db)).toEqual({ from: SCHEMA_VERSION, to: SCHEMA_VERSION });
    db.close();

    databaseWithBacklog(); // Store.open() on an already migrated file
    databaseWithBacklog();
    const again = new Database(file);
    expect(again.prepare("SELECT count(*) FROM outbox").pluck().get()).toBe(6);
    again.close();
  });

  it("a future step that rebuilds the outbox keeps every undelivered row", () => {
    databaseWithBacklog();
    const v2: Migration = {
      version: SCHEMA_VERSION + 1,
      description: "outbox gains a content_type column (table rebuild)",
      up(db) {
        db.exec(`
          CREATE TABLE outbox_new (
            id INTEGER PRIMARY KEY, priority INTEGER NOT NULL, bytes INTEGER NOT NULL,
            created_at INTEGER NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL,
            topic TEXT NOT NULL, payload TEXT NOT NULL, content_type TEXT NOT NULL DEFAULT 'application/json'
          ) STRICT;
          INSERT INTO outbox_new (id, priority, bytes, created_at, qos, retain, topic, payload)
            SELECT id, priority, bytes, created_at, qos, retain, topic, payload FROM outbox;
          DROP TABLE outbox;
          ALTER TABLE outbox_new RENAME TO outbox;
        `);
      },
    };
    const db = new Database(file);
    expect(migrate(db, [...MIGRATIONS, v2])).toEqual({ from: SCHEMA_VERSION, to: SCHEMA_VERSION + 1 });
    const rows = db
      .prepare<[], { payload: string; content_type: string }>("SELECT * FROM outbox ORDER BY id")
      .all();
    expect(rows.map((r) => r.payload)).toEqual(['{"seq":1}', '{"seq":2}', '{"seq":3}']);
    expect(rows.every((r) => r.content_type === "application/json")).toBe(true);
    db.close();
  });

  it("a failing step rolls back completely: version and rows unchanged", () => {
    databaseWithBacklog();
    const broken: Migration = {
      version: SCHEMA_VERSION + 1,
      description: "drops the outbox, then fails",
      up(db) {
        db.exec("DROP TABLE outbox");
        throw new Error("disk said no");
      },
    };
    const db = new Database(file);
    expect(() => migrate(db, [...MIGRATIONS, broken])).toThrow(MigrationError);
    expect(schemaVersion(db)).toBe(SCHEMA_VERSION);
    expect(db.prepare("SELECT count(*) FROM outbox").pluck().get()).toBe(3);
    db.close();
  });

  it("refuse a newer database without writing to it", () => {
    const db = new Database(file);
    migrate(db);
    db.pragma(`user_version = ${SCHEMA_VERSION + 5}`);
    expect(() => migrate(db)).toThrow(/newer than this netprobe/);
    expect(schemaVersion(db)).toBe(SCHEMA_VERSION + 5);
    db.close();
  });
});
