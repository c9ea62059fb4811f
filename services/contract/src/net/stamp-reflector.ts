// STAMP Session-Reflector (RFC 8762 §4.3, unauthenticated mode): answers Session-Sender test
// packets (this probe's stamp check, a router's STAMP/TWAMP-light sender) so another probe or HQ
// can measure the path to this one. Off by default: no listening port unless configured.
//
// Hostile-input rules (anything a peer controls is hostile):
// - allow-list of client prefixes: anything else is dropped silently (no reply, no ICMP);
// - a token bucket per client address (not per port, so changing ports does not buy more);
// - no amplification: the reply is exactly as large as the request (RFC 8762 §4.3: symmetric
//   size), and requests shorter than a test packet get no reply at all;
// - no reflector loops: a packet from our own port number is another reflector's reply.
// State is bounded: at most `max_clients` buckets and sessions, the least recently used evicted.
//
// Sequence numbers: `stateful` (RFC 8762 §4.3.2) numbers the replies of each session (client
// address + port) from 0 with its own counter, which lets the sender tell forward from backward
// loss; `stateless` (§4.3.1) copies the sender's sequence number.
//
// Timestamps: T2 is process.hrtime at the socket callback turned into wall time (Node's UDP
// sockets expose no SO_TIMESTAMP), T3 right before send. T3 − T2 is subtracted by the sender, so
// only the event-loop wake-up between the datagram's arrival and the callback remains in its RTT.
// The Ses-Sender TTL is written as 255: Node cannot read a received datagram's TTL.

import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { BlockList, isIP } from "node:net";
import { Type, type Static } from "@sinclair/typebox";
import type { Logger } from "../log.ts";
import {
  decodeSenderPacket,
  encodeReflectorPacket,
  errorEstimateFor,
  restampReflectorPacket,
  STAMP_PORT,
} from "./stamp-packet.ts";
import { medianWallMinusMonoUs } from "./wall-clock.ts";

/** Config of a STAMP reflector (the probe's `stamp_reflector` section; HQ passes the same shape). */
export const StampReflectorConfigSchema = Type.Object(
  {
    enabled: Type.Boolean({
      default: false,
      description: "Run a STAMP (RFC 8762) Session-Reflector. Off: no port is opened.",
    }),
    address: Type.String({
      default: "",
      description:
        "Local address to listen on, e.g. the WAN-facing address; required when enabled (never all addresses by default).",
    }),
    port: Type.Integer({
      minimum: 1,
      maximum: 65535,
      default: STAMP_PORT,
      description: "UDP port (862 = STAMP/TWAMP).",
    }),
    allow: Type.Array(Type.String({ minLength: 1 }), {
      default: [],
      description:
        "Client prefixes that get replies, e.g. [198.51.100.0/24, 2001:db8::/32]; a bare address is a /32 or /128. Empty: nobody.",
    }),
    mode: Type.Union([Type.Literal("stateful"), Type.Literal("stateless")], {
      default: "stateful",
      description:
        "stateful: own sequence counter per client session (RFC 8762 §4.3.2), so senders see loss per direction; " +
        "stateless: copy the sender's sequence number (§4.3.1).",
    }),
    rate_pps: Type.Number({
      minimum: 0.1,
      maximum: 100000,
      default: 100,
      description:
        "Replies per second per client address (token bucket); above it packets are dropped and counted.",
    }),
    burst: Type.Integer({
      minimum: 1,
      maximum: 100000,
      default: 50,
      description: "Token bucket depth per client.",
    }),
    max_clients: Type.Integer({
      minimum: 1,
      maximum: 100000,
      default: 1024,
      description: "Most client buckets and sessions kept; the least recently seen is forgotten first.",
    }),
    clock_synchronized: Type.Boolean({
      default: false,
      description:
        "This host's clock is synchronized to UTC: sets the S bit, so senders report one-way delay.",
    }),
    clock_error_ms: Type.Number({
      minimum: 0.000001,
      maximum: 1000,
      default: 1,
      description: "Error bound of this host's clock, written in the Error Estimate field (RFC 4656 §4.1.2).",
    }),
  },
  { additionalProperties: false },
);
/** A fully defaulted reflector config. */
export type StampReflectorConfig = Static<typeof StampReflectorConfigSchema>;

/** What the reflector did, for diagnostics and tests. */
export interface StampReflectorCounters {
  received: number;
  reflected: number;
  /** from a source outside the allow-list */
  denied: number;
  /** over the client's rate */
  rate_limited: number;
  /** shorter than a test packet, or from a reflector port */
  malformed: number;
  send_errors: number;
}

/** Why a reflector config cannot be used (the field and a message), or undefined. */
export function stampReflectorConfigProblem(
  config: StampReflectorConfig,
): { field: keyof StampReflectorConfig; message: string } | undefined {
  if (!config.enabled) return undefined;
  if (isIP(config.address) === 0) {
    return {
      field: "address",
      message: `must be an IP address to listen on when enabled (got "${config.address}")`,
    };
  }
  for (const prefix of config.allow) {
    if (parsePrefix(prefix) === undefined) {
      return { field: "allow", message: `"${prefix}" is not an address or prefix (e.g. 198.51.100.0/24)` };
    }
  }
  return undefined;
}

function parsePrefix(text: string): { address: string; bits: number; type: "ipv4" | "ipv6" } | undefined {
  const [address = "", bitsText] = text.split("/");
  const family = isIP(address);
  if (family === 0) return undefined;
  const max = family === 4 ? 32 : 128;
  const bits = bitsText === undefined ? max : Number(bitsText);
  if (!Number.isInteger(bits) || bits < 0 || bits > max) return undefined;
  return { address, bits, type: family === 4 ? "ipv4" : "ipv6" };
}

/** How often a running reflector re-reads the wall-minus-monotonic clock offset. */
const CLOCK_RECHECK_MS = 60_000;

interface Bucket {
  tokens: number;
  refilledAt: number;
}

/** A Session-Reflector with start()/stop(); the constructor only assigns fields. */
export class StampReflector {
  readonly counters: StampReflectorCounters = {
    received: 0,
    reflected: 0,
    denied: 0,
    rate_limited: 0,
    malformed: 0,
    send_errors: 0,
  };
  readonly #config: StampReflectorConfig;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #allow = new BlockList();
  readonly #buckets = new Map<string, Bucket>();
  readonly #sessions = new Map<string, number>();
  #socket: UdpSocket | undefined;
  #offsetUs = 0;
  #clockTimer: NodeJS.Timeout | undefined;

  /** `now` is a monotonic clock in ms (tests pass their own). */
  constructor(config: StampReflectorConfig, log: Logger, now: () => number = () => performance.now()) {
    this.#config = config;
    this.#log = log;
    this.#now = now;
    // Pure computation, no I/O: reflect() works before start() (the lab's impaired responder
    // calls it around its own socket).
    for (const prefix of config.allow) {
      const p = parsePrefix(prefix);
      if (p !== undefined) this.#allow.addSubnet(p.address, p.bits, p.type);
    }
  }

  /** The bound address and port once started (port 0 in the config picks a free one). */
  address(): { address: string; port: number } | undefined {
    const a = this.#socket?.address();
    return a === undefined ? undefined : { address: a.address, port: a.port };
  }

  /** Binds the socket; rejects with a clear message when the config is unusable or the bind fails. */
  async start(): Promise<void> {
    const problem = stampReflectorConfigProblem({ ...this.#config, enabled: true });
    if (problem !== undefined) throw new Error(`stamp_reflector.${problem.field}: ${problem.message}`);
    this.#offsetUs = medianWallMinusMonoUs(5);
    const socket = createSocket({ type: isIP(this.#config.address) === 6 ? "udp6" : "udp4" });
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error): void =>
        reject(
          new Error(
            `stamp reflector cannot bind ${this.#config.address} port ${this.#config.port}: ${error.message}`,
          ),
        );
      socket.once("error", onError);
      socket.bind({ address: this.#config.address, port: this.#config.port, exclusive: true }, () => {
        socket.off("error", onError);
        resolve();
      });
    });
    socket.on("error", (error) => this.#log.warn({ err: error.message }, "stamp reflector: socket error"));
    socket.on("message", (msg, rinfo) =>
      this.#onMessage(msg, rinfo.address, rinfo.port, process.hrtime.bigint()),
    );
    this.#socket = socket;
    // A stepped wall clock (NTP after boot: the Pi has no RTC) moves the offset; re-read it.
    this.#clockTimer = setInterval(() => (this.#offsetUs = medianWallMinusMonoUs(5)), CLOCK_RECHECK_MS);
    this.#clockTimer.unref();
    this.#log.info(
      {
        address: this.#config.address,
        port: this.address()?.port,
        mode: this.#config.mode,
        allow: this.#config.allow,
      },
      "stamp reflector listening",
    );
  }

  /** Closes the socket; idempotent. */
  async stop(): Promise<void> {
    const socket = this.#socket;
    this.#socket = undefined;
    if (this.#clockTimer !== undefined) clearInterval(this.#clockTimer);
    if (socket === undefined) return;
    await new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  #wallMs(at: bigint): number {
    return (Number(at) / 1000 + this.#offsetUs) / 1000;
  }

  /** Handles one datagram; public for unit tests through {@link reflect}. */
  #onMessage(msg: Buffer, address: string, port: number, receivedAt: bigint): void {
    const reply = this.reflect(msg, address, port, this.#wallMs(receivedAt));
    const socket = this.#socket;
    if (reply === undefined || socket === undefined) return;
    restampReflectorPacket(reply, this.#wallMs(process.hrtime.bigint()));
    socket.send(reply, port, address, (error) => {
      if (error) this.counters.send_errors++;
    });
  }

  /**
   * The reply to one datagram from `address`:`port` received at `receivedMs` (Unix ms), or
   * undefined when it gets none. The reply's Timestamp (T3) is set to `receivedMs`; the socket
   * path restamps it right before sending.
   */
  reflect(msg: Buffer, address: string, port: number, receivedMs: number): Buffer | undefined {
    this.counters.received++;
    const client = address.startsWith("::ffff:") && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
    const type = isIP(client) === 6 ? "ipv6" : "ipv4";
    if (!this.#allow.check(client, type)) {
      this.counters.denied++;
      return undefined;
    }
    if (port === this.#config.port || port === STAMP_PORT) {
      this.counters.malformed++;
      return undefined;
    }
    const decoded = decodeSenderPacket(msg);
    if (!decoded.ok) {
      this.counters.malformed++;
      return undefined;
    }
    if (!this.#take(client)) {
      this.counters.rate_limited++;
      return undefined;
    }
    const sender = decoded.packet;
    let sequence = sender.sequence;
    if (this.#config.mode === "stateful") {
      const key = `${client}|${port}`;
      const next = this.#sessions.get(key) ?? 0;
      remember(this.#sessions, key, (next + 1) >>> 0, this.#config.max_clients);
      sequence = next;
    }
    this.counters.reflected++;
    return encodeReflectorPacket(
      {
        sequence,
        timestampMs: receivedMs,
        errorEstimate: errorEstimateFor(this.#config.clock_error_ms, this.#config.clock_synchronized),
        receiveTimestampMs: receivedMs,
        senderSequence: sender.sequence,
        senderTimestampMs: sender.timestampMs,
        senderErrorEstimate: sender.errorEstimate,
        senderTtl: 255,
      },
      // RFC 8762 §4.3: as large as the request, never larger.
      msg.length,
    );
  }

  /** Takes one token from the client's bucket; false when it is empty. */
  #take(client: string): boolean {
    const now = this.#now();
    const bucket = this.#buckets.get(client) ?? { tokens: this.#config.burst, refilledAt: now };
    bucket.tokens = Math.min(
      this.#config.burst,
      bucket.tokens + ((now - bucket.refilledAt) / 1000) * this.#config.rate_pps,
    );
    bucket.refilledAt = now;
    const allowed = bucket.tokens >= 1;
    if (allowed) bucket.tokens -= 1;
    remember(this.#buckets, client, bucket, this.#config.max_clients);
    return allowed;
  }
}

/** Sets `key` as the most recently used entry of a bounded map (Map keeps insertion order). */
function remember<V>(map: Map<string, V>, key: string, value: V, max: number): void {
  map.delete(key);
  map.set(key, value);
  while (map.size > max) {
    const oldest = map.keys().next();
    if (oldest.done === true) break;
    map.delete(oldest.value);
  }
}

/**
 * Starts a reflector from a (defaulted) config; what HQ calls to answer its probes' stamp checks:
 * `const r = await startStampReflector(config, log)`, and `await r.stop()` on shutdown.
 */
export async function startStampReflector(
  config: StampReflectorConfig,
  log: Logger,
): Promise<StampReflector> {
  const reflector = new StampReflector(config, log);
  await reflector.start();
  return reflector;
}
