// Bookkeeping for the fault suite: what the probe produced (its own seq), what headquarters
// received (before and after dedup), database integrity, and the table the suite prints.
import { randomBytes } from "node:crypto";
import {
  appendFileSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import type { Received } from "../lab/probe-harness.ts";
import { readStatus, type StatusReport } from "../../services/probe/src/cli/status-command.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** One row of the fault table. */
export interface FaultRow {
  fault: string;
  times: number;
  produced: number;
  delivered: number;
  /** Removed by the buffer policy (disk full), counted in `health.outbox.evicted`; not lost. */
  evicted: number;
  lost: number;
  duplicated: number;
  integrity: string;
  up: boolean;
  note: string;
}

/** The probe's own view of a database, or null while it does not exist yet. */
export function statusOf(db: string): StatusReport | null {
  if (!existsSync(db)) return null;
  try {
    return readStatus(db);
  } catch {
    return null;
  }
}

/** Highest result seq the database committed (0: none yet). */
export function maxSeq(db: string): number {
  const s = statusOf(db);
  return s ? Math.max(0, ...s.checks.map((c) => c.seq)) : 0;
}

/** `PRAGMA integrity_check` of a database ("ok" when intact; "missing" when there is no file). */
export function integrity(db: string): string {
  if (!existsSync(db)) return "missing";
  const d = new Database(db, { readonly: true, fileMustExist: true });
  try {
    return String(d.pragma("integrity_check", { simple: true }));
  } finally {
    d.close();
  }
}

/** Where a row starts: the HQ message index first, then the seq (so nothing newer slips in between). */
export interface Mark {
  idx: number;
  seq: number;
}

export function mark(messages: readonly Received[], db: string): Mark {
  const idx = messages.length;
  return { idx, seq: maxSeq(db) };
}

/**
 * Counts a row: results with seq in (from.seq, toSeq] the probe produced, and what HQ received of
 * them since `from.idx` — distinct seqs delivered, extra copies (QoS 1 redelivery), and seqs missing.
 */
export function count(
  messages: readonly Received[],
  from: Mark,
  toSeq: number,
): { produced: number; delivered: number; duplicated: number; missing: number[] } {
  const copies = new Map<number, number>();
  for (const m of messages.slice(from.idx)) {
    if (!m.topic.includes("/results/")) continue;
    const seq = (m.payload as { seq?: number }).seq;
    if (typeof seq !== "number" || seq <= from.seq || seq > toSeq) continue;
    copies.set(seq, (copies.get(seq) ?? 0) + 1);
  }
  const missing: number[] = [];
  for (let s = from.seq + 1; s <= toSeq; s++) if (!copies.has(s)) missing.push(s);
  let duplicated = 0;
  for (const n of copies.values()) duplicated += n - 1;
  return { produced: toSeq - from.seq, delivered: copies.size, duplicated, missing };
}

/** The table as Markdown. */
export function renderTable(rows: readonly FaultRow[], mode: string): string {
  const head = [
    "fault",
    "times",
    "produced",
    "delivered",
    "evicted (policy)",
    "lost",
    "duplicated (before dedup)",
    "DB integrity",
    "service up",
    "notes",
  ];
  const line = (cells: readonly (string | number)[]) => `| ${cells.join(" | ")} |`;
  return [
    `Fault suite (${mode}), ${new Date().toISOString()}`,
    "",
    line(head),
    line(head.map(() => "---")),
    ...rows.map((r) =>
      line([
        r.fault,
        r.times,
        r.produced,
        r.delivered,
        r.evicted,
        r.lost,
        r.duplicated,
        r.integrity,
        r.up ? "yes" : "NO",
        r.note,
      ]),
    ),
    "",
  ].join("\n");
}

/** Prints the table and writes it to test-artifacts/fault-table.md. */
export function publishTable(rows: readonly FaultRow[], mode: string): string {
  const md = renderTable(rows, mode);
  const dir = join(ROOT, "test-artifacts");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, "fault-table.md");
  writeFileSync(file, md);
  console.log(`\n${md}\n(written to ${file})`);
  return file;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Fills the filesystem holding `path` to its last byte with that file (a tmpfs the test mounted). */
export function fillToZero(path: string): void {
  for (const size of [1 << 20, 64 * 1024, 4096, 512, 1]) {
    try {
      for (;;) appendFileSync(path, Buffer.alloc(size));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
    }
  }
}

/** Writes `length` random bytes at `offset` of a file (a damaged page, a garbled header). */
export function scribble(path: string, offset: number, length: number): void {
  const fd = openSync(path, "r+");
  try {
    writeSync(fd, randomBytes(length), 0, length, offset);
  } finally {
    closeSync(fd);
  }
}

/**
 * Counts a row from what HQ received alone, for a probe whose database cannot tell (disk full,
 * in memory): results since `fromIdx`, seqs in [first, last] seen, gaps = neither kept nor sent.
 */
export function countAtHq(
  messages: readonly Received[],
  fromIdx: number,
): { produced: number; delivered: number; duplicated: number; missing: number[]; last: number } {
  const seqs = messages
    .slice(fromIdx)
    .filter((m) => m.topic.includes("/results/"))
    .map((m) => (m.payload as { seq?: number }).seq)
    .filter((s): s is number => typeof s === "number");
  if (seqs.length === 0) return { produced: 0, delivered: 0, duplicated: 0, missing: [], last: 0 };
  const distinct = new Set(seqs);
  const first = Math.min(...distinct);
  const last = Math.max(...distinct);
  const missing: number[] = [];
  for (let s = first; s <= last; s++) if (!distinct.has(s)) missing.push(s);
  return {
    produced: last - first + 1,
    delivered: distinct.size,
    duplicated: seqs.length - distinct.size,
    missing,
    last,
  };
}
