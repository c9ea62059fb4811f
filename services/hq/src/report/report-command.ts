// `netprobe hq report`: an availability report from HQ's history, as PDF, CSV or HTML.
import { existsSync, writeFileSync } from "node:fs";
import { Command, Option } from "commander";
import { sqliteHistoryStore } from "../history/sqlite-store.ts";
import { buildReport } from "./build.ts";
import { PdfError } from "./pdf.ts";
import { REPORT_FORMATS, renderReport, type ReportFormat } from "./render.ts";

const EXIT_USAGE = 2;
/** Retention is the writer's business; a reader applies none. */
const NO_RETENTION = { raw_days: 36_500, rollup_days: 36_500, event_days: 36_500 };

/** `2026-11-01`, `2026-11-01T12:00Z` … as ms; null when unreadable. */
export function parseWhen(s: string): number | null {
  const t = Date.parse(/^\d{4}-\d{2}-\d{2}$/.test(s) ? `${s}T00:00:00Z` : s);
  return Number.isNaN(t) ? null : t;
}

interface ReportFlags {
  db: string;
  site?: string;
  from: string;
  to?: string;
  format: ReportFormat;
  out?: string;
}

/** The `report` subcommand of `netprobe hq`. */
export function reportCommand(): Command {
  return new Command("report")
    .description("availability report of a site (or every site) for a period, from HQ's history")
    .requiredOption("--db <file>", "HQ's SQLite history file (history.sqlite.path of `hq serve`)")
    .option("--site <site>", "the site (default: every site)")
    .requiredOption("--from <time>", "period start: 2026-11-01 or an ISO 8601 time (UTC unless it says)")
    .option("--to <time>", "period end (default: now)")
    .addOption(new Option("--format <format>", "output format").choices(REPORT_FORMATS).default("html"))
    .option("--out <file>", "write here instead of standard output")
    .action(async (flags: ReportFlags) => {
      const from = parseWhen(flags.from);
      const to = flags.to === undefined ? Date.now() : parseWhen(flags.to);
      if (from === null || to === null || !(from < to)) {
        console.error("--from and --to: dates or ISO 8601 times, --from before --to");
        process.exit(EXIT_USAGE);
      }
      // Opening a missing file would create an empty store and report 0 incidents: refuse.
      if (!existsSync(flags.db)) {
        console.error(`--db: ${flags.db} does not exist`);
        process.exit(EXIT_USAGE);
      }
      const store = sqliteHistoryStore(flags.db, NO_RETENTION);
      try {
        await store.open();
        const report = await buildReport(store, { site: flags.site ?? null, from, to });
        const bytes = await renderReport(report, flags.format);
        if (flags.out === undefined) process.stdout.write(bytes);
        else writeFileSync(flags.out, bytes);
      } catch (err) {
        console.error(err instanceof PdfError ? err.message : `cannot build the report: ${String(err)}`);
        process.exitCode = 1;
      } finally {
        await store.close();
      }
    });
}
