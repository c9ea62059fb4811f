// A damaged database must never keep the probe down: it is moved aside (with its -wal and -shm,
// for forensics), a fresh buffer starts, seq stays monotonic, and the owner is told. The files
// are real SQLite databases damaged the three ways the field does it: a garbled header, a file cut
// short, an interior page overwritten with random bytes.
import {
  closeSync,
  mkdtempSync,
  openSync,
  readdirSync,
  rmSync,
  statSync,
  truncateSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Store, type Quarantine, type StoreOptions } from "../../../services/probe/src/store/store.ts";
import { prng } from "../../fixtures/prng.ts";

const ROOMY: StoreOptions = { maxRows: 100_000, maxBytes: 100_000_000, syncIntervalMs: 0, reserveBytes: 0 };
const PAGE = 4096;

let dir: string;
let file: string;
const opened: Store[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "netprobe-corrupt-"));
  file = join(dir, "netprobe.db");
});

afterEach(() => {
  for (const s of opened.splice(0)) s.close();
  rmSync(dir, { recursive: true, force: true });
});

function openStore(options: StoreOptions = ROOMY): Store {
  const s = new Store(file, options);
  s.open();
  opened.push(s);
  return s;
}

function addResult(s: Store, check = "gw-icmp", size = 600): number {
  return s.appendResult(check, (seq) => ({
    message: {
      topic: `results/${check}`,
      payload: JSON.stringify({ check, seq, pad: "x".repeat(size) }),
      qos: 1,
      retain: false,
      priority: 0,
    },
    summary: { seq },
  }));
}

/** A populated database, closed (checkpointed: everything in the main file). Returns its last seq. */
function populated(results = 2_000): number {
  const s = new Store(file, ROOMY);
  s.open();
  let last = 0;
  for (let i = 0; i < results; i++) last = addResult(s, `check-${i % 7}`);
  s.close();
  return last;
}

/** Writes random bytes over `length` bytes at `offset` of the file. */
function scribble(path: string, offset: number, length: number, seed = 14): void {
  const rnd = prng(seed);
  const junk = Buffer.alloc(length);
  for (let i = 0; i < length; i++) junk[i] = Math.floor(rnd() * 256);
  const fd = openSync(path, "r+");
  try {
    writeSync(fd, junk, 0, length, offset);
  } finally {
    closeSync(fd);
  }
}

/** The damaged files moved aside (their -wal and -shm, when there were any, went with them). */
const quarantinedFiles = () =>
  readdirSync(dir).filter((f) => f.includes(".corrupt-") && !/-(wal|shm)$/.test(f));

function waitForReport(): { reports: Quarantine[]; options: StoreOptions } {
  const reports: Quarantine[] = [];
  return { reports, options: { ...ROOMY, onQuarantine: (q) => reports.push(q) } };
}

describe("a damaged database at start-up: moved aside, a fresh buffer, seq monotonic", () => {
  it("garbled header: quarantined with its name and time; seq from the wall clock (the file is unreadable)", async () => {
    const last = populated();
    scribble(file, 0, 100);
    const { reports, options } = waitForReport();
    const before = Date.now();
    const s = openStore(options);
    const q = s.condition().quarantine;
    expect(q).toMatchObject({ file, seqFrom: "wall clock", undeliveredRows: null });
    expect(q!.movedTo).toMatch(/netprobe\.db\.corrupt-\d{8}T\d{6}Z$/);
    expect(q!.problem).toMatch(/SQLITE_NOTADB|not a database/);
    expect(quarantinedFiles()).toEqual([q!.movedTo.slice(dir.length + 1)]);
    expect(statSync(q!.movedTo).size).toBeGreaterThan(1_000_000); // kept whole, for forensics
    const seq = addResult(s);
    expect(seq).toBeGreaterThan(last);
    expect(seq).toBeGreaterThanOrEqual(before);
    expect(s.integrityCheck()).toBe("ok");
    await new Promise((r) => setImmediate(r));
    expect(reports).toEqual([q]);
    // The seed is persistent: a restart continues above it.
    s.close();
    opened.length = 0;
    expect(addResult(openStore())).toBe(seq + 1);
  });

  it("truncated file: quarantined; SQLite refuses even its schema, so seq comes from the wall clock", () => {
    const last = populated();
    truncateSync(file, Math.floor(statSync(file).size / 2));
    const s = openStore();
    const q = s.condition().quarantine;
    expect(q).not.toBeNull();
    expect(q!.problem).toMatch(/quick_check|SQLITE_CORRUPT|malformed/);
    expect(quarantinedFiles()).toHaveLength(1);
    const seq = addResult(s);
    expect(q!.seqFrom).toBe("wall clock");
    expect(seq).toBeGreaterThan(last);
    expect(s.stats().rows).toBe(1);
  });

  it("an interior page overwritten with random bytes: quick_check finds it at open; seq continues from the damaged file", () => {
    const last = populated();
    const pages = statSync(file).size / PAGE;
    scribble(file, Math.floor(pages / 2) * PAGE, PAGE);
    const s = openStore();
    const q = s.condition().quarantine;
    expect(q, "quarantined").not.toBeNull();
    expect(q!.problem).toContain("quick_check");
    // latest_results (7 rows on an early page) is still readable beside a damaged outbox page.
    expect(q!.seqFrom).toBe("damaged file");
    expect(addResult(s)).toBe(last + 1);
    expect(s.integrityCheck()).toBe("ok");
  });

  it("a healthy database is not touched", () => {
    const last = populated(50);
    const s = openStore();
    expect(s.condition().quarantine).toBeNull();
    expect(quarantinedFiles()).toEqual([]);
    expect(addResult(s)).toBe(last + 1);
  });
});

describe("corruption found at run time: same path, no throw", () => {
  it("a page damaged under a running store: the read that hits it moves the file aside; seq and ids go on", async () => {
    // Closed first so every page is in the main file (not the WAL), then opened healthy. A real
    // 64 MiB buffer is larger than SQLite's page cache (16 MiB in better-sqlite3); this 13 MiB one
    // gets a 10-page cache so the scan below reads the damaged pages from disk as the device would.
    const last = populated(20_000);
    const { reports, options } = waitForReport();
    const s = openStore(options);
    expect(s.condition().quarantine).toBeNull();
    (Reflect.get(s, "conn") as { db: { pragma(p: string): unknown } }).db.pragma("cache_size = 10");
    const pages = statSync(file).size / PAGE;
    for (let p = 10; p < pages - 10; p += 50) scribble(file, p * PAGE, PAGE, p);
    let seen = 0;
    let cursor = 0;
    for (;;) {
      const rows = s.peek(cursor, 1_000); // never throws: the damage moves the file aside
      if (rows.length === 0) break;
      seen += rows.length;
      cursor = rows.at(-1)!.id;
    }
    const q = s.condition().quarantine;
    expect(q, "quarantined").not.toBeNull();
    expect(q).toMatchObject({ seqFrom: "memory", nextSeq: last + 1, undeliveredRows: 20_000 });
    expect(seen).toBeLessThan(20_000);
    expect(addResult(s)).toBe(last + 1);
    // The uplink's cursor is above every old id: the fresh file's ids continue above it.
    const fresh = s.peek(cursor, 10);
    expect(fresh).toHaveLength(1);
    expect(fresh[0]!.id).toBeGreaterThan(cursor);
    expect(s.integrityCheck()).toBe("ok");
    await new Promise((r) => setImmediate(r));
    expect(reports).toHaveLength(1);
  });
});
