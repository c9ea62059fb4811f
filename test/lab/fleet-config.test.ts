// Fleet config from headquarters (docs/fleet-config.md) with the real mosquitto (TLS, the shipped
// ACL) and the real `netprobe hq serve` in the lab's hq namespace, driven by the real
// `netprobe hq config …` CLI over HQ's HTTP API, as an operator would.
// Part 1: two probes simulated by MQTT clients in the probe namespace, logged in as lab/probe-1
// and lab/probe-2 (their retained state and config, replies as the contract says), each told how
// to behave — so a rollout's stop at the first failure is seen for every kind of failure.
// Part 2: the real probe (`netprobe run`) on a config file HQ replaces: a changed check option
// rolled out and run, a template refused by HQ's validation, a local edit shown as drift.
import type { ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { EXAMPLES } from "../../scripts/gen/mqtt-examples.ts";
import { labCredentials } from "../../scripts/lab/broker-tls.ts";
import { newLabName } from "../../scripts/lab/lab.ts";
import { ADDR } from "../../scripts/lab/topology.ts";
import { documentHash } from "../../services/contract/src/config-document.ts";
import type { ConfigPayload } from "../../services/contract/src/payloads.ts";
import { useLab } from "./lab-fixture.ts";
import { startBrowser } from "./hq-browser.ts";
import { startClient } from "./mqtt-driver.ts";
import { exited, startProbe, waitFor } from "./probe-harness.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const CLI = join(ROOT, "services/probe/src/cli.ts");
const HQ_URL = `http://${ADDR.hq4}:8080/`;
const OLD = "0".repeat(64);
const CONFIG = EXAMPLES.config[0] as ConfigPayload;

type Behaviour = "ok" | "refuse" | "rolls_back" | "silent";

/** Polls `ok` every 250 ms until true; throws naming `what` after `timeoutMs`. */
async function poll(what: string, ok: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const t0 = Date.now();
  while (!(await ok())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** A probe played by an MQTT client: retained state and config, replies to config commands. */
async function simulatedProbe(lab: ReturnType<ReturnType<typeof useLab>>, name: "probe-1" | "probe-2") {
  const c = startClient(lab, "probe", name);
  await c.connected();
  const base = `netprobe/v1/lab/${name}/`;
  const sim = {
    behaviour: "ok" as Behaviour,
    documentHash: OLD,
    /** Commands received, `name hash` */
    got: [] as string[],
    publishConfig: async (extra: Record<string, unknown> = {}) => {
      await c.publish(
        `${base}config`,
        JSON.stringify({
          ...CONFIG,
          at: new Date().toISOString(),
          document_hash: sim.documentHash,
          ...extra,
        }),
        { retain: true },
      );
    },
  };
  await c.publish(
    `${base}state`,
    JSON.stringify({
      schema: 1,
      state: "online",
      version: "0.1.0",
      boot_id: `boot-${name}`,
      started_at: new Date().toISOString(),
    }),
    { retain: true },
  );
  await sim.publishConfig();
  await c.subscribe(`${base}cmd/#`);
  let seen = 0;
  const reply = (cmd: string, requestId: string, ok: boolean, body: Record<string, unknown>) =>
    c.publish(
      `${base}reply/${requestId}`,
      JSON.stringify({
        schema: 1,
        request_id: requestId,
        command: cmd,
        ok,
        at: new Date().toISOString(),
        site: "lab",
        probe: name,
        ...body,
      }),
    );
  const timer = setInterval(() => {
    const fresh = c.messages.slice(seen).filter((m) => m.topic.startsWith(`${base}cmd/`));
    seen = c.messages.length;
    for (const m of fresh) {
      const cmd = m.topic.slice(`${base}cmd/`.length);
      const p = JSON.parse(m.payload) as { request_id: string; document_hash?: string };
      sim.got.push(`${cmd}${p.document_hash ? ` ${p.document_hash}` : ""}`);
      void (async () => {
        if (sim.behaviour === "silent") return;
        if (cmd === "apply_config") {
          if (sim.behaviour === "refuse")
            return reply(cmd, p.request_id, false, {
              error: {
                code: "config_invalid",
                message: "the config file is invalid: 1 problem",
                problems: ["checks.0.target: the probe cannot resolve this"],
              },
            });
          const confirmBy = new Date(Date.now() + 30_000).toISOString();
          await reply(cmd, p.request_id, true, {
            result: {
              config_hash: "c".repeat(64),
              document_hash: p.document_hash,
              changed: ["checks"],
              confirm_by: confirmBy,
            },
          });
          if (sim.behaviour === "rolls_back") {
            await sim.publishConfig({
              rolled_back: {
                document_hash: p.document_hash,
                at: new Date().toISOString(),
                reason: "not_confirmed",
              },
            });
            return;
          }
          const previous = sim.documentHash;
          sim.documentHash = p.document_hash!;
          await sim.publishConfig({
            pending: {
              document_hash: p.document_hash,
              confirm_by: confirmBy,
              previous_document_hash: previous,
            },
          });
        } else if (cmd === "confirm_config") {
          await reply(cmd, p.request_id, true, {
            result: { document_hash: p.document_hash, confirmed: true },
          });
          await sim.publishConfig();
        } else if (cmd === "rollback_config") {
          sim.documentHash = OLD;
          await reply(cmd, p.request_id, true, {
            result: { config_hash: "d".repeat(64), document_hash: OLD },
          });
          await sim.publishConfig();
        }
      })();
    }
  }, 25);
  return {
    sim,
    /** Clears its retained state and config: HQ forgets the probe (a decommissioned one). */
    clear: async () => {
      await c.publish(`${base}config`, "", { retain: true });
      await c.publish(`${base}state`, "", { retain: true });
    },
    stop: async () => {
      clearInterval(timer);
      await c.stop();
    },
  };
}

describe("fleet config from HQ: templates, validation, staged rollout", () => {
  const lab = useLab({ name: newLabName("cfgh") });
  const children: ChildProcess[] = [];
  const stops: Array<() => Promise<void>> = [];
  const sims: Array<Awaited<ReturnType<typeof simulatedProbe>>> = [];
  afterAll(async () => {
    for (const s of stops) await s();
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGTERM");
    await Promise.all(children.map((c) => exited(c)));
  });

  let hqStarted: Awaited<ReturnType<typeof startHqNow>> | undefined;
  /** `netprobe hq serve`, started once for the file's tests. */
  const startHq = async () => (hqStarted ??= await startHqNow());

  /** Starts `netprobe hq serve` in the hq namespace; resolves with its token files once it serves. */
  async function startHqNow() {
    const dir = join(lab().info.dir, "fleet-config");
    mkdirSync(dir, { recursive: true });
    const c = labCredentials(lab().info.dir, "hq");
    const tokenFile = join(dir, "hq-token");
    const viewerToken = join(dir, "viewer.token");
    writeFileSync(viewerToken, "viewer-token-for-the-fleet-config-test-0123\n", { mode: 0o600 });
    const cfgFile = join(dir, "hq.yaml");
    writeFileSync(
      cfgFile,
      stringify({
        broker: { url: c.url, username: c.username, password: c.password, ca_file: c.ca_file },
        auth: { token_file: tokenFile, tokens: [{ name: "viewer", role: "viewer", file: viewerToken }] },
        history: { engine: "sqlite", path: join(dir, "history.db") },
      }),
      { mode: 0o600 },
    );
    const log: string[] = [];
    const hq = lab().spawn(
      "hq",
      [
        process.execPath,
        CLI,
        "hq",
        "serve",
        "--config",
        cfgFile,
        "--cert",
        c.cert_file,
        "--key",
        c.key_file,
        "--host",
        ADDR.hq4,
        "--port",
        "8080",
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    children.push(hq);
    createInterface({ input: hq.stderr! }).on("line", (l) => log.push(l));
    await waitFor(
      "HQ serving and connected",
      20_000,
      () =>
        log.some((l) => l.includes("serving the fleet page")) &&
        log.some((l) => l.includes("connected to the fleet broker")),
    );
    return { dir, tokenFile, viewerToken, log };
  }

  /** `netprobe hq config …` in the hq namespace. */
  const cli = async (tokenFile: string, ...args: string[]) => {
    const r = await lab().exec(
      "hq",
      [process.execPath, CLI, "hq", "config", ...args, "--hq", HQ_URL, "--token-file", tokenFile],
      {
        timeoutMs: 60_000,
      },
    );
    return r;
  };

  it("rolls out stage by stage, stops at the first failure of each kind, skips probes already there", async () => {
    const hq = await startHq();
    const p1 = await simulatedProbe(lab(), "probe-1");
    const p2 = await simulatedProbe(lab(), "probe-2");
    stops.push(p1.stop, p2.stop);
    sims.push(p1, p2);
    const op = (...a: string[]) => cli(hq.tokenFile, ...a);

    // HQ hears both probes (their retained state and config).
    await poll("status lists both probes", async () => (await op("status")).stdout.includes("lab/probe-2"));

    // A fleet template: one check whose count is a variable; a site template overrides it.
    const fleetFile = join(hq.dir, "fleet.yaml");
    writeFileSync(
      fleetFile,
      stringify({
        vars: { count: 5 },
        config: {
          leds: { backend: "none" },
          checks: [
            {
              name: "gateway-icmp",
              kind: "icmp",
              target: "192.0.2.1",
              area: "lan",
              options: { count: "${count}" },
            },
          ],
        },
      }),
    );
    let r = await op("set", "fleet", fleetFile, "-m", "one gateway check for every probe");
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("fleet: version 1");
    const siteFile = join(hq.dir, "site.yaml");
    writeFileSync(siteFile, stringify({ vars: { count: 3 } }));
    r = await op("set", "site/lab", siteFile, "-m", "lab: 3 pings");
    expect(r.code).toBe(0);

    // HQ's validation refuses a template that makes a document invalid; nothing is stored.
    const badFile = join(hq.dir, "bad.yaml");
    writeFileSync(badFile, stringify({ vars: { count: 0 } }));
    r = await op("set", "site/lab", badFile);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("checks[0].options.count: should be >= 1");
    const unknownVar = join(hq.dir, "unknown-var.yaml");
    writeFileSync(unknownVar, stringify({ config: { log_level: "${verbosity}" } }));
    r = await op("set", "probe/lab/probe-1", unknownVar);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("unknown variable ${verbosity} at log_level");

    r = await op("show", "lab/probe-1");
    expect(r.code).toBe(0);
    const desired = /document ([0-9a-f]{64})/.exec(r.stdout)![1]!;
    // Each probe's document names it: probe-2's differs.
    const desiredP2 = /document ([0-9a-f]{64})/.exec((await op("show", "lab/probe-2")).stdout)![1]!;
    expect(desiredP2).not.toBe(desired);
    expect(r.stdout).toContain('"count": 3');
    let status = await op("status");
    expect(status.stdout).toMatch(/lab\/probe-1 +online +\S+ +000000000000 +drift/);

    // A viewer reads but cannot change anything.
    expect((await cli(hq.viewerToken, "status")).code).toBe(0);
    r = await cli(hq.viewerToken, "apply");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("403");
    expect(p1.sim.got).toEqual([]);

    // probe-2 refuses: probe-1 (stage 1) is confirmed, the rollout stops at probe-2 with its problems.
    p2.sim.behaviour = "refuse";
    r = await op(
      "apply",
      "--stages",
      "1,100%",
      "--confirm",
      "30",
      "--reply-timeout",
      "5",
      "--effective-timeout",
      "5",
      "-m",
      "count 3",
    );
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("stage 1 lab/probe-1: confirmed");
    expect(r.stdout).toContain(
      "stage 2 lab/probe-2: failed refused: config_invalid: the config file is invalid: 1 problem",
    );
    expect(r.stdout).toContain("checks.0.target: the probe cannot resolve this");
    expect(r.stdout).toMatch(/stopped — stage 2, lab\/probe-2: refused/);
    expect(p1.sim.got).toEqual([`apply_config ${desired}`, `confirm_config ${desired}`]);
    expect(p2.sim.got).toEqual([`apply_config ${desiredP2}`]);
    status = await op("status", "--json");
    const rows = JSON.parse(status.stdout) as Array<{ key: string; drift: string; effective_hash: string }>;
    expect(rows.find((x) => x.key === "lab/probe-1")).toMatchObject({
      drift: "in_sync",
      effective_hash: desired,
    });
    expect(rows.find((x) => x.key === "lab/probe-2")).toMatchObject({ drift: "drift", effective_hash: OLD });

    // A new document; probe-1 rolls back after applying: stopped at stage 1, probe-2 never asked.
    writeFileSync(siteFile, stringify({ vars: { count: 4 } }));
    expect((await op("set", "site/lab", siteFile, "-m", "4 pings")).code).toBe(0);
    const desired2 = /document ([0-9a-f]{64})/.exec((await op("show", "lab/probe-1")).stdout)![1]!;
    p1.sim.got.length = 0;
    p2.sim.got.length = 0;
    p1.sim.behaviour = "rolls_back";
    p2.sim.behaviour = "ok";
    r = await op(
      "apply",
      "--stages",
      "1,100%",
      "--confirm",
      "30",
      "--reply-timeout",
      "5",
      "--effective-timeout",
      "5",
    );
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("stage 1 lab/probe-1: failed rolled_back");
    expect(p1.sim.got).toEqual([`apply_config ${desired2}`]);
    expect(p2.sim.got).toEqual([]);

    // probe-1 silent: reply_timeout after the configured wait.
    p1.sim.behaviour = "silent";
    const t0 = Date.now();
    r = await op(
      "apply",
      "--probe",
      "lab/probe-1",
      "--confirm",
      "30",
      "--reply-timeout",
      "2",
      "--effective-timeout",
      "2",
    );
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("lab/probe-1: failed reply_timeout");
    expect(Date.now() - t0).toBeGreaterThanOrEqual(2000);

    // Both fine: done; a second apply skips both (already on the desired document), sends nothing.
    p1.sim.behaviour = "ok";
    r = await op(
      "apply",
      "--stages",
      "1,100%",
      "--confirm",
      "30",
      "--reply-timeout",
      "5",
      "--effective-timeout",
      "5",
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/rollout \S+: done/);
    p1.sim.got.length = 0;
    p2.sim.got.length = 0;
    r = await op("apply", "--confirm", "30");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("stage 0 lab/probe-1: skipped");
    expect(r.stdout).toContain("stage 0 lab/probe-2: skipped");
    expect([...p1.sim.got, ...p2.sim.got]).toEqual([]);
    expect((await op("status")).stdout).not.toMatch(/ drift/);

    // Diff against the document HQ sent: no line differs. A local change shows as drift.
    r = await op("diff", "lab/probe-2");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("(in sync");
    p2.sim.documentHash = "e".repeat(64);
    await p2.sim.publishConfig();
    let drift = "";
    await poll("probe-2 drifts", async () => {
      drift = (await op("status")).stdout.split("\n").find((l) => l.startsWith("lab/probe-2")) ?? "";
      return drift.includes("drift");
    });
    expect(drift).toMatch(/eeeeeeeeeeee +drift/);

    // Rollback on request.
    r = await op("rollback", "lab/probe-1");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`lab/probe-1: rolled back to ${OLD.slice(0, 12)}`);
    expect(p1.sim.got).toEqual(["rollback_config"]);

    // The history: versions with author and comment, rollouts with why they stopped.
    r = await op("history");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/fleet:fleet v1 +operator +one gateway check for every probe/);
    expect(r.stdout).toMatch(/site:lab v2 +operator +4 pings/);
    expect(r.stdout).toMatch(/rollout \S+ all \[1,100%\] stopped +operator +stage 2, lab\/probe-2: refused/);
    expect(r.stdout).toMatch(/rollback lab\/probe-1 +operator/);
    expect(hq.log.filter((l) => l.includes('"level":50') || l.includes('"level":60'))).toEqual([]);
  }, 240_000);
  // Part 2: the real probe (`netprobe run` in the probe namespace) on a config file HQ replaces.
  it("end to end with the real probe: rollout of a changed option, HQ's validation, a local edit as drift", async () => {
    const hq = await startHq();
    const op = (...a: string[]) => cli(hq.tokenFile, ...a);
    // The simulated probes of part 1 leave: HQ forgets them.
    for (const s of sims.splice(0)) {
      await s.clear();
      await s.stop();
    }
    await poll(
      "HQ forgot the simulated probes",
      async () => !(await op("status")).stdout.includes("lab/probe-"),
    );

    // The probe's own file: what a technician installed. The fleet template says the same, with
    // the gateway check's count as a variable.
    const common = {
      log_level: "info",
      store: { path: "/var/lib/netprobe/netprobe.db" }, // NETPROBE_STORE_PATH overrides it
      broker: {
        url: "mqtts://203.0.113.50:8883",
        keepalive: "5s",
        reconnect_min: "500ms",
        reconnect_max: "3s",
      },
      leds: { backend: "none" },
      defaults: { interval: "2s", timeout: "2s" },
    };
    const gw = (count: unknown) => ({
      name: "gateway-icmp",
      kind: "icmp",
      target: "192.0.2.1",
      area: "lan",
      options: { count, interval_ms: 20, wait_ms: 500 },
    });
    const probeFile = join(hq.dir, "probe.yaml");
    const installed = { site: "lab", probe: "probe-1", ...common, checks: [gw(3)] };
    writeFileSync(probeFile, stringify(installed));
    const results = startClient(lab(), "hq", "hq");
    stops.push(results.stop);
    await results.connected();
    await results.subscribe("netprobe/v1/lab/probe-1/results/gateway-icmp");
    await results.subscribe("netprobe/v1/lab/probe-1/reply/#");
    const gwResults = () => results.on("netprobe/v1/lab/probe-1/results/gateway-icmp");
    const probe = startProbe(lab(), {}, probeFile);
    children.push(probe);
    let row:
      | {
          key: string;
          online: boolean;
          drift: string;
          effective_hash: string | null;
          desired_hash: string | null;
        }
      | undefined;
    const rowOf = async () => {
      const rows = JSON.parse((await op("status", "--json")).stdout) as Array<NonNullable<typeof row>>;
      return (row = rows.find((x) => x.key === "lab/probe-1"));
    };
    await poll(
      "the real probe reports its document hash",
      async () => (await rowOf())?.effective_hash === documentHash(installed),
      30_000,
    );

    // Templates: the fleet's (count 3 by default), the lab site's count 7.
    const fleetFile = join(hq.dir, "fleet-real.yaml");
    writeFileSync(
      fleetFile,
      stringify({ vars: { count: 3 }, config: { ...common, checks: [gw("${count}")] } }),
    );
    expect((await op("set", "fleet", fleetFile, "-m", "the lab's real probe")).code).toBe(0);
    const siteFile = join(hq.dir, "site-real.yaml");
    writeFileSync(siteFile, stringify({ vars: { count: 7 } }));
    expect((await op("set", "site/lab", siteFile, "-m", "7 pings at the lab")).code).toBe(0);
    const want = { ...installed, checks: [gw(7)] };
    await rowOf();
    expect(row).toMatchObject({
      drift: "drift",
      desired_hash: documentHash(want),
      effective_hash: documentHash(installed),
    });
    let r = await op("diff", "lab/probe-1");
    expect(r.stdout).toContain("- checks[gateway-icmp].options.count: 3");
    expect(r.stdout).toContain("+ checks[gateway-icmp].options.count: 7");

    // The rollout: applied, heard on the new document, confirmed; the probe runs 7 pings.
    const t0 = Date.now();
    r = await op("apply", "--probe", "lab/probe-1", "--confirm", "60", "-m", "count 7");
    expect(r.stderr).toBe("");
    expect(r.stdout).toContain("stage 1 lab/probe-1: confirmed");
    expect(r.code).toBe(0);
    const rolloutMs = Date.now() - t0;
    console.error(
      `fleet-config e2e: rollout to the real probe took ${rolloutMs} ms (CLI start to confirmed)`,
    );
    await waitFor("a gateway-icmp result with 7 echo requests", 20_000, () =>
      gwResults().some((m) => (JSON.parse(m.payload) as { metrics: { sent?: number } }).metrics.sent === 7),
    );
    await rowOf();
    expect(row).toMatchObject({ drift: "in_sync", effective_hash: documentHash(want) });
    expect((await op("diff", "lab/probe-1")).stdout).toContain("(in sync");
    expect(parse(readFileSync(probeFile, "utf8"))).toEqual(want); // the probe wrote HQ's document

    // The page shows it too (a tile's config line, from /api/config/status).
    const browser = startBrowser(lab(), (n) => join(hq.dir, `${n}.png`));
    children.push(browser.child);
    expect((await browser.ready).ready).toBe(true);
    await browser.goto(HQ_URL);
    await browser.wait("form#login", 5000);
    await browser.fill("#password", readFileSync(hq.tokenFile, "utf8").trim());
    await browser.click("#submit");
    const CONFIG_LINE = '.tile[data-probe="lab/probe-1"] [data-role="config"]';
    await browser.wait(`${CONFIG_LINE}[data-drift="in_sync"]`, 15_000);
    expect(await browser.text(CONFIG_LINE)).toBe("config: in sync");

    // A template the probe would refuse is stopped at HQ's validation: nothing reaches the probe.
    writeFileSync(siteFile, stringify({ vars: { count: 0 } }));
    r = await op("set", "site/lab", siteFile);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("checks[0].options.count: should be >= 1");
    expect((await op("set", "site/lab", siteFile, "--force", "-m", "forced")).code).toBe(0);
    const before = gwResults().length;
    r = await op("apply", "--probe", "lab/probe-1");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("invalid documents: nothing was sent");
    expect(r.stderr).toContain("checks[0].options.count: should be >= 1");
    await rowOf();
    expect(row).toMatchObject({ drift: "invalid", effective_hash: documentHash(want) });
    expect(parse(readFileSync(probeFile, "utf8"))).toEqual(want);
    writeFileSync(siteFile, stringify({ vars: { count: 7 } }));
    expect((await op("set", "site/lab", siteFile, "-m", "back to 7")).code).toBe(0);
    await waitFor("results keep coming", 10_000, () => gwResults().length > before);

    // A local edit on the probe (count 9, then cmd/reload): drift, and diff names the option.
    const edited = { ...installed, checks: [gw(9)] };
    writeFileSync(probeFile, stringify(edited));
    const reload = await results.command("reload", { request_id: "cfgh-local-edit" });
    expect(reload.ok).toBe(true);
    await poll(
      "the local edit shows as drift",
      async () => (await rowOf())?.effective_hash === documentHash(edited),
      20_000,
    );
    expect(row).toMatchObject({ drift: "drift", desired_hash: documentHash(want) });
    await browser.wait(`${CONFIG_LINE}[data-drift="drift"]`, 15_000); // the page polls every 10 s
    expect(await browser.text(CONFIG_LINE)).toBe("config: drift");
    r = await op("diff", "lab/probe-1");
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("redacted config");
    expect(r.stdout).toContain("- checks[gateway-icmp].options.count: 9");
    expect(r.stdout).toContain("+ checks[gateway-icmp].options.count: 7");

    // Rollback from HQ: the probe goes back to the file before the latest apply (the installed one);
    // a second rollback has nothing left to go back to, and says so.
    r = await op("rollback", "lab/probe-1");
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`rolled back to ${documentHash(installed).slice(0, 12)}`);
    await poll(
      "HQ sees the installed file again",
      async () => (await rowOf())?.effective_hash === documentHash(installed),
    );
    expect(parse(readFileSync(probeFile, "utf8"))).toEqual(installed);
    r = await op("rollback", "lab/probe-1");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("no_previous");
    r = await op("history");
    expect(r.stdout).toMatch(/rollout \S+ probe:lab\/probe-1 \[1,10%,100%\] done +operator/);
    expect(r.stdout).toMatch(
      /rollout \S+ probe:lab\/probe-1 \[1,10%,100%\] stopped +operator +HQ validation: lab\/probe-1/,
    );
    expect(hq.log.filter((l) => l.includes('"level":50') || l.includes('"level":60'))).toEqual([]);
  }, 240_000);
});
