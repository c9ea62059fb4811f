// The far target's STAMP reflector (RFC 8762), with the WAN impairment faults applied in user
// space and exact ground truth, as icmp-responder.ts does for echo: the product's reflector
// (services/contract/src/net/stamp-reflector.ts, stateful mode) decides each reply; around it this
// process drops and holds packets per direction.
//
//   node scripts/lab/stamp-responder.ts --control /run/netprobe-lab/<lab>/stamp-responder.sock \
//        --address4 203.0.113.200 --address6 2001:db8:14::200
//
// Control (newline-delimited JSON on a Unix socket):
//   {"set":{"loss_pct":5,"latency_ms":30,"jitter_ms":10}} → {"ok":true,"config":{…}}
//   {"stats":true,"reset":false}                            → {"ok":true,"flows":[…]}
//
// Impairment, per flow (client address + port) and per direction:
// - loss_pct: forward, exactly loss_pct of every block of 100 arriving test packets is dropped
//   before the reflector sees them (so its sequence counter skips nothing); backward, exactly
//   loss_pct of every 100 reflected packets is dropped after the reflector numbered them. Both are
//   reported by sender sequence number.
// - latency_ms: half is held before T2 (forward), half after T3 (backward): the STAMP RTT
//   (T4 − T1) − (T3 − T2) sees all of it, and each one-way delay its half.
// - jitter_ms: plus, per direction, a uniform extra hold in [0, 3 × jitter_ms]: the mean absolute
//   difference of consecutive independent uniform values on [0, a] is a / 3, so each direction's
//   RFC 3550 jitter is jitter_ms. The holds actually applied are measured and reported.

import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { rmSync } from "node:fs";
import { createServer, type Socket as NetSocket } from "node:net";
import { parseArgs } from "node:util";
import { silentLogger } from "../../services/contract/src/log.ts";
import { restampReflectorPacket, STAMP_PORT } from "../../services/contract/src/net/stamp-packet.ts";
import { StampReflector } from "../../services/contract/src/net/stamp-reflector.ts";
import { medianWallMinusMonoUs } from "../../services/contract/src/net/wall-clock.ts";

process.title = "stamp-responder";

const { values: args } = parseArgs({
  options: {
    control: { type: "string" },
    address4: { type: "string" },
    address6: { type: "string" },
  },
});
if (args.control === undefined || args.address4 === undefined) {
  console.error("stamp-responder: --control PATH and --address4 ADDRESS are required");
  process.exit(2);
}

interface Impairment {
  loss_pct: number;
  latency_ms: number;
  jitter_ms: number;
}

/** Exact-share dropper: `pct` of every block of 100, at random positions, fractions carried over. */
class BlockDropper {
  #position = 0;
  #drops = new Set<number>();
  #carry = 0;
  drop(pct: number): boolean {
    if (this.#position === 0) {
      const want = pct + this.#carry;
      const count = Math.min(100, Math.floor(want));
      this.#carry = want - count;
      this.#drops = new Set();
      while (this.#drops.size < count) this.#drops.add(Math.floor(Math.random() * 100));
    }
    const dropped = this.#drops.has(this.#position);
    this.#position = (this.#position + 1) % 100;
    return dropped;
  }
}

interface Flow {
  client: string;
  port: number;
  received: number;
  fwd_dropped: number[];
  back_dropped: number[];
  replied: number;
  /** sender sequence → [forward hold, backward hold] in ms, as applied */
  holds: Record<number, [number, number]>;
  forward: BlockDropper;
  backward: BlockDropper;
}

const MAX_HOLDS = 100_000;
let config: Impairment = { loss_pct: 0, latency_ms: 0, jitter_ms: 0 };
const flows = new Map<string, Flow>();
const offsetUs = medianWallMinusMonoUs(5);
const wallMs = (at: bigint): number => (Number(at) / 1000 + offsetUs) / 1000;
const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

const reflector = new StampReflector(
  {
    enabled: true,
    address: args.address4,
    port: STAMP_PORT,
    allow: ["198.51.100.0/24", "203.0.113.0/24", "192.0.2.0/24", "2001:db8::/32"],
    mode: "stateful",
    rate_pps: 100_000,
    burst: 100_000,
    max_clients: 1024,
    // Every lab namespace reads the same kernel clock: synchronized by construction.
    clock_synchronized: true,
    clock_error_ms: 0.001,
  },
  silentLogger(),
);

function hold(base: number): number {
  return Math.max(0, base + Math.random() * 3 * config.jitter_ms);
}

/** Runs `fn` after `ms`, or at once when there is nothing to hold (a 0 ms timer still waits ~1 ms). */
function after(ms: number, fn: () => void): void {
  if (ms <= 0) fn();
  else setTimeout(fn, ms);
}

function serve(socket: UdpSocket): void {
  socket.on("message", (msg, rinfo) => {
    const arrived = nowMs();
    const key = `${rinfo.address}|${rinfo.port}`;
    let flow = flows.get(key);
    if (flow === undefined) {
      flow = {
        client: rinfo.address,
        port: rinfo.port,
        received: 0,
        fwd_dropped: [],
        back_dropped: [],
        replied: 0,
        holds: {},
        forward: new BlockDropper(),
        backward: new BlockDropper(),
      };
      flows.set(key, flow);
    }
    const f = flow;
    f.received++;
    const senderSequence = msg.length >= 4 ? msg.readUInt32BE(0) : -1;
    if (f.forward.drop(config.loss_pct)) {
      f.fwd_dropped.push(senderSequence);
      return;
    }
    after(hold(config.latency_ms / 2), () => {
      const t2 = process.hrtime.bigint();
      const reply = reflector.reflect(msg, rinfo.address, rinfo.port, wallMs(t2));
      if (reply === undefined) return;
      const appliedForward = Number(t2) / 1e6 - arrived;
      if (f.backward.drop(config.loss_pct)) {
        f.back_dropped.push(senderSequence);
        return;
      }
      const t3 = process.hrtime.bigint();
      restampReflectorPacket(reply, wallMs(t3));
      after(hold(config.latency_ms / 2), () => {
        socket.send(reply, rinfo.port, rinfo.address);
        const appliedBackward = nowMs() - Number(t3) / 1e6;
        f.replied++;
        if (Object.keys(f.holds).length < MAX_HOLDS)
          f.holds[senderSequence] = [appliedForward, appliedBackward];
      });
    });
  });
}

for (const [type, address] of [
  ["udp4", args.address4],
  ["udp6", args.address6],
] as const) {
  if (address === undefined) continue;
  const socket = createSocket({ type });
  socket.on("error", (error) => console.error(`stamp-responder ${address}: ${error.message}`));
  socket.bind(STAMP_PORT, address, () => serve(socket));
}

function handle(line: string): Record<string, unknown> {
  const request = JSON.parse(line) as { set?: Partial<Impairment>; stats?: boolean; reset?: boolean };
  if (request.set !== undefined) {
    config = { ...config, ...request.set };
    return { ok: true, config };
  }
  if (request.stats === true) {
    const out = [...flows.values()].map(({ forward: _f, backward: _b, ...rest }) => rest);
    if (request.reset === true) flows.clear();
    return { ok: true, flows: out, counters: reflector.counters };
  }
  return { ok: false, error: "unknown request" };
}

rmSync(args.control, { force: true });
createServer((conn: NetSocket) => {
  let buffered = "";
  conn.setEncoding("utf8");
  conn.on("data", (chunk: string) => {
    buffered += chunk;
    for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      let reply: Record<string, unknown>;
      try {
        reply = handle(line);
      } catch (error) {
        reply = { ok: false, error: error instanceof Error ? error.message : String(error) };
      }
      conn.write(`${JSON.stringify(reply)}\n`);
    }
  });
  conn.on("error", () => undefined);
}).listen(args.control);
process.on("SIGTERM", () => process.exit(0));
