// The chaos row of the fault suite: the real `netprobe run` in the lab's probe namespace, the lab's
// config, the probe addressed by DHCP as dhcpcd does it (scripts/lab/probe-host.ts), driven
// through every lab fault and a bounded set of pairs, switched on and off in an order drawn from
// the shared seeded PRNG. After each step: the same PID, every check still producing results,
// every seq at HQ once (the outbox drained), and the LEDs (health's area states) showing what the
// fault breaks while it is on and all green again after. NETPROBE_CHAOS_SEED=n replays an order;
// NETPROBE_FAULT_LONG=1 runs every pair.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { afterAll, describe, expect, it } from "vitest";
import { FAULT_NAMES, FAULT_VALUES, type FaultName } from "../../scripts/lab/lab.ts";
import { LAB_PROBE_CONFIG } from "../../scripts/lab/lab-command.ts";
import { useLab } from "../lab/lab-fixture.ts";
import { exited, startHq, startProbe, waitFor } from "../lab/probe-harness.ts";
import { prng } from "../fixtures/prng.ts";
import { count, mark, maxSeq, statusOf, type Mark } from "./fault-harness.ts";

const LONG = process.env.NETPROBE_FAULT_LONG === "1";
const SEED = Number(process.env.NETPROBE_CHAOS_SEED ?? 14);
/** Pairs in the default run (every pair in long mode). */
const PAIRS = LONG ? Infinity : 6;
const ROOT = new URL("../../", import.meta.url).pathname;

/** Values for the faults that take one: past the lab config's fail thresholds, so the LED must go red. */
const VALUES: Partial<Record<FaultName, number>> = {
  "wan-loss": 60,
  "wan-latency": 300,
  "wan-jitter": 60,
  "rtp-loss": 20,
  "rtp-jitter": 60,
};

/**
 * The areas whose LED must leave green while the fault is on (others may too: a dead gateway takes
 * everything behind it). Faults the lab config has no check for (the path MTU, a hop's ICMP, the
 * certificate of an HTTPS server it does not fetch, a moved switch port it has no expectation of)
 * and the ones the service must simply ride through (a new address, a smaller MTU, the broker
 * gone: the STATUS LED, not an area) have none; the service must still be up and lose nothing.
 */
const EXPECT: Record<FaultName, readonly string[]> = {
  "link-down": ["link"],
  "rogue-dhcp": ["dhcp"],
  "dhcp-pool-exhausted": ["dhcp"],
  "dup-ip": ["lan"],
  "gateway-mac-change": ["lan"],
  "lldp-port-change": ["link"],
  "gateway-down": ["lan", "wan"],
  "broker-down": [],
  "wan-down": ["wan"],
  "dns-down": ["dns"],
  "dhcp-down": ["dhcp"],
  "mtu-small": [],
  "wan-loss": ["wan"],
  "wan-latency": ["wan"],
  "wan-jitter": ["wan"],
  "wan-hop-loss": [],
  "pbx-down": ["phone"],
  "sip-auth-fail": ["phone"],
  "rtp-loss": ["phone"],
  "rtp-jitter": ["phone"],
  "one-way-audio": ["phone"],
  "dns-slow": ["dns"],
  "dns-servfail": ["dns"],
  "dns-hijack": ["dns"],
  "dns-spoof": ["dns"],
  "cert-expiring": [],
  "lease-lost": ["dhcp", "lan", "wan"],
  "adapter-unplugged": ["link"],
  "address-changed": [],
  "resolv-empty": ["dns"],
  "mtu-changed": [],
  "ra-gone": ["wan"],
};

/**
 * The lab's config with every interval capped (2 s, 4 s for the phone checks that need longer), so
 * a fault shows within seconds: the same checks, targets, options and thresholds.
 */
function chaosConfig(): string {
  const config = parse(readFileSync(LAB_PROBE_CONFIG, "utf8")) as {
    checks: Array<{ name: string; kind: string; interval?: string; timeout?: string }>;
  } & Record<string, unknown>;
  const cap: Record<string, [string, string]> = {
    "sip-call": ["5s", "4s"],
    "sip-register": ["3s", "2s"],
    dhcp: ["2s", "1500ms"],
  };
  for (const c of config.checks) {
    const [interval, timeout] = cap[c.kind] ?? ["1s", "1s"];
    c.interval = interval;
    c.timeout = timeout;
  }
  return stringify({ ...config, defaults: { interval: "1s", timeout: "1s" } });
}

interface Step {
  faults: FaultName[];
}

/** One row of the chaos table. */
interface ChaosRow {
  step: string;
  times: number;
  results: number;
  lost: number;
  pidSame: boolean;
  ledMatch: boolean;
  note: string;
}

function shuffle<T>(items: T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

function steps(random: () => number): Step[] {
  const singles = FAULT_NAMES.map((f) => ({ faults: [f] }));
  const pairs: Step[] = [];
  for (let i = 0; i < FAULT_NAMES.length; i++)
    for (let j = i + 1; j < FAULT_NAMES.length; j++)
      pairs.push({ faults: [FAULT_NAMES[i]!, FAULT_NAMES[j]!] });
  return shuffle([...singles, ...shuffle(pairs, random).slice(0, PAIRS)], random);
}

function renderTable(rows: readonly ChaosRow[]): string {
  const line = (cells: readonly (string | number)[]) => `| ${cells.join(" | ")} |`;
  const head = ["fault / pair", "steps", "results", "lost", "PID same", "LED match", "notes"];
  return [
    `Chaos (${LONG ? "long mode, every pair" : `default mode, ${PAIRS} pairs`}, seed ${SEED}), ${new Date().toISOString()}`,
    "",
    line(head),
    line(head.map(() => "---")),
    ...rows.map((r) =>
      line([r.step, r.times, r.results, r.lost, r.pidSame ? "yes" : "NO", r.ledMatch ? "yes" : "NO", r.note]),
    ),
    "",
  ].join("\n");
}

describe("chaos: every lab fault and pairs of them, in seeded random order, under the real service", () => {
  const lab = useLab({ probeAddressing: "dhcp" });
  const rows: ChaosRow[] = [];
  let hq: ReturnType<typeof startHq>;
  let probe: ReturnType<typeof startProbe> | undefined;
  let db: string;
  let config: string;

  afterAll(async () => {
    if (rows.length > 0) {
      const md = renderTable(rows);
      const dir = join(ROOT, "test-artifacts");
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, "chaos-table.md"), md);
      console.log(`\n${md}\n(written to test-artifacts/chaos-table.md)`);
    }
    probe?.kill("SIGKILL");
    await hq?.stop();
  });

  const areas = (): Record<string, { state: string; led: string }> => statusOf(db)?.health?.areas ?? {};
  const lastSeqs = (): Map<string, number> =>
    new Map((statusOf(db)?.checks ?? []).map((c) => [c.check, c.seq]));

  async function drained(what: string): Promise<number> {
    await waitFor(`${what}: outbox drained`, 60_000, () => statusOf(db)?.outbox.rows === 0);
    const last = maxSeq(db);
    await waitFor(`${what}: seq ${last} at HQ`, 15_000, () =>
      hq.messages.some((m) => m.topic.includes("/results/") && (m.payload as { seq?: number }).seq === last),
    );
    return last;
  }

  async function allGreen(what: string, ms: number): Promise<void> {
    await waitFor(
      () =>
        `${what}: every area ok (${JSON.stringify(Object.fromEntries(Object.entries(areas()).map(([a, s]) => [a, s.state])))})`,
      ms,
      // "off": an area no check of the config reports into (uplink: the STATUS LED shows it).
      () =>
        Object.keys(areas()).length > 0 &&
        Object.values(areas()).every((a) => a.state === "ok" || a.state === "off"),
    );
  }

  it("setup: HQ subscribed, the probe running with the lab's config, every area green", async () => {
    db = join(lab().info.dir, "chaos.db");
    config = join(lab().info.dir, "chaos-probe.yaml");
    writeFileSync(config, chaosConfig());
    hq = startHq(lab(), "hq-chaos", true);
    await waitFor("HQ connected", 15_000, () => hq.connected());
    probe = startProbe(lab(), { NETPROBE_STORE_PATH: db }, config);
    const p = probe;
    await allGreen("after start", 60_000).catch((err: Error) => {
      throw new Error(`${err.message}; probe log:\n${p.log.slice(-15).join("\n")}`);
    });
    await drained("after start");
  }, 120_000);

  it(`every fault and ${LONG ? "every pair" : `${PAIRS} pairs`}, order from seed ${SEED}`, async () => {
    let p = probe!;
    const plan = steps(prng(SEED));
    console.log(`chaos plan (seed ${SEED}): ${plan.map((s) => s.faults.join("+")).join(", ")}`);
    const checks = [...lastSeqs().keys()];
    const failures: string[] = [];
    for (const step of plan) {
      const name = step.faults.join(" + ");
      const pid = p.pid;
      const from: Mark = mark(hq.messages, db);
      const seqsBefore = lastSeqs();
      const expected = [...new Set(step.faults.flatMap((f) => EXPECT[f]))];
      const t0 = Date.now();
      for (const f of step.faults) await lab().fault(f, true, FAULT_VALUES[f] ? VALUES[f] : undefined);
      // On until each expected LED has left green (bounded), or a few runs when none is expected.
      let ledOn = true;
      let seen = "";
      try {
        if (expected.length === 0) await new Promise((r) => setTimeout(r, 3000));
        else
          await waitFor(`${name}: ${expected.join(", ")} not green`, 25_000, () =>
            expected.every((a) => areas()[a] !== undefined && areas()[a]!.state !== "ok"),
          );
      } catch {
        ledOn = false;
      }
      seen = expected.map((a) => `${a} ${areas()[a]?.state}/${areas()[a]?.led}`).join(", ");
      for (const f of [...step.faults].reverse()) await lab().fault(f, false);
      let ledOff = true;
      try {
        await allGreen(`${name} off`, 30_000);
      } catch (err) {
        ledOff = false;
        seen += `; after off: ${(err as Error).message}`;
      }
      const pidSame = p.pid === pid && p.exitCode === null && p.signalCode === null;
      // Every check ran during the step (the slowest, sip-call, every 5 s): kept producing results.
      const ran = () => checks.every((c) => (lastSeqs().get(c) ?? 0) > (seqsBefore.get(c) ?? 0));
      await waitFor(`${name}: a result from every check`, 12_000, ran).catch(() => undefined);
      let lost = -1;
      let results = 0;
      try {
        const to = await drained(name);
        const c = count(hq.messages, from, to);
        lost = c.missing.length;
        results = c.produced;
      } catch (err) {
        seen += `; ${(err as Error).message}`;
      }
      const seqsAfter = lastSeqs();
      const silent = checks.filter((c) => (seqsAfter.get(c) ?? 0) <= (seqsBefore.get(c) ?? 0));
      const row: ChaosRow = {
        step: name,
        times: 1,
        results,
        lost,
        pidSame,
        ledMatch: ledOn && ledOff,
        note: `${Math.round((Date.now() - t0) / 1000)} s${expected.length ? `; on: ${seen}` : ""}${silent.length ? `; no results from ${silent.join(", ")}` : ""}`,
      };
      rows.push(row);
      console.log(`chaos row: ${JSON.stringify(row)}`);
      if (!pidSame)
        failures.push(
          `${name}: the service died (${p.exitCode ?? p.signalCode}); log:\n${p.log.slice(-20).join("\n")}`,
        );
      else if (lost !== 0 || !row.ledMatch || silent.length > 0)
        failures.push(`${name}: ${JSON.stringify(row)}`);
      if (!pidSame || !ledOff) {
        // Dead, or stuck after the fault is gone: the row is recorded as failed; a fresh service
        // (same database) lets the remaining rows say something about their own fault.
        if (pidSame) p.kill("SIGTERM");
        await exited(p);
        p = probe = startProbe(lab(), { NETPROBE_STORE_PATH: db }, config);
        await allGreen(`${name}: restarted service`, 60_000).catch(() => undefined);
        row.note += "; service restarted for the next row";
      }
    }
    expect(failures).toEqual([]);
    expect(rows).toHaveLength(plan.length);
  }, 1_200_000);
});
