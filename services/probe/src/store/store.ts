import { closeSync, mkdirSync, openSync, rmSync, statSync, statfsSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import { silentLogger, type Logger } from "../log.ts";
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
const PRIORITIES: readonly Priority[] = [0, 1, 2];

type Counts = [number, number, number];

interface Statements {
  insert: Database.Statement<[number, number, number, number, number, number, string, string]>;
  upsertLatest: Database.Statement<[string, number, number, string]>;
  evictOldest: Database.Statement<[number, number], { id: number; bytes: number }>;
  deleteById: Database.Statement<[number], { priority: Priority; bytes: number }>;
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
    const memory = this.path === ":memory:";
    let db: Database.Database | undefined;
    try {
      if (!memory && !readOnly) mkdirSync(dirname(this.path), { recursive: true });
      db = new Database(this.path, { timeout: BUSY_TIMEOUT_MS, readonly: readOnly, fileMustExist: readOnly });
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
        if (mode !== "wal" && !memory) this.log.warn({ file: this.path, mode }, "store: WAL unavailable");
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
        db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`);
        const { from, to } = migrate(db);
        if (from !== to) this.log.info({ file: this.path, from, to }, "store: schema migrated");
      }
      this.t = loadTally(db);
      this.conn = {
        db,
        s: prepareStatements(db),
        write: db.transaction((body: WriteBody<unknown>, s: Statements, extra: number) => body(s, extra)),
        ack: db.transaction((s: Statements, ids: readonly number[]) => this.deleteAcked(s, ids)),
      };
      this.evicting = false;
      this.diskFull = null;
      if (!memory && !readOnly) this.ensureReserve();
    } catch (err) {
      try {
        db?.close();
      } catch {
        // the open error below is the one worth reporting
      }
      throw this.openError(err);
    }
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
  appendResult(check: string, build: (seq: number) => { message: OutboxMessage; summary: unknown }): number {
    return this.write(`result of ${check}`, (s, extra) => {
      const seq = this.t.nextSeq;
      const { message, summary } = build(seq);
      this.insert(s, message, extra);
      s.upsertLatest.run(check, seq, Date.now(), JSON.stringify(summary) ?? "null");
      this.t.nextSeq = seq + 1;
      return seq;
    });
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
    return this.guard("read the outbox", () =>
      s.peek.all(afterId, limit).map((r) => ({
        id: r.id,
        topic: r.topic,
        payload: r.payload,
        qos: r.qos,
        retain: r.retain === 1,
        priority: r.priority,
      })),
    );
  }

  /** Deletes delivered rows in one transaction; ids already gone (evicted, acked twice) are ignored. */
  ack(ids: readonly number[]): void {
    const c = this.writable();
    if (ids.length === 0) return;
    const saved = copyTally(this.t);
    try {
      c.ack.immediate(c.s, ids);
    } catch (err) {
      this.t = saved;
      this.rollbackQuietly();
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
    const { s } = this.writable();
    const json = JSON.stringify(value);
    this.guard(`save state ${key}`, () =>
      json === undefined ? s.deleteState.run(key) : s.setState.run(key, json, Date.now()),
    );
    this.scheduleSync();
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
    const c = this.writable();
    if (this.diskFull) this.checkDiskSpace(c);
    for (let attempt = 1; ; attempt++) {
      const saved = copyTally(this.t);
      const extra = attempt === 1 ? 0 : Math.max(16, Math.ceil(this.t.rows / 100));
      try {
        const result = c.write.immediate(body, c.s, extra) as T;
        this.scheduleSync();
        return result;
      } catch (err) {
        this.t = saved;
        this.rollbackQuietly();
        const code = sqliteCode(err);
        if (code === undefined) throw err; // thrown by build or a bug: nothing was stored
        const kind = classify(code);
        if (attempt === 1 && (kind === "STORE_FULL" || kind === "STORE_IO")) {
          // Once capped, SQLITE_FULL is the expected signal to evict: no need to shout each time.
          if (!(kind === "STORE_FULL" && this.diskFull)) {
            this.log.warn({ file: this.path, code, what }, "store: write failed, retrying once");
          }
          if (kind === "STORE_FULL") this.enterDiskFull(c);
          continue;
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
    return this.t.rows + newRows > this.options.maxRows || this.t.bytes + newBytes > this.options.maxBytes;
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
    if (free < 2 * (this.reserveBytes() || DEFAULT_RESERVE_BYTES)) return;
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

  private reserveBytes(): number {
    return this.options.reserveBytes ?? DEFAULT_RESERVE_BYTES;
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

  private openError(err: unknown): unknown {
    if (err instanceof StoreError || err instanceof RangeError) return err;
    const file = this.path;
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
    const hint = kind === "STORE_CORRUPT" ? " (left untouched: move it aside to start a new buffer)" : "";
    return new StoreError(kind, file, `cannot open store ${file}: ${code ?? "error"}: ${message}${hint}`, {
      cause: err,
    });
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
  t.nextSeq = maxSeq + 1;
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
