// Time from a fault to the notification at the webhook, through HQ's own webhook and through
// Prometheus + Alertmanager (docs/alerting.md). The rig (startAlertRig) is shared with
// test/lab/alerting.test.ts: a webhook receiver, `netprobe hq serve` with its webhook, Debian's
// prometheus (shipped rules, 1 s scrape and evaluation) and prometheus-alertmanager (shipped config,
// 1 s group_wait/group_interval), all in the lab's hq namespace. The fault is `dns-down`: its
// detection floor is the dns check's interval × fail_after (2 s × 2 in scripts/lab/probe.lab.yaml).
//
//   node scripts/bench/alert-latency.ts [runs=3] [--lab NAME] [--json]
//                                       (root; builds and removes its own lab unless --lab)
import type { ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { parse, stringify } from "yaml";
import { labCredentials, probeBrokerEnv } from "../lab/broker-tls.ts";
import { ADDR, Lab, labUp } from "../lab/lab.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const CLI = join(ROOT, "services/probe/src/cli.ts");
export const HQ_ADDR = `${ADDR.hq4}:8080`;
const RECEIVER = `${ADDR.hq4}:9095`;
export const PROM_ADDR = `${ADDR.hq4}:9090`;
export const AM_ADDR = `${ADDR.hq4}:9093`;

/** One POST the receiver got: which path, when (ms, this machine's clock), the JSON body. */
export interface Hit {
  path: "/hq" | "/am";
  at: number;
  body: Record<string, unknown>;
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

/** Polls an async condition every 250 ms. */
export async function waitForAsync(
  what: string,
  timeoutMs: number,
  fn: () => Promise<boolean>,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await fn().catch(() => false))) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

export interface AlertRig {
  /** Every notification the receiver got, in arrival order. */
  hits: Hit[];
  /** HQ's operator token file. */
  tokenFile: string;
  /** curl inside the hq namespace (with the operator token unless auth is false); its stdout. */
  curl: (url: string, auth?: boolean) => Promise<string>;
  /** Whether HQ's /metrics has this exact line. */
  metric: (line: string) => Promise<boolean>;
  logs: Record<string, string[]>;
  stop: () => Promise<void>;
}

/** Starts receiver, HQ, Prometheus and Alertmanager in the lab's hq namespace; resolves when all answer. */
export async function startAlertRig(
  lab: Lab,
  opts: { unreachableAfterS: number; settleS: number; resolveAfterS: number },
): Promise<AlertRig> {
  const dir = join(lab.info.dir, "alerting");
  mkdirSync(dir, { recursive: true });
  const hits: Hit[] = [];
  const children: ChildProcess[] = [];
  const logs: Record<string, string[]> = {};
  const spawnLogged = (name: string, argv: string[], onStdout?: (line: string) => void): ChildProcess => {
    const log: string[] = (logs[name] = []);
    const c = lab.spawn("hq", argv, { stdio: ["ignore", "pipe", "pipe"] });
    children.push(c);
    createInterface({ input: c.stderr! }).on("line", (l) => log.push(l));
    createInterface({ input: c.stdout! }).on("line", onStdout ?? ((l) => log.push(l)));
    c.once("exit", (code) => log.push(`${name} exited ${code}`));
    return c;
  };
  const stop = async (): Promise<void> => {
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            c.once("exit", () => resolve());
            c.kill("SIGTERM");
          }),
      ),
    );
  };
  try {
    spawnLogged("receiver", [process.execPath, "-e", RECEIVER_JS], (l) => {
      const m = JSON.parse(l) as Hit & { ready?: boolean };
      if (m.ready) logs.receiver!.push("ready");
      else hits.push(m);
    });
    await waitForAsync("webhook receiver listening", 10_000, () =>
      Promise.resolve(logs.receiver!.includes("ready")),
    );

    // HQ with its own webhook, a viewer token for Prometheus and the operator token for curl.
    const c = labCredentials(lab.info.dir, "hq");
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
          unreachable_after_s: opts.unreachableAfterS,
          settle_s: opts.settleS,
          resolve_after_s: opts.resolveAfterS,
          webhooks: [{ name: "lab", url: `http://${RECEIVER}/hq`, secret_file: secretFile, backoff_s: 0.5 }],
        },
      }),
      { mode: 0o600 },
    );
    spawnLogged("hq", [
      ...[
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
      ],
      ...["--host", ADDR.hq4, "--port", "8080"],
    ]);
    await waitForAsync("HQ connected to the broker", 20_000, () =>
      Promise.resolve(logs.hq!.some((l) => l.includes("connected to the fleet broker"))),
    );

    // Prometheus with the shipped rules, 1 s scrape and evaluation.
    const promConfig = join(dir, "prometheus.yml");
    writeFileSync(
      promConfig,
      stringify({
        global: { scrape_interval: "1s", evaluation_interval: "1s" },
        rule_files: [join(ROOT, "deploy/prometheus/netprobe.rules.yml")],
        alerting: { alertmanagers: [{ static_configs: [{ targets: [AM_ADDR] }] }] },
        scrape_configs: [
          {
            job_name: "netprobe-hq",
            authorization: { type: "Bearer", credentials_file: promToken },
            static_configs: [{ targets: [HQ_ADDR] }],
          },
        ],
      }),
    );
    spawnLogged("prometheus", [
      "prometheus",
      `--config.file=${promConfig}`,
      `--storage.tsdb.path=${join(dir, "tsdb")}`,
      `--web.listen-address=${PROM_ADDR}`,
    ]);
    // Alertmanager: the shipped config, its timings shortened, the receiver in the lab.
    const amYaml = parse(readFileSync(join(ROOT, "deploy/alertmanager/alertmanager.yml"), "utf8")) as {
      route: Record<string, unknown>;
      receivers: { webhook_configs: { url: string }[] }[];
    };
    Object.assign(amYaml.route, { group_wait: "1s", group_interval: "1s", repeat_interval: "1h" });
    amYaml.receivers[0]!.webhook_configs[0]!.url = `http://${RECEIVER}/am`;
    const amConfig = join(dir, "alertmanager.yml");
    writeFileSync(amConfig, stringify(amYaml));
    spawnLogged("alertmanager", [
      "prometheus-alertmanager",
      `--config.file=${amConfig}`,
      `--storage.path=${join(dir, "am")}`,
      `--web.listen-address=${AM_ADDR}`,
      "--cluster.listen-address=",
    ]);

    const curl = async (url: string, auth = true): Promise<string> => {
      const token = readFileSync(tokenFile, "utf8").trim();
      const args = [
        "curl",
        "-s",
        "--max-time",
        "3",
        ...(auth ? ["-H", `Authorization: Bearer ${token}`] : []),
        url,
      ];
      return (await lab.exec("hq", args, { timeoutMs: 5000 })).stdout;
    };
    const metric = async (line: string) => (await curl(`http://${HQ_ADDR}/metrics`)).includes(line);
    await waitForAsync("Prometheus scraping HQ (up == 1)", 30_000, async () =>
      (await curl(`http://${PROM_ADDR}/api/v1/query?query=up%3D%3D1`, false)).includes("netprobe-hq"),
    );
    await waitForAsync("Alertmanager ready", 20_000, async () =>
      (await curl(`http://${AM_ADDR}/-/ready`, false)).includes("OK"),
    );
    return { hits, tokenFile, curl, metric, logs, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Areas of the lab probe's panel, for "all ok" waits. */
export const LAB_AREAS = ["link", "lan", "dhcp", "dns", "wan", "phone"] as const;
export const LAB_PROBE = 'site="lab",probe="probe-1"';

async function main(): Promise<void> {
  const { values: args, positionals } = parseArgs({
    allowPositionals: true,
    options: { lab: { type: "string" }, json: { type: "boolean", default: false } },
  });
  const runs = Number(positionals[0] ?? 3);
  const lab = args.lab ? Lab.load(args.lab) : await labUp({ ephemeral: true });
  const rig = await startAlertRig(lab, { unreachableAfterS: 60, settleS: 2, resolveAfterS: 3 });
  const probe = lab.spawn(
    "probe",
    [process.execPath, CLI, "run", "--config", join(ROOT, "scripts/lab/probe.lab.yaml")],
    {
      env: {
        ...process.env,
        NETPROBE_STORE_PATH: join(lab.info.dir, "alert-latency.db"),
        ...probeBrokerEnv(lab.info.dir),
      },
      stdio: ["ignore", "ignore", "ignore"],
    },
  );
  const hq: number[] = [];
  const am: number[] = [];
  try {
    for (const area of LAB_AREAS)
      await waitForAsync(`${area} ok`, 90_000, () =>
        rig.metric(`netprobe_area_state{${LAB_PROBE},area="${area}",state="ok"} 1`),
      );
    for (let i = 0; i < runs; i++) {
      const t0 = Date.now();
      await lab.fault("dns-down", true);
      const first = (path: Hit["path"], status: string) =>
        rig.hits.find((h) => h.path === path && h.at >= t0 && h.body.status === status);
      await waitForAsync("DNS notification on both paths", 60_000, () =>
        Promise.resolve(first("/hq", "firing") !== undefined && first("/am", "firing") !== undefined),
      );
      hq.push(first("/hq", "firing")!.at - t0);
      am.push(first("/am", "firing")!.at - t0);
      await lab.fault("dns-down", false);
      await waitForAsync("resolved on both paths", 90_000, () =>
        Promise.resolve(first("/hq", "resolved") !== undefined && first("/am", "resolved") !== undefined),
      );
      console.error(`run ${i + 1}: HQ webhook ${hq.at(-1)} ms, Prometheus+Alertmanager ${am.at(-1)} ms`);
    }
  } finally {
    probe.kill("SIGTERM");
    await new Promise((r) => probe.once("exit", r));
    await rig.stop();
    if (!args.lab) await lab.down();
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? null;
  // dns check: interval 2 s, fail_after 2 (scripts/lab/probe.lab.yaml).
  const out = {
    fault: "dns-down",
    runs,
    floor_ms: 4000,
    hq_median_ms: median(hq),
    am_median_ms: median(am),
    hq,
    am,
  };
  console.log(args.json ? JSON.stringify(out) : JSON.stringify(out, null, 2));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
