// Commands from headquarters end to end: HQ (in the hq namespace, TLS + HQ credentials) publishes
// to the real mosquitto, the real probe (in the branch office) carries them out and replies.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Static } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { describe, expect, it } from "vitest";
import { labCredentials } from "../../scripts/lab/broker-tls.ts";
import {
  configPayloadSchema,
  REPLY_EXPIRY_S,
  type ReplyPayload,
} from "../../services/contract/src/payloads.ts";
import { ConfigSchema } from "../../services/probe/src/config/schema.ts";
import { malformedCommands } from "../fixtures/command-fuzz.ts";
import { useLab } from "./lab-fixture.ts";
import { PROBE_BASE, startClient } from "./mqtt-driver.ts";
import { exited, startProbe, uniqueResults, waitFor, type Received } from "./probe-harness.ts";

// The contract promises HQ only a part of the config; the probe publishes all of it.
const ProbeConfigPayload = configPayloadSchema(ConfigSchema);
type ProbeConfigPayload = Static<typeof ProbeConfigPayload>;

const ICMP = "options: { count: 3, interval_ms: 20, wait_ms: 500 }";
// gateway-icmp runs every 2 s (results keep flowing); the WAN checks run once at start (jitter 0)
// and then hourly, so a WAN result after that can only come from `run`.
const check = (name: string, target: string, area: string, hourly: boolean) =>
  `  - { name: ${name}, kind: icmp, target: "${target}", area: ${area}${hourly ? ", interval: 1h, jitter: 0" : ""}, ${ICMP} }`;
const CONFIG = (extra: { keepalive?: string; checks?: string[] } = {}) =>
  [
    "site: lab",
    "probe: probe-1",
    "broker:",
    "  url: mqtts://203.0.113.50:8883",
    `  keepalive: ${extra.keepalive ?? "5s"}`,
    "  reconnect_min: 500ms",
    "  reconnect_max: 3s",
    "  commands_per_minute: 100000", // the fuzz below sends 10,000 as fast as the broker carries them
    "  commands_burst: 10000",
    "areas: { fail_after: 2, recover_after: 2 }",
    "leds: { backend: none }",
    "defaults: { interval: 2s, timeout: 2s }",
    "checks:",
    check("gateway-icmp", "192.0.2.1", "lan", false),
    check("wan-icmp", "203.0.113.10", "wan", true),
    check("wan-icmp6", "2001:db8:3::10", "wan", true),
    ...(extra.checks ?? []),
    "",
  ].join("\n");

type Client = Awaited<ReturnType<typeof startClient>>;

/** Results of one check seen by `hq`, as result payloads. */
function results(hq: Client, check: string) {
  const topic = `${PROBE_BASE}results/${check}`;
  const received: Received[] = hq
    .on(topic)
    .filter((m) => m.topic === topic)
    .map((m) => ({
      topic: m.topic,
      retain: m.retain,
      qos: 1,
      payload: JSON.parse(m.payload) as Record<string, unknown>,
      at: 0,
    }));
  return uniqueResults(received);
}

describe("commands from headquarters through the real broker", () => {
  const lab = useLab();
  let probe: ReturnType<typeof startProbe>;
  let hq: Client;
  let configFile: string;

  it("the probe publishes its config (retained, redacted, with its hash) on connect", async () => {
    configFile = join(lab().info.dir, "commands-probe.yaml");
    writeFileSync(configFile, CONFIG());
    hq = startClient(lab(), "hq", "hq");
    await hq.connected();
    expect(await hq.subscribe(`${PROBE_BASE}#`)).toEqual([1]);
    probe = startProbe(lab(), {}, configFile);
    const m = await waitFor("retained config at HQ", 15_000, () => hq.on(`${PROBE_BASE}config`)[0]);
    const payload = JSON.parse(m.payload) as ProbeConfigPayload;
    expect([...Value.Errors(ProbeConfigPayload, payload)]).toEqual([]);
    expect(payload.config.broker.password).toBe("***");
    expect(m.payload).not.toContain(labCredentials(lab().info.dir, "probe-1").password);
    await waitFor("first gateway-icmp result", 10_000, () => results(hq, "gateway-icmp").length > 0);
  });

  it("run: a check now, and an area now", async () => {
    await waitFor(
      "the start-up WAN runs",
      10_000,
      () => results(hq, "wan-icmp").length === 1 && results(hq, "wan-icmp6").length === 1,
    );
    const reply = await hq.command("run", { request_id: "run-1", check: "wan-icmp" });
    expect(reply).toMatchObject({
      ok: true,
      command: "run",
      request_id: "run-1",
      result: { started: ["wan-icmp"] },
    });
    await waitFor("a second wan-icmp result", 5000, () => results(hq, "wan-icmp").length === 2);
    const area = await hq.command("run", { request_id: "run-2", area: "wan" });
    expect(area.result).toEqual({ started: ["wan-icmp", "wan-icmp6"] });
    await waitFor("wan-icmp6 again", 5000, () => results(hq, "wan-icmp6").length === 2);
    const none = await hq.command("run", { request_id: "run-3", area: "phone" });
    expect(none).toMatchObject({ ok: false, error: { code: "unknown_area" } });
  });

  it("identify: the probe is asked to blink for the requested time", async () => {
    const reply = await hq.command("identify", { request_id: "id-1", duration_s: 5 });
    expect(reply).toMatchObject({ ok: true, result: { duration_s: 5 } });
    const untilMs = Date.parse((reply.result as { until: string }).until) - Date.parse(reply.at);
    expect(Math.abs(untilMs - 5000)).toBeLessThan(100);
  });

  it("config: the effective config, redacted, with the hash of the retained config", async () => {
    const reply = await hq.command("config", { request_id: "cfg-1" });
    const retained = JSON.parse(hq.on(`${PROBE_BASE}config`).at(-1)!.payload) as ProbeConfigPayload;
    expect(reply.result).toEqual({ config_hash: retained.config_hash, config: retained.config });
  });

  it("reload of an invalid file: every problem in the reply, the old config keeps running", async () => {
    writeFileSync(
      configFile,
      CONFIG()
        .replace("interval: 1h", "interval: 0s")
        .replace("leds: { backend: none }", "leds: { backend: none, color: red }"),
    );
    const wanBefore = results(hq, "wan-icmp").length;
    const reply = await hq.command("reload", { request_id: "reload-bad" });
    expect(reply).toMatchObject({ ok: false, error: { code: "config_invalid" } });
    expect(reply.error?.problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^checks\[1\]\.interval: /),
        expect.stringMatching(/^leds\.color: /),
      ]),
    );
    const before = results(hq, "gateway-icmp").length;
    await waitFor("gateway-icmp still running", 6000, () => results(hq, "gateway-icmp").length >= before + 2);
    expect(results(hq, "wan-icmp")).toHaveLength(wanBefore); // still hourly: the bad 0s never applied
  });

  it("reload of a valid file: new checks and broker settings apply, the outbox and seq order survive", async () => {
    const configsBefore = hq.on(`${PROBE_BASE}config`).length;
    const hash = (JSON.parse(hq.on(`${PROBE_BASE}config`).at(-1)!.payload) as ProbeConfigPayload).config_hash;
    writeFileSync(
      configFile,
      CONFIG({ keepalive: "6s", checks: [check("hq-icmp", "203.0.113.50", "wan", true)] }),
    );
    const reply = await hq.command("reload", { request_id: "reload-good" });
    expect(reply).toMatchObject({ ok: true, result: { changed: ["broker", "checks"] } });
    const newConfig = await waitFor(
      "the new retained config",
      10_000,
      () => hq.on(`${PROBE_BASE}config`)[configsBefore],
    );
    const payload = JSON.parse(newConfig.payload) as ProbeConfigPayload;
    expect(payload.config_hash).not.toBe(hash);
    expect(payload.config_hash).toBe((reply.result as { config_hash: string }).config_hash);
    expect(payload.config.broker.keepalive_ms).toBe(6000);
    await waitFor("a result of the new check", 10_000, () => results(hq, "hq-icmp").length > 0);
    const onlineAgain = hq.on(`${PROBE_BASE}state`).filter((m) => m.payload.includes('"online"'));
    expect(onlineAgain.length).toBeGreaterThanOrEqual(2); // reconnected with the new settings
    const seqs = uniqueResultsOf(hq)
      .map((r) => r.seq)
      .sort((a, b) => a - b);
    expect(seqs.at(-1)! - seqs[0]! + 1).toBe(seqs.length); // no result lost across the reload
  });

  it("unknown command, malformed JSON: an error reply with the reason, or a log line when there is no address", async () => {
    const unknown = await hq.command("reboot", { request_id: "unk-1" });
    expect(unknown).toMatchObject({ ok: false, command: "reboot", error: { code: "unknown_command" } });

    const inbox = `${PROBE_BASE}reply/hq-test/inbox`;
    await hq.publish(`${PROBE_BASE}cmd/run`, "{not json", { responseTopic: inbox, correlation: "bad-1" });
    const m = await waitFor("reply on the response topic", 5000, () =>
      hq.on(inbox).find((x) => x.correlation === "bad-1"),
    );
    expect(JSON.parse(m.payload)).toMatchObject({ request_id: null, ok: false, error: { code: "bad_json" } });

    const dropsBefore = drops(probe.log);
    await hq.publish(`${PROBE_BASE}cmd/run`, "{not json either");
    await waitFor("a 'command dropped' log line", 5000, () => drops(probe.log) === dropsBefore + 1);
  });

  it("a repeated request_id is answered again without running again", async () => {
    const n = results(hq, "wan-icmp").length;
    const first = await hq.command("run", { request_id: "dup-1", check: "wan-icmp" });
    await waitFor("the run's result", 5000, () => results(hq, "wan-icmp").length === n + 1);
    const again = await hq.command("run", { request_id: "dup-1", check: "wan-icmp" });
    expect(again).toEqual({ ...first, replayed: true });
    await new Promise((r) => setTimeout(r, 2500));
    expect(results(hq, "wan-icmp")).toHaveLength(n + 1);
  });

  it("MQTT 5: the reply also goes to the response topic, with the correlation data and an expiry", async () => {
    const inbox = `${PROBE_BASE}reply/hq-test/inbox`;
    const reply = await hq.command(
      "config",
      { request_id: "rt-1" },
      { responseTopic: inbox, correlation: "corr-42" },
    );
    expect(reply.ok).toBe(true);
    const onInbox = await waitFor("reply on the response topic", 5000, () =>
      hq.on(inbox).find((m) => m.correlation === "corr-42"),
    );
    expect((JSON.parse(onInbox.payload) as ReplyPayload).request_id).toBe("rt-1");
    const onReply = hq.on(`${PROBE_BASE}reply/rt-1`)[0]!;
    expect(onReply.correlation).toBe("corr-42");
    expect(onReply.expiry).toBeGreaterThan(0);
    expect(onReply.expiry).toBeLessThanOrEqual(REPLY_EXPIRY_S);
  });

  it("fuzz: 10,000 malformed commands each get an error reply or a log line; the probe keeps probing", async () => {
    const cases = malformedCommands(10_000, 11);
    const dropsAtStart = drops(probe.log);
    const seqAtStart = Math.max(...results(hq, "gateway-icmp").map((r) => r.seq));
    const replyTopics = new Set<string>();
    const countReplies = () => {
      for (const m of hq.messages)
        if (m.topic.startsWith(`${PROBE_BASE}reply/`))
          replyTopics.add(m.correlation && m.topic.includes("/fuzz/") ? `c:${m.correlation}` : m.topic);
    };
    const t0 = Date.now();
    let expectedDrops = 0;
    let expectedReplies = 0;
    const BATCH = 250; // paced so the broker never has to queue more than its per-client limit
    for (let start = 0; start < cases.length; start += BATCH) {
      const batch = cases.slice(start, start + BATCH);
      const wanted: string[] = [];
      for (const [k, c] of batch.entries()) {
        const i = start + k;
        hq.publishAsync(`${PROBE_BASE}cmd/${c.name}`, c.payload, {
          ...(c.respond
            ? { responseTopic: `${PROBE_BASE}reply/${c.respond.suffix}`, correlation: c.respond.correlation }
            : {}),
        });
        if (c.requestId) wanted.push(`${PROBE_BASE}reply/${c.requestId}`);
        else if (c.respond) wanted.push(`c:c${i}`);
        else expectedDrops += 1;
        if (c.requestId || c.respond) expectedReplies += 1;
      }
      const done = () => {
        countReplies();
        return wanted.every((w) => replyTopics.has(w)) && drops(probe.log) - dropsAtStart >= expectedDrops;
      };
      await waitFor(`commands ${start}-${start + batch.length - 1}`, 30_000, done).catch((err: unknown) => {
        const missing = wanted.filter((w) => !replyTopics.has(w));
        throw new Error(
          `${String(err)}: ${missing.length} replies missing (${missing.slice(0, 3).join(", ")}); ` +
            `drops ${drops(probe.log) - dropsAtStart}/${expectedDrops}; probe exit ${probe.exitCode}; ` +
            `hq events ${JSON.stringify(hq.events.slice(-3))}`,
        );
      });
    }
    const ms = Date.now() - t0;
    expect(drops(probe.log) - dropsAtStart).toBe(expectedDrops);
    expect(probe.exitCode).toBeNull();
    const seqAtEnd = Math.max(...results(hq, "gateway-icmp").map((r) => r.seq));
    console.log(
      `fuzz through mosquitto: 10000 commands in ${ms} ms; ${expectedReplies} answered with an error reply, ${expectedDrops} dropped with a log line; gateway-icmp seq ${seqAtStart} → ${seqAtEnd}`,
    );
    expect(seqAtEnd).toBeGreaterThan(seqAtStart);
    // Still probing and still obeying afterwards.
    const n = results(hq, "gateway-icmp").length;
    await waitFor("more results after the fuzz", 6000, () => results(hq, "gateway-icmp").length >= n + 2);
    expect((await hq.command("run", { request_id: "after-fuzz", check: "gateway-icmp" })).ok).toBe(true);

    probe.kill("SIGTERM");
    expect((await exited(probe)).code).toBe(0);
    await hq.stop();
  });
});

function drops(log: readonly string[]): number {
  return log.filter((l) => l.includes('"msg":"command dropped')).length;
}

function uniqueResultsOf(hq: Client) {
  return uniqueResults(
    hq.on(`${PROBE_BASE}results/`).map((m) => ({
      topic: m.topic,
      retain: m.retain,
      qos: 1,
      payload: JSON.parse(m.payload) as Record<string, unknown>,
      at: 0,
    })),
  );
}
