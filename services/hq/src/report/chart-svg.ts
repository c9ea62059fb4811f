// The report's trend chart as an SVG string: latency lines of the chosen checks, loss as bars,
// time along the bottom. Drawn on the server so the HTML and the PDF need no script; every label
// passes escapeXml (check names come from a probe's config, and a probe may be hostile).
import type { CheckTrend } from "./availability.ts";
import { formatTime } from "./format.ts";

const COLOURS = ["#1f6feb", "#8250df", "#1a7f37"];
const LOSS = "#cf222e";

/** `s` safe inside SVG/HTML text and attribute values. */
export function escapeXml(s: string): string {
  return s
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;")
    .replaceAll("'", "&#39;");
}

/** A "nice" axis maximum at or above v (1, 2, 5 × 10^n). */
function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/** The chart of `trends` over [from, to]; a note instead of lines when there is no data. */
export function trendChart(
  trends: readonly CheckTrend[],
  from: number,
  to: number,
  bucketMs: number,
): string {
  const W = 720;
  const H = 240;
  const L = 56;
  const R = 48;
  const T = 14;
  const B = 46;
  const x = (t: number) => L + ((W - L - R) * (t - from)) / Math.max(1, to - from);
  let maxLat = 0;
  for (const t of trends)
    for (const p of t.points) if (p.latency_avg_ms !== null) maxLat = Math.max(maxLat, p.latency_avg_ms);
  const latMax = niceMax(maxLat * 1.1);
  const y = (v: number, max: number) => T + (H - T - B) * (1 - v / max);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" class="trend" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="latency and loss over the period">`,
    `<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`,
  ];
  // Grid and axes.
  for (const f of [0, 0.25, 0.5, 0.75, 1]) {
    const gy = y(latMax * f, latMax).toFixed(1);
    parts.push(
      `<line x1="${L}" y1="${gy}" x2="${W - R}" y2="${gy}" stroke="#d0d7de" stroke-width="${f === 0 ? 1.2 : 0.6}"/>`,
    );
    parts.push(
      `<text x="${L - 6}" y="${Number(gy) + 4}" font-size="10" text-anchor="end" fill="#57606a">${escapeXml(String(+(latMax * f).toPrecision(3)))}</text>`,
    );
    parts.push(
      `<text x="${W - R + 6}" y="${Number(gy) + 4}" font-size="10" fill="${LOSS}">${f * 100}%</text>`,
    );
  }
  parts.push(
    `<text x="12" y="${T + (H - T - B) / 2}" font-size="10" fill="#57606a" transform="rotate(-90 12 ${T + (H - T - B) / 2})" text-anchor="middle">latency, ms</text>`,
  );
  for (const f of [0, 0.5, 1]) {
    const t = from + (to - from) * f;
    const anchor = f === 0 ? "start" : f === 1 ? "end" : "middle";
    parts.push(
      `<text x="${x(t).toFixed(1)}" y="${H - B + 14}" font-size="10" text-anchor="${anchor}" fill="#57606a">${escapeXml(formatTime(t))}</text>`,
    );
  }
  if (trends.length === 0 || maxLat === 0) {
    parts.push(
      `<text x="${W / 2}" y="${H / 2}" font-size="13" text-anchor="middle" fill="#57606a">no latency results in this period</text>`,
    );
  }
  // Loss: the mean over the drawn checks per slot, as bars behind the lines.
  const loss = new Map<number, { sum: number; n: number }>();
  for (const t of trends)
    for (const p of t.points)
      if (p.loss_pct !== null) {
        const l = loss.get(p.start) ?? { sum: 0, n: 0 };
        l.sum += p.loss_pct;
        l.n++;
        loss.set(p.start, l);
      }
  const bw = Math.max(1, x(from + bucketMs) - x(from) - 0.5);
  for (const [start, l] of [...loss].sort(([a], [b]) => a - b)) {
    const v = l.sum / l.n;
    if (v <= 0) continue;
    const top = y(Math.min(100, v), 100);
    parts.push(
      `<rect class="loss" x="${x(start).toFixed(1)}" y="${top.toFixed(1)}" width="${bw.toFixed(1)}" height="${(H - B - top).toFixed(1)}" fill="${LOSS}" opacity="0.45"/>`,
    );
  }
  trends.forEach((t, i) => {
    let d = "";
    let prev = -Infinity;
    for (const p of t.points) {
      if (p.latency_avg_ms === null) continue;
      // A gap of more than two buckets (probe offline, no results) breaks the line.
      d += `${p.start - prev > 2 * bucketMs ? "M" : "L"}${(x(p.start) + bw / 2).toFixed(1)} ${y(p.latency_avg_ms, latMax).toFixed(1)}`;
      prev = p.start;
    }
    // Few points (a short period): dots too, or a lone point would draw nothing.
    if (t.points.length <= 60)
      for (const p of t.points)
        if (p.latency_avg_ms !== null)
          parts.push(
            `<circle cx="${(x(p.start) + bw / 2).toFixed(1)}" cy="${y(p.latency_avg_ms, latMax).toFixed(1)}" r="2" fill="${COLOURS[i % COLOURS.length]}"/>`,
          );
    if (d !== "")
      parts.push(
        `<path class="latency" d="${d}" fill="none" stroke="${COLOURS[i % COLOURS.length]}" stroke-width="1.6"/>`,
      );
    const lx = L + i * 165;
    parts.push(`<rect x="${lx}" y="${H - 18}" width="14" height="4" fill="${COLOURS[i % COLOURS.length]}"/>`);
    parts.push(
      `<text x="${lx + 18}" y="${H - 13}" font-size="10" fill="#24292f">${escapeXml(`${t.check} (${t.probe})`.slice(0, 28))}</text>`,
    );
  });
  const lx = L + trends.length * 165;
  parts.push(`<rect x="${lx}" y="${H - 20}" width="10" height="8" fill="${LOSS}" opacity="0.45"/>`);
  parts.push(`<text x="${lx + 14}" y="${H - 13}" font-size="10" fill="#24292f">loss % (right axis)</text>`);
  parts.push("</svg>");
  return parts.join("");
}
