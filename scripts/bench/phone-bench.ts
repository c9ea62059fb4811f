// Phone-check accuracy (issue 5), in a lab of its own:
//
// 1. For injected loss 0/1/5 % × jitter 0/10/30 ms on the lab PBX's echo, one sip-call of
//    --duration seconds each: the probe's loss, jitter and MOS next to the ground truth the echo
//    recorded for that very call (packets it actually dropped, the RFC 3550 jitter of the holds it
//    actually applied) and next to the MOS computed from the E-model for that truth.
//    Bars: loss within ±1 point of the truth, jitter within 10 % of it. Rows without injected
//    jitter have a truth of ~0: what the probe measures there is the lab host's own scheduling
//    noise on the round trip, shown but not judged (10 % of zero is no bar).
// 2. SIP OPTIONS latency from the probe's check and from sipsak, 50 runs each, interleaved, on the
//    same path from the probe namespace: medians should agree within 0.5 ms.
//
//   node scripts/bench/phone-bench.ts [--duration 10] [--runs 50]      (root; builds its own lab)

import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { labUp, newLabName, type Lab } from "../lab/lab.ts";
import { echoCallsPath, PBX } from "../lab/pbx.ts";
import { CODEC_IMPAIRMENT, mosFromR, oneWayDelayMs, rFactor } from "../../services/probe/src/sip/emodel.ts";

const SELF = fileURLToPath(import.meta.url);
const { values: args } = parseArgs({
  options: {
    duration: { type: "string", default: "10" },
    runs: { type: "string", default: "50" },
    worker: { type: "string" },
  },
});

// ---- worker mode: runs inside the probe namespace --------------------------------------------

if (args.worker === "call") {
  const { sipCall } = await import("../../services/probe/src/checks/sip-call.ts");
  const m = await sipCall.run(
    PBX.address4,
    {
      transport: "udp",
      port: 0,
      local_port: 0,
      domain: PBX.domain,
      from_user: "netprobe",
      t1_ms: 500,
      tls_verify: true,
      username: PBX.username,
      auth_username: "",
      password: PBX.password,
      password_env: "",
      algorithms: ["SHA-256", "MD5"],
      extension: PBX.extension,
      codec: "PCMU",
      duration_s: Number(args.duration),
      ptime_ms: 20,
      answer_timeout_ms: 5000,
      drain_ms: 1000,
    },
    { log: silentLog() },
    AbortSignal.timeout(Number(args.duration) * 1000 + 10_000),
  );
  console.log(JSON.stringify(m));
  process.exit(0);
}

if (args.worker === "options") {
  const { sipOptions } = await import("../../services/probe/src/checks/sip-options.ts");
  const { spawnSync } = await import("node:child_process");
  const runs = Number(args.runs);
  const probe: number[] = [];
  const sipsak: number[] = [];
  const opts = {
    transport: "udp" as const,
    port: 0,
    local_port: 0,
    domain: "",
    from_user: "netprobe",
    t1_ms: 500,
    tls_verify: true,
    to_user: "",
    accept_codes: [],
  };
  // Warm-up (ARP, conntrack entries, JIT) for both, then alternate so drift hits both equally.
  await sipOptions.run(PBX.address4, opts, { log: silentLog() }, AbortSignal.timeout(5000));
  spawnSync("sipsak", ["-s", `sip:${PBX.address4}`]);
  for (let i = 0; i < runs; i++) {
    const m = await sipOptions.run(PBX.address4, opts, { log: silentLog() }, AbortSignal.timeout(5000));
    if (m.metrics.response_ms !== undefined) probe.push(m.metrics.response_ms);
    const out = spawnSync("sipsak", ["-vv", "-s", `sip:${PBX.address4}`], { encoding: "utf8" }).stdout;
    const ms = /reply received after ([\d.]+) ms/.exec(out)?.[1];
    if (ms !== undefined) sipsak.push(Number(ms));
  }
  console.log(JSON.stringify({ probe, sipsak }));
  process.exit(0);
}

function silentLog(): never {
  const noop = (): void => {};
  const log = {
    trace: noop,
    debug: noop,
    info: noop,
    warn: noop,
    error: noop,
    fatal: noop,
    child: () => log,
  };
  return log as never;
}

// ---- main: build a lab, drive faults, print the tables -----------------------------------------

interface Truth {
  received: number;
  dropped: number;
  loss_pct: number;
  added_jitter_ms: number;
  added_delay_avg_ms: number;
}

function lastCall(lab: Lab): Truth {
  const lines = readFileSync(echoCallsPath(lab.info.dir), "utf8").trim().split("\n");
  return JSON.parse(lines[lines.length - 1] ?? "{}") as Truth;
}

async function inProbe(lab: Lab, argv: string[], timeoutMs: number): Promise<unknown> {
  const r = await lab.exec("probe", [process.execPath, SELF, ...argv], { timeoutMs });
  if (r.code !== 0) throw new Error(`worker ${argv.join(" ")} failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").pop() ?? "null");
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const f = (v: number, d = 2): string => v.toFixed(d).padStart(7);

const lab = await labUp({ name: newLabName("pb"), ephemeral: true });
let failures = 0;
try {
  const duration = Number(args.duration);
  console.log(`phone-bench: lab ${lab.info.name}, one ${duration} s G.711 call (20 ms packets) per row\n`);
  console.log(
    "inj.loss inj.jit | truth.loss  probe.loss | truth.jit  probe.jit | rtt.ms | MOS(E-model, truth)  MOS(probe) | verdict",
  );
  let baseRtt: number | undefined;
  for (const loss of [0, 1, 5]) {
    for (const jitter of [0, 10, 30]) {
      await lab.fault("rtp-loss", loss > 0, loss > 0 ? loss : undefined);
      await lab.fault("rtp-jitter", jitter > 0, jitter > 0 ? jitter : undefined);
      const m = (await inProbe(
        lab,
        ["--worker", "call", "--duration", String(duration)],
        duration * 1000 + 20_000,
      )) as {
        status: string;
        metrics: Record<string, number>;
        error?: { code: string };
      };
      const truth = lastCall(lab);
      const mt = m.metrics;
      if (mt.loss_pct === undefined || mt.jitter_ms === undefined || mt.mos === undefined) {
        console.log(`${f(loss, 0)}% ${f(jitter, 0)}ms | call failed: ${m.error?.code ?? m.status}`);
        failures++;
        continue;
      }
      // The path's own RTT (no impairment) is measured once; the truth RTT adds the echo's mean hold.
      baseRtt ??= mt.rtt_avg_ms ?? 0;
      const truthRtt = baseRtt + truth.added_delay_avg_ms;
      const handMos = mosFromR(
        rFactor({
          oneWayDelayMs: oneWayDelayMs(truthRtt, truth.added_jitter_ms, 20),
          lossPct: truth.loss_pct,
          codec: CODEC_IMPAIRMENT.PCMU,
        }),
      );
      const lossOk = Math.abs(mt.loss_pct - truth.loss_pct) <= 1;
      const jitterOk =
        Math.abs(mt.jitter_ms - truth.added_jitter_ms) <=
        Math.max(0.1 * truth.added_jitter_ms, jitter === 0 ? 0.5 : 0);
      if (!lossOk || jitterOk === false) failures++;
      console.log(
        `${f(loss, 0)}% ${f(jitter, 0)}ms | ${f(truth.loss_pct)}%   ${f(mt.loss_pct)}% | ${f(truth.added_jitter_ms)}  ${f(mt.jitter_ms)} | ${f(mt.rtt_avg_ms ?? 0)} | ${f(handMos)}              ${f(mt.mos)}   | ${lossOk ? "loss ok" : "LOSS OFF"}, ${jitterOk === undefined ? "jitter n/a (host noise)" : jitterOk ? "jitter ok" : "JITTER OFF"}`,
      );
    }
  }
  await lab.fault("rtp-loss", false);
  await lab.fault("rtp-jitter", false);

  const runs = Number(args.runs);
  const o = (await inProbe(lab, ["--worker", "options", "--runs", String(runs)], 120_000)) as {
    probe: number[];
    sipsak: number[];
  };
  const mp = median(o.probe);
  const ms = median(o.sipsak);
  const ok = Math.abs(mp - ms) <= 0.5;
  if (!ok) failures++;
  console.log(
    `\nSIP OPTIONS to ${PBX.address4} from the probe namespace, ${runs} runs each (interleaved):\n` +
      `  netprobe sip-options  median ${mp.toFixed(3)} ms  (min ${Math.min(...o.probe).toFixed(3)}, max ${Math.max(...o.probe).toFixed(3)}, n=${o.probe.length})\n` +
      `  sipsak                median ${ms.toFixed(3)} ms  (min ${Math.min(...o.sipsak).toFixed(3)}, max ${Math.max(...o.sipsak).toFixed(3)}, n=${o.sipsak.length})\n` +
      `  difference ${(mp - ms).toFixed(3)} ms: ${ok ? "within 0.5 ms" : "OUTSIDE 0.5 ms"}`,
  );
} finally {
  await lab.down();
}
process.exit(failures > 0 ? 1 : 0);
