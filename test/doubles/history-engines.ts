// Both history engines for a test file (services/hq/src/history/): an SQLite file in a temporary
// directory and a database on a real PostgreSQL server started on a private socket (see
// postgres-server.ts). Registers the beforeAll/afterAll that start and remove them; under CI=true,
// or when PostgreSQL is installed but will not start, the postgres engine fails: it never skips.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll } from "vitest";
import { postgresHistoryStore } from "../../services/hq/src/history/postgres-store.ts";
import { sqliteHistoryStore } from "../../services/hq/src/history/sqlite-store.ts";
import type { HistoryStore, RetentionPolicy } from "../../services/hq/src/history/store.ts";
import { startPostgres, type PostgresServer } from "./postgres-server.ts";

/** `[engine name, make a fresh empty store]` pairs, for `describe.each`. */
export function historyEngines(
  retention: RetentionPolicy,
  now?: () => number,
): Array<[string, () => Promise<HistoryStore>]> {
  let pg: PostgresServer | undefined;
  let pgError: unknown;
  const tmp = mkdtempSync(join(tmpdir(), "netprobe-history-"));
  let dbs = 0;
  beforeAll(async () => {
    try {
      pg = await startPostgres();
    } catch (err) {
      pgError = err;
    }
  }, 60_000);
  afterAll(async () => {
    await pg?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });
  return [
    ["sqlite", () => Promise.resolve(sqliteHistoryStore(join(tmp, `h${dbs++}.db`), retention, now))],
    [
      "postgres",
      async () => {
        if (!pg) {
          if (process.env.CI === "true" || !String(pgError).includes("not installed"))
            throw new Error(`PostgreSQL unavailable: ${String(pgError)}`);
          throw new Error(`PostgreSQL not installed: ${String(pgError)}`);
        }
        return postgresHistoryStore(await pg.createDatabase(`t${dbs++}`), retention, now);
      },
    ],
  ];
}
