// Reports written to a folder on a schedule (`reports:` in the HQ config): after each UTC day (or
// week, Monday to Monday) a report per site in every configured format. A period whose files are
// missing when HQ starts is written then: a restart over midnight loses no report. Files are
// written to a temporary name and renamed, so a reader never sees half a PDF.
import { existsSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "../../../contract/src/log.ts";
import type { HistoryReader } from "../history/store.ts";
import type { HqConfig } from "../hq-config.ts";
import { buildReport } from "./build.ts";
import { renderReport, reportFileName } from "./render.ts";

const DAY = 86_400_000;
/** Results of the last minutes of a period may still be in a probe's outbox: wait this long. */
export const GRACE_MS = 10 * 60_000;

/** The last complete period before `now` (UTC days; weeks start on Monday). */
export function lastPeriod(schedule: "daily" | "weekly", now: number): { from: number; to: number } {
  const today = Math.floor(now / DAY) * DAY;
  if (schedule === "daily") return { from: today - DAY, to: today };
  // 1970-01-01 was a Thursday: day d is a Monday when (d + 3) % 7 == 0.
  const days = Math.floor(now / DAY);
  const monday = (days - ((days + 3) % 7)) * DAY;
  return { from: monday - 7 * DAY, to: monday };
}

/** Writes the scheduled reports; start() catches up, then waits for each period's end. */
export class ReportSchedule {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> = Promise.resolve();

  readonly #store: HistoryReader;
  readonly #cfg: NonNullable<HqConfig["reports"]>;
  readonly #log: Logger;
  readonly #now: () => number;

  constructor(
    store: HistoryReader,
    cfg: NonNullable<HqConfig["reports"]>,
    log: Logger,
    now: () => number = Date.now,
  ) {
    this.#store = store;
    this.#cfg = cfg;
    this.#log = log;
    this.#now = now;
  }

  start(): void {
    this.#tick();
  }

  async stop(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  #tick(): void {
    this.#running = this.writeDue().then(
      () => undefined,
      (err: unknown) => this.#log.error({ err: String(err), dir: this.#cfg.dir }, "scheduled report failed"),
    );
    const { to } = lastPeriod(this.#cfg.schedule, this.#now());
    const next = to + (this.#cfg.schedule === "daily" ? DAY : 7 * DAY) + GRACE_MS;
    this.#timer = setTimeout(() => this.#tick(), Math.max(1000, next - this.#now()));
    this.#timer.unref();
  }

  /** Writes every missing file of the last complete period; returns the paths written. */
  async writeDue(): Promise<string[]> {
    const now = this.#now();
    const period = lastPeriod(this.#cfg.schedule, now - GRACE_MS);
    const sites = this.#cfg.sites ?? [...new Set((await this.#store.checks({})).map((c) => c.site))].sort();
    const written: string[] = [];
    for (const site of sites) {
      const dir = join(this.#cfg.dir, site.replace(/[^A-Za-z0-9_.-]/g, "_"));
      const files = this.#cfg.formats.map((f) => ({
        f,
        path: join(dir, reportFileName(site, period.from, this.#cfg.schedule, f)),
      }));
      const missing = files.filter((x) => !existsSync(x.path));
      if (missing.length === 0) continue;
      const report = await buildReport(this.#store, { site, ...period }, now);
      mkdirSync(dir, { recursive: true });
      for (const { f, path } of missing) {
        const tmp = `${path}.tmp-${process.pid}`;
        writeFileSync(tmp, await renderReport(report, f));
        renameSync(tmp, path);
        written.push(path);
      }
      this.#log.info(
        { site, from: new Date(period.from).toISOString(), files: missing.map((m) => m.path) },
        "report written",
      );
    }
    return written;
  }
}
