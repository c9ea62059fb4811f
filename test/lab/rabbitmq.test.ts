// The fleet on a second broker implementation: RabbitMQ's MQTT plugin (Debian 12's 3.10, MQTT 3.1.1
// only) in the lab's hq namespace (scripts/lab/rabbitmq.ts), mutual TLS + passwords + topic
// permissions. The real probe (`broker.protocol_version: 4`) and the real HQ service
// (`netprobe hq serve`, protocol_version 4, a persistent session, no shared group) both talk to
// it; a scripted HQ client (test/lab/mqtt-client.ts, 3.1.1) sends the commands. The scenario of
// probe-e2e.test.ts and commands.test.ts, with what 3.1.1 and RabbitMQ lack falling back.
import type { ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { Value } from "@sinclair/typebox/value";
import { afterAll, describe, expect, it } from "vitest";
import { startRabbitMq, type RabbitMq } from "../../scripts/lab/rabbitmq.ts";
import type { Lab } from "../../scripts/lab/lab.ts";
import { ResultPayload, StatePayload } from "../../services/contract/src/payloads.ts";
import type { ProbeDetail, ProbeView } from "../../services/hq/src/fleet.ts";
import { useLab } from "./lab-fixture.ts";
import { PROBE_BASE, startClient } from "./mqtt-driver.ts";
import { exited, probeStatus, startProbe, waitFor } from "./probe-harness.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const CLI = join(ROOT, "services/probe/src/cli.ts");
const HQ_PAGE = "http://127.0.0.1:8080"; // inside the hq namespace
const ICMP = "options: { count: 3, interval_ms: 20, wait_ms: 500 }";
const PROBE_CONFIG = (rabbit: RabbitMq) =>
  [
    "site: lab",
    "probe: probe-1",
    "broker:",
    `  url: mqtts://${rabbit.host}:${rabbit.tlsPort}`,
    "  protocol_version: 4",
    "  keepalive: 5s",
    "  reconnect_min: 500ms",
    "  reconnect_max: 2s",
    "areas: { fail_after: 2, recover_after: 2 }",
    "leds: { backend: none }",
    "defaults: { interval: 2s, timeout: 2s }",
    "checks:",
    `  - { name: gateway-icmp, kind: icmp, target: "192.0.2.1", area: lan, ${ICMP} }`,
    `  - { name: wan-icmp, kind: icmp, target: "203.0.113.10", area: wan, interval: 1h, jitter: 0, ${ICMP} }`,
    "",
  ].join("\n");

type Client = ReturnType<typeof startClient>;

/** `netprobe hq serve` in the hq namespace against RabbitMQ, queried through its JSON API. */
function startHqService(lab: Lab, rabbit: RabbitMq) {
  const c = JSON.parse(readFileSync(rabbit.credentialsFile("hq"), "utf8")) as Record<string, string>;
  const file = join(lab.info.dir, "hq-rabbit.yaml");
  writeFileSync(
    file,
    [
      "broker:",
      `  url: ${c.url}`,
      `  username: ${c.username}`,
      `  password: "${c.password}"`,
      `  ca_file: ${c.ca_file}`,
      `  cert_file: ${c.cert_file}`,
      `  key_file: ${c.key_file}`,
      "  client_id: hq-rabbit # persistent session: results queue at the broker while HQ is away",
      "  protocol_version: 4",
      "http: { host: 127.0.0.1, port: 8080 }",
      `auth: { token_file: ${join(lab.info.dir, "hq-token")} }`,
      "",
    ].join("\n"),
  );
  // HQ's API needs its token (docs/hq.md, "Access"); curl reads the header from a file, not argv.
  const header = join(lab.info.dir, "hq-auth-header");
  const child = lab.spawn("hq", [process.execPath, CLI, "hq", "serve", "--config", file], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  const log: string[] = [];
  createInterface({ input: child.stderr! }).on("line", (l) => log.push(l));
  const get = async <T>(path: string): Promise<T | undefined> => {
    try {
      writeFileSync(
        header,
        `Authorization: Bearer ${readFileSync(join(lab.info.dir, "hq-token"), "utf8").trim()}\n`,
        {
          mode: 0o600,
        },
      );
    } catch {
      return undefined; // HQ has not written its token yet
    }
    const r = await lab.exec(
      "hq",
      ["curl", "-sf", "--max-time", "2", "-H", `@${header}`, `${HQ_PAGE}${path}`],
      {
        timeoutMs: 3000,
      },
    );
    return r.code === 0 ? (JSON.parse(r.stdout) as T) : undefined;
  };
  /** Polls the API until `fn` accepts the answer. */
  const until = async <T, R>(
    what: string,
    timeoutMs: number,
    path: string,
    fn: (v: T) => R | undefined | false,
  ) => {
    const deadline = Date.now() + timeoutMs;
    let last: T | undefined;
    for (;;) {
      last = await get<T>(path);
      const r = last === undefined ? undefined : fn(last);
      if (r) return r;
      if (Date.now() > deadline)
        throw new Error(
          `timed out after ${timeoutMs} ms waiting for HQ: ${what}; last answer ${JSON.stringify(last)?.slice(0, 400)}; ` +
            `HQ log: ${log.slice(-5).join(" | ")}`,
        );
      await new Promise((res) => setTimeout(res, 250));
    }
  };
  return {
    child,
    log,
    probe: (what: string, timeoutMs: number, fn: (p: ProbeDetail) => boolean) =>
      until<ProbeDetail, ProbeDetail>(what, timeoutMs, "/api/probe?key=lab/probe-1", (p) =>
        fn(p) ? p : undefined,
      ),
    fleet: (what: string, timeoutMs: number, fn: (p: ProbeView | undefined) => boolean) =>
      until<{ probes: ProbeView[] }, ProbeView>(what, timeoutMs, "/api/fleet", (f) => {
        const p = f.probes.find((x) => x.key === "lab/probe-1");
        return fn(p) ? (p ?? ({} as ProbeView)) : undefined;
      }),
  };
}

/** Every result seq HQ holds for the probe, across its checks. */
function seqsAtHq(p: ProbeDetail): number[] {
  return p.checks.flatMap((c) => c.results.map((r) => r.seq)).sort((a, b) => a - b);
}

describe("probe and HQ on RabbitMQ's MQTT plugin (MQTT 3.1.1)", () => {
  const lab = useLab();
  let rabbit: RabbitMq;
  let probe: ReturnType<typeof startProbe>;
  let hq: ReturnType<typeof startHqService>;
  let client: Client;
  const children: ChildProcess[] = [];
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGTERM");
    await Promise.all(children.map((c) => exited(c)));
    await rabbit?.stop();
  });

  it("a private RabbitMQ node starts in the lab and accepts MQTT 3.1.1 over mutual TLS", async () => {
    rabbit = await startRabbitMq(lab());
    console.log(`rabbitmq ${rabbit.nodename}: first start ${rabbit.startupMs} ms to the first CONNACK`);
    client = startClient(lab(), "hq", { file: rabbit.credentialsFile("hq") }, 4);
    children.push(client.child);
    await client.connected();
    expect(await client.subscribe(`${PROBE_BASE}#`)).toEqual([1]);
  });

  it("the probe comes online, a schema-valid result reaches HQ, and HQ started later sees it online from the retained state", async () => {
    const configFile = join(lab().info.dir, "rabbit-probe.yaml");
    writeFileSync(configFile, PROBE_CONFIG(rabbit));
    probe = startProbe(lab(), rabbit.probeEnv("probe-1"), configFile);
    children.push(probe);
    const online = await waitFor("online state at the HQ client", 15_000, () =>
      client.on(`${PROBE_BASE}state`).find((m) => m.payload.includes('"online"')),
    );
    const state = JSON.parse(online.payload) as StatePayload;
    expect(Value.Check(StatePayload, state)).toBe(true);
    const result = await waitFor(
      "a gateway-icmp result",
      10_000,
      () => client.on(`${PROBE_BASE}results/gateway-icmp`)[0],
    );
    const payload = JSON.parse(result.payload) as ResultPayload;
    expect([...Value.Errors(ResultPayload, payload)]).toEqual([]);
    expect(payload).toMatchObject({ site: "lab", probe: "probe-1", status: "ok" });

    // RabbitMQ sends retained messages only to exact-topic subscriptions, never to HQ's
    // netprobe/v1/+/+/# (rabbitmq-server#8824): HQ catches up per probe by exact topic.
    hq = startHqService(lab(), rabbit);
    children.push(hq.child);
    const view = await hq.fleet("lab/probe-1 online with its health and config", 15_000, (p) =>
      Boolean(p?.state === "online" && p.health !== null && p.config_hash !== null),
    );
    expect(view.boot_id).toBe(state.boot_id);
    expect(hq.log.some((l) => l.includes("connected to the fleet broker"))).toBe(true);
  });

  it("cmd/run from HQ is carried out and answered on reply/<request_id> (no response topic in 3.1.1)", async () => {
    const before = client.on(`${PROBE_BASE}results/wan-icmp`).length;
    const reply = await client.command("run", { request_id: "rabbit-run-1", check: "wan-icmp" });
    expect(reply).toMatchObject({
      ok: true,
      command: "run",
      request_id: "rabbit-run-1",
      result: { started: ["wan-icmp"] },
    });
    const run = await waitFor(
      "the commanded wan-icmp result",
      5000,
      () => client.on(`${PROBE_BASE}results/wan-icmp`)[before],
    );
    const onReply = client.on(`${PROBE_BASE}reply/rabbit-run-1`);
    expect(onReply).toHaveLength(1);
    expect(onReply[0]!.correlation).toBeUndefined();
    const { id } = JSON.parse(run.payload) as ResultPayload;
    await hq.probe("the HQ service has the commanded result", 5000, (p) =>
      p.checks.some((c) => c.check === "wan-icmp" && c.results.some((r) => r.id === id)),
    );
  });

  it("topic permissions confine probe-1 to its own prefix: a publish elsewhere costs it the connection", async () => {
    const intruder = startClient(lab(), "probe", { file: rabbit.credentialsFile("probe-1") }, 4);
    children.push(intruder.child);
    await intruder.connected();
    intruder.publishAsync("netprobe/v1/lab/probe-2/state", '{"state":"online"}');
    // 3.1.1 has no negative PUBACK: RabbitMQ refuses by closing the connection.
    await waitFor("the connection closed by the broker", 5000, () =>
      intruder.events.some((e) => e.event === "closed"),
    );
    expect(intruder.ackCount()).toBe(0);
    await intruder.stop();
  });

  it("broker restart: results queue in the outbox and every seq reaches HQ exactly once afterwards", async () => {
    const lastBefore = Math.max(...probeStatus(lab()).checks.map((c) => c.seq));
    const t0 = Date.now();
    await rabbit.stop();
    console.log(`rabbitmq stopped in ${Date.now() - t0} ms`);
    await waitFor("results queuing in the probe's outbox", 15_000, () => probeStatus(lab()).outbox.rows >= 4);
    const queued = probeStatus(lab()).outbox.rows;
    const restartMs = await rabbit.start();
    console.log(`rabbitmq restart: ${restartMs} ms to the first CONNACK; ${queued} rows were queued`);
    await waitFor("outbox drained", 30_000, () => probeStatus(lab()).outbox.rows === 0);
    const lastAfter = Math.max(...probeStatus(lab()).checks.map((c) => c.seq));
    expect(lastAfter).toBeGreaterThan(lastBefore + 2);
    const p = await hq.probe(`seq ${lastAfter} at HQ`, 30_000, (v) =>
      seqsAtHq(v).some((s) => s >= lastAfter),
    );
    const seqs = seqsAtHq(p);
    // HQ's persistent session outlived the broker restart: nothing from before, during or after
    // the outage is missing, and no seq is there twice.
    expect(seqs[0]).toBeLessThanOrEqual(lastBefore);
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(seqs.at(-1)! - seqs[0]! + 1).toBe(seqs.length);
    await hq.fleet("probe online again at HQ", 10_000, (v) => v?.state === "online");
  });

  it("SIGKILL of the probe: HQ sees offline from the will, and it is retained", async () => {
    probe.kill("SIGKILL");
    await exited(probe);
    await hq.fleet("probe offline at HQ", 10_000, (v) => v?.state === "offline");
    const late = startClient(lab(), "hq", { file: rabbit.credentialsFile("hq") }, 4);
    children.push(late.child);
    await late.connected();
    await late.subscribe(`${PROBE_BASE}state`);
    const state = await waitFor("retained state for a late subscriber", 5000, () =>
      late.on(`${PROBE_BASE}state`).find((m) => m.retain),
    );
    expect(JSON.parse(state.payload)).toMatchObject({ state: "offline" });
    await late.stop();
  });
});
