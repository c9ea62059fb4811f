import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Store } from "../../services/probe/src/store/store.ts";

// A real ENOSPC needs a small filesystem: a 16 MiB tmpfs, which takes root (CAP_SYS_ADMIN). Without
// it this file is skipped (outside CI only); test/unit/store.test.ts covers the same retry path with SQLite's page
// limit (max_page_count), which needs no privileges.
const dir = mkdtempSync(join(tmpdir(), "netprobe-diskfull-"));
function mountTmpfs(): boolean {
  if (process.getuid?.() !== 0) return false;
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=16m", "tmpfs", dir], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
const mounted = mountTmpfs();

afterAll(() => {
  if (mounted) execFileSync("umount", ["--lazy", dir]);
  rmSync(dir, { recursive: true, force: true });
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

// In CI (root, as on every machine here) the real thing must run: fail there instead of skipping
// (never by filling the real disk: the test below only runs on the tmpfs).
it.runIf(!mounted && process.env.CI === "true")(
  "a 16 MiB tmpfs can be mounted for the disk-full test",
  () => {
    expect.fail("could not mount a tmpfs (root and CAP_SYS_ADMIN needed) for the real ENOSPC test");
  },
);

describe.runIf(mounted)("disk full (real ENOSPC on a 16 MiB tmpfs)", () => {
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
});
