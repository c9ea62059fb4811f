// Alerts end to end with the real servers (docs/alerting.md): the real probe in the lab's probe
// namespace, `netprobe hq serve` in the hq namespace with its own webhook, and Debian's prometheus
// (the shipped rules, scraping HQ's /metrics with a bearer token) and prometheus-alertmanager (the
// shipped config, its timings shortened and its receiver pointed at the lab) beside it. One webhook
// receiver in the hq namespace takes both paths (/hq and /am) and timestamps every POST. What an
// on-call person would check, counted exactly on both paths:
//   pull the probe's cable → one "link down" naming the site with the dependent areas inside, plug
//   it back → one resolved; broker down → one "probe unreachable" after the configured delay, not
//   area alerts; a DNS-only fault → one DNS notification, one resolved.
// The probe's only path to HQ is that cable: HQ learns of the link failure from the outbox replayed
// once it is back (docs/alerting.md, "What HQ can know"), so the notification follows the plug-in.
import type { ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { labCredentials } from "../../scripts/lab/broker-tls.ts";
import { ADDR, type FaultName } from "../../scripts/lab/lab.ts";
import { useLab } from "./lab-fixture.ts";
import { exited, startProbe, waitFor } from "./probe-harness.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const CLI = join(ROOT, "services/probe/src/cli.ts");
const HQ = `${ADDR.hq4}:8080`;
const RECEIVER = `${ADDR.hq4}:9095`;
const PROM = `${ADDR.hq4}:9090`;
const AM = `${ADDR.hq4}:9093`;
/** HQ's delay before a probe it cannot hear is an incident (alerts.unreachable_after_s). */
const UNREACHABLE_AFTER_S = 25;

/** One POST the receiver got: which path, when (ms, this machine's clock), the JSON body. */
interface Hit {
  path: "/hq" | "/am";
  at: number;
  body: Record<string, unknown>;
}
interface HqHit {
  status: string;
  incident: {
    kind: string;
    title: string;
    site: string;
    dependent_areas: string[];
    evidence: { code: string | null }[];
  };
}
interface AmAlert {
  status: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

// The receiver: every POST body as one JSON line on stdout.
const RECEIVER_JS = `
const http = require("node:http");
http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    process.stdout.write(JSON.stringify({ path: req.url, at: Date.now(), body: JSON.parse(Buffer.concat(chunks).toString() || "{}") }) + "\\n");
    res.end("ok");
  });
}).listen(9095, "${ADDR.hq4}", () => process.stdout.write(JSON.stringify({ ready: true }) + "\\n"));
`;

describe("alerts through Prometheus + Alertmanager and through HQ's webhook", () => {
  const lab = useLab();
  const children: ChildProcess[] = [];
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGTERM");
    await Promise.all(children.map((c) => exited(c)));
  });

  it("cable, broker and DNS faults: one notification per incident and one resolve, on both paths", async () => {
    const dir = join(lab().info.dir, "alerting");
    mkdirSync(dir, { recursive: true });
    const hits: Hit[] = [];
    const spawnLogged = (name: string, argv: string[], log: string[]): ChildProcess => {
      const c = lab().spawn("hq", argv, { stdio: ["ignore", "pipe", "pipe"] });
      children.push(c);
      createInterface({ input: c.stderr! }).on("line", (l) => log.push(l));
      createInterface({ input: c.stdout! }).on("line", (l) => log.push(l));
      c.once("exit", (code) => log.push(`${name} exited ${code}`));
      return c;
    };

    // The receiver.
    const receiverLog: string[] = [];
    const receiver = lab().spawn("hq", [process.execPath, "-e", RECEIVER_JS], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.push(receiver);
    createInterface({ input: receiver.stderr! }).on("line", (l) => receiverLog.push(l));
    createInterface({ input: receiver.stdout! }).on("line", (l) => {
      const m = JSON.parse(l) as Hit & { ready?: boolean };
      if (m.ready) receiverLog.push("ready");
      else hits.push(m);
    });
    await waitFor("webhook receiver listening", 10_000, () => receiverLog.includes("ready"));

    // HQ with its own webhook, a viewer token for Prometheus and the operator token for curl.
    const c = labCredentials(lab().info.dir, "hq");
    const tokenFile = join(dir, "hq-token");
    const promToken = join(dir, "prometheus.token");
    const secretFile = join(dir, "webhook.secret");
    writeFileSync(promToken, "prometheus-scrape-token-0123456789\n", { mode: 0o600 });
    writeFileSync(secretFile, "lab-webhook-secret-0123456789\n", { mode: 0o600 });
    const hqConfig = join(dir, "hq.yaml");
    writeFileSync(
      hqConfig,
      stringify({
        broker: { url: c.url, username: c.username, password: c.password, ca_file: c.ca_file },
        auth: { token_file: tokenFile, tokens: [{ name: "prometheus", role: "viewer", file: promToken }] },
        alerts: {
          unreachable_after_s: UNREACHABLE_AFTER_S,
          settle_s: 2,
          resolve_after_s: 3,
          webhooks: [{ name: "lab", url: `http://${RECEIVER}/hq`, secret_file: secretFile, backoff_s: 0.5 }],
        },
      }),
      { mode: 0o600 },
    );
    const hqLog: string[] = [];
    spawnLogged(
      "hq",
      [
        process.execPath,
        CLI,
        "hq",
        "serve",
        "--config",
        hqConfig,
        "--cert",
        c.cert_file,
        "--key",
        c.key_file,
      ].concat(["--host", ADDR.hq4, "--port", "8080"]),
      hqLog,
    );
    await waitFor("HQ serving and connected", 20_000, () =>
      hqLog.some((l) => l.includes("connected to the fleet broker")),
    );

    // Prometheus with the shipped rules, 1 s scrape and evaluation.
    const promConfig = join(dir, "prometheus.yml");
    writeFileSync(
      promConfig,
      stringify({
        global: { scrape_interval: "1s", evaluation_interval: "1s" },
        rule_files: [join(ROOT, "deploy/prometheus/netprobe.rules.yml")],
        alerting: { alertmanagers: [{ static_configs: [{ targets: [AM] }] }] },
        scrape_configs: [
          {
            job_name: "netprobe-hq",
            authorization: { type: "Bearer", credentials_file: promToken },
            static_configs: [{ targets: [HQ] }],
          },
        ],
      }),
    );
    const promLog: string[] = [];
    spawnLogged(
      "prometheus",
      [
        "prometheus",
        `--config.file=${promConfig}`,
        `--storage.tsdb.path=${join(dir, "tsdb")}`,
        `--web.listen-address=${PROM}`,
      ],
      promLog,
    );
    // Alertmanager: the shipped config, its timings shortened for the test, the receiver in the lab.
    const amYaml = parse(readFileSync(join(ROOT, "deploy/alertmanager/alertmanager.yml"), "utf8")) as {
      route: Record<string, unknown>;
      receivers: { webhook_configs: { url: string }[] }[];
    };
    Object.assign(amYaml.route, { group_wait: "1s", group_interval: "1s", repeat_interval: "1h" });
    amYaml.receivers[0]!.webhook_configs[0]!.url = `http://${RECEIVER}/am`;
    const amConfig = join(dir, "alertmanager.yml");
    writeFileSync(amConfig, stringify(amYaml));
    const amLog: string[] = [];
    spawnLogged(
      "alertmanager",
      ["prometheus-alertmanager", `--config.file=${amConfig}`, `--storage.path=${join(dir, "am")}`].concat([
        `--web.listen-address=${AM}`,
        "--cluster.listen-address=",
      ]),
      amLog,
    );

    const token = () => readFileSync(tokenFile, "utf8").trim();
    const curl = async (url: string, auth = true): Promise<string> => {
      const args = [
        "curl",
        "-s",
        "--max-time",
        "3",
        ...(auth ? ["-H", `Authorization: Bearer ${token()}`] : []),
        url,
      ];
      return (await lab().exec("hq", args, { timeoutMs: 5000 })).stdout;
    };
    const metric = async (line: string) => (await curl(`http://${HQ}/metrics`)).includes(line);
    // /metrics needs a token: none, 401; Prometheus' viewer token scrapes.
    expect(await curl(`http://${HQ}/metrics`, false)).toContain("authentication required");
    await waitForAsync(
      "Prometheus scraping HQ (up == 1)",
      30_000,
      async () =>
        (await curl(`http://${PROM}/api/v1/query?query=up`, false)).includes('"value":[') &&
        (await curl(`http://${PROM}/api/v1/query?query=up%3D%3D1`, false)).includes("netprobe-hq"),
    );
    await waitForAsync("Alertmanager ready", 20_000, async () =>
      (await curl(`http://${AM}/-/ready`, false)).includes("OK"),
    );

    // The probe, until every area is ok at HQ.
    const probe = startProbe(lab());
    children.push(probe);
    const site = 'site="lab",probe="probe-1"';
    for (const area of ["link", "lan", "dhcp", "dns", "wan", "phone"])
      await waitForAsync(`${area} ok at HQ`, 90_000, () =>
        metric(`netprobe_area_state{${site},area="${area}",state="ok"} 1`),
      );
    expect(hits, "no notification before any fault").toEqual([]);

    const hq = (from: number) =>
      hits.filter((h) => h.path === "/hq" && h.at >= from).map((h) => h.body as unknown as HqHit);
    const am = (from: number) =>
      hits
        .filter((h) => h.path === "/am" && h.at >= from)
        .map((h) => ({ at: h.at, ...(h.body as { status: string; alerts: AmAlert[] }) }));
    const settled = async (from: number, what: string) => {
      await waitFor(
        `${what}: resolved on both paths`,
        90_000,
        () => hq(from).some((n) => n.status === "resolved") && am(from).some((n) => n.status === "resolved"),
      );
      // Anything late (a repeat, a second alert) would arrive within a few group intervals.
      await new Promise((r) => setTimeout(r, 5000));
    };
    const fault = (name: FaultName, on: boolean) => lab().fault(name, on);

    // 1. The cable, out for 15 s (dependants fail meanwhile; shorter than the unreachable delay).
    let t0 = Date.now();
    await fault("link-down", true);
    await new Promise((r) => setTimeout(r, 15_000));
    await fault("link-down", false);
    await settled(t0, "link down");
    let h = hq(t0);
    expect(h.map((n) => `${n.incident.kind}:${n.status}`)).toEqual([
      "link_down:firing",
      "link_down:resolved",
    ]);
    expect(h[0]!.incident.site).toBe("lab");
    expect(h[0]!.incident.title).toContain("lab: link down");
    expect(h[0]!.incident.dependent_areas).toEqual(expect.arrayContaining(["lan", "dhcp", "dns", "wan"]));
    let a = am(t0);
    expect(a.map((n) => n.status)).toEqual(["firing", "resolved"]);
    expect(a[0]!.alerts).toHaveLength(1);
    expect(a[0]!.alerts[0]!.labels).toMatchObject({ site: "lab", kind: "link_down", area: "link" });
    expect(a[0]!.alerts[0]!.annotations.summary).toBe("lab: link down (probe-1)");
    for (const dep of ["lan", "dhcp", "dns", "wan"])
      expect(a[0]!.alerts[0]!.annotations.dependent_areas).toContain(dep);
    for (const area of ["link", "lan", "dhcp", "dns", "wan", "phone"])
      await waitForAsync(`${area} ok again`, 60_000, () =>
        metric(`netprobe_area_state{${site},area="${area}",state="ok"} 1`),
      );

    // 2. The broker down: "probe unreachable" after the delay, and nothing about areas.
    t0 = Date.now();
    await fault("broker-down", true);
    await waitFor("probe unreachable at the webhook", (UNREACHABLE_AFTER_S + 20) * 1000, () =>
      hq(t0).some((n) => n.status === "firing"),
    );
    const unreachableAt = hits.find((x) => x.path === "/hq" && x.at >= t0)!.at;
    expect(unreachableAt - t0).toBeGreaterThanOrEqual(UNREACHABLE_AFTER_S * 1000);
    await waitFor("probe unreachable through Alertmanager", 30_000, () => am(t0).length > 0);
    await fault("broker-down", false);
    await settled(t0, "probe unreachable");
    h = hq(t0);
    expect(h.map((n) => `${n.incident.kind}:${n.status}`)).toEqual([
      "probe_unreachable:firing",
      "probe_unreachable:resolved",
    ]);
    expect(h[0]!.incident.title).toBe("lab: probe unreachable (probe-1)");
    a = am(t0);
    expect(a.map((n) => `${n.alerts.map((x) => x.labels.kind).join()}:${n.status}`)).toEqual([
      "probe_unreachable:firing",
      "probe_unreachable:resolved",
    ]);

    // 3. DNS only: one DNS incident (a WAN check that resolves names may be inside it).
    await waitForAsync("dns ok before the DNS fault", 60_000, () =>
      metric(`netprobe_area_state{${site},area="dns",state="ok"} 1`),
    );
    t0 = Date.now();
    await fault("dns-down", true);
    await waitFor("DNS notification on both paths", 60_000, () => hq(t0).length > 0 && am(t0).length > 0);
    const latency = { hq: hits.find((x) => x.path === "/hq" && x.at >= t0)!.at - t0, am: am(t0)[0]!.at - t0 };
    await new Promise((r) => setTimeout(r, 3000));
    await fault("dns-down", false);
    await settled(t0, "DNS");
    h = hq(t0);
    expect(h.map((n) => `${n.incident.kind}:${n.status}`)).toEqual([
      "dns_failing:firing",
      "dns_failing:resolved",
    ]);
    expect(h[0]!.incident.evidence[0]!.code).not.toBeNull();
    a = am(t0);
    expect(a.map((n) => `${n.alerts.map((x) => x.labels.kind).join()}:${n.status}`)).toEqual([
      "dns_failing:firing",
      "dns_failing:resolved",
    ]);
    console.log(
      `alert latency dns-down → webhook: HQ ${latency.hq} ms, Prometheus+Alertmanager ${latency.am} ms`,
    );
    mkdirSync(join(ROOT, "test-artifacts"), { recursive: true });
    writeFileSync(join(ROOT, "test-artifacts/alert-latency.json"), `${JSON.stringify(latency)}\n`);
  }, 600_000);
});

/** waitFor for an async condition. */
async function waitForAsync(what: string, timeoutMs: number, fn: () => Promise<boolean>): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await fn().catch(() => false))) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
