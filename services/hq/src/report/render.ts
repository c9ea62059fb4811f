// One entry point for every output format of a report.
import type { AvailabilityReport } from "./availability.ts";
import { renderCsv } from "./csv.ts";
import { renderHtml } from "./html.ts";
import { renderPdf } from "./pdf.ts";

/** Output formats of `netprobe hq report` and the schedule. */
export const REPORT_FORMATS = ["pdf", "csv", "html"] as const;
/** An output format. */
export type ReportFormat = (typeof REPORT_FORMATS)[number];

/** The report in `format`, as bytes to write. */
export async function renderReport(r: AvailabilityReport, format: ReportFormat): Promise<Buffer> {
  switch (format) {
    case "html":
      return Buffer.from(renderHtml(r), "utf8");
    case "csv":
      return Buffer.from(renderCsv(r), "utf8");
    case "pdf":
      return renderPdf(renderHtml(r));
  }
}

/** `branch-042-2026-11-01-daily.pdf`: the site (or `fleet`), the period's first day, its kind. */
export function reportFileName(
  site: string | null,
  from: number,
  kind: string,
  format: ReportFormat,
): string {
  const safe = (site ?? "fleet").replace(/[^A-Za-z0-9_.-]/g, "_");
  return `${safe}-${new Date(from).toISOString().slice(0, 10)}-${kind}.${format}`;
}
