// HQ history benchmarks (services/hq/src/history/): ingest rate into each engine from 1,000
// simulated probes (the store's write path in batches as HistoryIngest sends them; the MQTT path
// is scripts/bench/fleet-sim.ts), and the time to build a 30-day fleet report (availability per
// area, incidents, daily roll-ups per check) for 1,000 probes from roll-ups. PostgreSQL is a
// private server on a unix socket (test/doubles/postgres-server.ts), removed afterwards.
//
//   node scripts/bench/history-bench.ts [--results 200000] [--probes 1000] [--json]
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import Database from "better-sqlite3";
import pg from "pg";
import { postgresHistoryStore } from "../../services/hq/src/history/postgres-store.ts";
import { sqliteHistoryStore } from "../../services/hq/src/history/sqlite-store.ts";
import type { HistoryStore, StoredResult } from "../../services/hq/src/history/store.ts";
import { startPostgres } from "../../test/doubles/postgres-server.ts";

const { values: args } = parseArgs({
  options: {
    results: { type: "string", default: "200000" },
    probes: { type: "string", default: "1000" },
    batch: { type: "string", default: "5000" },
    json: { type: "boolean", default: false },
  },
});
const N = Number(args.results);
const PROBES = Number(args.probes);
const BATCH = Number(args.batch);
const CHECKS = ["gateway-icmp", "dns-resolver", "wan-icmp", "wan-http", "sip-options"];
const AREAS = ["lan", "dns", "wan", "wan", "phone"];
const DAY = 86_400_000;
const RET = { raw_days: 30, rollup_days: 366, event_days: 366 };

function results(n: number, t0: number): StoredResult[] {
  const out: StoredResult[] = [];
  for (let i = 0; i < n; i++) {
    const p = i % PROBES;
    const c = Math.floor(i / PROBES) % CHECKS.length;
    out.push({
      id: `01BENCH${String(i).padStart(12, "0")}`,
      site: `sim-${String(p % 100).padStart(3, "0")}`,
      probe: `p${String(p).padStart(4, "0")}`,
      check: CHECKS[c]!,
      kind: "icmp",
      area: AREAS[c]!,
      target: "192.0.2.1",
      status: i % 50 === 0 ? "fail" : "ok",
      at: t0 + Math.floor(i / PROBES) * 1000,
      duration_ms: 10,
      value: 1 + (i % 17),
      loss_pct: 0,
      metrics: { rtt_avg_ms: 1 + (i % 17), loss_pct: 0 },
      error_code: null,
      error_message: null,
      seq: i + 1,
      boot_id: "bench",
      mono_ms: i,
      received_at: t0 + Math.floor(i / PROBES) * 1000 + 5,
    });
  }
  return out;
}

async function ingestRate(store: HistoryStore): Promise<number> {
  await store.open();
  const rs = results(N, Date.now() - 3600_000);
  const empty = { events: [], states: [], health: [] };
  const t = performance.now();
  for (let i = 0; i < rs.length; i += BATCH) await store.write({ results: rs.slice(i, i + BATCH), ...empty });
  const s = (performance.now() - t) / 1000;
  return Math.round(N / s);
}

/** 30 days of hourly and daily roll-ups and a few incidents for PROBES × CHECKS, inserted directly. */
function seedRows(now: number): { hours: unknown[][]; days: unknown[][]; events: unknown[][] } {
  const hours: unknown[][] = [];
  const days: unknown[][] = [];
  const events: unknown[][] = [];
  const h0 = Math.floor((now - 30 * DAY) / 3600_000) * 3600_000;
  for (let p = 0; p < PROBES; p++) {
    const site = `sim-${String(p % 100).padStart(3, "0")}`;
    const probe = `r${String(p).padStart(4, "0")}`;
    for (let c = 0; c < CHECKS.length; c++) {
      for (let h = 0; h < 30 * 24; h++)
        hours.push([
          site,
          probe,
          CHECKS[c],
          h0 + h * 3600_000,
          "icmp",
          AREAS[c],
          60,
          58,
          1,
          1,
          0,
          1,
          120,
          60,
          4,
          0,
          60,
        ]);
      for (let d = 0; d < 31; d++)
        days.push([
          site,
          probe,
          CHECKS[c],
          Math.floor(h0 / DAY) * DAY + d * DAY,
          "icmp",
          AREAS[c],
          1440,
          1400,
          20,
          20,
          0,
          1,
          2880,
          1440,
          4,
          0,
          1440,
        ]);
    }
    for (let k = 0; k < 4; k++) {
      const at = h0 + (k * 7 + (p % 5)) * DAY;
      events.push([
        site,
        probe,
        "area_transition",
        at,
        "b",
        at,
        "wan",
        "ok",
        "failing",
        "packet loss",
        null,
        at,
      ]);
      events.push([
        site,
        probe,
        "area_transition",
        at + 600_000,
        "b",
        at + 600_000,
        "wan",
        "failing",
        "ok",
        "ok",
        null,
        at,
      ]);
    }
  }
  return { hours, days, events };
}

async function reportTime(store: HistoryStore, now: number): Promise<number> {
  const q = { from: now - 30 * DAY, to: now };
  const t = performance.now();
  const [avail, incidents, daily] = await Promise.all([
    store.availability(q),
    store.incidents(q),
    store.rollups({ ...q, resolution: "1d" }),
  ]);
  const ms = performance.now() - t;
  if (incidents.length < PROBES * 3 || daily.length < PROBES * CHECKS.length || avail.length < PROBES)
    throw new Error(
      `report incomplete: ${avail.length} areas, ${incidents.length} incidents, ${daily.length} days`,
    );
  return Math.round(ms);
}

const ROLLUP_COLS =
  "site, probe, check_name, bucket, kind, area, count, ok, warn, fail, error, value_min, value_sum, value_count, value_p95, loss_sum, loss_count";
const EVENT_COLS =
  "site, probe, type, at, boot_id, mono_ms, area, from_state, to_state, reason, result_id, received_at";

const out: Record<string, number> = {};
const tmp = mkdtempSync(join(tmpdir(), "netprobe-history-bench-"));
const server = await startPostgres();
try {
  const now = Date.now();
  const seed = seedRows(now);
  // SQLite
  const file = join(tmp, "bench.db");
  out.sqlite_ingest_results_per_s = await ingestRate(sqliteHistoryStore(file, RET));
  {
    const db = new Database(file);
    db.transaction(() => {
      const h = db.prepare(
        `INSERT INTO rollup_1h (${ROLLUP_COLS}) VALUES (${Array(17).fill("?").join(",")})`,
      );
      for (const r of seed.hours) h.run(...r);
      const d = db.prepare(
        `INSERT INTO rollup_1d (${ROLLUP_COLS}) VALUES (${Array(17).fill("?").join(",")})`,
      );
      for (const r of seed.days) d.run(...r);
      const e = db.prepare(`INSERT INTO events (${EVENT_COLS}) VALUES (${Array(12).fill("?").join(",")})`);
      for (const r of seed.events) e.run(...r);
    })();
    db.close();
  }
  const sq = sqliteHistoryStore(file, RET);
  await sq.open();
  out.sqlite_report_30d_ms = await reportTime(sq, now);
  await sq.close();
  // PostgreSQL
  const pgStore = postgresHistoryStore(server.url, RET);
  out.postgres_ingest_results_per_s = await ingestRate(pgStore);
  {
    const c = new pg.Client({ connectionString: server.url });
    await c.connect();
    for (const [table, rows, cols, n] of [
      ["rollup_1h", seed.hours, ROLLUP_COLS, 17],
      ["rollup_1d", seed.days, ROLLUP_COLS, 17],
      ["events", seed.events, EVENT_COLS, 12],
    ] as const)
      for (let i = 0; i < rows.length; i += 2000) {
        const chunk = rows.slice(i, i + 2000);
        const cast = cols.split(", ").map((_, j) => {
          const v = chunk[0]![j];
          return typeof v === "number" ? (Number.isInteger(v) ? "bigint" : "float8") : "text";
        });
        await c.query(
          `INSERT INTO ${table} (${cols}) SELECT * FROM unnest(${cast.map((t, j) => `$${j + 1}::${t}[]`).join(", ")})`,
          Array.from({ length: n }, (_, j) => chunk.map((r) => r[j] ?? null)),
        );
      }
    await c.query("ANALYZE");
    await c.end();
  }
  out.postgres_report_30d_ms = await reportTime(pgStore, now);
  await pgStore.close();
} finally {
  await server.stop();
  rmSync(tmp, { recursive: true, force: true });
}
if (args.json) process.stdout.write(`${JSON.stringify(out)}\n`);
else for (const [k, v] of Object.entries(out)) process.stdout.write(`${k.padEnd(32)} ${v}\n`);
