// The CSV a stakeholder opens in a spreadsheet: quoting, numbers as numbers, no formula injection.
import { describe, expect, it } from "vitest";
import { computeReport } from "../../../../services/hq/src/report/availability.ts";
import { csvField, renderCsv } from "../../../../services/hq/src/report/csv.ts";

const T = Date.parse("2026-11-01T00:00:00Z");
const H = 3_600_000;

describe("report CSV", () => {
  it("quotes separators and quotes, neutralises formulas", () => {
    expect(csvField('say "hi", then go')).toBe('"say ""hi"", then go"');
    expect(csvField('=HYPERLINK("http://x")')).toBe('"\'=HYPERLINK(""http://x"")"');
    expect(csvField("-1")).toBe("'-1");
    expect(csvField(-1)).toBe("-1");
    expect(csvField(null)).toBe("");
  });

  it("one block per section; the incident row carries the hand-checkable numbers", () => {
    const r = computeReport({
      site: "branch-042",
      from: T,
      to: T + 2 * H,
      generated_at: T + 2 * H,
      changes: [
        { site: "branch-042", probe: "p1", area: "wan", at: T - H, from: "unknown", to: "ok", reason: "ok" },
        {
          site: "branch-042",
          probe: "p1",
          area: "wan",
          at: T + H,
          from: "ok",
          to: "failing",
          reason: "no route, ISP down",
        },
        {
          site: "branch-042",
          probe: "p1",
          area: "wan",
          at: T + H + 90_000,
          from: "failing",
          to: "ok",
          reason: "ok",
        },
      ],
      buckets: [],
      bucket_ms: H,
    });
    const csv = renderCsv(r);
    const blocks = csv.trimEnd().split("\r\n\r\n");
    expect(blocks.map((b) => b.split("\r\n")[0]!.split(",")[0])).toEqual(Array(6).fill("section"));
    // 90 s down of 7200 s → 98.75 %.
    expect(blocks[0]!.split("\r\n")[1]).toBe(
      "report,Network availability — branch-042,branch-042,2026-11-01T00:00:00.000Z,2026-11-01T02:00:00.000Z,2026-11-01T02:00:00.000Z,98.75,90,0,7200,1,90",
    );
    expect(blocks[3]!.split("\r\n")[1]).toBe(
      'incident,branch-042,p1,2026-11-01T01:00:00.000Z,2026-11-01T01:01:30.000Z,90,wan,wan,"no route, ISP down"',
    );
  });
});
