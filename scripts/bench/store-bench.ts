// Store benchmark (docs/architecture.md, "Quality bars": >= 5,000 results/s written; a 100,000-result backlog drained in
// <= 30 s). Writes realistic ~600-byte result envelopes, one transaction each, then drains the
// backlog with peek + ack the way the uplink does (network excluded).
//
//   node scripts/bench/store-bench.ts [--results 100000] [--batch 500] [--dir <path>] [--json]
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import Database from "better-sqlite3";
import { Store, type OutboxMessage } from "../../services/probe/src/store/store.ts";

const { values: args } = parseArgs({
  options: {
    results: { type: "string", default: "100000" },
    batch: { type: "string", default: "500" },
    dir: { type: "string" },
    json: { type: "boolean", default: false },
  },
});
const RESULTS = Number(args.results);
const BATCH = Number(args.batch);
const CHECKS = Array.from({ length: 24 }, (_, i) => `check-${String(i).padStart(2, "0")}`);
const ROOMY = { maxRows: 10_000_000, maxBytes: 10_000_000_000, syncIntervalMs: 0 };

const dir = args.dir ?? mkdtempSync(join(tmpdir(), "netprobe-store-bench-"));
const ownDir = args.dir === undefined;

/** A result envelope shaped like the runner's (docs/architecture.md, "Result envelope"), about 600 bytes. */
function envelope(seq: number, i: number): string {
  const check = CHECKS[i % CHECKS.length]!;
  return JSON.stringify({
    schema: 1,
    id: `01JD${String(i).padStart(22, "0")}`,
    seq,
    site: "branch-0042",
    probe: "np-0042-a",
    check,
    kind: "icmp",
    area: "wan",
    target: "203.0.113.10",
    started_at: new Date(1_750_000_000_000 + i * 1000).toISOString(),
    boot_id: "6f1c2d8e-4b7a-4e1f-9c3d-2a5b8e7f0c1d",
    mono_ms: 123_456 + i,
    duration_ms: 4_012,
    status: i % 50 === 0 ? "warn" : "ok",
    metrics: {
      sent: 5,
      received: 5,
      loss_pct: 0,
      rtt_min_ms: 11.204,
      rtt_avg_ms: 12.871,
      rtt_max_ms: 15.093,
      rtt_p50_ms: 12.55,
      rtt_p95_ms: 14.87,
      jitter_ms: 0.913,
    },
    detail: { source: "192.0.2.23", family: "ipv4", ttl: 57, payload_bytes: 56, interface: "eth0" },
    version: "0.1.0",
  });
}

function appendOne(store: Store, i: number): number {
  const check = CHECKS[i % CHECKS.length]!;
  return store.appendResult(check, (seq) => {
    const message: OutboxMessage = {
      topic: `results/${check}`,
      payload: envelope(seq, i),
      qos: 1,
      retain: false,
      priority: 0,
    };
    return { message, summary: { status: "ok", rtt_avg_ms: 12.871 } };
  });
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

function percentile(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}

try {
  // 1. Write the backlog, one transaction per result.
  const db = join(dir, "bench.db");
  let store = new Store(db, ROOMY);
  store.open();
  const latencies = new Float64Array(RESULTS);
  const writeStart = performance.now();
  for (let i = 0; i < RESULTS; i++) {
    const t = performance.now();
    appendOne(store, i);
    latencies[i] = performance.now() - t;
  }
  const writeS = (performance.now() - writeStart) / 1000;
  latencies.sort();
  const payloadBytes = store.stats().bytes / RESULTS;
  const dbBytes = fileSize(db);
  const walBytes = fileSize(`${db}-wal`);

  // 2. Restart with the backlog: open() scans the outbox once to load its totals.
  store.close();
  const reopenStart = performance.now();
  store = new Store(db, ROOMY);
  store.open();
  const reopenMs = performance.now() - reopenStart;

  // 3. Drain it the way the uplink does: peek a batch, ack it, repeat.
  const drainStart = performance.now();
  let drained = 0;
  for (let after = 0; ;) {
    const rows = store.peek(after, BATCH);
    if (rows.length === 0) break;
    store.ack(rows.map((r) => r.id));
    drained += rows.length;
    after = rows.at(-1)!.id;
  }
  const drainS = (performance.now() - drainStart) / 1000;
  store.close();

  // 4. Writing into a full outbox: every append also evicts the oldest routine result.
  const fullDb = join(dir, "bench-full.db");
  const full = new Store(fullDb, { ...ROOMY, maxRows: Math.max(1, Math.floor(RESULTS / 10)) });
  full.open();
  for (let i = 0; i < RESULTS / 10; i++) appendOne(full, i);
  const fullN = Math.floor(RESULTS / 5);
  const fullStart = performance.now();
  for (let i = 0; i < fullN; i++) appendOne(full, i);
  const fullS = (performance.now() - fullStart) / 1000;
  const evicted = full.stats().evicted;
  full.close();

  const report = {
    results: RESULTS,
    payload_bytes_avg: Math.round(payloadBytes),
    write_results_per_s: Math.round(RESULTS / writeS),
    write_p50_ms: Number(percentile(latencies, 0.5).toFixed(3)),
    write_p99_ms: Number(percentile(latencies, 0.99).toFixed(3)),
    write_max_ms: Number(percentile(latencies, 1).toFixed(3)),
    write_when_full_results_per_s: Math.round(fullN / fullS),
    evicted_when_full: evicted,
    db_bytes: dbBytes,
    wal_bytes: walBytes,
    reopen_with_backlog_ms: Number(reopenMs.toFixed(1)),
    drain_rows: drained,
    drain_batch: BATCH,
    drain_s: Number(drainS.toFixed(2)),
    drain_rows_per_s: Math.round(drained / drainS),
    rss_bytes: process.memoryUsage().rss,
    max_rss_bytes: process.resourceUsage().maxRSS * 1024,
    sqlite: (new Database(":memory:").prepare("SELECT sqlite_version()").pluck().get() as string) ?? "",
    node: process.version,
  };

  if (args.json) {
    console.log(JSON.stringify(report, null, 2));
  } else {
    const mib = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MiB`;
    const n = (x: number): string => x.toLocaleString("en-US");
    const rows: Array<[string, string]> = [
      ["results written (1 txn each)", `${n(RESULTS)} x ~${report.payload_bytes_avg} B`],
      ["write rate", `${n(report.write_results_per_s)} results/s`],
      [
        "append latency p50 / p99 / max",
        `${report.write_p50_ms} / ${report.write_p99_ms} / ${report.write_max_ms} ms`,
      ],
      ["write rate, outbox full (evicting)", `${n(report.write_when_full_results_per_s)} results/s`],
      ["database size (file + WAL)", `${mib(dbBytes)} + ${mib(walBytes)}`],
      ["reopen with backlog", `${report.reopen_with_backlog_ms} ms`],
      ["drain (peek + ack)", `${n(drained)} rows in ${report.drain_s} s, batch ${BATCH}`],
      ["drain rate", `${n(report.drain_rows_per_s)} rows/s`],
      ["RSS now / peak", `${mib(report.rss_bytes)} / ${mib(report.max_rss_bytes)}`],
      ["SQLite / Node", `${report.sqlite} / ${report.node}`],
    ];
    const width = Math.max(...rows.map(([k]) => k.length));
    for (const [k, v] of rows) console.log(`${k.padEnd(width)}  ${v}`);
  }
} finally {
  if (ownDir) rmSync(dir, { recursive: true, force: true });
}
