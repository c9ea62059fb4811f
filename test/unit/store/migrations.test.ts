import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
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
} from "../../../services/probe/src/store/migrations.ts";
import { Store, StoreError, type OutboxRow } from "../../../services/probe/src/store/store.ts";

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

/**
 * What a database at some schema version holds, in terms of the current Store API: the undelivered
 * rows in delivery order, the persistent counters, the last seq per check and the saved state.
 */
interface Backlog {
  outbox: Array<Omit<OutboxRow, "id"> & { id: number }>;
  evictedRows: number;
  evictedBytes: number;
  /** Highest outbox id ever handed out (rows above the current max were delivered). */
  idHwm: number;
  latest: Array<{ check: string; seq: number }>;
  state: Record<string, unknown>;
}

/**
 * One writer per schema version: the rows a probe running that version leaves behind (undelivered
 * results, a health snapshot and an area event, eviction counters, the last seq per check, area
 * state), written with that version's own SQL. Frozen like the migration itself: when a migration
 * is appended, add the writer for its version here (the test below fails until there is one).
 */
const BACKLOG_AT: Record<number, (db: Database.Database) => Backlog> = {
  1: (db) => {
    const at = Date.UTC(2026, 2, 1, 12);
    const rows: Backlog["outbox"] = [];
    // ids 1..4 were delivered; 5..11 wait; 12 was delivered out of order (a retained health).
    for (let i = 0; i < 5; i++) {
      const seq = 38 + i;
      const check = i % 2 ? "dns" : "gw-icmp";
      rows.push({
        id: 5 + i,
        topic: `results/${check}`,
        payload: JSON.stringify({ check, seq, started_at: new Date(at + i * 1000).toISOString() }),
        qos: 1,
        retain: false,
        priority: 0,
      });
    }
    rows.push({ id: 10, topic: "health", payload: '{"schema":1}', qos: 1, retain: true, priority: 1 });
    rows.push({
      id: 11,
      topic: "events",
      payload: '{"type":"area_transition"}',
      qos: 1,
      retain: false,
      priority: 2,
    });
    const insert = db.prepare(
      "INSERT INTO outbox (id, priority, bytes, created_at, qos, retain, topic, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    );
    for (const r of rows)
      insert.run(
        r.id,
        r.priority,
        Buffer.byteLength(r.payload),
        at,
        r.qos,
        r.retain ? 1 : 0,
        r.topic,
        r.payload,
      );
    const counters = { outbox_id_hwm: 12, evicted_rows: 4, evicted_bytes: 1234 };
    const setCounter = db.prepare("INSERT INTO counters (name, value) VALUES (?, ?)");
    for (const [k, v] of Object.entries(counters)) setCounter.run(k, v);
    const latest = [
      { check: "gw-icmp", seq: 42 },
      { check: "dns", seq: 41 },
    ];
    const setLatest = db.prepare(
      "INSERT INTO latest_results (check_name, seq, at, summary) VALUES (?, ?, ?, ?)",
    );
    for (const l of latest) setLatest.run(l.check, l.seq, at, JSON.stringify({ seq: l.seq }));
    const state = { areas: { lan: "healthy", wan: "failing" } };
    db.prepare("INSERT INTO state (key, value, updated_at) VALUES (?, ?, ?)").run(
      "areas",
      JSON.stringify(state.areas),
      at,
    );
    return {
      outbox: rows,
      evictedRows: counters.evicted_rows,
      evictedBytes: counters.evicted_bytes,
      idHwm: counters.outbox_id_hwm,
      latest,
      state,
    };
  },
};

const sha256 = (f: string) => createHash("sha256").update(readFileSync(f)).digest("hex");

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

describe("upgrades from every previous schema version keep the undelivered backlog", () => {
  const versions = MIGRATIONS.map((m) => m.version);

  it("every schema version has a backlog writer", () => {
    expect(Object.keys(BACKLOG_AT).map(Number)).toEqual(versions);
  });

  // Every version up to the current one: v < current is an upgrade (none yet while there is one
  // version), v = current is the reopen after a restart. New migrations join automatically.
  it.each(versions)(
    "a database at version %i opened by this build: every row, in order, counters intact",
    (v) => {
      const raw = new Database(file);
      raw.pragma("journal_mode = WAL");
      expect(migrate(raw, MIGRATIONS.slice(0, v))).toEqual({ from: 0, to: v });
      const seeded = raw.transaction(() => BACKLOG_AT[v]!(raw))();
      raw.close();

      const store = new Store(file, {
        maxRows: 10_000,
        maxBytes: 10_000_000,
        syncIntervalMs: 0,
        reserveBytes: 0,
      });
      store.open();
      try {
        const check = new Database(file, { readonly: true });
        expect(schemaVersion(check)).toBe(SCHEMA_VERSION);
        check.close();

        const stats = store.stats();
        expect(stats.rows).toBe(seeded.outbox.length);
        expect(stats.bytes).toBe(seeded.outbox.reduce((n, r) => n + Buffer.byteLength(r.payload), 0));
        expect(stats.evicted).toBe(seeded.evictedRows);
        expect(stats.evictedBytes).toBe(seeded.evictedBytes);
        expect(store.peek(0, 1000)).toEqual(seeded.outbox);
        expect(
          store
            .latestResults()
            .map((l) => ({ check: l.check, seq: l.seq }))
            .sort((a, b) => a.check.localeCompare(b.check)),
        ).toEqual([...seeded.latest].sort((a, b) => a.check.localeCompare(b.check)));
        for (const [k, val] of Object.entries(seeded.state)) expect(store.getState(k)).toEqual(val);

        // The next result continues the seq and never reuses a delivered id.
        const maxSeq = Math.max(...seeded.latest.map((l) => l.seq));
        const seq = store.appendResult("gw-icmp", (n) => ({
          message: {
            topic: "results/gw-icmp",
            payload: JSON.stringify({ seq: n }),
            qos: 1,
            retain: false,
            priority: 0,
          },
          summary: { seq: n },
        }));
        expect(seq).toBe(maxSeq + 1);

        // Delivered in order, a window at a time as the uplink does, until the outbox is empty.
        const sent: OutboxRow[] = [];
        for (let after = 0; ;) {
          const window = store.peek(after, 3);
          if (window.length === 0) break;
          sent.push(...window);
          store.ack(window.map((r) => r.id));
          after = window.at(-1)!.id;
        }
        expect(sent.map((r) => r.payload)).toEqual([
          ...seeded.outbox.map((r) => r.payload),
          JSON.stringify({ seq }),
        ]);
        expect(sent.at(-1)!.id).toBeGreaterThan(seeded.idHwm);
        expect(store.stats().rows).toBe(0);
        expect(store.stats().evicted).toBe(seeded.evictedRows);
      } finally {
        store.close();
      }
    },
  );

  it("a database from a newer version (firmware rolled back) is refused with both versions named, the file untouched", () => {
    databaseWithBacklog();
    const newer = SCHEMA_VERSION + 1;
    const raw = new Database(file);
    raw.pragma(`user_version = ${newer}`);
    raw.close();
    const before = sha256(file);
    const filesBefore = readdirSync(dir).sort();

    let err: unknown;
    try {
      new Store(file, { maxRows: 100, maxBytes: 1_000_000 }).open();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).code).toBe("STORE_TOO_NEW");
    expect((err as StoreError).file).toBe(file);
    const msg = (err as StoreError).message;
    console.log(`refusal: ${msg}`);
    expect(msg).toContain(file);
    expect(msg).toContain(`schema version ${newer}`);
    expect(msg).toContain(`(${SCHEMA_VERSION})`);
    expect(sha256(file)).toBe(before);
    expect(readdirSync(dir).sort()).toEqual(filesBefore);
    // `netprobe status` (read-only) refuses it too.
    expect(() => new Store(file, { maxRows: 100, maxBytes: 1_000_000, readOnly: true }).open()).toThrow(
      `schema version ${newer}, this netprobe reads ${SCHEMA_VERSION}`,
    );

    // (A read-only open of a WAL database leaves an empty -wal/-shm pair behind; the file itself is unchanged.)
    expect(sha256(file)).toBe(before);
    const after = new Database(file, { readonly: true });
    expect(schemaVersion(after)).toBe(newer);
    expect(after.prepare("SELECT count(*) FROM outbox").pluck().get()).toBe(3);
    after.close();
  });
});
