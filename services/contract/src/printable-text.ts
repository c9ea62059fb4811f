/**
 * Text a peer chose (a SIP reason phrase, an HTTP status text, a DNS TXT record, an LLDP system
 * name, a certificate's subject…) made safe to store, publish and print. A hostile server's reply
 * must not be able to retitle a technician's terminal (`ESC ] 0 ; … BEL`), clear it (`ESC [ 2 J`)
 * or reorder what it shows (Unicode bidi overrides, the "Trojan Source" trick, CVE-2021-42574).
 *
 * One function for every source (checks, decoders) and one for every sink (`netprobe status`,
 * `netprobe hq watch`), so HQ and the probe agree on what "printable" means.
 */

/** C0, DEL and C1 controls (Unicode category Cc), and the bidi embeddings, overrides and isolates. */
const UNSAFE = /[\p{Cc}\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu;

/** A peer's text with every control character (C0, ESC, DEL, C1) and bidi control replaced by "?". */
export function printable(text: string): string {
  return text.replace(UNSAFE, "?");
}

/** Our own colours (SGR: `ESC [ … m`) survive; every other control is replaced. Tab and newline are kept. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const UNSAFE_FOR_TERMINAL = /\x1b\[[0-9;]*m|[\t\n]|[\p{Cc}\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu;

/**
 * What a terminal may be sent of `text`: the last line of defence at a print point, for strings
 * that reached it some other way than through `printable` (an older probe's payload, a database
 * row). Keeps newlines, tabs and colour (SGR) sequences, so the caller's own formatting survives;
 * a peer's colour code survives too, but it can only colour text, not move the cursor or retitle.
 */
export function terminalSafe(text: string): string {
  return text.replace(UNSAFE_FOR_TERMINAL, (m) => (m.length > 1 || m === "\t" || m === "\n" ? m : "?"));
}
