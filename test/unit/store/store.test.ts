import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SCHEMA_VERSION } from "../../../services/probe/src/store/migrations.ts";
import {
  Store,
  StoreError,
  type OutboxMessage,
  type Priority,
  type StoreOptions,
} from "../../../services/probe/src/store/store.ts";

const ROOMY: StoreOptions = { maxRows: 100_000, maxBytes: 100_000_000, syncIntervalMs: 0, reserveBytes: 0 };

let dir: string;
let file: string;
const opened: Store[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "netprobe-store-"));
  file = join(dir, "var", "netprobe.db"); // the directory does not exist yet: open() creates it
});

afterEach(() => {
  for (const s of opened.splice(0)) s.close();
  rmSync(dir, { recursive: true, force: true });
});

function openStore(options: StoreOptions = ROOMY, path = file, lines?: string[]): Store {
  const log = lines
    ? pino({ level: "debug" }, { write: (line: string) => void lines.push(line) })
    : undefined;
  const s = new Store(path, options, log);
  s.open();
  opened.push(s);
  return s;
}

function reopen(s: Store, options: StoreOptions = ROOMY): Store {
  s.close();
  return openStore(options);
}

function message(topic: string, payload: string, priority: Priority = 0): OutboxMessage {
  return { topic, payload, qos: 1, retain: false, priority };
}

/** Appends a result whose payload carries its seq, padded to roughly `size` bytes. */
function addResult(s: Store, check = "gw-icmp", size = 100): number {
  return s.appendResult(check, (seq) => {
    const body = JSON.stringify({ check, seq, pad: "" });
    const payload = JSON.stringify({ check, seq, pad: "x".repeat(Math.max(0, size - body.length)) });
    return { message: message(`results/${check}`, payload), summary: { status: "ok", seq } };
  });
}

function seqOf(payload: string): number {
  return (JSON.parse(payload) as { seq: number }).seq;
}

function dbOf(s: Store): Database.Database {
  return (Reflect.get(s, "conn") as { db: Database.Database }).db;
}

describe("seq", () => {
  it("starts at 1 and continues after a restart", () => {
    let s = openStore();
    expect([addResult(s), addResult(s), addResult(s)]).toEqual([1, 2, 3]);
    s = reopen(s);
    expect(addResult(s)).toBe(4);
  });

  it("is never reused once the outbox is drained by ack or eviction", () => {
    let s = openStore();
    for (let i = 0; i < 5; i++) addResult(s);
    s.ack(s.peek(0, 100).map((r) => r.id));
    expect(s.stats().rows).toBe(0);
    s = reopen(s);
    expect(addResult(s)).toBe(6);

    s = reopen(s, { ...ROOMY, maxRows: 1 });
    expect(addResult(s)).toBe(7); // evicts seq 6
    s = reopen(s, { ...ROOMY, maxRows: 1 });
    expect(addResult(s)).toBe(8);
    expect(s.peek(0, 10).map((r) => seqOf(r.payload))).toEqual([8]);
  });

  it("outbox ids keep growing after the outbox empties and the store restarts", () => {
    let s = openStore();
    const first = s.enqueue(message("events", "{}", 2));
    s.ack([first]);
    s = reopen(s);
    expect(s.enqueue(message("events", "{}", 2))).toBeGreaterThan(first);
  });
});

describe("one transaction per result", () => {
  it("stores the outbox row and the check's latest summary together", () => {
    const s = openStore();
    addResult(s, "dns-a");
    addResult(s, "gw-icmp");
    addResult(s, "dns-a");
    expect(s.latestResults().map(({ check, seq, summary }) => ({ check, seq, summary }))).toEqual([
      { check: "dns-a", seq: 3, summary: { status: "ok", seq: 3 } },
      { check: "gw-icmp", seq: 2, summary: { status: "ok", seq: 2 } },
    ]);
    expect(s.stats().rows).toBe(3);
  });

  it("a throw inside build stores nothing and does not consume the seq", () => {
    const s = openStore();
    addResult(s, "dns-a");
    expect(() =>
      s.appendResult("dns-a", () => {
        throw new Error("envelope bug");
      }),
    ).toThrow("envelope bug");
    expect(() =>
      s.appendResult("dns-a", (seq) => ({
        message: { ...message("results/dns-a", "{}"), priority: 7 as Priority },
        summary: { seq },
      })),
    ).toThrow(TypeError);
    expect(s.stats()).toMatchObject({ rows: 1, bytes: s.peek(0, 10)[0]!.payload.length });
    expect(s.latestResults()[0]?.seq).toBe(1);
    expect(addResult(s, "dns-a")).toBe(2);
  });
});

describe("outbox order and ack", () => {
  it("peeks oldest first across results and other messages, paging by id", () => {
    const s = openStore();
    addResult(s, "a");
    s.enqueue(message("health", '{"h":1}', 1));
    addResult(s, "b");
    s.enqueue(message("events", '{"e":1}', 2));
    const all = s.peek(0, 100);
    expect(all.map((r) => r.topic)).toEqual(["results/a", "health", "results/b", "events"]);
    expect(all.map((r) => r.id)).toEqual([...all.map((r) => r.id)].sort((x, y) => x - y));
    expect(all[1]).toMatchObject({ qos: 1, retain: false, priority: 1, payload: '{"h":1}' });
    expect(s.peek(all[1]!.id, 2).map((r) => r.topic)).toEqual(["results/b", "events"]);
  });

  it("ack deletes exactly the delivered rows, ignores unknown ids and survives a restart", () => {
    let s = openStore();
    for (let i = 0; i < 10; i++) addResult(s);
    const rows = s.peek(0, 100);
    s.ack([rows[0]!.id, rows[3]!.id, rows[3]!.id, 999_999]);
    const left = s.peek(0, 100);
    expect(left.map((r) => seqOf(r.payload))).toEqual([2, 3, 5, 6, 7, 8, 9, 10]);
    const bytes = left.reduce((n, r) => n + Buffer.byteLength(r.payload), 0);
    expect(s.stats()).toMatchObject({ rows: 8, bytes });
    s = reopen(s);
    expect(s.stats()).toMatchObject({ rows: 8, bytes });
    expect(s.stats().oldestAt).toBeTypeOf("number");
    s.ack(left.map((r) => r.id));
    expect(s.stats()).toMatchObject({ rows: 0, bytes: 0, oldestAt: null });
  });

  it("ackRange deletes every row of an id range in one statement, keeps the totals right and ignores gaps", () => {
    let s = openStore();
    for (let i = 0; i < 10; i++) addResult(s);
    const rows = s.peek(0, 100);
    s.ack([rows[4]!.id]); // a gap inside the range (already delivered)
    s.ackRange(rows[2]!.id, rows[6]!.id);
    const left = s.peek(0, 100);
    expect(left.map((r) => seqOf(r.payload))).toEqual([1, 2, 8, 9, 10]);
    const bytes = left.reduce((n, r) => n + Buffer.byteLength(r.payload), 0);
    expect(s.stats()).toMatchObject({ rows: 5, bytes });
    s.ackRange(rows[2]!.id, rows[6]!.id); // again: nothing left there
    s = reopen(s);
    expect(s.stats()).toMatchObject({ rows: 5, bytes });
    s.ackRange(rows[0]!.id, rows[9]!.id);
    expect(s.stats()).toMatchObject({ rows: 0, bytes: 0, oldestAt: null });
  });
});

describe("bounded outbox", () => {
  it("evicts the oldest routine results first when the row limit is hit; events and health survive", () => {
    const s = openStore({ ...ROOMY, maxRows: 10 });
    s.enqueue(message("events", '{"e":1}', 2));
    s.enqueue(message("health", '{"h":1}', 1));
    for (let i = 0; i < 30; i++) addResult(s);
    s.enqueue(message("events", '{"e":2}', 2));
    const topics = s.peek(0, 100).map((r) => r.topic);
    expect(topics).toEqual(["events", "health", ...Array<string>(7).fill("results/gw-icmp"), "events"]);
    expect(
      s
        .peek(0, 100)
        .filter((r) => r.priority === 0)
        .map((r) => seqOf(r.payload)),
    ).toEqual([24, 25, 26, 27, 28, 29, 30]);
    expect(s.stats()).toMatchObject({ rows: 10, evicted: 23 });
  });

  it("evicts by payload bytes and never lets the total exceed the limit", () => {
    const s = openStore({ ...ROOMY, maxBytes: 2_000 });
    s.enqueue(message("events", "E".repeat(300), 2));
    for (let i = 0; i < 50; i++) {
      addResult(s, "gw-icmp", 250);
      expect(s.stats().bytes).toBeLessThanOrEqual(2_000);
    }
    const rows = s.peek(0, 100);
    expect(rows[0]?.topic).toBe("events");
    expect(rows.slice(1).map((r) => seqOf(r.payload))).toEqual([45, 46, 47, 48, 49, 50]);
    const stats = s.stats();
    expect(stats.bytes).toBe(rows.reduce((n, r) => n + Buffer.byteLength(r.payload), 0));
    expect(stats.evicted).toBe(44);
    expect(stats.evictedBytes).toBe(44 * 250);
  });

  it("never refuses a new row: evicts higher priorities when nothing lower is left, and keeps an oversized row alone", () => {
    const s = openStore({ ...ROOMY, maxRows: 3, maxBytes: 1_000 });
    for (let i = 0; i < 3; i++) s.enqueue(message("events", `{"e":${i}}`, 2));
    addResult(s);
    expect(s.peek(0, 10).map((r) => r.topic)).toEqual(["events", "events", "results/gw-icmp"]);
    const seq = addResult(s, "gw-icmp", 5_000);
    const rows = s.peek(0, 10);
    expect(rows.map((r) => seqOf(r.payload))).toEqual([seq]);
    expect(s.stats().bytes).toBeGreaterThan(1_000);
  });

  it("counts evictions persistently and resumes eviction in the right order after a restart", () => {
    let s = openStore({ ...ROOMY, maxRows: 5 });
    for (let i = 0; i < 8; i++) addResult(s);
    s.enqueue(message("events", "{}", 2));
    expect(s.stats().evicted).toBe(4);
    s = reopen(s, { ...ROOMY, maxRows: 5 });
    expect(s.stats()).toMatchObject({ rows: 5, evicted: 4 });
    addResult(s);
    expect(s.stats().evicted).toBe(5);
    expect(s.peek(0, 10).map((r) => r.topic)).toContain("events");
    s = reopen(s, { ...ROOMY, maxRows: 2 }); // a smaller limit from a new config applies on the next append
    addResult(s);
    expect(s.peek(0, 10).map((r) => r.topic)).toEqual(["events", "results/gw-icmp"]);
    expect(s.stats().evicted).toBe(9);
  });
});

describe("disk full", () => {
  it("evicts to make room and retries once when SQLite reports SQLITE_FULL", () => {
    const logged: string[] = [];
    const s = openStore(ROOMY, file, logged);
    for (let i = 0; i < 200; i++) addResult(s, "gw-icmp", 600);
    // No page may be added from now on: the next appends only fit in pages freed by eviction.
    const db = dbOf(s);
    db.pragma(`max_page_count = ${db.pragma("page_count", { simple: true }) as number}`);
    const seqs: number[] = [];
    for (let i = 0; i < 100; i++) seqs.push(addResult(s, "gw-icmp", 600));
    expect(seqs).toEqual(Array.from({ length: 100 }, (_, i) => 201 + i));
    expect(s.stats().evicted).toBeGreaterThan(0);
    expect(s.peek(0, 1_000).at(-1)?.payload).toContain('"seq":300');
    expect(logged.join("")).toMatch(/"code":"SQLITE_FULL".*retrying once/);
    expect(s.integrityCheck()).toBe("ok");
  });

  it("surfaces STORE_FULL when nothing can be evicted, and keeps working once space is back", () => {
    const s = openStore();
    const db = dbOf(s);
    const pages = db.pragma("page_count", { simple: true }) as number;
    db.pragma(`max_page_count = ${pages}`);
    let error: unknown;
    try {
      addResult(s, "gw-icmp", 50_000);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(StoreError);
    expect(error).toMatchObject({ code: "STORE_FULL", file });
    expect((error as Error).message).toContain(file);
    expect(s.stats()).toMatchObject({ rows: 0, bytes: 0 });
    db.pragma("max_page_count = 1000000");
    // seq 1 went to the result that was not kept (the service may have published it live).
    expect(addResult(s)).toBe(2);
  });
});

describe("state and status", () => {
  it("keeps small JSON values across restarts; undefined deletes", () => {
    let s = openStore();
    expect(s.getState("areas")).toBeUndefined();
    s.setState("areas", { wan: "fail", dns: "ok" });
    s.setState("boot", { count: 3 });
    s = reopen(s);
    expect(s.getState<{ wan: string }>("areas")).toEqual({ wan: "fail", dns: "ok" });
    s.setState("boot", undefined);
    expect(s.getState("boot")).toBeUndefined();
  });

  it("a read-only store sees the service's data while it runs and refuses writes", () => {
    const writer = openStore();
    addResult(writer, "dns-a");
    writer.setState("health", { ok: true });
    const reader = openStore({ ...ROOMY, readOnly: true });
    expect(reader.latestResults().map((r) => r.check)).toEqual(["dns-a"]);
    expect(reader.getState("health")).toEqual({ ok: true });
    addResult(writer, "gw-icmp");
    expect(reader.latestResults()).toHaveLength(2);
    expect(() => addResult(reader)).toThrow(expect.objectContaining({ code: "STORE_READONLY" }) as Error);
    expect(reader.integrityCheck()).toBe("ok");
  });

  it("is unusable before open and after close, with a clear code", () => {
    const s = new Store(file, ROOMY);
    expect(() => s.stats()).toThrow(expect.objectContaining({ code: "STORE_CLOSED" }) as Error);
    s.open();
    s.close();
    s.close();
    expect(() => addResult(s)).toThrow(expect.objectContaining({ code: "STORE_CLOSED" }) as Error);
  });
});

describe("files it must not damage", () => {
  it("refuses a database written by a newer netprobe, without modifying it", () => {
    const s = openStore();
    addResult(s);
    s.close();
    const raw = new Database(file);
    raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    raw.close();
    const before = readFileSync(file);
    const newer = new Store(file, ROOMY);
    expect(() => newer.open()).toThrow(
      expect.objectContaining({
        code: "STORE_TOO_NEW",
        file,
        message: expect.stringContaining(file) as string,
      }) as Error,
    );
    expect(readFileSync(file).equals(before)).toBe(true);
  });

  it("read-only (netprobe status): reports a file that is not a database by name and leaves it alone", () => {
    const junk = join(dir, "junk.db");
    const bytes = Buffer.from("this is not SQLite, it is a config file someone pointed at\n".repeat(200));
    writeFileSync(junk, bytes);
    const s = new Store(junk, { ...ROOMY, readOnly: true });
    expect(() => s.open()).toThrow(
      expect.objectContaining({
        code: "STORE_CORRUPT",
        file: junk,
        message: expect.stringContaining(junk) as string,
      }) as Error,
    );
    expect(readFileSync(junk).equals(bytes)).toBe(true);
  });

  it("read-only: reports a database whose outbox pages are damaged", () => {
    const s = openStore();
    for (let i = 0; i < 300; i++) addResult(s, "gw-icmp", 600);
    s.close();
    const content = readFileSync(file);
    content.fill(0xa5, 8192, content.length - 4096); // trash every page but the first two and the last
    writeFileSync(file, content);
    const broken = new Store(file, { ...ROOMY, readOnly: true });
    expect(() => {
      broken.open();
      broken.peek(0, 1000);
    }).toThrow(expect.objectContaining({ code: "STORE_CORRUPT", file }) as Error);
    broken.close();
  });
});
