// Typings for dns-packet 5.6 (mafintosh/dns-packet), which ships none. Only what netprobe uses is
// declared; names and shapes follow its index.js. `decode` throws on malformed input: callers go
// through net/dns-message.ts, which never lets that escape.
declare module "dns-packet" {
  /** A question: name without the trailing dot, type and class as names ("A", "IN"). */
  export interface Question {
    name: string;
    type: string;
    class?: string;
  }

  /** A resource record; `data` depends on `type` (string for A/AAAA/CNAME/NS/PTR, objects otherwise). */
  export interface Answer {
    name: string;
    type: string;
    class?: string;
    ttl?: number;
    flush?: boolean;
    data?: unknown;
    /** OPT pseudo-record only. */
    udpPayloadSize?: number;
    extendedRcode?: number;
    ednsVersion?: number;
    flags?: number;
    flag_do?: boolean;
    options?: unknown[];
  }

  /** A message to encode. */
  export interface Packet {
    id?: number;
    type?: "query" | "response";
    flags?: number;
    rcode?: string;
    questions?: Question[];
    answers?: Answer[];
    authorities?: Answer[];
    additionals?: Answer[];
  }

  /** A decoded message: the header flags are also split out. */
  export interface DecodedPacket extends Packet {
    id: number;
    type: "query" | "response";
    flags: number;
    flag_qr: boolean;
    opcode: string;
    flag_aa: boolean;
    flag_tc: boolean;
    flag_rd: boolean;
    flag_ra: boolean;
    flag_z: boolean;
    flag_ad: boolean;
    flag_cd: boolean;
    rcode: string;
    questions: Question[];
    answers: Answer[];
    authorities: Answer[];
    additionals: Answer[];
  }

  export const AUTHORITATIVE_ANSWER: number;
  export const TRUNCATED_RESPONSE: number;
  export const RECURSION_DESIRED: number;
  export const RECURSION_AVAILABLE: number;
  export const AUTHENTIC_DATA: number;
  export const CHECKING_DISABLED: number;
  export const DNSSEC_OK: number;

  export function encode(packet: Packet): Buffer;
  export function decode(buf: Buffer): DecodedPacket;
  /** encode with the 2-byte length prefix of DNS over TCP (RFC 1035 §4.2.2). */
  export function streamEncode(packet: Packet): Buffer;
}
