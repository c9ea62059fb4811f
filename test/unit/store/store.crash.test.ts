import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Store } from "../../../services/probe/src/store/store.ts";

const WRITER = fileURLToPath(new URL("../../fixtures/store-writer.ts", import.meta.url));
const KILLS = 24;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "netprobe-crash-"));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

interface Killed {
  /** Seqs the child printed, each only after its commit returned. */
  committed: number[];
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** Starts the writer and SIGKILLs it `delayMs` after it starts (`from: "spawn"`, may hit open and migrations) or after it is ready. */
async function writeUntilKilled(
  db: string,
  from: "spawn" | "ready",
  delayMs: number,
  maxRows?: number,
): Promise<Killed> {
  const args = ["--no-warnings", WRITER, db, ...(maxRows === undefined ? [] : [String(maxRows)])];
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let stderr = "";
  const kill = (): void => void child.kill("SIGKILL");
  if (from === "spawn") setTimeout(kill, delayMs);
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    const wasReady = out.startsWith("ready\n");
    out += chunk;
    if (from === "ready" && !wasReady && out.startsWith("ready\n")) setTimeout(kill, delayMs);
  });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const [, signal] = (await once(child, "close")) as [number | null, NodeJS.Signals | null];
  const lines = out.split("\n").slice(0, -1); // the text after the last newline is not a whole line
  return { committed: lines.filter((l) => /^\d+$/.test(l)).map(Number), signal, stderr };
}

describe("crash safety", () => {
  it(`kill -9 at ${KILLS} random instants: file intact, seq continues, nothing committed is lost`, async () => {
    const db = join(dir, "netprobe.db");
    let lastSeq = 0;
    let killedWhileWriting = 0;
    for (let run = 0; run < KILLS; run++) {
      // Every fourth kill counts from process start, so some land inside open() and the first
      // migration; the rest land in the append/ack/checkpoint loop.
      const killed =
        run % 4 === 0
          ? await writeUntilKilled(db, "spawn", Math.random() * 400)
          : await writeUntilKilled(db, "ready", Math.random() * 120);
      expect(killed.signal, killed.stderr).toBe("SIGKILL");

      const store = new Store(db, { maxRows: 10_000_000, maxBytes: 10_000_000_000, syncIntervalMs: 0 });
      store.open();
      try {
        expect(store.integrityCheck()).toBe("ok");
        const rows = store.peek(0, Number.MAX_SAFE_INTEGER);
        expect(store.stats().rows).toBe(rows.length);
        const results = rows.filter((r) => r.topic.startsWith("results/"));
        const seqs = results.map((r) => (JSON.parse(r.payload) as { seq: number }).seq);

        // Results are never acked or evicted here, so the outbox holds seq 1..N exactly, in id order.
        const firstWrong = seqs.findIndex((seq, i) => seq !== i + 1);
        expect(firstWrong, `seq ${seqs[firstWrong]} at position ${firstWrong}`).toBe(-1);
        const stored = seqs.length;
        const { committed } = killed;
        if (committed.length > 0) {
          killedWhileWriting += 1;
          // This run went on from where the last one stopped, one by one ...
          expect(committed[0]).toBe(lastSeq + 1);
          expect(committed.every((seq, i) => seq === committed[0]! + i)).toBe(true);
          // ... and everything it reported is there; at most one commit was not yet reported.
          expect(stored - committed.at(-1)!).toBeGreaterThanOrEqual(0);
          expect(stored - committed.at(-1)!).toBeLessThanOrEqual(1);
        }
        expect(stored).toBeGreaterThanOrEqual(lastSeq);

        // The latest summary of each check was written in the same transaction as its row.
        const lastByCheck = new Map<string, number>();
        results.forEach((r, i) => lastByCheck.set(r.topic.slice("results/".length), seqs[i]!));
        const latest = new Map(store.latestResults().map((l) => [l.check, l.seq]));
        expect(latest).toEqual(lastByCheck);
        lastSeq = stored;
      } finally {
        store.close();
      }
    }
    expect(killedWhileWriting).toBeGreaterThanOrEqual(KILLS / 2);
    expect(lastSeq).toBeGreaterThan(0);
  }, 60_000);

  it("kill -9 while the outbox is full and evicting: the persistent evicted count matches what is missing", async () => {
    const db = join(dir, "evicting.db");
    const MAX_ROWS = 300;
    let lastSeq = 0;
    for (let run = 0; run < 8; run++) {
      const killed = await writeUntilKilled(db, "ready", 20 + Math.random() * 100, MAX_ROWS);
      expect(killed.signal, killed.stderr).toBe("SIGKILL");
      const store = new Store(db, { maxRows: MAX_ROWS, maxBytes: 10_000_000_000, syncIntervalMs: 0 });
      store.open();
      try {
        expect(store.integrityCheck()).toBe("ok");
        const results = store.peek(0, Number.MAX_SAFE_INTEGER).filter((r) => r.topic.startsWith("results/"));
        const seqs = results.map((r) => (JSON.parse(r.payload) as { seq: number }).seq);
        expect(seqs.every((seq, i) => i === 0 || seq > seqs[i - 1]!)).toBe(true);
        const newest = seqs.at(-1) ?? 0;
        const { committed } = killed;
        if (committed.length > 0) {
          expect(committed[0]).toBe(lastSeq + 1);
          expect(newest - committed.at(-1)!).toBeGreaterThanOrEqual(0);
          expect(newest - committed.at(-1)!).toBeLessThanOrEqual(1);
        }
        // Events outrank results, so only results were evicted: every seq not present was evicted
        // and counted, in the same transaction that removed it.
        expect(store.stats().evicted).toBe(newest - seqs.length);
        expect(store.stats().rows).toBeLessThanOrEqual(MAX_ROWS);
        lastSeq = newest;
      } finally {
        store.close();
      }
    }
    expect(lastSeq).toBeGreaterThan(MAX_ROWS);
  }, 30_000);
});
