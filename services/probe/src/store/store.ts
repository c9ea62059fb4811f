import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  statSync,
  statfsSync,
  writeSync,
} from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import { silentLogger, type Logger } from "../../../contract/src/log.ts";
import { TRUSTED_AFTER_MS } from "../runner/clock-sync.ts";
import { MigrationError, SCHEMA_VERSION, migrate, schemaVersion } from "./migrations.ts";

/** Delivery priority, evicted lowest first: 0 routine results, 1 health/state snapshots, 2 events/area transitions. */
export type Priority = 0 | 1 | 2;

/** A message waiting for the broker; `topic` is relative to the probe's base topic, e.g. "results/gw-icmp". */
export interface OutboxMessage {
  topic: string;
  payload: string;
  qos: 0 | 1;
  retain: boolean;
  priority: Priority;
}

/** A stored message; `id` follows insertion order and is never reused, even after the outbox empties. */
export interface OutboxRow extends OutboxMessage {
  id: number;
}

/** Outbox bounds: row count and total payload bytes (UTF-8); exceeding either evicts. */
export interface StoreLimits {
  maxRows: number;
  maxBytes: number;
}

/** Store settings: the limits, how soon commits are forced to stable storage, and read-only mode for the CLI. */
export interface StoreOptions extends StoreLimits {
  /** Upper bound on what a power cut can take (default 5,000 ms; 0 leaves it to SQLite's auto-checkpoint). */
  syncIntervalMs?: number;
  /** Disk space held in `<file>-reserve` and given back when the disk fills, so eviction can still make room (default 8 MiB; 0: none). */
  reserveBytes?: number;
  /** Open an existing, migrated database for reading only (`netprobe status` next to the running service). */
  readOnly?: boolean;
  /** Told when a damaged database was moved aside and a fresh one started (at open or at run time). */
  onQuarantine?: (q: Quarantine) => void;
  /** Wall clock for the seq seed after a quarantine (tests); default Date.now. */
  now?: () => number;
}

/** A damaged database moved aside (with its -wal and -shm) so the probe could start a fresh buffer. */
export interface Quarantine {
  file: string;
  /** Where the damaged file now is: `<file>.corrupt-<UTC time>`, kept for forensics. */
  movedTo: string;
  at: number;
  /** What SQLite said: the open error or the first line of `PRAGMA quick_check`. */
  problem: string;
  /** Undelivered rows the damaged file still held (null: unreadable); they stay in the moved file. */
  undeliveredRows: number | null;
  /** First seq of the new buffer, and where it came from (see seedAfterQuarantine). */
  nextSeq: number;
  seqFrom: "memory" | "damaged file" | "wall clock" | "none";
}

/** How the store is keeping results now: `health.store` and the STATUS LED (service.ts). */
export interface StoreCondition {
  /** file: the database; memory: the file could not be opened for writing (disk full, read-only): RAM until it can. */
  medium: "file" | "memory";
  /** Why the buffer is in memory (STORE_FULL, STORE_IO, STORE_READONLY); null on the file. */
  memoryBecause: StoreErrorCode | null;
  /** The disk is full: the file is capped at its size and the oldest rows are evicted to make room. */
  diskFull: boolean;
  /** The last write failed (code), so what arrives now is not kept; null once a write succeeds again. */
  failing: StoreErrorCode | null;
  /** Writes that failed since open (results and messages not kept). */
  notKept: number;
  /** The last database this process moved aside, if any. */
  quarantine: Quarantine | null;
}

/** Outbox figures for health, `netprobe status` and the uplink area. */
export interface StoreStats {
  rows: number;
  bytes: number;
  /** Wall-clock ms when the oldest undelivered row was stored, null when the outbox is empty. */
  oldestAt: number | null;
  /** Rows and payload bytes evicted over the life of the database (persistent). */
  evicted: number;
  evictedBytes: number;
}

/** The last stored result of one check, for `netprobe status`. */
export interface LatestResult {
  check: string;
  seq: number;
  summary: unknown;
  at: number;
}

/** Stable codes of store failures (the caller logs and counts them). */
export type StoreErrorCode =
  | "STORE_FULL" // disk (or SQLite page limit) full, even after evicting and retrying
  | "STORE_IO" // I/O error, lock held too long, or the file cannot be opened/created
  | "STORE_CORRUPT" // not a database, or a damaged one
  | "STORE_READONLY" // the file or this Store is read-only
  | "STORE_TOO_NEW" // written by a newer netprobe; refused without modification
  | "STORE_MIGRATION" // a schema migration failed (rolled back) or is still pending in read-only mode
  | "STORE_CLOSED"; // used before open() or after close()

/** A store failure with a stable code and the database file it concerns; `cause` holds the SQLite error. */
export class StoreError extends Error {
  readonly code: StoreErrorCode;
  readonly file: string;
  constructor(code: StoreErrorCode, file: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StoreError";
    this.code = code;
    this.file = file;
  }
}

// better-sqlite3 waits for a lock synchronously, blocking the event loop. The only legitimate
// competitor is a second connection migrating or checkpointing (a CLI next to the service), which
// takes milliseconds; WAL readers never block the writer. One second bounds the stall before the
// caller gets STORE_IO.
const BUSY_TIMEOUT_MS = 1_000;
// After a checkpoint the WAL is truncated back to this size rather than to zero: the space stays
// allocated and is reused, which is what lets a delete-then-insert retry succeed on a full disk.
const WAL_SIZE_LIMIT_BYTES = 8 * 1024 * 1024;
const DEFAULT_SYNC_INTERVAL_MS = 5_000;
/** A sync slower than this is logged (it stalled every timer and socket of the service). */
const SLOW_SYNC_MS = 100;
// Covers the one thing eviction cannot do on a full disk: finish a checkpoint whose WAL holds pages
// beyond the end of the database file (at most ~wal_autocheckpoint = 1,000 pages = 4 MiB).
const DEFAULT_RESERVE_BYTES = 8 * 1024 * 1024;
// While the disk is full: checkpoint every few pages so the WAL keeps reusing the space it owns.
const DISK_FULL_AUTOCHECKPOINT_PAGES = 16;
const DISK_SPACE_CHECK_MS = 1_000;
/** While in memory: how often to try the file again. */
const MEMORY_RETRY_MS = 5_000;
// The in-memory fallback holds at most this much (the probe's whole anonymous-memory budget is 24 MiB).
const MEMORY_MAX_BYTES = 4 * 1024 * 1024;
const MEMORY_MAX_ROWS = 20_000;
const PRIORITIES: readonly Priority[] = [0, 1, 2];

type Counts = [number, number, number];

interface Statements {
  insert: Database.Statement<[number, number, number, number, number, number, string, string]>;
  upsertLatest: Database.Statement<[string, number, number, string]>;
  evictOldest: Database.Statement<[number, number], { id: number; bytes: number }>;
  deleteById: Database.Statement<[number], { priority: Priority; bytes: number }>;
  deleteRange: Database.Statement<[number, number], [Priority, number]>;
  setCounter: Database.Statement<[string, number]>;
  setEvictionCounters: Database.Statement<[number, number, number]>;
  peek: Database.Statement<
    [number, number],
    { id: number; topic: string; payload: string; qos: 0 | 1; retain: number; priority: Priority }
  >;
  oldestAt: Database.Statement<[], number>;
  latest: Database.Statement<[], { check_name: string; seq: number; at: number; summary: string }>;
  getState: Database.Statement<[string], string>;
  setState: Database.Statement<[string, string, number]>;
  deleteState: Database.Statement<[string]>;
}

/** In-memory mirror of persistent figures, saved before a transaction and restored if it rolls back. */
interface Tally {
  rows: number;
  bytes: number;
  byPriority: Counts;
  evictCursor: Counts;
  nextSeq: number;
  nextId: number;
  idHwm: number;
  evicted: number;
  evictedBytes: number;
}

type WriteBody<T> = (s: Statements, extraEvictions: number) => T;

/** Everything that exists only while the store is open. */
interface Connection {
  db: Database.Database;
  s: Statements;
  write: Database.Transaction<(body: WriteBody<unknown>, s: Statements, extra: number) => unknown>;
  ack: Database.Transaction<(s: Statements, ids: readonly number[]) => void>;
  ackRange: Database.Transaction<(s: Statements, first: number, last: number) => void>;
}

/**
 * The durable buffer: every result, event and health snapshot not yet acknowledged by the broker,
 * plus the last result per check and small key/value state. One writing Store per file (the
 * row/byte totals and the next seq live in memory); other processes may open it `readOnly`.
 */
export class Store {
  private readonly path: string;
  private readonly options: StoreOptions;
  private readonly log: Logger;
  private conn: Connection | null = null;
  private t: Tally = emptyTally();
  private evicting = false;
  /** Set on SQLITE_FULL: the file is capped at its current size and space is watched until it comes back. */
  private diskFull: { since: number; checkedAt: number; defaultMaxPages: number } | null = null;
  private syncTimer: NodeJS.Timeout | undefined = undefined;
  /** Set while the buffer lives in RAM because the file could not be opened for writing. */
  private inMemory: { since: number; triedAt: number; why: StoreErrorCode } | null = null;
  private failing: StoreErrorCode | null = null;
  private notKept = 0;
  private quarantined: Quarantine | null = null;

  constructor(path: string, options: StoreOptions, log?: Logger) {
    this.path = path;
    this.options = options;
    this.log = log ?? silentLogger();
  }

  /** Creates the directory, opens the file (WAL), runs pending migrations and loads the totals; throws StoreError. */
  open(): void {
    if (this.conn) throw new Error("store already open");
    const { maxRows, maxBytes, readOnly = false } = this.options;
    if (!(Number.isInteger(maxRows) && maxRows >= 1 && Number.isInteger(maxBytes) && maxBytes >= 1)) {
      throw new RangeError(
        `store limits must be positive integers (maxRows ${maxRows}, maxBytes ${maxBytes})`,
      );
    }
    this.evicting = false;
    this.diskFull = null;
    this.inMemory = null;
    if (this.path === ":memory:" || readOnly) {
      this.attach(this.connect(this.path));
      return;
    }
    let first: StoreError;
    try {
      this.attach(this.connect(this.path));
      return;
    } catch (err) {
      if (!(err instanceof StoreError) || !OPENS_ANYWAY.has(err.code)) throw err;
      first = err;
    }
    // Never down: a damaged file is moved aside and a fresh one started; a file that cannot be
    // written (disk full, read-only) leaves the service on a buffer in RAM that says so in health.
    const seed = seedFrom(this.path, this.now());
    let failure: StoreError = first;
    if (first.code === "STORE_CORRUPT") {
      try {
        this.quarantine(first.message, seed);
        this.attach(this.connect(this.path, seed));
        this.reportQuarantine();
        return;
      } catch (again) {
        if (!(again instanceof StoreError) || !FALLBACK_TO_MEMORY.has(again.code)) throw again;
        failure = again;
      }
    }
    // What the file holds stays there, untouched, and is delivered once it can be opened again;
    // the seed keeps seq and ids above it.
    this.openInMemory(failure, seed);
    this.reportQuarantine();
  }

  /**
   * Opens `path` (WAL), runs pending migrations, checks the file (`PRAGMA quick_check`) and loads
   * the totals; throws StoreError. `seed` (a fresh buffer after a quarantine or in memory) keeps
   * seq, ids and eviction counters going from where the previous buffer was.
   */
  private connect(path: string, seed?: Seed): { conn: Connection; tally: Tally } {
    const readOnly = this.options.readOnly ?? false;
    const memory = path === ":memory:";
    let db: Database.Database | undefined;
    try {
      if (!memory && !readOnly) mkdirSync(dirname(path), { recursive: true });
      db = new Database(path, { timeout: BUSY_TIMEOUT_MS, readonly: readOnly, fileMustExist: readOnly });
      // The first read of the header: a file that is not a database fails here, before any write.
      const version = schemaVersion(db);
      if (readOnly) {
        if (version !== SCHEMA_VERSION) {
          throw new MigrationError(
            version > SCHEMA_VERSION ? "too_new" : "failed",
            `schema version ${version}, this netprobe reads ${SCHEMA_VERSION}` +
              (version < SCHEMA_VERSION ? "; the service migrates it on its next start" : ""),
          );
        }
      } else {
        if (version > SCHEMA_VERSION) {
          throw new MigrationError(
            "too_new",
            `schema version ${version} is newer than this netprobe understands (${SCHEMA_VERSION}); upgrade netprobe or move the file aside (it was not modified)`,
          );
        }
        const mode = db.pragma("journal_mode = WAL", { simple: true });
        if (mode !== "wal" && !memory) this.log.warn({ file: path, mode }, "store: WAL unavailable");
        // synchronous=NORMAL in WAL mode: a commit is a write() of its WAL frames, no fsync. Once
        // write() returns the data is in the kernel, so a `kill -9` (or a crash of this process) at
        // any instant loses nothing committed, and the WAL checksums keep the file consistent
        // whatever happens (https://sqlite.org/pragma.html#pragma_synchronous, wal.html).
        // FULL would fsync the WAL on every commit: a few hundred commits/s at best on an SD card
        // instead of >= 5,000/s, and a flash program/erase cycle per result. What NORMAL gives up
        // is a power cut / kernel crash: it can roll back what was committed since the last WAL
        // sync. sync() (a checkpoint, which fsyncs the WAL then the database) runs within
        // syncIntervalMs of any write (and SQLite's own auto-checkpoint every ~1,000 pages), so a
        // power cut costs at most the last few seconds of results, never the file (provided the
        // card honours fsync; cheap SD cards that lie about it can lose more under any setting).
        db.pragma("synchronous = NORMAL");
        // On a small volume the WAL must give space back too: at most an eighth of it.
        const fsBytes = filesystemBytes(path);
        const walLimit = fsBytes
          ? Math.min(WAL_SIZE_LIMIT_BYTES, Math.floor(fsBytes / 8))
          : WAL_SIZE_LIMIT_BYTES;
        db.pragma(`journal_size_limit = ${walLimit}`);
        // A damaged page (bad sector, a torn write the card lied about) is found now, while the
        // fix is cheap — move the file aside and start fresh — rather than by the write that hits
        // it. quick_check walks every b-tree page without the index cross-checks of
        // integrity_check: 104-137 ms for a 65 MiB, 100,000-row buffer on the development machine
        // (file in the page cache); a cold SD card adds the time to read the file once.
        if (!memory) {
          const problems = db.pragma("quick_check(1)", { simple: true }) as string;
          if (problems !== "ok") throw new CorruptFileError(problems);
        }
        const { from, to } = migrate(db);
        if (from !== to) this.log.info({ file: path, from, to }, "store: schema migrated");
        if (seed) writeSeed(db, seed);
      }
      const tally = loadTally(db);
      const conn: Connection = {
        db,
        s: prepareStatements(db),
        write: db.transaction((body: WriteBody<unknown>, s: Statements, extra: number) => body(s, extra)),
        ack: db.transaction((s: Statements, ids: readonly number[]) => this.deleteAcked(s, ids)),
        ackRange: db.transaction((s: Statements, first: number, last: number) =>
          this.deleteAckedRange(s, first, last),
        ),
      };
      return { conn, tally };
    } catch (err) {
      try {
        db?.close();
      } catch {
        // the open error below is the one worth reporting
      }
      throw this.openError(err, path);
    }
  }

  private attach({ conn, tally }: { conn: Connection; tally: Tally }): void {
    this.conn = conn;
    this.t = tally;
    if (!conn.db.memory && !this.options.readOnly) this.ensureReserve();
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  /** The file cannot be opened for writing: a bounded buffer in RAM, retried on the file every few seconds. */
  private openInMemory(err: StoreError, seed: Seed): void {
    this.attach(this.connect(":memory:", seed));
    // SQLite reports a -shm it cannot grow as an I/O error: on a full disk that is the disk.
    const full = err.code === "STORE_FULL" || (freeBytes(this.path) ?? Infinity) < 64 * 1024;
    this.inMemory = { since: Date.now(), triedAt: Date.now(), why: full ? "STORE_FULL" : err.code };
    this.log.error(
      { file: this.path, code: err.code, err: err.message, next_seq: this.t.nextSeq },
      "store: cannot open the database for writing; buffering in memory (lost on restart) and retrying the file",
    );
  }

  /** Flushes (SQLite checkpoints on close) and closes; safe to call twice. */
  close(): void {
    this.clearSyncTimer();
    const conn = this.conn;
    this.conn = null;
    conn?.db.close();
  }

  /**
   * Stores one result: takes the next seq, calls `build(seq)` and, in ONE transaction, appends the
   * outbox row and replaces the check's latest summary; evicts if over limits. Returns the seq.
   * A throw inside `build` stores nothing and is rethrown as is. On SQLITE_FULL it evicts extra
   * rows and retries once (on an I/O error it just retries), so `build` may run twice and must be
   * pure; if the retry fails too, it throws StoreError (STORE_FULL / STORE_IO) and the result is
   * not stored: the caller logs and counts it, and the store stays usable.
   */
  appendResult(
    check: string,
    build: (seq: number) => { message: OutboxMessage } & (
      | { summary: unknown }
      | {
          /** The summary already as JSON (the message's own payload: not serialized twice). */
          summaryJson: string;
        }
    ),
  ): number {
    let built = 0;
    try {
      return this.write(`result of ${check}`, (s, extra) => {
        const seq = this.t.nextSeq;
        const b = build(seq);
        built = seq;
        this.insert(s, b.message, extra);
        const summary = "summaryJson" in b ? b.summaryJson : (JSON.stringify(b.summary) ?? "null");
        s.upsertLatest.run(check, seq, Date.now(), summary);
        this.t.nextSeq = seq + 1;
        return seq;
      });
    } catch (err) {
      // The caller may still publish what `build` made (live, not kept): its seq is never reissued
      // by this process. The next stored result persists a higher max(seq).
      if (err instanceof StoreError && built > 0) this.t.nextSeq = Math.max(this.t.nextSeq, built + 1);
      throw err;
    }
  }

  /** Appends a non-result message (health, event) to the same bounded outbox; same errors as appendResult. Returns its id. */
  enqueue(message: OutboxMessage): number {
    return this.write(`message on ${message.topic}`, (s, extra) => this.insert(s, message, extra));
  }

  /**
   * Rewrites the payloads of undelivered rows whose topic starts with `topicPrefix`, in one
   * transaction (the clock correction: runner/clock-sync.ts). `fix` returns the new payload or
   * null to leave a row as it is. Rows already delivered are gone and stay as HQ got them.
   * Returns how many rows changed.
   */
  rewriteUnsent(topicPrefix: string, fix: (payload: string) => string | null): number {
    return this.write(`rewrite of ${topicPrefix}* rows`, () => {
      const db = this.connection().db;
      const rows = db
        .prepare<[number, string], { id: number; payload: string; bytes: number }>(
          "SELECT id, payload, bytes FROM outbox WHERE substr(topic, 1, ?) = ?",
        )
        .all(topicPrefix.length, topicPrefix);
      const update = db.prepare<[string, number, number]>(
        "UPDATE outbox SET payload = ?, bytes = ? WHERE id = ?",
      );
      let changed = 0;
      for (const r of rows) {
        const next = fix(r.payload);
        if (next === null || next === r.payload) continue;
        const bytes = Buffer.byteLength(next, "utf8");
        update.run(next, bytes, r.id);
        this.t.bytes += bytes - r.bytes;
        changed++;
      }
      return changed;
    });
  }

  /** Up to `limit` rows with id > afterId, oldest first. */
  peek(afterId: number, limit: number): OutboxRow[] {
    const { s } = this.connection();
    let rows;
    try {
      rows = s.peek.all(afterId, limit);
    } catch (err) {
      if (this.quarantineIfCorrupt(err, "read the outbox")) return [];
      throw this.sqliteError(err, "read the outbox");
    }
    return rows.map((r) => ({
      id: r.id,
      topic: r.topic,
      payload: r.payload,
      qos: r.qos,
      retain: r.retain === 1,
      priority: r.priority,
    }));
  }

  /** Deletes delivered rows in one transaction; ids already gone (evicted, acked twice) are ignored. */
  ack(ids: readonly number[]): void {
    const c = this.writable();
    if (ids.length === 0) return;
    this.acknowledge(() => c.ack.immediate(c.s, ids));
  }

  /**
   * Deletes every row with firstId <= id <= lastId in one statement (the uplink's acknowledged run
   * of consecutive sends: outbox ids only grow, so no row it did not send lies in between).
   */
  ackRange(firstId: number, lastId: number): void {
    const c = this.writable();
    if (lastId < firstId) return;
    this.acknowledge(() => c.ackRange.immediate(c.s, firstId, lastId));
  }

  private acknowledge(remove: () => void): void {
    const saved = copyTally(this.t);
    try {
      remove();
    } catch (err) {
      this.t = saved;
      this.rollbackQuietly();
      // A damaged file loses nothing more by being moved aside: the rows acked are delivered.
      if (this.quarantineIfCorrupt(err, "acknowledge delivered rows")) return;
      throw this.sqliteError(err, "acknowledge delivered rows");
    }
    if (this.evicting && !this.overLimits(1, 0)) {
      this.evicting = false;
      this.log.info(
        { file: this.path, rows: this.t.rows, bytes: this.t.bytes },
        "store: outbox below limits again",
      );
    }
    this.scheduleSync();
  }

  /** Outbox depth, oldest undelivered timestamp and the persistent eviction counters. */
  stats(): StoreStats {
    const { s } = this.connection();
    const oldestAt =
      this.t.rows === 0 ? null : (this.guard("read the outbox", () => s.oldestAt.get()) ?? null);
    return {
      rows: this.t.rows,
      bytes: this.t.bytes,
      oldestAt,
      evicted: this.t.evicted,
      evictedBytes: this.t.evictedBytes,
    };
  }

  /** The last stored result of every check, by check name. */
  latestResults(): LatestResult[] {
    const { s } = this.connection();
    return this.guard("read latest results", () =>
      s.latest.all().map((r) => ({
        check: r.check_name,
        seq: r.seq,
        at: r.at,
        summary: JSON.parse(r.summary) as unknown,
      })),
    );
  }

  /** A small JSON value saved with setState, or undefined. */
  getState<T>(key: string): T | undefined {
    const { s } = this.connection();
    const value = this.guard(`read state ${key}`, () => s.getState.get(key));
    return value === undefined ? undefined : (JSON.parse(value) as T);
  }

  /** Saves a small JSON-serialisable value (its own transaction); undefined deletes the key. */
  setState(key: string, value: unknown): void {
    const json = JSON.stringify(value);
    this.write(`state ${key}`, (s) =>
      json === undefined ? s.deleteState.run(key) : s.setState.run(key, json, Date.now()),
    );
  }

  /** How results are being kept right now (health.store, the STATUS LED). */
  condition(): StoreCondition {
    return {
      medium: this.inMemory ? "memory" : "file",
      memoryBecause: this.inMemory?.why ?? null,
      diskFull: this.diskFull !== null,
      failing: this.failing,
      notKept: this.notKept,
      quarantine: this.quarantined,
    };
  }

  /** Forces everything committed so far onto stable storage (WAL checkpoint: fsync WAL, copy, fsync file). Runs by itself within syncIntervalMs of a write. */
  sync(): void {
    this.clearSyncTimer();
    const db = this.conn?.db;
    if (!db || db.memory || this.options.readOnly) return;
    const t0 = performance.now();
    this.guard("checkpoint", () => db.pragma("wal_checkpoint(PASSIVE)"));
    // better-sqlite3 is synchronous: the fsyncs happen on the event loop. Fast on a healthy card
    // (well under 10 ms); a slow or contended disk shows here first, and in the loop lag.
    const ms = Math.round(performance.now() - t0);
    if (ms >= SLOW_SYNC_MS)
      this.log.warn(
        { file: this.path, ms },
        "store: sync (checkpoint, fsync) blocked the event loop: slow storage",
      );
  }

  /** `PRAGMA integrity_check`: "ok", or SQLite's findings one per line (tests, `netprobe` CLI). */
  integrityCheck(): string {
    const { db } = this.connection();
    const rows = this.guard(
      "check integrity",
      () => db.pragma("integrity_check") as Array<{ integrity_check: string }>,
    );
    return rows.map((r) => r.integrity_check).join("\n");
  }

  // ---- internals -------------------------------------------------------------------------------

  /** Runs `body` in an IMMEDIATE transaction, restoring the in-memory tally if it rolls back; one retry on disk errors. */
  private write<T>(what: string, body: WriteBody<T>): T {
    let c = this.writable();
    if (this.diskFull) this.checkDiskSpace(c);
    if (this.inMemory) c = this.retryFile(c);
    for (let attempt = 1; ; attempt++) {
      const saved = copyTally(this.t);
      const extra = attempt === 1 ? 0 : Math.max(16, Math.ceil(this.t.rows / 100));
      try {
        const result = c.write.immediate(body, c.s, extra) as T;
        if (this.failing) {
          this.log.info({ file: this.path, not_kept: this.notKept }, "store: writes succeed again");
          this.failing = null;
        }
        this.scheduleSync();
        return result;
      } catch (err) {
        this.t = saved;
        this.rollbackQuietly();
        const code = sqliteCode(err);
        if (code === undefined) throw err; // thrown by build or a bug: nothing was stored
        const kind = classify(code);
        if (attempt === 1 && kind === "STORE_CORRUPT" && this.quarantineIfCorrupt(err, `store ${what}`)) {
          c = this.connection(); // the fresh file: the write goes there
          continue;
        }
        if (attempt === 1 && (kind === "STORE_FULL" || kind === "STORE_IO")) {
          // Once capped, SQLITE_FULL is the expected signal to evict: no need to shout each time.
          if (!(kind === "STORE_FULL" && this.diskFull)) {
            this.log.warn({ file: this.path, code, what }, "store: write failed, retrying once");
          }
          if (kind === "STORE_FULL") this.enterDiskFull(c);
          continue;
        }
        this.notKept += 1;
        if (this.failing !== kind) {
          this.log.error({ file: this.path, code, what }, "store: write failed; not kept");
          this.failing = kind;
        }
        throw this.sqliteError(err, `store ${what}`);
      }
    }
  }

  /** Inserts one outbox row after making room for it; called inside a write transaction. */
  private insert(s: Statements, m: OutboxMessage, extraEvictions: number): number {
    if (!PRIORITIES.includes(m.priority))
      throw new TypeError(`invalid outbox priority ${String(m.priority)}`);
    if (m.qos !== 0 && m.qos !== 1) throw new TypeError(`invalid outbox qos ${String(m.qos)}`);
    const bytes = Buffer.byteLength(m.payload, "utf8");
    this.makeRoom(s, bytes, extraEvictions);
    const id = this.t.nextId;
    s.insert.run(id, m.priority, bytes, Date.now(), m.qos, m.retain ? 1 : 0, m.topic, m.payload);
    this.t.nextId = id + 1;
    this.t.rows += 1;
    this.t.bytes += bytes;
    this.t.byPriority[m.priority] += 1;
    return id;
  }

  private overLimits(newRows: number, newBytes: number): boolean {
    const { maxRows, maxBytes } = this.options;
    const [rows, bytes] = this.inMemory
      ? [Math.min(maxRows, MEMORY_MAX_ROWS), Math.min(maxBytes, MEMORY_MAX_BYTES)]
      : [maxRows, maxBytes];
    return this.t.rows + newRows > rows || this.t.bytes + newBytes > bytes;
  }

  /** Evicts oldest rows of the lowest priority until one more row of `bytes` fits (plus `extra` rows). */
  private makeRoom(s: Statements, bytes: number, extra: number): void {
    let rows = 0;
    let freed = 0;
    while (this.t.rows > 0 && (rows < extra || this.overLimits(1, bytes))) {
      const gone = this.evictOldest(s);
      if (gone === undefined) break;
      rows += 1;
      freed += gone;
    }
    if (rows === 0) return;
    this.t.evicted += rows;
    this.t.evictedBytes += freed;
    s.setEvictionCounters.run(this.t.evicted, this.t.evictedBytes, this.t.idHwm);
    if (!this.evicting) {
      this.evicting = true;
      this.log.warn(
        { file: this.path, rows: this.t.rows, bytes: this.t.bytes, evicted_total: this.t.evicted },
        "store: outbox full, evicting oldest lowest-priority rows",
      );
    }
  }

  /** Deletes the oldest row of the lowest priority present; returns its payload bytes. */
  private evictOldest(s: Statements): number | undefined {
    for (const p of PRIORITIES) {
      if (this.t.byPriority[p] === 0) continue;
      // Ids only grow, so every row of priority p below the cursor is gone for good: each row is
      // scanned past at most once per priority, without an index on (priority, id).
      let row = s.evictOldest.get(p, this.t.evictCursor[p]);
      if (row === undefined && this.t.evictCursor[p] > 0) row = s.evictOldest.get(p, 0);
      if (row === undefined) {
        this.log.error({ file: this.path, priority: p }, "store: priority count out of step with the table");
        this.t.byPriority[p] = 0;
        continue;
      }
      this.t.evictCursor[p] = row.id + 1;
      this.t.rows -= 1;
      this.t.bytes -= row.bytes;
      this.t.byPriority[p] -= 1;
      this.t.idHwm = Math.max(this.t.idHwm, row.id);
      return row.bytes;
    }
    return undefined;
  }

  /** Body of the ack transaction. */
  private deleteAcked(s: Statements, ids: readonly number[]): void {
    let maxId = this.t.idHwm;
    for (const id of ids) {
      const row = s.deleteById.get(id);
      if (row === undefined) continue;
      this.t.rows -= 1;
      this.t.bytes -= row.bytes;
      this.t.byPriority[row.priority] -= 1;
      if (id > maxId) maxId = id;
    }
    if (maxId > this.t.idHwm) {
      this.t.idHwm = maxId;
      s.setCounter.run("outbox_id_hwm", maxId);
    }
  }

  /** Body of the range ack transaction. */
  private deleteAckedRange(s: Statements, first: number, last: number): void {
    let deleted = false;
    for (const [priority, bytes] of s.deleteRange.iterate(first, last)) {
      this.t.rows -= 1;
      this.t.bytes -= bytes;
      this.t.byPriority[priority] -= 1;
      deleted = true;
    }
    if (deleted && last > this.t.idHwm) {
      this.t.idHwm = last;
      s.setCounter.run("outbox_id_hwm", last);
    }
  }

  /**
   * On a full disk, eviction alone does not help: every commit appends to the WAL and every
   * checkpoint may need to grow the file. So: give the reserve back, checkpoint into it, cap the
   * file at its current page count (from then on SQLite reports SQLITE_FULL without touching the
   * disk, and the retry's eviction frees pages the insert reuses) and checkpoint often so the WAL
   * reuses its own space. The retry evicts `extra` rows (1 %), enough for many appends.
   */
  private enterDiskFull(c: Connection): void {
    if (!this.diskFull) {
      const released = this.releaseReserve();
      this.log.warn(
        { file: this.path, released_bytes: released, rows: this.t.rows },
        "store: disk full; capping the database at its size and evicting to make room",
      );
      this.diskFull = {
        since: Date.now(),
        checkedAt: Date.now(),
        defaultMaxPages: c.db.pragma("max_page_count", { simple: true }) as number,
      };
    }
    try {
      c.db.pragma("wal_checkpoint(PASSIVE)");
      c.db.pragma(`wal_autocheckpoint = ${DISK_FULL_AUTOCHECKPOINT_PAGES}`);
      c.db.pragma(`max_page_count = ${c.db.pragma("page_count", { simple: true }) as number}`);
    } catch (err) {
      // the retry reports the real error
      this.log.debug({ file: this.path, err }, "store: checkpoint on a full disk failed");
    }
  }

  /** While capped: once there is room for the reserve and as much again, lifts the cap and rebuilds the reserve. */
  private checkDiskSpace(c: Connection): void {
    const full = this.diskFull;
    if (!full || Date.now() - full.checkedAt < DISK_SPACE_CHECK_MS) return;
    full.checkedAt = Date.now();
    let free: number;
    try {
      const fs = statfsSync(dirname(this.path));
      free = fs.bavail * fs.bsize;
    } catch {
      return;
    }
    if (free < this.roomToResume()) return;
    this.diskFull = null;
    try {
      c.db.pragma(`max_page_count = ${full.defaultMaxPages}`);
      c.db.pragma("wal_autocheckpoint = 1000");
    } catch (err) {
      this.log.warn({ file: this.path, err }, "store: could not lift the size cap");
    }
    this.ensureReserve();
    this.log.info(
      { file: this.path, free_bytes: free, full_ms: Date.now() - full.since },
      "store: disk space back",
    );
  }

  /** The reserve: as configured, but at most an eighth of the filesystem (a 4 MiB volume gets 512 KiB). */
  private reserveBytes(): number {
    const wanted = this.options.reserveBytes ?? DEFAULT_RESERVE_BYTES;
    const size = filesystemBytes(this.path);
    return size === undefined ? wanted : Math.min(wanted, Math.floor(size / 8));
  }

  /** Free space that ends disk-full mode: the reserve and as much again (a quarter of a small volume). */
  private roomToResume(): number {
    const reserve = this.reserveBytes();
    return Math.max(
      64 * 1024,
      2 * (reserve || Math.min(DEFAULT_RESERVE_BYTES, (filesystemBytes(this.path) ?? 0) / 8)),
    );
  }

  /**
   * A corrupt database found at run time (a write, a read of the outbox, an ack): moved aside and
   * replaced by a fresh one carrying seq, ids and counters on from memory, so the uplink's cursor
   * and HQ's ordering go on. Returns false (nothing done) for any other error.
   */
  private quarantineIfCorrupt(err: unknown, what: string): boolean {
    const code = sqliteCode(err);
    if (code === undefined || classify(code) !== "STORE_CORRUPT") return false;
    if (this.options.readOnly || this.inMemory || this.path === ":memory:") return false;
    const seed: Seed = {
      nextSeq: this.t.nextSeq,
      idHwm: this.t.nextId - 1,
      evicted: this.t.evicted,
      evictedBytes: this.t.evictedBytes,
      seqFrom: "memory",
      undeliveredRows: this.t.rows,
    };
    this.clearSyncTimer();
    try {
      this.conn?.db.close();
    } catch {
      // a damaged file may fail its closing checkpoint; it is being moved aside anyway
    }
    this.conn = null;
    this.evicting = false;
    this.diskFull = null;
    const message = err instanceof Error ? err.message : String(err);
    try {
      this.quarantine(`${code} while trying to ${what}: ${message}`, seed);
      this.attach(this.connect(this.path, seed));
    } catch (again) {
      if (!(again instanceof StoreError) || !FALLBACK_TO_MEMORY.has(again.code)) throw again;
      this.openInMemory(again, seed);
    }
    this.reportQuarantine();
    return true;
  }

  /** Renames the damaged file with its -wal and -shm to `<file>.corrupt-<UTC time>` (kept for forensics). */
  private quarantine(problem: string, seed: Seed): void {
    const at = this.now();
    const stamp = new Date(at)
      .toISOString()
      .replace(/[-:]/g, "")
      .replace(/\.\d+Z$/, "Z");
    let movedTo = `${this.path}.corrupt-${stamp}`;
    for (let i = 1; existsSync(movedTo); i++) movedTo = `${this.path}.corrupt-${stamp}-${i}`;
    for (const suffix of ["", "-wal", "-shm"]) {
      try {
        renameSync(this.path + suffix, movedTo + suffix);
      } catch (err) {
        if (nodeCode(err) === "ENOENT") continue;
        throw new StoreError(
          "STORE_IO",
          this.path,
          `store ${this.path} is damaged (${problem}) and cannot be moved aside: ${String(err)}`,
          { cause: err },
        );
      }
    }
    this.quarantined = {
      file: this.path,
      movedTo,
      at,
      problem,
      undeliveredRows: seed.undeliveredRows,
      nextSeq: seed.nextSeq,
      seqFrom: seed.seqFrom,
    };
    this.log.error(
      {
        file: this.path,
        moved_to: movedTo,
        problem,
        undelivered_rows: seed.undeliveredRows,
        next_seq: seed.nextSeq,
        seq_from: seed.seqFrom,
      },
      "store: damaged database moved aside; starting a new buffer",
    );
  }

  /** Tells the owner, after the current call returns (the listener may write to this store). */
  private reportQuarantine(): void {
    const q = this.quarantined;
    const listener = this.options.onQuarantine;
    if (!q || !listener) return;
    setImmediate(() => {
      try {
        listener(q);
      } catch (err) {
        this.log.error({ err: String(err) }, "store: quarantine listener failed");
      }
    });
  }

  /**
   * In memory: every MEMORY_RETRY_MS, once the disk has room, opens the file again and moves the
   * buffer into it (same ids, so an ack in flight still deletes the right row); returns the
   * connection to write to. Any failure keeps the memory buffer and tries again later.
   */
  private retryFile(mem: Connection): Connection {
    const m = this.inMemory;
    if (!m || Date.now() - m.triedAt < MEMORY_RETRY_MS) return mem;
    m.triedAt = Date.now();
    if ((freeBytes(this.path) ?? 0) < this.roomToResume()) return mem;
    let next: { conn: Connection; tally: Tally };
    try {
      next = this.connect(this.path);
    } catch (err) {
      this.log.debug({ file: this.path, err: String(err) }, "store: the file still cannot be opened");
      return mem;
    }
    try {
      copyBuffer(mem.db, next.conn.db, this.t.nextSeq);
    } catch (err) {
      next.conn.db.close();
      this.log.warn(
        { file: this.path, err: String(err) },
        "store: could not move the memory buffer to the file",
      );
      return mem;
    }
    const moved = this.t.rows;
    mem.db.close();
    this.inMemory = null;
    this.attach({ conn: next.conn, tally: loadTally(next.conn.db) });
    this.log.info(
      { file: this.path, moved_rows: moved, memory_ms: Date.now() - m.since },
      "store: the database is writable again; the memory buffer moved into it",
    );
    return next.conn;
  }

  /** Creates `<file>-reserve` if missing or short; a failure (no space yet) is only logged. */
  private ensureReserve(): void {
    const size = this.reserveBytes();
    const file = `${this.path}-reserve`;
    if (size <= 0) return;
    try {
      if (statSync(file, { throwIfNoEntry: false })?.size === size) return;
      // Real bytes, not a sparse file: the blocks must be allocated now to be releasable later.
      // Written in chunks so an 8 MiB buffer never inflates the service's RSS.
      const chunk = Buffer.alloc(Math.min(size, 64 * 1024), 0x5a);
      const fd = openSync(file, "w");
      try {
        for (let done = 0; done < size; done += chunk.length) {
          writeSync(fd, chunk, 0, Math.min(chunk.length, size - done));
        }
      } finally {
        closeSync(fd);
      }
    } catch (err) {
      this.releaseReserve(); // a short reserve would only mislead the next open
      this.log.warn({ file, err }, "store: could not create the disk-full reserve");
    }
  }

  /** Deletes the reserve; returns the bytes given back. */
  private releaseReserve(): number {
    const file = `${this.path}-reserve`;
    try {
      const size = statSync(file, { throwIfNoEntry: false })?.size ?? 0;
      rmSync(file, { force: true });
      return size;
    } catch {
      return 0;
    }
  }

  private scheduleSync(): void {
    const interval = this.options.syncIntervalMs ?? DEFAULT_SYNC_INTERVAL_MS;
    if (this.syncTimer !== undefined || interval <= 0) return;
    this.syncTimer = setTimeout(() => {
      this.syncTimer = undefined;
      try {
        this.sync();
      } catch (err) {
        this.log.warn({ file: this.path, err }, "store: periodic sync failed");
      }
    }, interval);
    this.syncTimer.unref();
  }

  private clearSyncTimer(): void {
    if (this.syncTimer !== undefined) clearTimeout(this.syncTimer);
    this.syncTimer = undefined;
  }

  private rollbackQuietly(): void {
    try {
      if (this.conn?.db.inTransaction) this.conn.db.exec("ROLLBACK");
    } catch {
      // SQLite rolls back by itself when it cannot; nothing more to do here
    }
  }

  private connection(): Connection {
    if (!this.conn) throw new StoreError("STORE_CLOSED", this.path, `store ${this.path} is not open`);
    return this.conn;
  }

  private writable(): Connection {
    const c = this.connection();
    if (this.options.readOnly)
      throw new StoreError("STORE_READONLY", this.path, `store ${this.path} is open read-only`);
    return c;
  }

  /** Runs a read or a single statement, turning SQLite errors into StoreError. */
  private guard<T>(what: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw this.sqliteError(err, what);
    }
  }

  private sqliteError(err: unknown, what: string): unknown {
    const code = sqliteCode(err);
    if (code === undefined) return err;
    const message = err instanceof Error ? err.message : String(err);
    return new StoreError(classify(code), this.path, `cannot ${what} in ${this.path}: ${code}: ${message}`, {
      cause: err,
    });
  }

  private openError(err: unknown, file: string): unknown {
    if (err instanceof StoreError || err instanceof RangeError) return err;
    if (err instanceof CorruptFileError) {
      return new StoreError("STORE_CORRUPT", file, `store ${file} is damaged: quick_check: ${err.message}`, {
        cause: err,
      });
    }
    if (err instanceof MigrationError) {
      return new StoreError(
        err.kind === "too_new" ? "STORE_TOO_NEW" : "STORE_MIGRATION",
        file,
        `store ${file}: ${err.message}`,
        {
          cause: err,
        },
      );
    }
    const code = sqliteCode(err) ?? nodeCode(err);
    const message = err instanceof Error ? err.message : String(err);
    const kind = code === undefined ? "STORE_IO" : classify(code);
    const hint =
      kind === "STORE_CORRUPT" && this.options.readOnly
        ? " (the service moves it aside on its next start; or stop it and move the file, -wal and -shm aside)"
        : "";
    return new StoreError(kind, file, `cannot open store ${file}: ${code ?? "error"}: ${message}${hint}`, {
      cause: err,
    });
  }
}

/** Whether the store is in trouble a technician must see (disk full, writes failing, RAM only). */
export function storeInTrouble(c: StoreCondition): boolean {
  return c.medium === "memory" || c.diskFull || c.failing !== null;
}

/** One line for `health.store.reason` and the log, or null when all is well. */
export function storeReason(c: StoreCondition): string | null {
  const what = (code: StoreErrorCode | null) =>
    code === "STORE_FULL" ? "disk full" : code === "STORE_READONLY" ? "read-only filesystem" : "I/O error";
  const parts: string[] = [];
  if (c.medium === "memory") {
    parts.push(`store: ${what(c.memoryBecause)} — results kept in memory only (lost on restart)`);
  } else if (c.failing) {
    parts.push(`store: ${what(c.failing)} — results not kept`);
  } else if (c.diskFull) {
    parts.push("store: disk full — oldest results evicted to make room");
  }
  const q = c.quarantine;
  if (q)
    parts.push(
      `store: damaged database moved to ${q.movedTo}; new buffer since ${new Date(q.at).toISOString()}`,
    );
  return parts.length === 0 ? null : parts.join("; ");
}

/** Codes after which the service still runs, on a buffer in RAM, rather than refuse to start. */
const FALLBACK_TO_MEMORY: ReadonlySet<StoreErrorCode> = new Set(["STORE_FULL", "STORE_IO", "STORE_READONLY"]);
/** Open failures the service starts anyway after (the rest: a newer schema, a failed migration). */
const OPENS_ANYWAY: ReadonlySet<StoreErrorCode> = new Set([...FALLBACK_TO_MEMORY, "STORE_CORRUPT"]);

/** `PRAGMA quick_check` found problems (its first line is the message). */
class CorruptFileError extends Error {}

/**
 * Where a fresh buffer (after a quarantine, or in memory) starts counting. seq must stay monotonic
 * per probe (HQ orders by it, DESIGN: "survives restarts"): the best source is memory (a run-time
 * quarantine knows the next seq exactly), then the damaged file itself (latest_results is often
 * still readable when the damage is elsewhere), then the wall clock in ms — above any counted seq
 * as long as the probe stored fewer than 1,000 results/s on average, which a probe never does, and
 * only when the clock is trusted (a Pi without RTC boots in 1970). With neither, seq starts at 1
 * again and the log says so: HQ still drops duplicates by result id.
 */
interface Seed {
  nextSeq: number;
  idHwm: number;
  evicted: number;
  evictedBytes: number;
  seqFrom: Quarantine["seqFrom"];
  undeliveredRows: number | null;
}

/** Reads what it can of a (possibly damaged) file, read-only, one query at a time. */
function seedFrom(path: string, now: number): Seed {
  const read = <T>(db: Database.Database | undefined, sql: string): T | undefined => {
    try {
      return db?.prepare<[], T>(sql).pluck().get();
    } catch {
      return undefined;
    }
  };
  let db: Database.Database | undefined;
  try {
    if (existsSync(path)) db = new Database(path, { readonly: true, fileMustExist: true });
  } catch {
    db = undefined;
  }
  try {
    const maxSeq = read<number>(db, "SELECT coalesce(max(seq), 0) FROM latest_results");
    const floor = read<number>(db, "SELECT value FROM counters WHERE name = 'seq_floor'") ?? 0;
    const maxId = read<number>(db, "SELECT coalesce(max(id), 0) FROM outbox");
    const hwm = read<number>(db, "SELECT value FROM counters WHERE name = 'outbox_id_hwm'") ?? 0;
    const trusted = now >= TRUSTED_AFTER_MS;
    // An empty file (a create that failed on a full disk) or one with no tables held nothing.
    const empty = !existsSync(path) || read<number>(db, "SELECT count(*) FROM sqlite_schema") === 0;
    const fromFile = maxSeq === undefined ? undefined : Math.max(maxSeq + 1, floor);
    const [nextSeq, seqFrom]: [number, Seed["seqFrom"]] =
      fromFile !== undefined
        ? [fromFile, "damaged file"]
        : empty
          ? [1, "none"]
          : trusted
            ? [now, "wall clock"]
            : [1, "none"];
    return {
      nextSeq,
      seqFrom,
      // Ids only have to stay above the file's own (the memory buffer is copied back into it).
      idHwm: empty ? 0 : maxId === undefined ? Math.max(now, 2 ** 40) : Math.max(maxId, hwm),
      evicted: read<number>(db, "SELECT value FROM counters WHERE name = 'evicted_rows'") ?? 0,
      evictedBytes: read<number>(db, "SELECT value FROM counters WHERE name = 'evicted_bytes'") ?? 0,
      undeliveredRows: read<number>(db, "SELECT count(*) FROM outbox") ?? null,
    };
  } finally {
    try {
      db?.close();
    } catch {
      // read-only: nothing to flush
    }
  }
}

/** Puts a seed into a freshly migrated database's counters. */
function writeSeed(db: Database.Database, seed: Seed): void {
  const set = db.prepare<[string, number]>(
    "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)",
  );
  db.transaction(() => {
    set.run("seq_floor", seed.nextSeq);
    set.run("outbox_id_hwm", seed.idHwm);
    set.run("evicted_rows", seed.evicted);
    set.run("evicted_bytes", seed.evictedBytes);
  }).immediate();
}

/** Copies the in-memory buffer into the file's database, in one transaction (ids kept). */
function copyBuffer(from: Database.Database, to: Database.Database, nextSeq: number): void {
  const rows = from.prepare(
    "SELECT id, priority, bytes, created_at, qos, retain, topic, payload FROM outbox ORDER BY id",
  );
  const latest = from.prepare("SELECT check_name, seq, at, summary FROM latest_results");
  const state = from.prepare("SELECT key, value, updated_at FROM state");
  const counters = from.prepare<[], { name: string; value: number }>("SELECT name, value FROM counters");
  const insert = to.prepare(
    "INSERT INTO outbox (id, priority, bytes, created_at, qos, retain, topic, payload) VALUES (@id, @priority, @bytes, @created_at, @qos, @retain, @topic, @payload)",
  );
  const upsertLatest = to.prepare(
    "INSERT INTO latest_results (check_name, seq, at, summary) VALUES (@check_name, @seq, @at, @summary) " +
      "ON CONFLICT (check_name) DO UPDATE SET seq = excluded.seq, at = excluded.at, summary = excluded.summary",
  );
  const upsertState = to.prepare(
    "INSERT INTO state (key, value, updated_at) VALUES (@key, @value, @updated_at) " +
      "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
  );
  const setCounter = to.prepare<[string, number]>(
    "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)",
  );
  to.transaction(() => {
    for (const r of rows.iterate()) insert.run(r);
    for (const r of latest.iterate()) upsertLatest.run(r);
    for (const r of state.iterate()) upsertState.run(r);
    for (const c of counters.all()) setCounter.run(c.name, c.value);
    setCounter.run("seq_floor", nextSeq);
  }).immediate();
}

function filesystemBytes(path: string): number | undefined {
  try {
    const fs = statfsSync(dirname(path));
    return fs.blocks * fs.bsize;
  } catch {
    return undefined;
  }
}

function freeBytes(path: string): number | undefined {
  try {
    const fs = statfsSync(dirname(path));
    return fs.bavail * fs.bsize;
  } catch {
    return undefined;
  }
}

function emptyTally(): Tally {
  return {
    rows: 0,
    bytes: 0,
    byPriority: [0, 0, 0],
    evictCursor: [0, 0, 0],
    nextSeq: 1,
    nextId: 1,
    idHwm: 0,
    evicted: 0,
    evictedBytes: 0,
  };
}

function copyTally(t: Tally): Tally {
  return { ...t, byPriority: [...t.byPriority], evictCursor: [...t.evictCursor] };
}

/** Reads the totals once at open (one scan of the outbox), so appends never count(*) the table. */
function loadTally(db: Database.Database): Tally {
  const t = emptyTally();
  const groups = db
    .prepare<[], { priority: number; n: number; b: number }>(
      "SELECT priority, count(*) AS n, coalesce(sum(bytes), 0) AS b FROM outbox GROUP BY priority",
    )
    .all();
  for (const g of groups) {
    const p = g.priority as Priority;
    t.byPriority[p] = g.n;
    t.rows += g.n;
    t.bytes += g.b;
  }
  const counters = new Map(
    db
      .prepare<[], { name: string; value: number }>("SELECT name, value FROM counters")
      .all()
      .map((r) => [r.name, r.value]),
  );
  const maxId = db.prepare<[], number>("SELECT coalesce(max(id), 0) FROM outbox").pluck().get() ?? 0;
  const maxSeq =
    db.prepare<[], number>("SELECT coalesce(max(seq), 0) FROM latest_results").pluck().get() ?? 0;
  t.idHwm = counters.get("outbox_id_hwm") ?? 0;
  t.nextId = Math.max(maxId, t.idHwm) + 1;
  // seq_floor: written into a fresh buffer after a quarantine or an in-memory start (see Seed).
  t.nextSeq = Math.max(maxSeq + 1, counters.get("seq_floor") ?? 1);
  t.evicted = counters.get("evicted_rows") ?? 0;
  t.evictedBytes = counters.get("evicted_bytes") ?? 0;
  return t;
}

function prepareStatements(db: Database.Database): Statements {
  return {
    insert: db.prepare(
      "INSERT INTO outbox (id, priority, bytes, created_at, qos, retain, topic, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    ),
    upsertLatest: db.prepare(
      "INSERT INTO latest_results (check_name, seq, at, summary) VALUES (?, ?, ?, ?) " +
        "ON CONFLICT (check_name) DO UPDATE SET seq = excluded.seq, at = excluded.at, summary = excluded.summary",
    ),
    evictOldest: db.prepare(
      "DELETE FROM outbox WHERE id = " +
        "(SELECT id FROM outbox WHERE priority = ? AND id >= ? ORDER BY id LIMIT 1) RETURNING id, bytes",
    ),
    deleteById: db.prepare("DELETE FROM outbox WHERE id = ? RETURNING priority, bytes"),
    deleteRange: db
      .prepare<[number, number], [Priority, number]>(
        "DELETE FROM outbox WHERE id BETWEEN ? AND ? RETURNING priority, bytes",
      )
      .raw(true),
    setCounter: db.prepare(
      "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    ),
    setEvictionCounters: db.prepare(
      "INSERT INTO counters (name, value) VALUES ('evicted_rows', ?), ('evicted_bytes', ?), ('outbox_id_hwm', ?) " +
        "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    ),
    peek: db.prepare(
      "SELECT id, topic, payload, qos, retain, priority FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
    ),
    oldestAt: db.prepare<[], number>("SELECT created_at FROM outbox ORDER BY id LIMIT 1").pluck(),
    latest: db.prepare("SELECT check_name, seq, at, summary FROM latest_results ORDER BY check_name"),
    getState: db.prepare<[string], string>("SELECT value FROM state WHERE key = ?").pluck(),
    setState: db.prepare(
      "INSERT INTO state (key, value, updated_at) VALUES (?, ?, ?) " +
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    ),
    deleteState: db.prepare("DELETE FROM state WHERE key = ?"),
  };
}

function sqliteCode(err: unknown): string | undefined {
  return err instanceof Database.SqliteError ? err.code : undefined;
}

function nodeCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** Maps an SQLite (extended) result code, or a Node fs code, to a store error code. */
function classify(code: string): StoreErrorCode {
  if (code === "SQLITE_FULL" || code === "ENOSPC") return "STORE_FULL";
  if (code.startsWith("SQLITE_CORRUPT") || code === "SQLITE_NOTADB") return "STORE_CORRUPT";
  if (code.startsWith("SQLITE_READONLY") || code === "EROFS") return "STORE_READONLY";
  return "STORE_IO";
}
