// How the report writes times, durations and percentages: the same words in HTML, CSV and PDF.

/** `2026-12-03 17:41 UTC` (seconds only when they are not zero). */
export function formatTime(ms: number): string {
  const iso = new Date(ms).toISOString();
  const sec = iso.slice(17, 19);
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)}${sec === "00" ? "" : `:${sec}`} UTC`;
}

/** `3 d 4 h`, `2 h 05 min`, `4 min 10 s`, `12 s`: the two largest units a reader needs. */
export function formatSpan(ms: number): string {
  const s = Math.round(ms / 1000);
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (d > 0) return `${d} d ${h} h`;
  if (h > 0) return `${h} h ${String(m).padStart(2, "0")} min`;
  if (m > 0) return `${m} min ${String(sec).padStart(2, "0")} s`;
  return `${sec} s`;
}

/** `99.95 %`, or `—` when there is no number. */
export function formatPct(v: number | null): string {
  return v === null ? "—" : `${v.toFixed(2)} %`;
}

/** `12.3 ms`, or `—`. */
export function formatMs(v: number | null): string {
  return v === null ? "—" : `${v < 10 ? v.toFixed(2) : v.toFixed(1)} ms`;
}
