// The report as one self-contained HTML page (inline CSS and SVG, no script, no external asset):
// readable in a mail client, printable, and what pdf.ts hands to Chromium.
import type { AreaAvailability, AvailabilityReport } from "./availability.ts";
import { escapeXml as esc, trendChart } from "./chart-svg.ts";
import { formatMs, formatPct, formatSpan, formatTime } from "./format.ts";

const STYLE = `
  @page { size: A4; margin: 14mm 12mm; }
  body { font: 12px/1.45 "DejaVu Sans", system-ui, sans-serif; color: #24292f; margin: 0 auto; max-width: 780px; padding: 16px; }
  h1 { font-size: 20px; margin: 0 0 4px; }
  h2 { font-size: 14px; margin: 18px 0 6px; border-bottom: 1px solid #d0d7de; padding-bottom: 2px; }
  .period { color: #57606a; margin: 0 0 10px; }
  .kpis { display: flex; gap: 12px; margin: 8px 0; }
  .kpi { border: 1px solid #d0d7de; border-radius: 6px; padding: 6px 12px; min-width: 120px; }
  .kpi b { display: block; font-size: 18px; }
  table { border-collapse: collapse; width: 100%; font-size: 11px; page-break-inside: auto; }
  tr { page-break-inside: avoid; }
  th, td { text-align: left; padding: 3px 6px; border-bottom: 1px solid #eaeef2; vertical-align: top; }
  th { background: #f6f8fa; font-weight: 600; }
  td.n, th.n { text-align: right; white-space: nowrap; }
  table.incidents td:nth-child(-n + 5) { white-space: nowrap; }
  .bad { color: #cf222e; font-weight: 600; }
  .none { color: #57606a; font-style: italic; }
  footer { margin-top: 18px; color: #57606a; font-size: 10px; }
`;

function table(
  head: readonly string[],
  rows: readonly (readonly string[])[],
  numeric: ReadonlySet<number>,
  cls = "",
): string {
  const th = head.map((h, i) => `<th${numeric.has(i) ? ' class="n"' : ""}>${esc(h)}</th>`).join("");
  const body = rows
    .map((r) => `<tr>${r.map((c, i) => `<td${numeric.has(i) ? ' class="n"' : ""}>${c}</td>`).join("")}</tr>`)
    .join("\n");
  return `<table${cls ? ` class="${cls}"` : ""}><thead><tr>${th}</tr></thead><tbody>${body}</tbody></table>`;
}

const pctCell = (v: number | null): string =>
  v !== null && v < 99.9 ? `<span class="bad">${esc(formatPct(v))}</span>` : esc(formatPct(v));

function availabilityRow(name: string, a: Omit<AreaAvailability, "area">): string[] {
  return [
    esc(name),
    pctCell(a.availability_pct),
    esc(formatSpan(a.down_ms)),
    esc(formatSpan(a.degraded_ms)),
    esc(formatSpan(a.observed_ms)),
    String(a.incidents),
    esc(a.mttr_ms === null ? "—" : formatSpan(a.mttr_ms)),
  ];
}
const AVAIL_HEAD = ["", "availability", "down", "degraded", "observed", "incidents", "MTTR"];
const AVAIL_NUM = new Set([1, 2, 3, 4, 5, 6]);

/** The report as an HTML document. */
export function renderHtml(r: AvailabilityReport): string {
  const period = `${formatTime(r.from)} – ${formatTime(r.to)} (${formatSpan(r.to - r.from)})`;
  const o = r.overall;
  const kpi = (label: string, value: string) => `<div class="kpi">${esc(label)}<b>${esc(value)}</b></div>`;
  const incidents =
    r.incidents.length === 0
      ? '<p class="none">No incident in this period.</p>'
      : table(
          ["start", "end", "duration", "site / probe", "root area", "areas", "reason"],
          r.incidents.map((i) => [
            esc(formatTime(i.start)),
            i.end === null ? '<span class="bad">ongoing</span>' : esc(formatTime(i.end)),
            esc(formatSpan(i.duration_ms)),
            esc(`${i.site} / ${i.probe}`),
            esc(i.root_area.toUpperCase()),
            esc(i.areas.join(", ")),
            esc(i.reason),
          ]),
          new Set([2]),
          "incidents",
        );
  const worst =
    r.worst_checks.length === 0
      ? '<p class="none">No results in this period.</p>'
      : table(
          ["check", "site / probe", "area", "results", "failed", "latency avg", "worst p95", "loss avg"],
          r.worst_checks.map((c) => [
            esc(`${c.check} (${c.kind})`),
            esc(`${c.site} / ${c.probe}`),
            esc(c.area),
            String(c.results),
            c.failed > 0 ? `<span class="bad">${c.failed} (${c.fail_pct.toFixed(2)} %)</span>` : "0",
            esc(formatMs(c.latency_avg_ms)),
            esc(formatMs(c.latency_p95_max_ms)),
            esc(formatPct(c.loss_avg_pct)),
          ]),
          new Set([3, 4, 5, 6, 7]),
          "worst",
        );
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"/>
<meta name="viewport" content="width=device-width, initial-scale=1"/>
<title>${esc(r.title)}</title><style>${STYLE}</style></head>
<body>
<h1>${esc(r.title)}</h1>
<p class="period">Period: ${esc(period)}</p>
<div class="kpis">${kpi("Availability", formatPct(o.availability_pct))}${kpi("Incidents", String(o.incidents))}${kpi("MTTR", o.mttr_ms === null ? "—" : formatSpan(o.mttr_ms))}${kpi("Down", formatSpan(o.down_ms))}</div>
<h2>Availability per site</h2>
${
  r.sites.length === 0
    ? '<p class="none">No area state was reported in this period.</p>'
    : table(
        ["site", ...AVAIL_HEAD.slice(1), "probes"],
        r.sites.map((s) => [...availabilityRow(s.site, s), String(s.probes)]),
        new Set([...AVAIL_NUM, 7]),
        "sites",
      )
}
<h2>Availability per area</h2>
${
  r.areas.length === 0
    ? '<p class="none">No area state was reported in this period.</p>'
    : table(
        ["area", ...AVAIL_HEAD.slice(1)],
        r.areas.map((a) => availabilityRow(a.area.toUpperCase(), a)),
        AVAIL_NUM,
        "areas",
      )
}
<h2>Incidents</h2>
${incidents}
<h2>Latency and loss</h2>
${trendChart(r.trends, r.from, r.to, r.trend_bucket_ms)}
<h2>Worst checks</h2>
${worst}
<footer>Availability: time an area was ok or degraded over the time its state was known; down: failing.
An incident is a run of overlapping failures of one site; its root area failed first. MTTR: mean
duration of the incidents that ended in the period. Generated ${esc(formatTime(r.generated_at))} by netprobe HQ.</footer>
</body></html>
`;
}
