// Soak: the real service in a lab with every lab check at (at least) 10× the default rate (the
// default interval is 60 s, so every check runs at least every 6 s, faster where the lab config
// already is), headquarters subscribed, for --minutes. Samples the service's `runtime` log line
// (RSS, heap, handles, event-loop lag) each minute, prints the series and the verdicts:
// RSS growth < 5 % between minute 5 and the end, event-loop lag p99 < 20 ms. A leak shows as a
// failing trend; exit code 1 when a verdict fails.
//
//   node scripts/bench/soak.ts [--minutes 30] [--json]
import { readFileSync, writeFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { parse, stringify } from "yaml";
import { labUp, newLabName } from "../lab/lab.ts";
import { credentialsFile, labCredentials, probeBrokerEnv } from "../lab/broker-tls.ts";
import { parseDuration } from "../../services/probe/src/config/duration.ts";
import { deployedCli } from "./deployed-cli.ts";

const { values: args } = parseArgs({
  options: { minutes: { type: "string", default: "30" }, json: { type: "boolean", default: false } },
});
const MINUTES = Number(args.minutes);
if (!(MINUTES >= 6))
  throw new Error("--minutes must be at least 6 (the RSS verdict compares minute 5 to the end)");
const ROOT = new URL("../../", import.meta.url).pathname;
const CLI = deployedCli();
const DEFAULT_INTERVAL_MS = 60_000;
const MAX_INTERVAL_MS = DEFAULT_INTERVAL_MS / 10;

interface Sample {
  minute: number;
  rss_mb: number;
  heap_used_mb: number;
  handles: number;
  loop_lag_p50_ms: number;
  loop_lag_p99_ms: number;
  loop_lag_max_ms: number;
  results: number;
}

type CheckDoc = Record<string, unknown> & { interval?: string; timeout?: string };
const ms = (d: unknown, fallback: number) => parseDuration(d) ?? fallback;

/** The lab config with every check at ≤ 6 s (timeouts capped at the interval). */
function soakConfig(): string {
  const doc = parse(readFileSync(join(ROOT, "scripts/lab/probe.lab.yaml"), "utf8")) as {
    defaults?: { interval?: string; timeout?: string };
    checks: CheckDoc[];
    log_level?: string;
  };
  const defInterval = ms(doc.defaults?.interval, DEFAULT_INTERVAL_MS);
  const defTimeout = ms(doc.defaults?.timeout, 10_000);
  for (const c of doc.checks) {
    const interval = Math.min(ms(c.interval, defInterval), MAX_INTERVAL_MS);
    const timeout = Math.min(ms(c.timeout, defTimeout), interval);
    c.interval = `${interval}ms`;
    c.timeout = `${timeout}ms`;
  }
  doc.log_level = "info";
  return stringify(doc);
}

const lab = await labUp({ name: newLabName("soak"), ephemeral: true });
const samples: Sample[] = [];
let results = 0;
try {
  const file = join(lab.info.dir, "soak.yaml");
  writeFileSync(file, soakConfig());
  // HQ: a plain subscriber counting what arrives (the outbox must stay drained).
  const hq = lab.spawn(
    "hq",
    [
      process.execPath,
      join(ROOT, "scripts/lab/hq-subscriber.ts"),
      labCredentials(lab.info.dir, "hq").url,
      "hq-soak",
      "0",
      credentialsFile(lab.info.dir, "hq"),
    ],
    { stdio: ["ignore", "pipe", "ignore"] },
  );
  createInterface({ input: hq.stdout! }).on("line", (l) => {
    if (l.includes("/results/")) results++;
  });
  const probe = lab.spawn("probe", [...CLI, "run", "--config", file], {
    env: {
      ...process.env,
      NETPROBE_STORE_PATH: join(lab.info.dir, "soak.db"),
      NETPROBE_RUNTIME_LOG_S: "60",
      ...probeBrokerEnv(lab.info.dir),
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const t0 = Date.now();
  createInterface({ input: probe.stderr! }).on("line", (l) => {
    if (!l.includes('"runtime"')) return;
    const r = (JSON.parse(l) as { runtime?: Omit<Sample, "minute" | "results"> }).runtime;
    if (!r) return;
    const s = { minute: Math.round((Date.now() - t0) / 60_000), ...r, results };
    samples.push(s);
    if (!args.json)
      console.log(
        `min ${String(s.minute).padStart(3)}  rss ${s.rss_mb.toFixed(1)} MB  heap ${s.heap_used_mb.toFixed(1)} MB  ` +
          `handles ${s.handles}  lag p50 ${s.loop_lag_p50_ms} p99 ${s.loop_lag_p99_ms} max ${s.loop_lag_max_ms} ms  results at HQ ${s.results}`,
      );
  });
  await new Promise((r) => setTimeout(r, MINUTES * 60_000 + 5000));
  probe.kill("SIGTERM");
  hq.kill("SIGTERM");
  await new Promise((r) => setTimeout(r, 3000));
} finally {
  await lab.down();
}

const at5 = samples.find((s) => s.minute >= 5);
const last = samples.at(-1);
const growthPct = at5 && last ? ((last.rss_mb - at5.rss_mb) / at5.rss_mb) * 100 : NaN;
const p99Max = Math.max(...samples.map((s) => s.loop_lag_p99_ms));
const verdicts = {
  rss_growth_pct: Math.round(growthPct * 10) / 10,
  rss_ok: growthPct < 5,
  loop_lag_p99_max_ms: p99Max,
  lag_ok: p99Max < 20,
};
if (args.json) console.log(JSON.stringify({ minutes: MINUTES, samples, verdicts }, null, 2));
else
  console.log(
    `\nRSS minute ${at5?.minute ?? "?"} → ${last?.minute ?? "?"}: ${at5?.rss_mb ?? "?"} → ${last?.rss_mb ?? "?"} MB ` +
      `(${verdicts.rss_growth_pct} %): ${verdicts.rss_ok ? "PASS" : "FAIL"} (< 5 %)\n` +
      `event-loop lag p99, worst minute: ${p99Max} ms: ${verdicts.lag_ok ? "PASS" : "FAIL"} (< 20 ms)`,
  );
process.exit(verdicts.rss_ok && verdicts.lag_ok ? 0 : 1);
