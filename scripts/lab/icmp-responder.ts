// The far target's ICMP echo responder: answers echo requests from user space with a known,
// configurable delay, jitter and loss, and reports exactly what it did (ground truth for the
// accuracy bench and the WAN fault tests). This kernel has no netem, so impairment cannot be put
// on a link; the far host ignores echoes itself (net.ipv4.icmp_echo_ignore_all,
// net.ipv6.icmp.echo_ignore_all, set by wan-path.ts) and this process answers instead.
//
//   node scripts/lab/icmp-responder.ts --control /run/netprobe-lab/<lab>/icmp-responder.sock \
//        --address4 203.0.113.200
//
// Control: newline-delimited JSON on a Unix socket (filesystem paths cross namespaces):
//   {"set":{"loss_pct":5,"latency_ms":0,"jitter_ms":0}}  → {"ok":true,"config":{…}}
//   {"stats":true,"reset":false}                          → {"ok":true,"flows":[…]}
//
// Impairment model, per flow (source address + echo identifier, so ping, fping and the probe
// running at the same time each get their own exact share):
// - loss_pct: in every block of 100 requests of a flow, exactly loss_pct of them (fractions carry
//   over to the next block) are dropped at random positions, so 1,000 echoes at 5 % lose exactly
//   50; the drops are reported, so the ground truth never depends on luck.
// - latency_ms: every reply is held this long.
// - jitter_ms: plus a uniform random extra hold in [0, 3 × jitter_ms]; for independent uniform
//   values on [0, a] the mean absolute difference of consecutive values is a / 3, so the RFC 3550
//   style jitter (mean |D|) of the replies is jitter_ms. The hold actually applied (from the
//   request's arrival in this process to the reply's sendto) is measured and reported.

import { createRequire } from "node:module";
import { createServer, type Socket as NetSocket } from "node:net";
import { rmSync } from "node:fs";
import { endianness } from "node:os";
import { parseArgs } from "node:util";
import type * as RawSocket from "raw-socket";

process.title = "icmp-responder";

const { values: args } = parseArgs({
  options: {
    control: { type: "string" },
    address4: { type: "string" },
  },
});
if (args.control === undefined) {
  console.error("icmp-responder: --control PATH is required");
  process.exit(2);
}

/** The impairment in force. */
interface Impairment {
  loss_pct: number;
  latency_ms: number;
  jitter_ms: number;
}

interface Flow {
  family: 4 | 6;
  source: string;
  identifier: number;
  size: number;
  received: number;
  dropped: number;
  replied: number;
  /** Applied holds in ms, in request arrival order (replied requests only). */
  holds: number[];
  blockPosition: number;
  blockDrops: Set<number>;
  carry: number;
}

const MAX_HOLDS = 100_000;
const BLOCK = 100;
let config: Impairment = { loss_pct: 0, latency_ms: 0, jitter_ms: 0 };
const flows = new Map<string, Flow>();

const raw = createRequire(import.meta.url)("raw-socket") as typeof RawSocket;

function filtered(family: 4 | 6, allowedType: number): RawSocket.Socket {
  const socket = raw.createSocket({
    protocol: family === 4 ? raw.Protocol.ICMP : raw.Protocol.ICMPv6,
    addressFamily: family === 4 ? raw.AddressFamily.IPv4 : raw.AddressFamily.IPv6,
    bufferSize: 65_536,
  });
  // Only echo requests reach user space (raw(7) ICMP_FILTER / RFC 3542 ICMP6_FILTER: set bit = block).
  const words = new Uint32Array(family === 4 ? 1 : 8).fill(0xffffffff);
  words[allowedType >> 5] = (words[allowedType >> 5] ?? 0) & ~(1 << (allowedType & 31));
  const filter = Buffer.alloc(words.length * 4);
  words.forEach((w, i) =>
    endianness() === "LE" ? filter.writeUInt32LE(w >>> 0, i * 4) : filter.writeUInt32BE(w >>> 0, i * 4),
  );
  if (family === 4) socket.setOption(255, 1, filter, filter.length);
  else socket.setOption(58, 1, filter, filter.length);
  socket.on("error", (error: Error) => console.error(`icmp-responder: ipv${family}: ${error.message}`));
  return socket;
}

const socket4 = filtered(4, 8);
const socket6 = filtered(6, 128);

socket4.on("message", (datagram: Buffer, source: string) => {
  const receivedAt = process.hrtime.bigint();
  if (datagram.length < 20 || datagram[0]! >> 4 !== 4) return;
  const ihl = (datagram[0]! & 0x0f) * 4;
  const destination = Array.from(datagram.subarray(16, 20)).join(".");
  if (args.address4 !== undefined && destination !== args.address4) return;
  const icmp = datagram.subarray(ihl);
  if (icmp.length < 8 || icmp[0] !== 8 || icmp[1] !== 0) return;
  handle(4, source, icmp, receivedAt);
});

socket6.on("message", (icmp: Buffer, source: string) => {
  const receivedAt = process.hrtime.bigint();
  if (icmp.length < 8 || icmp[0] !== 128 || icmp[1] !== 0) return;
  handle(6, source, icmp, receivedAt);
});

function flowOf(family: 4 | 6, source: string, identifier: number, size: number): Flow {
  const key = `${family} ${source} ${identifier}`;
  let flow = flows.get(key);
  if (flow === undefined) {
    flow = {
      family,
      source,
      identifier,
      size,
      received: 0,
      dropped: 0,
      replied: 0,
      holds: [],
      blockPosition: 0,
      blockDrops: new Set(),
      carry: 0,
    };
    flows.set(key, flow);
  }
  return flow;
}

/** Whether this request of the flow is one of its block's drops (see the file comment). */
function drops(flow: Flow): boolean {
  if (flow.blockPosition === 0) {
    const wanted = flow.carry + config.loss_pct;
    const quota = Math.min(BLOCK, Math.floor(wanted + 1e-9));
    flow.carry = wanted - quota;
    flow.blockDrops.clear();
    while (flow.blockDrops.size < quota) flow.blockDrops.add(Math.floor(Math.random() * BLOCK));
  }
  const dropped = flow.blockDrops.has(flow.blockPosition);
  flow.blockPosition = (flow.blockPosition + 1) % BLOCK;
  return dropped;
}

function handle(family: 4 | 6, source: string, request: Buffer, receivedAt: bigint): void {
  const identifier = request.readUInt16BE(4);
  const flow = flowOf(family, source, identifier, request.length - 8);
  flow.received++;
  if (drops(flow)) {
    flow.dropped++;
    return;
  }
  const reply = Buffer.from(request);
  reply[0] = family === 4 ? 0 : 129;
  reply.writeUInt16BE(0, 2);
  // ICMPv6: the kernel computes the checksum over its pseudo-header (RFC 3542 §3.1).
  if (family === 4) raw.writeChecksum(reply, 2, raw.createChecksum(reply));
  const holdMs = config.latency_ms + (config.jitter_ms > 0 ? Math.random() * 3 * config.jitter_ms : 0);
  const due = receivedAt + BigInt(Math.round(holdMs * 1e6));
  const send = (): void => {
    const socket = family === 4 ? socket4 : socket6;
    socket.send(
      reply,
      0,
      reply.length,
      source,
      () => {
        const applied = Number(process.hrtime.bigint() - receivedAt) / 1e6;
        if (flow.holds.length < MAX_HOLDS) flow.holds.push(applied);
        flow.replied++;
      },
      () => undefined,
    );
  };
  if (holdMs <= 0) {
    send();
    return;
  }
  // Timers fire ≥ 1 ms late at best; the last stretch is spun on setImmediate for sub-ms holds.
  const spin = (): void => {
    if (process.hrtime.bigint() >= due) send();
    else setImmediate(spin);
  };
  const coarse = holdMs - 2;
  if (coarse > 0) setTimeout(spin, coarse);
  else setImmediate(spin);
}

function summary(flow: Flow): Record<string, unknown> {
  const sorted = [...flow.holds].sort((a, b) => a - b);
  const mid = sorted.length / 2;
  const median =
    sorted.length === 0
      ? null
      : sorted.length % 2 === 1
        ? sorted[Math.floor(mid)]
        : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
  let jitter: number | null = null;
  if (flow.holds.length > 1) {
    let total = 0;
    for (let i = 1; i < flow.holds.length; i++) total += Math.abs(flow.holds[i]! - flow.holds[i - 1]!);
    jitter = total / (flow.holds.length - 1);
  }
  const mean = flow.holds.length === 0 ? null : flow.holds.reduce((a, b) => a + b, 0) / flow.holds.length;
  return {
    family: flow.family === 4 ? "ipv4" : "ipv6",
    source: flow.source,
    identifier: flow.identifier,
    payload_bytes: flow.size,
    received: flow.received,
    dropped: flow.dropped,
    replied: flow.replied,
    loss_pct: flow.received === 0 ? null : (100 * flow.dropped) / flow.received,
    hold_p50_ms: median,
    hold_avg_ms: mean,
    hold_jitter_ms: jitter,
  };
}

function number(value: unknown, name: string, max: number): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0 || value > max)
    throw new Error(`${name} must be a number in [0, ${max}]`);
  return value;
}

function command(line: string): unknown {
  const request = JSON.parse(line) as { set?: Partial<Impairment>; stats?: boolean; reset?: boolean };
  if (request.set !== undefined) {
    const next = { ...config, ...request.set };
    config = {
      loss_pct: number(next.loss_pct, "loss_pct", 100),
      latency_ms: number(next.latency_ms, "latency_ms", 60_000),
      jitter_ms: number(next.jitter_ms, "jitter_ms", 10_000),
    };
    // A new loss rate starts a fresh block in every flow.
    for (const flow of flows.values()) {
      flow.blockPosition = 0;
      flow.carry = 0;
    }
    return { ok: true, config };
  }
  if (request.stats === true) {
    const result = { ok: true, config, flows: [...flows.values()].map(summary) };
    if (request.reset === true) flows.clear();
    return result;
  }
  return { ok: true, config };
}

rmSync(args.control, { force: true });
const server = createServer((connection: NetSocket) => {
  let buffered = "";
  connection.setEncoding("utf8");
  connection.on("data", (chunk: string) => {
    buffered += chunk;
    for (let newline = buffered.indexOf("\n"); newline >= 0; newline = buffered.indexOf("\n")) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      let reply: unknown;
      try {
        reply = command(line);
      } catch (error) {
        reply = { ok: false, error: error instanceof Error ? error.message : String(error) };
      }
      connection.write(`${JSON.stringify(reply)}\n`);
    }
  });
  connection.on("error", () => undefined);
});
server.listen(args.control, () => console.error(`icmp-responder: ready on ${args.control}`));

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    server.close();
    socket4.close();
    socket6.close();
    rmSync(args.control!, { force: true });
    process.exit(0);
  });
}
