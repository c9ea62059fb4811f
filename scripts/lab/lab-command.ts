import { writeFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { join } from "node:path";
import Database from "better-sqlite3";
import { Command } from "commander";
import {
  FAULTS,
  FAULT_NAMES,
  FAULT_VALUES,
  HOSTS,
  isFaultName,
  Lab,
  labDown,
  labDownAll,
  labUp,
  listLabs,
  type LabHost,
} from "./lab.ts";
import { credentialsFile, labCredentials, probeBrokerEnv } from "./broker-tls.ts";
import { ADDR } from "./topology.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
/** The product as deployed: the compiled service when dist/ is current (services/probe/bin/netprobe). */
const NETPROBE = join(ROOT, "services/probe/bin/netprobe");
/** The lab's probe config; every target in it is a lab address. */
export const LAB_PROBE_CONFIG = join(ROOT, "scripts/lab/probe.lab.yaml");
/**
 * status-command.ts imports the whole service (every check, pcap, the store): ~0.5 s of module
 * loading that `lab fault`, which must return within a second, does not need. Only `demo` draws.
 */
const loadStatusCommand = () => import("../../services/probe/src/cli/status-command.ts");
/** Lab name used when none is given. */
const DEFAULT_LAB = "nplab";

/** `netprobe lab …`: the simulated branch office (root needed). */
export function labCommand(): Command {
  const lab = new Command("lab").description(
    "the simulated branch office in network namespaces (root needed)",
  );

  lab
    .command("up")
    .description("build the lab (or repair it)")
    .option("-n, --name <name>", "lab name", DEFAULT_LAB)
    .option("--dhcp", "the probe takes its IPv4 address by DHCP, as dhcpcd on Raspberry Pi OS (120 s lease)")
    .action(async (o: { name: string; dhcp?: boolean }) => {
      const l = await labUp({ name: o.name, probeAddressing: o.dhcp ? "dhcp" : "static" });
      console.log(
        `lab ${l.info.name} up (probe addressing ${l.info.probeAddressing}); broker ${l.info.brokerUrl}; state in ${l.info.dir}`,
      );
    });

  lab
    .command("down")
    .description("remove the lab: processes, namespaces, files (harmless when already gone)")
    .argument("[name]", "lab name", DEFAULT_LAB)
    .option("--all", "remove every lab on this machine")
    .action(async (name: string, o: { all?: boolean }) => {
      if (o.all) console.log(`removed: ${(await labDownAll()).join(" ") || "nothing"}`);
      else await labDown(name);
    });

  lab
    .command("status")
    .description("hosts, daemons and faults of every lab")
    .action(async () => {
      const names = listLabs();
      if (names.length === 0) console.log("no lab");
      for (const name of names) console.log(JSON.stringify(await Lab.load(name).status()));
    });

  lab
    .command("fault")
    .description(
      `switch a fault on or off: ${FAULT_NAMES.map((f) => `\n  ${f}: ${FAULTS[f].description}`).join("")}`,
    )
    .argument("<fault>")
    .argument("<on|off>")
    .argument(
      "[value]",
      "wan-loss/wan-hop-loss/rtp-loss: percent; wan-latency/wan-jitter/rtp-jitter: ms; mtu-changed: bytes",
    )
    .option("-n, --name <name>", "lab name", DEFAULT_LAB)
    .action(async (fault: string, state: string, value: string | undefined, o: { name: string }) => {
      if (!isFaultName(fault)) fail(`unknown fault "${fault}" (known: ${FAULT_NAMES.join(", ")})`);
      if (state !== "on" && state !== "off") fail(`expected on or off, got "${state}"`);
      const spec = FAULT_VALUES[fault];
      if (value !== undefined && spec === undefined) fail(`fault ${fault} takes no value`);
      const number = value === undefined ? undefined : Number(value);
      const min = spec?.min ?? 0;
      if (number !== undefined && !(number >= min && number <= (spec?.max ?? 0)))
        fail(`fault ${fault}: value must be a number in [${min}, ${spec?.max}] ${spec?.unit}`);
      await Lab.load(o.name).fault(fault, state === "on", number);
      const shown = state === "on" && spec ? ` ${number ?? spec.default} ${spec.unit}` : "";
      console.log(`${fault} ${state}${shown}`);
    });

  lab
    .command("exec")
    .description(`run a command on a lab host (${HOSTS.join(", ")}): lab exec probe -- ping 192.0.2.1`)
    .argument("<host>")
    .argument("<cmd...>")
    .option("-n, --name <name>", "lab name", DEFAULT_LAB)
    .action((host: string, cmd: string[], o: { name: string }) => {
      if (!(HOSTS as readonly string[]).includes(host))
        fail(`unknown host "${host}" (known: ${HOSTS.join(", ")})`);
      const child = Lab.load(o.name).spawn(host as LabHost, cmd, { stdio: "inherit" });
      child.on("exit", (code) => process.exit(code ?? 1));
    });

  lab
    .command("demo")
    .description("build the lab, run the probe in it, and show the LED panel, results and what HQ receives")
    .option("-n, --name <name>", "lab name", DEFAULT_LAB)
    .option("--duration <s>", "stop after this many seconds (default: until Ctrl-C)")
    .action(async (o: { name: string; duration?: string }) =>
      demo(o.name, o.duration ? Number(o.duration) : 0),
    );

  return lab;
}

async function demo(name: string, durationS: number): Promise<void> {
  const { formatStatus, readStatus } = await loadStatusCommand();
  console.log(`building lab ${name}…`);
  const lab = await labUp({ name });
  const db = join(lab.info.dir, "probe.db");
  const node = process.execPath;
  const probe = lab.spawn("probe", [NETPROBE, "run", "--config", LAB_PROBE_CONFIG], {
    env: { ...process.env, NETPROBE_STORE_PATH: db, ...probeBrokerEnv(lab.info.dir) },
    stdio: ["ignore", "ignore", "pipe"],
  });
  // Headquarters itself, on its embedded defaults (SQLite history), with its page on the lab's HQ
  // address; the subscriber below only feeds the terminal view.
  const hqHistory = join(lab.info.dir, "hq-history.db");
  const hqUrl = `http://${ADDR.hq4}:${HQ_PORT}/`;
  const hqServe = startHqServe(lab, hqHistory);
  const hq = lab.spawn(
    "hq",
    [
      node,
      join(ROOT, "scripts/lab/hq-subscriber.ts"),
      labCredentials(lab.info.dir, "hq").url,
      "demo-hq",
      "0",
      credentialsFile(lab.info.dir, "hq"),
    ],
    {
      stdio: ["ignore", "pipe", "ignore"],
    },
  );
  // Two feeds: a fault's event and the probe's state and health must stay on screen while results
  // keep streaming in (one list of 12 pushed them out within seconds).
  const feeds: Record<HqStream, string[]> = { control: [], results: [] };
  const kept: Record<HqStream, number> = { control: 10, results: 6 };
  const probeLog: string[] = [];
  createInterface({ input: hq.stdout! }).on("line", (line) => {
    const entry = hqFeedEntry(line, new Date());
    if (entry === undefined) return;
    const feed = feeds[entry.stream];
    feed.push(entry.text);
    if (feed.length > kept[entry.stream]) feed.shift();
  });
  createInterface({ input: probe.stderr! }).on("line", (line) => {
    probeLog.push(line);
    if (probeLog.length > 3) probeLog.shift();
  });

  const tty = process.stdout.isTTY === true;
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    clearInterval(timer);
    probe.kill("SIGTERM");
    await new Promise((r) => probe.once("exit", r).once("error", r));
    hq.kill("SIGTERM");
    hqServe.child.kill("SIGTERM");
    await new Promise((r) => hqServe.child.once("exit", r).once("error", r));
    await lab.down();
    console.log(`\nlab ${name} removed`);
    process.exit(0);
  };
  const draw = () => {
    const lines = [
      `netprobe lab demo — lab ${name}; faults: ${FAULT_NAMES.map((f) => `${f}${lab.info.faults[f] ? " ON" : ""}`).join(", ")}`,
      `  (in another terminal: netprobe lab fault gateway-down on|off ${name === DEFAULT_LAB ? "" : `-n ${name}`})`,
      "",
      `LED panel and last results (from the probe's database; netprobe status --db ${db}):`,
    ];
    try {
      lines.push(...formatStatus(readStatus(db), Date.now(), tty).map((l) => `  ${l}`));
    } catch {
      lines.push("  (probe starting…)");
    }
    lines.push(
      "",
      "Headquarters receives (MQTT, subscriber in the hq namespace) — events, state and health:",
      ...(feeds.control.length > 0 ? feeds.control : ["(nothing yet)"]).map((l) => `  ${l}`),
      "",
      "  … and results:",
      ...feeds.results.map((l) => `  ${l}`),
      "",
      `Headquarters (netprobe hq serve): ${storedResults(hqHistory)} in its history (SQLite, ${hqHistory});`,
      `  page ${hqUrl} (token in ${hqServe.tokenFile}), from the lab: netprobe lab exec hq -- curl -H "Authorization: Bearer $(cat ${hqServe.tokenFile})" ${hqUrl}api/fleet`,
    );
    if (hqServe.child.exitCode !== null)
      lines.push(`  hq serve exited with ${hqServe.child.exitCode}:`, ...hqServe.log);
    if (probe.exitCode !== null) lines.push("", `probe exited with ${probe.exitCode}:`, ...probeLog);
    if (tty) process.stdout.write(`\x1b[H\x1b[2J${lines.join("\n")}\n`);
    else console.log(lines.join("\n") + "\n");
    // Faults are switched from another process: pick them up from the lab's state file.
    try {
      lab.info.faults = Lab.load(name).info.faults;
    } catch {
      /* lab going down */
    }
  };
  const timer = setInterval(draw, tty ? 500 : 5000);
  process.once("SIGINT", () => void stop());
  process.once("SIGTERM", () => void stop());
  if (durationS > 0) setTimeout(() => void stop(), durationS * 1000);
  await new Promise(() => undefined);
}

/** The port of the demo's HQ page on the lab's HQ address. */
const HQ_PORT = 8080;

/** `netprobe hq serve` in the lab's hq namespace: secrets in a 0600 config file, never on argv; HQ writes its token file. */
function startHqServe(lab: Lab, historyFile: string) {
  const c = labCredentials(lab.info.dir, "hq");
  const tokenFile = join(lab.info.dir, "hq-token");
  const config = join(lab.info.dir, "hq-demo.json");
  writeFileSync(
    config,
    JSON.stringify({
      broker: { url: c.url, username: c.username, password: c.password, ca_file: c.ca_file },
      auth: { token_file: tokenFile },
      history: { engine: "sqlite", path: historyFile },
    }),
    { mode: 0o600 },
  );
  const args = ["hq", "serve", "--config", config, "--cert", c.cert_file, "--key", c.key_file];
  const child = lab.spawn("hq", [NETPROBE, ...args, "--host", ADDR.hq4, "--port", String(HQ_PORT)], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  const log: string[] = [];
  createInterface({ input: child.stderr! }).on("line", (line) => {
    log.push(line);
    if (log.length > 3) log.shift();
  });
  return { child, tokenFile, log };
}

/** How many results HQ's history holds (read-only; "no history yet" before HQ created it). */
function storedResults(file: string): string {
  try {
    const db = new Database(file, { readonly: true, fileMustExist: true });
    try {
      const row = db.prepare("SELECT count(*) AS n FROM results").get() as { n: number };
      return `${row.n} results`;
    } finally {
      db.close();
    }
  } catch {
    return "no results yet";
  }
}

/** Which of the demo's two headquarters feeds a message goes to. */
export type HqStream = "control" | "results";

/**
 * One line of the demo's headquarters feed from a line of scripts/lab/hq-subscriber.ts (JSON with
 * topic, retain and payload); undefined for anything else. Results go to their own feed.
 */
export function hqFeedEntry(line: string, at: Date): { stream: HqStream; text: string } | undefined {
  let m: { topic?: unknown; retain?: unknown; payload?: unknown };
  try {
    m = JSON.parse(line) as typeof m;
  } catch {
    return undefined; // a partial line
  }
  if (typeof m !== "object" || m === null || typeof m.topic !== "string") return undefined;
  const p = (typeof m.payload === "object" && m.payload !== null ? m.payload : {}) as Record<string, unknown>;
  const topic = m.topic.replace(/^netprobe\/v1\/[^/]+\/[^/]+\//, "");
  const stream: HqStream = topic.startsWith("results/") ? "results" : "control";
  let what = "";
  if (topic === "state") what = String(p.state);
  else if (stream === "results") what = `${String(p.status)} seq=${String(p.seq)}`;
  else if (topic === "events")
    what = `${String(p.area)} ${String(p.from)}→${String(p.to)}: ${String(p.reason)}`;
  else if (topic === "health") {
    const areas = Object.entries((p.areas ?? {}) as Record<string, { state?: unknown }>);
    const bad = areas.filter(([, a]) => a.state !== "ok" && a.state !== "off");
    what =
      bad.length === 0 ? "every area ok" : bad.map(([name, a]) => `${name} ${String(a.state)}`).join(", ");
  }
  const time = at.toISOString().slice(11, 19);
  return { stream, text: `${time} ${topic}${m.retain === true ? " (retained)" : ""} ${what}`.trimEnd() };
}

function fail(message: string): never {
  console.error(message);
  process.exit(2);
}
