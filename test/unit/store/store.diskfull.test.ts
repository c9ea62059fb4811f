import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { Store, storeReason } from "../../../services/probe/src/store/store.ts";

// A real ENOSPC needs a small filesystem: tmpfs (RAM, never the real disk), which takes root
// (CAP_SYS_ADMIN). Outside CI without root this file is skipped (test/unit/store/store.test.ts covers the
// retry path with SQLite's page limit); under CI=true every test runs and fails when it cannot mount.
const base = mkdtempSync(join(tmpdir(), "netprobe-diskfull-"));
const mounts: string[] = [];
function tmpfs(size: string): string {
  const dir = join(base, String(mounts.length));
  mkdirSync(dir);
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir], { stdio: "pipe" });
  mounts.push(dir);
  return dir;
}
const canMount = process.getuid?.() === 0;
const dir = canMount ? tmpfs("16m") : base;

afterAll(() => {
  for (const m of mounts) execFileSync("umount", ["--lazy", m]);
  rmSync(base, { recursive: true, force: true });
});

/** Fills the filesystem to the last block with a file of its own. */
function fillDisk(path: string): void {
  try {
    for (;;) writeFileSync(path, Buffer.alloc(64 * 1024), { flag: "a" });
  } catch (err) {
    expect((err as NodeJS.ErrnoException).code).toBe("ENOSPC");
  }
  try {
    for (;;) writeFileSync(path, Buffer.alloc(512), { flag: "a" });
  } catch {
    // now it is full
  }
}

describe.skipIf(!canMount && process.env.CI !== "true")("disk full (real ENOSPC on a tmpfs)", () => {
  beforeEach(() => {
    expect(canMount, "root (CAP_SYS_ADMIN) is needed to mount the tmpfs of the real ENOSPC tests").toBe(true);
  });

  it("the disk fills under a running store: every result is still stored, the oldest are evicted and counted; space returns: the reserve is rebuilt", async () => {
    const file = join(dir, "netprobe.db");
    const store = new Store(file, {
      maxRows: 1_000_000,
      maxBytes: 1_000_000_000,
      syncIntervalMs: 0,
      reserveBytes: 1 << 20,
    });
    store.open();
    expect(existsSync(`${file}-reserve`)).toBe(true);
    const pad = "x".repeat(560);
    const add = (i: number): number =>
      store.appendResult(`check-${i % 9}`, (seq) => ({
        message: {
          topic: "results/x",
          payload: JSON.stringify({ seq, pad }),
          qos: 1,
          retain: false,
          priority: 0,
        },
        summary: { seq },
      }));
    for (let i = 0; i < 1_000; i++) add(i);
    store.sync();
    store.enqueue({ topic: "events", payload: '{"to":"fail"}', qos: 1, retain: false, priority: 2 });
    fillDisk(join(dir, "filler"));

    const seqs: number[] = [];
    for (let i = 0; i < 5_000; i++) seqs.push(add(i)); // none of these may throw
    expect(seqs[0]).toBe(1_001);
    expect(seqs.at(-1)).toBe(6_000);
    const stats = store.stats();
    expect(stats.evicted).toBeGreaterThan(0);
    expect(store.integrityCheck()).toBe("ok");
    const rows = store.peek(0, 100_000);
    expect(rows.at(-1)?.payload).toContain('"seq":6000');
    expect(rows.some((r) => r.topic === "events")).toBe(true); // routine results went first
    expect(existsSync(`${file}-reserve`)).toBe(false);

    rmSync(join(dir, "filler"));
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const evictedBefore = store.stats().evicted;
    add(0);
    expect(existsSync(`${file}-reserve`)).toBe(true);
    expect(store.stats().evicted).toBe(evictedBefore); // the cap was lifted before this append
    const last = store.stats();
    store.close();

    const again = new Store(file, { maxRows: 1_000_000, maxBytes: 1_000_000_000, reserveBytes: 1 << 20 });
    again.open();
    expect(again.integrityCheck()).toBe("ok");
    expect(again.stats()).toEqual(last);
    again.close();
  });

  it("a 4 MiB volume: writes that cannot be kept throw STORE_FULL (never anything else), are counted, and the store says so; space back: kept again", async () => {
    const vol = tmpfs("4m");
    const file = join(vol, "netprobe.db");
    const store = new Store(file, { maxRows: 1_000_000, maxBytes: 1_000_000_000, syncIntervalMs: 0 });
    store.open();
    const pad = "x".repeat(600);
    const add = (i: number): number =>
      store.appendResult(`check-${i % 9}`, (seq) => ({
        message: {
          topic: "results/x",
          payload: JSON.stringify({ seq, pad }),
          qos: 1,
          retain: false,
          priority: 0,
        },
        summary: { seq },
      }));
    for (let i = 0; i < 100; i++) add(i);
    store.sync(); // the service checkpoints within 5 s of a write
    fillDisk(join(vol, "filler"));
    const codes = new Set<string>();
    let kept = 0;
    for (let i = 0; i < 3_000; i++) {
      try {
        add(i);
        kept++;
      } catch (err) {
        codes.add(String((err as { code?: string }).code));
      }
      try {
        store.setState("health", { i }); // the call that crashed the service: same errors, never others
      } catch (err) {
        codes.add(String((err as { code?: string }).code));
      }
    }
    const c = store.condition();
    expect(c.diskFull).toBe(true);
    expect(
      [...codes].every((code) => code === "STORE_FULL"),
      [...codes].join(),
    ).toBe(true);
    expect(storeReason(c)).toMatch(/^store: disk full — /);
    // The reserve (an eighth of the 4 MiB: 512 KiB) and eviction keep results coming while full.
    expect(kept).toBeGreaterThan(100);
    expect(store.integrityCheck()).toBe("ok");

    rmSync(join(vol, "filler"));
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    add(0);
    add(1);
    expect(store.condition()).toMatchObject({ diskFull: false, failing: null });
    expect(storeReason(store.condition())).toBeNull();
    store.close();
  });

  it("0 bytes free at start-up: a new database cannot be created, so the buffer is in memory and says so; space back: it moves into the file", async () => {
    const vol = tmpfs("2m");
    fillDisk(join(vol, "filler"));
    const file = join(vol, "netprobe.db");
    const store = new Store(file, { maxRows: 100_000, maxBytes: 100_000_000, syncIntervalMs: 0 });
    store.open(); // does not throw
    expect(store.condition()).toMatchObject({ medium: "memory", memoryBecause: "STORE_FULL" });
    expect(storeReason(store.condition())).toBe(
      "store: disk full — results kept in memory only (lost on restart)",
    );
    const add = (): number =>
      store.appendResult("gw", (seq) => ({
        message: {
          topic: "results/gw",
          payload: JSON.stringify({ seq }),
          qos: 1,
          retain: false,
          priority: 0,
        },
        summary: { seq },
      }));
    for (let i = 1; i <= 50; i++) expect(add()).toBe(i);
    store.ack(store.peek(0, 3).map((r) => r.id)); // delivered from memory
    rmSync(join(vol, "filler"));
    await new Promise((resolve) => setTimeout(resolve, 5_100));
    expect(add()).toBe(51);
    expect(store.condition().medium).toBe("file");
    expect(storeReason(store.condition())).toBeNull();
    store.close();
    // Everything undelivered is in the file now, in order, with its ids; seq goes on.
    const again = new Store(file, { maxRows: 100_000, maxBytes: 100_000_000 });
    again.open();
    const rows = again.peek(0, 1_000);
    expect(rows.map((r) => (JSON.parse(r.payload) as { seq: number }).seq)).toEqual(
      Array.from({ length: 48 }, (_, i) => i + 4),
    );
    expect(again.latestResults()[0]?.seq).toBe(51);
    again.close();
  }, 20_000);

  it("0 bytes free at start-up with an existing database: it opens, probing goes on, nothing already stored is touched", () => {
    const vol = tmpfs("4m");
    const file = join(vol, "netprobe.db");
    const first = new Store(file, {
      maxRows: 100_000,
      maxBytes: 100_000_000,
      syncIntervalMs: 0,
      reserveBytes: 0,
    });
    first.open();
    for (let i = 0; i < 100; i++)
      first.appendResult("gw", (seq) => ({
        message: {
          topic: "results/gw",
          payload: JSON.stringify({ seq }),
          qos: 1,
          retain: false,
          priority: 0,
        },
        summary: { seq },
      }));
    first.close();
    fillDisk(join(vol, "filler"));
    const store = new Store(file, { maxRows: 100_000, maxBytes: 100_000_000, syncIntervalMs: 0 });
    store.open();
    let seq = 0;
    for (let i = 0; i < 20; i++) {
      try {
        seq = store.appendResult("gw", (s) => ({
          message: {
            topic: "results/gw",
            payload: JSON.stringify({ s }),
            qos: 1,
            retain: false,
            priority: 0,
          },
          summary: { s },
        }));
      } catch (err) {
        expect((err as { code?: string }).code).toBe("STORE_FULL");
      }
    }
    expect(store.condition().quarantine).toBeNull();
    expect(readdirSync(vol).filter((f) => f.includes("corrupt"))).toEqual([]);
    expect(storeReason(store.condition())).toMatch(/^store: disk full/);
    // Whether on the file (capped) or in memory, seq goes on above what the file holds.
    // (On memory, seeded from the wall clock when the file cannot even be read: see Seed in store.ts.)
    expect(seq === 0 || seq > 100).toBe(true);
    store.close();
  });
});
