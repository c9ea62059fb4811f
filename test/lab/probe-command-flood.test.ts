// A compromised headquarters client floods the real probe (`services/probe/bin/netprobe run`, the
// start path of the unit and the container, with its V8 flags; real mosquitto, TLS) with 20,000
// hostile commands: duplicates of ids already carried out, 3,000- and 30,000-deep JSON, 60 KiB
// payloads, garbage bytes and reloads. The probe must not grow (RSS within 10 %, read from /proc),
// must not carry out any duplicate, and must still obey afterwards. See docs/mqtt.md (Rate limit).
import type { ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { probeBrokerEnv } from "../../scripts/lab/broker-tls.ts";
import { useLab } from "./lab-fixture.ts";
import { PROBE_BASE, startClient } from "./mqtt-driver.ts";
import { exited, probeDb, uniqueResults, waitFor } from "./probe-harness.ts";
import { prng } from "../fixtures/prng.ts";

const BIN = new URL("../../services/probe/bin/netprobe", import.meta.url).pathname;
const ICMP = "options: { count: 3, interval_ms: 20, wait_ms: 500 }";
const CONFIG = [
  "site: lab",
  "probe: probe-1",
  "broker: { url: mqtts://203.0.113.50:8883, keepalive: 5s, reconnect_min: 500ms, reconnect_max: 3s }",
  "leds: { backend: none }",
  "defaults: { interval: 2s, timeout: 2s }",
  "checks:",
  `  - { name: gateway-icmp, kind: icmp, target: "192.0.2.1", area: lan, ${ICMP} }`,
  `  - { name: wan-icmp, kind: icmp, target: "203.0.113.10", area: wan, interval: 1h, jitter: 0, ${ICMP} }`,
  "",
].join("\n");

/** VmRSS of a process, in KiB, from /proc/<pid>/status. */
function rssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]);
}

describe("a command flood from a compromised headquarters client", () => {
  const lab = useLab();

  it("20,000 hostile commands: RSS within 10 %, no duplicate carried out, still obeying", async () => {
    const configFile = join(lab().info.dir, "flood-probe.yaml");
    writeFileSync(configFile, CONFIG);
    const hq = startClient(lab(), "hq", "hq");
    await hq.connected();
    expect(await hq.subscribe(`${PROBE_BASE}#`)).toEqual([1]);
    const probe = lab().spawn("probe", [BIN, "run", "--config", configFile], {
      env: {
        ...process.env,
        NETPROBE_NODE: process.execPath,
        NETPROBE_STORE_PATH: probeDb(lab()),
        ...probeBrokerEnv(lab().info.dir),
      },
      stdio: ["ignore", "ignore", "pipe"],
    }) as ChildProcess & { log: string[] };
    probe.log = [];
    createInterface({ input: probe.stderr! }).on("line", (l) => probe.log.push(l));
    const wanRuns = () =>
      uniqueResults(
        hq.on(`${PROBE_BASE}results/wan-icmp`).map((m) => ({
          topic: m.topic,
          retain: m.retain,
          qos: 1,
          payload: JSON.parse(m.payload) as Record<string, unknown>,
          at: 0,
        })),
      ).length;
    await waitFor("the start-up wan-icmp run", 15_000, () => wanRuns() === 1);

    // Three commands carried out once each: the flood repeats their ids.
    const legit = ["legit-a", "legit-b", "legit-c"];
    for (const id of legit) {
      const reply = await hq.command("run", { request_id: id, check: "wan-icmp" });
      expect(reply).toMatchObject({ ok: true, result: { started: ["wan-icmp"] } });
    }
    await waitFor("the three runs' results", 10_000, () => wanRuns() === 4);
    await new Promise((r) => setTimeout(r, 4000)); // settle: start-up allocations done
    const pid = probe.pid!;
    const before = rssKiB(pid);

    const rnd = prng(15);
    const deepJson = (n: number) =>
      Buffer.from(`{"schema":1,"request_id":"deep","x":${"[".repeat(n)}${"]".repeat(n)}}`);
    const deep = [deepJson(3000), deepJson(30_000)]; // under and over the 8 KiB limit
    const huge = Buffer.from(JSON.stringify({ schema: 1, request_id: "huge", check: "x".repeat(60_000) }));
    const kinds = { duplicate: 0, deep: 0, huge: 0, garbage: 0, reload: 0 };
    const t0 = Date.now();
    const FLOOD = 20_000;
    const BATCH = 500; // paced by PUBACKs so the broker's per-client queue never drops any
    for (let start = 0; start < FLOOD; start += BATCH) {
      let last = 0;
      for (let i = start; i < start + BATCH; i++) {
        const r = rnd();
        if (r < 0.35) {
          kinds.duplicate += 1;
          const id = legit[i % legit.length]!;
          last = hq.publishAsync(
            `${PROBE_BASE}cmd/run`,
            JSON.stringify({ schema: 1, request_id: id, check: "wan-icmp" }),
          );
        } else if (r < 0.5) {
          kinds.deep += 1;
          last = hq.publishAsync(`${PROBE_BASE}cmd/run`, deep[i % 2]!, {
            responseTopic: `${PROBE_BASE}reply/x`,
          });
        } else if (r < 0.55) {
          kinds.huge += 1;
          last = hq.publishAsync(`${PROBE_BASE}cmd/run`, huge, { responseTopic: `${PROBE_BASE}reply/x` });
        } else if (r < 0.8) {
          kinds.garbage += 1;
          const bytes = Buffer.from(
            Array.from({ length: 1 + Math.floor(rnd() * 200) }, () => Math.floor(rnd() * 256)),
          );
          last = hq.publishAsync(`${PROBE_BASE}cmd/${rnd() < 0.5 ? "run" : "zz"}`, bytes);
        } else {
          kinds.reload += 1;
          last = hq.publishAsync(
            `${PROBE_BASE}cmd/reload`,
            JSON.stringify({ schema: 1, request_id: `rl-${i}` }),
          );
        }
      }
      const ack = await hq.acked(last, 30_000);
      expect(ack.ok).toBe(true);
    }
    const floodMs = Date.now() - t0;
    // The broker acknowledged every publish, but still delivers to the probe at the probe's pace.
    // Delivery is in order: once a fresh command is answered, the flood is behind us.
    let attempt = 0;
    await waitFor("an answer to a fresh command after the flood", 120_000, () => {
      const answered = hq.on(`${PROBE_BASE}reply/after-flood-`).length > 0;
      if (!answered && Date.now() - t0 > attempt * 2000) {
        hq.publishAsync(
          `${PROBE_BASE}cmd/config`,
          JSON.stringify({ schema: 1, request_id: `after-flood-${attempt}` }),
        );
        attempt += 1;
      }
      return answered;
    }).catch((err: unknown) => {
      throw new Error(`${String(err)}; probe log tail:\n${probe.log.slice(-15).join("\n")}`);
    });
    const drainedMs = Date.now() - t0;
    const after = rssKiB(pid);
    const growth = (after - before) / before;
    const replies = hq.messages.filter((m) => m.topic.startsWith(`${PROBE_BASE}reply/`)).length;
    const summaries = probe.log.filter((l) => l.includes("commands rate-limited: dropped unread"));
    const lastSummary = summaries.length
      ? (JSON.parse(summaries.at(-1)!) as { dropped_total: number }).dropped_total
      : 0;
    console.log(
      `command flood: ${FLOOD} commands (${JSON.stringify(kinds)}) in ${floodMs} ms, worked off by the probe after ${drainedMs} ms; probe RSS ` +
        `${(before / 1024).toFixed(1)} → ${(after / 1024).toFixed(1)} MiB (${(growth * 100).toFixed(1)} %); ` +
        `${replies} replies; ${summaries.length} "rate-limited" summary lines (the last: ${lastSummary} dropped in total); ` +
        `wan-icmp runs ${wanRuns()} (4 before the flood)`,
    );
    expect(probe.exitCode).toBeNull();
    expect(Math.abs(growth)).toBeLessThanOrEqual(0.1);
    expect(wanRuns()).toBe(4); // no duplicate of legit-a/b/c was carried out again
    // What got past the bucket (burst 30 + 1 a second) is all the probe answered.
    expect(replies).toBeLessThanOrEqual(30 + Math.ceil(drainedMs / 1000));
    expect(summaries.length).toBeGreaterThan(0);
    expect(probe.log.join("\n")).not.toContain("RangeError");

    // Still obeying: a run now is carried out.
    await new Promise((r) => setTimeout(r, 2000));
    const again = await hq.command("run", { request_id: "after-flood-run", check: "wan-icmp" });
    expect(again.ok).toBe(true);
    await waitFor("the run after the flood", 10_000, () => wanRuns() === 5);
    // The duplicates the bucket let through reached the id memory and were answered from it.
    const replayed = legit.flatMap((id) =>
      hq
        .on(`${PROBE_BASE}reply/${id}`)
        .filter((m) => (JSON.parse(m.payload) as { replayed?: boolean }).replayed),
    );
    expect(replayed.length).toBeGreaterThan(0);

    probe.kill("SIGTERM");
    expect((await exited(probe)).code).toBe(0);
    await hq.stop();
  });
});
