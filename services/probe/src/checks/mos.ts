// Voice readiness from a ping series: the simplified E-model that check_icmp (nagios-plugins /
// monitoring-plugins, "Jitter, MOS and Score support") and PingPlotter use. It is a shortcut, not
// ITU-T G.107: it has no codec, no jitter buffer and no one-way delay, only what a ping sees.
//
//   effective latency  Le = RTT_avg + 2 × jitter + 10 ms   (10 ms for codec/protocol delay)
//   R = 93.2 − Le / 40              if Le < 160 ms
//   R = 93.2 − (Le − 120) / 10      otherwise
//   R = R − 2.5 × loss_pct, clamped to [0, 100]
//   MOS = 1 + 0.035 R + 7·10⁻⁶ R (R − 60)(100 − R)        (the R→MOS mapping of G.107 Annex B)
//
// 93.2 is the G.107 default R (R0 − Is) with no impairment; the R→MOS curve peaks at 4.5 (R =
// 100), so a clean LAN path scores about 4.4. The phone area's call test uses the full,
// codec-aware E-model instead.

/** The simplified E-model's R factor (0–100) from mean RTT, jitter (ms) and loss (%). */
export function pingRFactor(rttAvgMs: number, jitterMs: number, lossPct: number): number {
  const effective = rttAvgMs + 2 * jitterMs + 10;
  const r = effective < 160 ? 93.2 - effective / 40 : 93.2 - (effective - 120) / 10;
  return Math.min(100, Math.max(0, r - 2.5 * lossPct));
}

/** ITU-T G.107 Annex B: MOS (1–4.5) from an R factor. */
export function mosFromR(r: number): number {
  if (r <= 0) return 1;
  if (r >= 100) return 4.5;
  return 1 + 0.035 * r + 7e-6 * r * (r - 60) * (100 - r);
}

/** MOS estimate from a ping series; with every packet lost (no RTT) it is 1. */
export function pingMos(rttAvgMs: number | undefined, jitterMs: number | undefined, lossPct: number): number {
  if (rttAvgMs === undefined) return 1;
  return mosFromR(pingRFactor(rttAvgMs, jitterMs ?? 0, lossPct));
}
