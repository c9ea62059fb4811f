import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, test } from "vitest";
import { EXIT_CRASH } from "../../services/probe/src/crash-guard.ts";
import { Store } from "../../services/probe/src/store/store.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function crash(how: "exception" | "rejection") {
  const dir = mkdtempSync(join(tmpdir(), "netprobe-crash-"));
  dirs.push(dir);
  const db = join(dir, "netprobe.db");
  const child = spawnSync(process.execPath, [join(import.meta.dirname, "crash-guard-child.ts"), db, how], {
    encoding: "utf8",
    timeout: 20_000,
  });
  const lines = child.stderr
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { child, db, lines };
}

describe("the safety net of `netprobe run`", () => {
  test("an exception thrown from a check's callback: one fatal line naming the check, store closed, exit 70", () => {
    const { child, db, lines } = crash("exception");
    expect(child.status).toBe(EXIT_CRASH);
    expect(child.stdout).toBe("store closed\n"); // and never "still alive"
    expect(lines).toHaveLength(1);
    const line = lines[0]!;
    expect(line).toMatchObject({
      level: 60,
      event: "uncaughtException",
      check: "office-ntp",
      msg: "crash in check office-ntp: exiting for a restart",
      err: { type: "RangeError", message: "Port should be > 0 and < 65536. Received function ." },
    });
    expect(String((line.err as { stack: string }).stack)).toMatch(/crash-guard-child\.ts/);
    // Closed, not abandoned: SQLite removes the WAL on the last close, and the data is there.
    expect(existsSync(`${db}-wal`)).toBe(false);
    const store = new Store(db, { maxRows: 1000, maxBytes: 10_000_000, readOnly: true });
    store.open();
    expect(store.getState("before-crash")).toEqual({ ok: true });
    store.close();
  });

  test("an unhandled rejection is logged and exits the same way", () => {
    const { child, lines } = crash("rejection");
    expect(child.status).toBe(EXIT_CRASH);
    expect(lines).toEqual([
      expect.objectContaining({
        event: "unhandledRejection",
        check: "office-ntp",
        err: expect.objectContaining({ message: "a promise nobody awaited" }) as unknown,
      }),
    ]);
  });
});
