// The ITU-T G.107 E-model (06/2015 edition, §3 and §7): transmission rating R from delay and loss,
// then the estimated MOS (Annex B, equation B-4). All parameters that the probe cannot measure keep
// the G.107 Table 3 defaults, which alone give R = 93.2 (the value G.107 §7.3 quotes).
//
// Codec constants (equipment impairment Ie and packet-loss robustness Bpl) come from
// ITU-T G.113 Appendix I (11/2009), Tables I.1 and I.3:
//   G.711 (PCMU/PCMA) with packet-loss concealment (Appendix I of G.711): Ie = 0,  Bpl = 25.1
//   G.711 without PLC:                                                    Ie = 0,  Bpl = 4.3
//   G.729A + VAD (Annex B), 20 ms packets:                               Ie = 11, Bpl = 19.0
// The probe assumes the phones conceal loss (every current IP phone does), so G.711 uses 25.1.
//
// How the probe maps its measurements onto the model (documented in the README too):
//   T = Ta = mouth-to-ear delay = RTT/2 + packetisation (ptime) + jitter buffer (2 × jitter,
//       at least one ptime) — the classic dimensioning of an adaptive buffer;
//   Tr = 2 × T (round trip in the four-wire loop, for listener echo);
//   Ppl = packet loss in %; BurstR from the observed loss pattern (1 = random loss).

/** Equipment impairment and loss robustness of one codec (G.113 Appendix I). */
export interface CodecImpairment {
  ie: number;
  bpl: number;
}

/** G.113 Appendix I values per codec the probe can offer. */
export const CODEC_IMPAIRMENT: Readonly<Record<"PCMU" | "PCMA" | "G729", CodecImpairment>> = {
  PCMU: { ie: 0, bpl: 25.1 },
  PCMA: { ie: 0, bpl: 25.1 },
  G729: { ie: 11, bpl: 19.0 },
};

/** Inputs of one R computation; anything left out takes the G.107 Table 3 default. */
export interface EModelInput {
  /** Mean one-way delay T (ms); echo path and absolute delay Ta are set equal to it. */
  oneWayDelayMs: number;
  /** Round-trip delay Tr in the 4-wire loop (ms); default 2 × T. */
  roundTripMs?: number;
  /** Packet-loss probability Ppl in percent. */
  lossPct: number;
  /** Burst ratio BurstR (1 for random loss). */
  burstRatio?: number;
  codec: CodecImpairment;
  /** Advantage factor A (0 for wired phones). */
  advantage?: number;
}

// G.107 Table 3 default values.
const SLR = 8;
const RLR = 2;
const STMR = 15;
const LSTR = 18;
const DS = 3;
const TELR = 65;
const WEPL = 110;
const QDU = 1;
const NC = -70;
const NFOR = -64;
const PS = 35;
const PR = 35;

const log10 = Math.log10;

/** The basic signal-to-noise ratio Ro and the simultaneous impairment Is (delay-independent). */
function roAndIs(): { ro: number; is: number; no: number } {
  const olr = SLR + RLR;
  // (7-3) .. (7-7)
  const nfo = NFOR + RLR;
  const pre = PR + 10 * log10(1 + 10 ** ((10 - LSTR) / 10));
  const nor = RLR - 121 + pre + 0.008 * (pre - 35) ** 2;
  const nos = PS - SLR - DS - 100 + 0.004 * (PS - olr - DS - 14) ** 2;
  const no = 10 * log10(10 ** (NC / 10) + 10 ** (nos / 10) + 10 ** (nor / 10) + 10 ** (nfo / 10));
  const ro = 15 - 1.5 * (SLR + no);
  // (7-9) .. (7-10): Iolr
  const xolr = olr + 0.2 * (64 + no - RLR);
  const iolr = 20 * ((1 + (xolr / 8) ** 8) ** (1 / 8) - xolr / 8);
  // (7-11) .. (7-12): Ist with T = 0 in STMRo (the echo term vanishes for TELR = 65 anyway)
  const stmro = -10 * log10(10 ** (-STMR / 10) + 10 ** (-TELR / 10));
  const ist =
    12 * (1 + ((stmro - 13) / 6) ** 8) ** (1 / 8) -
    28 * (1 + ((stmro + 1) / 19.4) ** 35) ** (1 / 35) -
    13 * (1 + ((stmro - 3) / 33) ** 13) ** (1 / 13) +
    29;
  // (7-13) .. (7-16): Iq
  const q = 37 - 15 * log10(QDU);
  const g = 1.07 + 0.258 * q + 0.0602 * q ** 2;
  const y = (ro - 100) / 15 + 46 / 8.4 - g / 9;
  const z = 46 / 30 - g / 40;
  const iq = 15 * log10(1 + 10 ** y + 10 ** z);
  return { ro, is: iolr + ist + iq, no };
}

/** Delay impairment Id = Idte + Idle + Idd (G.107 §7.4). */
function delayImpairment(t: number, tr: number, ro: number, no: number): number {
  // Talker echo (7-18) .. (7-21)
  const terv = TELR - 40 * log10((1 + t / 10) / (1 + t / 150)) + 6 * Math.exp(-0.3 * t ** 2);
  const re = 80 + 2.5 * (terv - 14);
  const roe = -1.5 * (no - RLR);
  const idte = ((roe - re) / 2 + Math.sqrt((roe - re) ** 2 / 4 + 100) - 1) * (1 - Math.exp(-t));
  // Listener echo (7-23) .. (7-24)
  const rle = 10.5 * (WEPL + 7) * (tr + 1) ** -0.25;
  const idle = (ro - rle) / 2 + Math.sqrt((ro - rle) ** 2 / 4 + 169);
  // Absolute delay (7-25) .. (7-27), mT = 100 ms, sT = 1
  let idd = 0;
  if (t > 100) {
    const x = log10(t / 100) / log10(2);
    idd = 25 * ((1 + x ** 6) ** (1 / 6) - 3 * (1 + (x / 3) ** 6) ** (1 / 6) + 2);
  }
  return idte + idle + idd;
}

/** Effective equipment impairment Ie,eff (G.107 (7-29)). */
export function effectiveIe(codec: CodecImpairment, lossPct: number, burstRatio = 1): number {
  const ppl = Math.max(0, Math.min(100, lossPct));
  const burstR = burstRatio > 0 ? burstRatio : 1;
  return codec.ie + (95 - codec.ie) * (ppl / (ppl / burstR + codec.bpl));
}

/** Transmission rating factor R (G.107 (7-1)). */
export function rFactor(input: EModelInput): number {
  const { ro, is, no } = roAndIs();
  const t = Math.max(0, input.oneWayDelayMs);
  const tr = input.roundTripMs ?? 2 * t;
  const id = delayImpairment(t, tr, ro, no);
  const ie = effectiveIe(input.codec, input.lossPct, input.burstRatio);
  return ro - is - id - ie + (input.advantage ?? 0);
}

/** Estimated MOS (conversational quality, CQE) from R (G.107 Annex B, (B-4)). */
export function mosFromR(r: number): number {
  if (r < 0) return 1;
  if (r > 100) return 4.5;
  // The cubic dips just below 1 for R < 6.5; MOS is 1 at worst.
  return Math.max(1, 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6);
}

/**
 * Mouth-to-ear delay the probe feeds into the model: half the RTT, one packet of packetisation,
 * and an adaptive jitter buffer of twice the jitter (at least one packet).
 */
export function oneWayDelayMs(rttMs: number, jitterMs: number, ptimeMs: number): number {
  return rttMs / 2 + ptimeMs + Math.max(2 * jitterMs, ptimeMs);
}

/**
 * BurstR from a loss pattern (G.107 Annex A/(7-30) with a 2-state Markov model): with p =
 * P(loss | previous received) and q = P(received | previous lost), BurstR = 1 / (p + q).
 * `received[i]` is whether packet i arrived. 1 when there is no loss (or only loss).
 */
export function burstRatio(received: readonly boolean[]): number {
  let goodToBad = 0;
  let good = 0;
  let badToGood = 0;
  let bad = 0;
  for (let i = 1; i < received.length; i++) {
    if (received[i - 1]) {
      good++;
      if (!received[i]) goodToBad++;
    } else {
      bad++;
      if (received[i]) badToGood++;
    }
  }
  if (good === 0 || bad === 0 || goodToBad === 0 || badToGood === 0) return 1;
  const p = goodToBad / good;
  const q = badToGood / bad;
  return 1 / (p + q);
}
