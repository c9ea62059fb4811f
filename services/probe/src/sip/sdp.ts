// SDP (RFC 4566) for one audio stream, offer/answer per RFC 3264: the probe offers its codecs on
// one port and reads back where the far end wants the media and which codec it picked.

/** Audio codecs the probe can offer: static RTP payload types of RFC 3551 §6. */
export const CODECS = {
  PCMU: { payloadType: 0, clockRate: 8000, bytesPerMs: 8 },
  PCMA: { payloadType: 8, clockRate: 8000, bytesPerMs: 8 },
  G729: { payloadType: 18, clockRate: 8000, bytesPerMs: 1 },
} as const;
/** A codec name as used in config and SDP. */
export type CodecName = keyof typeof CODECS;
/** Every codec name. */
export const CODEC_NAMES = Object.keys(CODECS) as CodecName[];

/** The offer the probe sends. */
export interface SdpOffer {
  sessionId: number;
  address: string;
  port: number;
  codecs: readonly CodecName[];
  ptimeMs: number;
}

/** Builds the SDP body of an INVITE. */
export function buildOffer(offer: SdpOffer): string {
  const ipVersion = offer.address.includes(":") ? "IP6" : "IP4";
  const pts = offer.codecs.map((c) => CODECS[c].payloadType);
  return (
    [
      "v=0",
      `o=netprobe ${offer.sessionId} ${offer.sessionId} IN ${ipVersion} ${offer.address}`,
      "s=netprobe test call",
      `c=IN ${ipVersion} ${offer.address}`,
      "t=0 0",
      `m=audio ${offer.port} RTP/AVP ${pts.join(" ")}`,
      ...offer.codecs.map((c) => `a=rtpmap:${CODECS[c].payloadType} ${c}/${CODECS[c].clockRate}`),
      `a=ptime:${offer.ptimeMs}`,
      "a=sendrecv",
    ].join("\r\n") + "\r\n"
  );
}

/** What the probe needs from an SDP answer. */
export interface SdpAnswer {
  /** Connection address of the audio stream (media-level c= wins over session-level). */
  address: string | undefined;
  port: number;
  /** The first payload type of the m= line that the probe offered, with its codec. */
  codec: CodecName | undefined;
  payloadType: number | undefined;
  /** sendrecv / sendonly / recvonly / inactive (RFC 3264 §6.1), sendrecv when absent. */
  direction: "sendrecv" | "sendonly" | "recvonly" | "inactive";
  ptimeMs: number | undefined;
}

/** Parses an answer; a reason string when there is no usable audio stream. Never throws. */
export function parseAnswer(body: string, offered: readonly CodecName[]): SdpAnswer | { error: string } {
  const lines = body.split(/\r?\n/).map((l) => l.trim());
  let sessionAddress: string | undefined;
  let mediaAddress: string | undefined;
  let inAudio = false;
  let seenAudio = false;
  let port: number | undefined;
  let formats: number[] = [];
  const rtpmap = new Map<number, string>();
  let direction: SdpAnswer["direction"] = "sendrecv";
  let sessionDirection: SdpAnswer["direction"] | undefined;
  let ptimeMs: number | undefined;
  for (const line of lines) {
    if (line.length < 2 || line[1] !== "=") continue;
    const type = line[0];
    const value = line.slice(2);
    if (type === "m") {
      if (seenAudio) {
        inAudio = false;
        continue;
      }
      const m = /^audio (\d{1,5})(?:\/\d+)? (\S+)((?: \d{1,3})*)\s*$/.exec(value);
      inAudio = m !== null;
      if (m) {
        seenAudio = true;
        port = Number(m[1]);
        formats = (m[3] ?? "").trim().split(/\s+/).filter(Boolean).map(Number);
      }
      continue;
    }
    if (type === "c") {
      const c = /^IN IP[46] ([0-9A-Fa-f.:]+)(?:\/\d+)*$/.exec(value);
      if (!c) continue;
      if (inAudio) mediaAddress = c[1];
      else if (!seenAudio) sessionAddress = c[1];
      continue;
    }
    if (type !== "a" || (seenAudio && !inAudio)) continue;
    const map = /^rtpmap:(\d{1,3}) ([^/\s]+)\/(\d+)/.exec(value);
    if (map && inAudio) rtpmap.set(Number(map[1]), (map[2] ?? "").toUpperCase());
    if (/^(sendrecv|sendonly|recvonly|inactive)$/.test(value)) {
      if (inAudio) direction = value as SdpAnswer["direction"];
      else sessionDirection = value as SdpAnswer["direction"];
    }
    const pt = /^ptime:(\d{1,4})$/.exec(value);
    if (pt && inAudio) ptimeMs = Number(pt[1]);
  }
  if (!seenAudio || port === undefined) return { error: "no audio stream in the SDP answer" };
  if (port > 65535) return { error: `invalid audio port ${port}` };
  if (port === 0) return { error: "the far end rejected the audio stream (port 0)" };
  if (sessionDirection !== undefined && direction === "sendrecv" && !lines.some((l) => l === "a=sendrecv"))
    direction = sessionDirection;
  let codec: CodecName | undefined;
  let payloadType: number | undefined;
  for (const pt of formats) {
    const name = rtpmap.get(pt) ?? CODEC_NAMES.find((c) => CODECS[c].payloadType === pt);
    const known = CODEC_NAMES.find((c) => c === name || (CODECS[c].payloadType === pt && name === undefined));
    if (known !== undefined && offered.includes(known)) {
      codec = known;
      payloadType = pt;
      break;
    }
  }
  return { address: mediaAddress ?? sessionAddress, port, codec, payloadType, direction, ptimeMs };
}
