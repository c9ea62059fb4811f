// The HTML report: self-contained, every probe-supplied string escaped, the sections a reader
// looks for present.
import { describe, expect, it } from "vitest";
import { computeReport } from "../../../../services/hq/src/report/availability.ts";
import { renderHtml } from "../../../../services/hq/src/report/html.ts";

const T = Date.parse("2026-11-01T00:00:00Z");
const H = 3_600_000;
const hostile = '<img src=x onerror="alert(1)">';

describe("report HTML", () => {
  const r = computeReport({
    site: "branch-042",
    from: T,
    to: T + 2 * H,
    generated_at: T + 2 * H,
    changes: [
      { site: "branch-042", probe: "p1", area: "dns", at: T - H, from: "unknown", to: "ok", reason: "" },
      { site: "branch-042", probe: "p1", area: "dns", at: T + H, from: "ok", to: "failing", reason: hostile },
    ],
    buckets: [0, 1].map((i) => ({
      site: "branch-042",
      probe: "p1",
      check: `<b>dns</b>`,
      kind: "dns",
      area: "dns",
      start: T + i * H,
      count: 60,
      ok: 60,
      warn: 0,
      fail: 0,
      latency_avg_ms: 5 + i,
      latency_p95_ms: 9,
      loss_pct: 0,
    })),
    bucket_ms: H,
  });
  const html = renderHtml(r);

  it("escapes every string a probe chose", () => {
    expect(html).not.toContain("<img");
    expect(html).not.toContain("<b>dns");
    expect(html).toContain("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;");
  });

  it("is self-contained: no script, no external reference", () => {
    expect(html).not.toMatch(/<script|<link|src="http|href="http|@import/i);
  });

  it("has the title, period, tables, incident list and one chart", () => {
    expect(html).toContain("<h1>Network availability — branch-042</h1>");
    expect(html).toContain("Period: 2026-11-01 00:00 UTC – 2026-11-01 02:00 UTC (2 h 00 min)");
    expect(html).toContain('class="areas"');
    expect(html).toContain('class="incidents"');
    expect(html).toMatch(/<span class="bad">ongoing<\/span>/);
    expect(html.match(/<svg /g)).toHaveLength(1);
    expect(html).toMatch(/<path class="latency" d="M[\d.]+ [\d.]+L/);
    // 1 h down of 2 h observed.
    expect(html).toContain('<span class="bad">50.00 %</span>');
  });
});
