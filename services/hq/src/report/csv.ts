// The report as CSV (RFC 4180): one block per section, each with its own header row and the
// section's name in the first column, blocks separated by an empty line — one file a spreadsheet
// opens whole. Times are ISO 8601 UTC, durations in seconds, so the numbers stay numbers.
import type { AreaAvailability, AvailabilityReport } from "./availability.ts";

/** One CSV field; quoted when it holds a separator, a quote or a line break. A leading =, +, -
 *  or @ is prefixed with ' so a spreadsheet does not run a hostile reason as a formula. */
export function csvField(v: string | number | null): string {
  if (v === null) return "";
  let s = String(v);
  if (typeof v === "string" && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
const sec = (ms: number | null): number | null => (ms === null ? null : Math.round(ms / 1000));

function availability(a: Omit<AreaAvailability, "area">): (string | number | null)[] {
  return [
    a.availability_pct,
    sec(a.down_ms),
    sec(a.degraded_ms),
    sec(a.observed_ms),
    a.incidents,
    sec(a.mttr_ms),
  ];
}
const AVAIL = ["availability_pct", "down_s", "degraded_s", "observed_s", "incidents", "mttr_s"];

/** The report as CSV text (CRLF line ends, as RFC 4180 says). */
export function renderCsv(r: AvailabilityReport): string {
  const blocks: (string | number | null)[][][] = [
    [
      ["section", "title", "site", "from", "to", "generated_at", ...AVAIL],
      [
        "report",
        r.title,
        r.site ?? "all",
        iso(r.from),
        iso(r.to),
        iso(r.generated_at),
        ...availability(r.overall),
      ],
    ],
    [
      ["section", "site", "probes", ...AVAIL],
      ...r.sites.map((s) => ["site", s.site, s.probes, ...availability(s)]),
    ],
    [["section", "area", ...AVAIL], ...r.areas.map((a) => ["area", a.area, ...availability(a)])],
    [
      ["section", "site", "probe", "start", "end", "duration_s", "root_area", "areas", "reason"],
      ...r.incidents.map((i) => [
        "incident",
        i.site,
        i.probe,
        iso(i.start),
        iso(i.end),
        sec(i.duration_ms),
        i.root_area,
        i.areas.join(" "),
        i.reason,
      ]),
    ],
    [
      [
        "section",
        "site",
        "probe",
        "check",
        "kind",
        "area",
        "results",
        "failed",
        "fail_pct",
        "latency_avg_ms",
        "latency_p95_max_ms",
        "loss_avg_pct",
      ],
      ...r.worst_checks.map((c) => [
        "worst_check",
        c.site,
        c.probe,
        c.check,
        c.kind,
        c.area,
        c.results,
        c.failed,
        c.fail_pct,
        c.latency_avg_ms,
        c.latency_p95_max_ms,
        c.loss_avg_pct,
      ]),
    ],
    [
      ["section", "site", "probe", "check", "start", "results", "latency_avg_ms", "loss_pct"],
      ...r.trends.flatMap((t) =>
        t.points.map((p) => [
          "trend",
          t.site,
          t.probe,
          t.check,
          iso(p.start),
          p.results,
          p.latency_avg_ms,
          p.loss_pct,
        ]),
      ),
    ],
  ];
  return (
    blocks.map((rows) => rows.map((row) => row.map(csvField).join(",")).join("\r\n")).join("\r\n\r\n") +
    "\r\n"
  );
}
