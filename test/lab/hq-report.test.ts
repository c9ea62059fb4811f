// Availability reports and page history on real data: the real probe in the lab, a WAN outage
// switched on and off (scripts/lab/faults.ts), every result and event HQ's side received written
// into the real SQLite history store, then
//   1. `netprobe hq report --format pdf` for the lab site: page 1 rendered with pdftoppm (not
//      blank: the chart's colours are there), its text (pdftotext) has the title, the period, the
//      availability table, the WAN incident and the chart's caption;
//   2. the page over that store in headless Chromium: the range picker shows the history (the WAN
//      band failing in the event timeline, availability per area), and switching range works.
// Until `hq serve` writes history itself (services/hq/src/history/ingest.ts), the test maps the
// received payloads to the store's rows (toBatch below) — the store and the report are the real ones.
import type { ChildProcess } from "node:child_process";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, describe, expect, it } from "vitest";
import { ADDR } from "../../scripts/lab/lab.ts";
import type { HistoryBatch, StoredEvent, StoredResult } from "../../services/hq/src/history/store.ts";
import { mainMetric } from "../../services/hq/src/history/store.ts";
import { sqliteHistoryStore } from "../../services/hq/src/history/sqlite-store.ts";
import { startBrowser } from "./hq-browser.ts";
import { useLab } from "./lab-fixture.ts";
import { exited, probeStatus, startHq, startProbe, waitFor, type Received } from "./probe-harness.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const CLI = join(ROOT, "services/probe/src/cli.ts");
const ARTIFACTS = join(ROOT, "test-artifacts");
const NO_RETENTION = { raw_days: 36_500, rollup_days: 36_500, event_days: 36_500 };

/** The received messages as the store's rows (what ingest will do in HQ). */
function toBatch(messages: readonly Received[]): HistoryBatch {
  const results: StoredResult[] = [];
  const events: StoredEvent[] = [];
  for (const m of messages) {
    const [, , site = "", probe = "", kind] = m.topic.split("/");
    const p = m.payload;
    if (kind === "results") {
      const metrics = p.metrics as Record<string, number>;
      const error = p.error as { code: string; message: string } | undefined;
      results.push({
        id: p.id as string,
        site,
        probe,
        check: p.check as string,
        kind: p.kind as string,
        area: p.area as string,
        target: p.target as string,
        status: p.status as StoredResult["status"],
        at: Date.parse(p.started_at as string),
        duration_ms: p.duration_ms as number,
        value: mainMetric(metrics, p.duration_ms as number),
        loss_pct: metrics.loss_pct ?? null,
        metrics,
        error_code: error?.code ?? null,
        error_message: error?.message ?? null,
        seq: p.seq as number,
        boot_id: p.boot_id as string,
        mono_ms: p.mono_ms as number,
        received_at: Date.parse(p.started_at as string),
      });
    } else if (kind === "events" && p.type === "area_transition") {
      events.push({
        site,
        probe,
        type: "area_transition",
        at: Date.parse(p.at as string),
        area: p.area as string,
        from: p.from as StoredEvent["from"],
        to: p.to as StoredEvent["to"],
        reason: p.reason as string,
        result_id: (p.result_id as string | null) ?? null,
        received_at: Date.parse(p.at as string),
        boot_id: p.boot_id as string,
        mono_ms: p.mono_ms as number,
      });
    }
  }
  return { results, events, states: [], health: [] };
}

/** Share of page-1 pixels that are not white, and of those the saturated (chart) ones. */
function inkOf(ppm: Buffer): { ink: number; colour: number } {
  // P6 header: "P6\n<w> <h>\n255\n" (pdftoppm writes exactly this).
  const header = /^P6\s+(\d+)\s+(\d+)\s+255\s/.exec(ppm.subarray(0, 40).toString("latin1"))!;
  const px = ppm.subarray(header[0].length);
  let ink = 0;
  let colour = 0;
  const n = px.length / 3;
  for (let i = 0; i < px.length; i += 3) {
    const r = px[i]!;
    const g = px[i + 1]!;
    const b = px[i + 2]!;
    if (r < 240 || g < 240 || b < 240) ink++;
    if (Math.max(r, g, b) - Math.min(r, g, b) > 80) colour++;
  }
  return { ink: ink / n, colour: colour / n };
}

describe("availability report and page history from the store", () => {
  const lab = useLab();
  const children: ChildProcess[] = [];
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGTERM");
    await Promise.all(children.map((c) => exited(c)));
  });

  it("WAN outage → PDF report with the incident; the page's range picker shows it", async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    const dir = lab().info.dir;
    const hq = startHq(lab(), "hq-report", false);
    children.push(hq.child);
    await waitFor("HQ subscriber connected", 15_000, () => hq.connected());
    const t0 = Date.now();
    const probe = startProbe(lab());
    children.push(probe);
    await waitFor(
      "the probe's WAN verdict: ok",
      90_000,
      () => probeStatus(lab()).health?.areas.wan?.state === "ok",
    );

    await lab().fault("wan-down", true);
    await waitFor("WAN failing", 60_000, () => probeStatus(lab()).health?.areas.wan?.state === "failing");
    await lab().fault("wan-down", false);
    const wanBack = () =>
      hq
        .on("events")
        .find((m) => m.payload.area === "wan" && m.payload.to === "ok" && m.payload.from === "failing");
    await waitFor("HQ received WAN failing → ok", 90_000, wanBack);
    // A minute of results after the outage, so the chart has a line on both sides of it.
    await new Promise((r) => setTimeout(r, 20_000));
    const t1 = Date.now();

    const db = join(dir, "hq-history.db");
    const store = sqliteHistoryStore(db, NO_RETENTION);
    await store.open();
    const batch = toBatch(hq.messages);
    const wrote = await store.write(batch);
    await store.rollUp(t1 + 120_000);
    const storeIncidents = await store.incidents({ site: "lab", from: t0, to: t1 });
    await store.close();
    console.log(
      `store: ${wrote.inserted} results, ${wrote.events} events; incidents ${JSON.stringify(storeIncidents.map((i) => [i.area, i.duration_ms]))}`,
    );
    expect(wrote.inserted).toBeGreaterThan(20);
    const wanIncident = storeIncidents.find((i) => i.area === "wan");
    expect(wanIncident, "the store found no WAN incident").toBeDefined();

    // 1. The PDF (and the CSV, for the numbers) through the real CLI.
    const from = new Date(t0 - 60_000).toISOString();
    const to = new Date(t1).toISOString();
    const pdf = join(ARTIFACTS, "hq-report-lab.pdf");
    const run = (format: string, out: string) =>
      execFileSync(
        process.execPath,
        [
          CLI,
          "hq",
          "report",
          "--db",
          db,
          "--site",
          "lab",
          "--from",
          from,
          "--to",
          to,
          "--format",
          format,
          "--out",
          out,
        ],
        {
          encoding: "utf8",
          timeout: 90_000,
        },
      );
    run("pdf", pdf);
    run("csv", join(ARTIFACTS, "hq-report-lab.csv"));
    expect(readFileSync(pdf).subarray(0, 5).toString()).toBe("%PDF-");
    const pngBase = join(ARTIFACTS, "hq-report-lab-page1");
    execFileSync("pdftoppm", ["-png", "-r", "80", "-f", "1", "-l", "1", "-singlefile", pdf, pngBase]);
    expect(statSync(`${pngBase}.png`).size).toBeGreaterThan(10_000);
    execFileSync("pdftoppm", ["-r", "40", "-f", "1", "-l", "1", "-singlefile", pdf, pngBase]);
    const ink = inkOf(readFileSync(`${pngBase}.ppm`));
    console.log(
      `page 1: ${(ink.ink * 100).toFixed(1)} % ink, ${(ink.colour * 100).toFixed(2)} % saturated colour`,
    );
    expect(ink.ink).toBeGreaterThan(0.02); // not blank
    expect(ink.colour).toBeGreaterThan(0.0005); // the chart's line / loss bars / red figures
    const text = execFileSync("pdftotext", ["-layout", "-f", "1", "-l", "2", pdf, "-"], { encoding: "utf8" });
    writeFileSync(join(ARTIFACTS, "hq-report-lab.txt"), text);
    expect(text).toContain("Network availability — lab");
    expect(text).toMatch(/Period: \d{4}-\d{2}-\d{2} \d{2}:\d{2}(:\d{2})? UTC – \d{4}-\d{2}-\d{2}/);
    expect(text).toContain("Availability per area");
    expect(text).toMatch(/WAN\s+\d+\.\d{2} %/);
    expect(text).toContain("Incidents");
    expect(text).not.toContain("No incident in this period.");
    expect(text).toMatch(/probe-1\s+WAN/); // an incident row whose root area is WAN
    expect(text).toContain("Latency and loss");
    expect(text).toContain("Worst checks");
    const csv = readFileSync(join(ARTIFACTS, "hq-report-lab.csv"), "utf8");
    const wanRow = csv
      .split("\r\n")
      .find((l) => l.startsWith("area,wan,"))!
      .split(",");
    expect(Number(wanRow[2])).toBeLessThan(100);

    // 2. The page over the store, in Chromium in the hq namespace.
    const tokenFile = join(dir, "hq-report-token");
    const server = lab().spawn(
      "hq",
      [process.execPath, join(ROOT, "test/lab/hq-history-server.ts"), db, tokenFile, ADDR.hq4, "8081"],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    children.push(server);
    await new Promise<void>((resolve, reject) => {
      createInterface({ input: server.stdout! }).once("line", () => resolve());
      server.once("exit", (c) => reject(new Error(`history server exited ${c}`)));
    });
    const browser = startBrowser(lab(), (name) => join(ARTIFACTS, `hq-report-${name}.png`));
    children.push(browser.child);
    expect(await browser.ready).toMatchObject({ ready: true });
    const base = `http://${ADDR.hq4}:8081/`;
    await browser.goto(base);
    await browser.wait("form#login", 10_000);
    await browser.fill("#password", readFileSync(tokenFile, "utf8").trim());
    await browser.click("#submit");
    await browser.wait("#no-probes", 10_000);
    await browser.goto(`${base}#probe=lab/probe-1&range=1h`);
    await browser.wait('#detail[data-history="1h"]', 20_000);
    await browser.wait('#detail svg.timeline rect[data-area="wan"][data-state="failing"]', 1000);
    await browser.wait('#detail table.availability tr[data-area="wan"]', 1000);
    await browser.wait("#detail .check svg.chart path.avg", 1000);
    const wanCell = await browser.text('#detail table.availability tr[data-area="wan"] td:nth-child(2)');
    expect(wanCell).toMatch(/^\d+\.\d{2} %$/);
    expect(Number.parseFloat(wanCell)).toBeLessThan(100);
    await browser.shot("history-1h");
    await browser.select("#range", "24h");
    await browser.wait('#detail[data-history="24h"]', 20_000);
    const paint = (await browser.eval("window.historyPaint")) as { since_request_ms: number };
    console.log(`24 h history painted ${paint.since_request_ms.toFixed(0)} ms after the range was picked`);

    // 3. First paint of a 90-day chart: 90 days of a simulated probe (the fleet simulation's check
    //    mix: gateway and WAN ICMP, DNS, HTTP, NTP; a result an hour), written to the same store.
    const seeded = await seedNinetyDays(db, t1);
    console.log(`seeded 90 days: ${seeded.results} results, rolled up in ${seeded.rollup_ms} ms`);
    // A new document (the query differs), so navigation start is this load, not the first one.
    await browser.goto(`${base}?paint=90d#probe=sim/probe-0001&range=90d`);
    await browser.wait('#detail[data-history="90d"]', 20_000);
    const p90 = (await browser.eval("window.historyPaint")) as {
      since_navigation_ms: number;
      since_request_ms: number;
    };
    const series = (await browser.eval(
      "fetch('api/history/series?key=sim/probe-0001&range=90d').then(r => r.json()).then(s => s.checks.map(c => c.points.length))",
    )) as number[];
    console.log(
      `90-day history: first paint ${p90.since_navigation_ms.toFixed(0)} ms after navigation start ` +
        `(${p90.since_request_ms.toFixed(0)} ms after the requests), ${series.length} checks × ${series.join("/")} points`,
    );
    expect(series.length).toBe(5);
    expect(Math.min(...series)).toBeGreaterThan(300); // 2160 hourly buckets merged to 6 h: 360
    expect(p90.since_navigation_ms).toBeLessThan(1000);
    await browser.shot("history-90d");
  }, 420_000);
});

/** 90 days of one simulated probe, 5 checks, a result an hour; a daily WAN dip. */
async function seedNinetyDays(db: string, now: number): Promise<{ results: number; rollup_ms: number }> {
  const store = sqliteHistoryStore(db, NO_RETENTION);
  await store.open();
  // Hourly: one result per 1-hour roll-up bucket (rollUp of 43,200 results at 15 min took 194 s here).
  const STEP = 60 * 60_000;
  const start = now - 90 * 86_400_000;
  const checks = [
    ["gateway-icmp", "icmp", "lan", 1],
    ["wan-icmp", "icmp", "wan", 18],
    ["dns-query", "dns", "dns", 6],
    ["intranet-http", "http", "wan", 40],
    ["ntp", "ntp", "wan", 20],
  ] as const;
  let n = 0;
  let batch: StoredResult[] = [];
  for (let at = start; at < now; at += STEP) {
    for (const [check, kind, area, base] of checks) {
      const dip = new Date(at).getUTCHours() === 3;
      const value = base * (dip ? 3 : 1) * (1 + ((n * 7919) % 100) / 500);
      batch.push({
        id: `sim-${n++}`,
        site: "sim",
        probe: "probe-0001",
        check,
        kind,
        area,
        target: "203.0.113.1",
        status: dip && check === "wan-icmp" ? "warn" : "ok",
        at,
        duration_ms: value,
        value,
        loss_pct: kind === "icmp" ? (dip ? 5 : 0) : null,
        metrics: {},
        error_code: null,
        error_message: null,
        seq: n,
        boot_id: "sim",
        mono_ms: at - start,
        received_at: at,
      });
    }
    if (batch.length >= 5000) {
      await store.write({ results: batch, events: [], states: [], health: [] });
      batch = [];
    }
  }
  await store.write({ results: batch, events: [], states: [], health: [] });
  const r0 = Date.now();
  await store.rollUp(now + 120_000);
  const rollup_ms = Date.now() - r0;
  await store.close();
  return { results: n, rollup_ms };
}
