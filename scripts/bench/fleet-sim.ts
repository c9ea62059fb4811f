// Fleet simulation: N simulated probes against the lab's mosquitto (TLS + ACL, as deployed), and
// the HQ fleet service's ingest path measured at the other end. Not part of the test command.
//
//   node scripts/bench/fleet-sim.ts [--probes 1000] [--seconds 300] [--rate 1] [--shared-seconds S]
//
// Each simulated probe is the REAL uplink (services/probe/src/uplink/mqtt-link.ts: one MqttUplink
// per probe, own client id, will, QoS 1 with PUBACK-driven acks) over an in-memory OutboxSource with
// the Store's peek/ack contract (not SQLite: 1,000 SQLite files would measure the disk, not the
// fleet path). The probes run in one process in the lab's probe namespace; HQ runs in the hq
// namespace with the real Fleet + connectFleet (services/hq/src/). Each result's started_at is the
// time it was queued, so HQ's end-to-end latency = HQ receive time - started_at (same machine clock).
//
// Broker user: the lab's ACL confines each probe user to its own prefix, so the simulation adds one
// user `sim` allowed to write netprobe/v1/sim/# (the ACL block the deploy script writes for a probe,
// widened to the `sim` site), with mosquitto_passwd like deploy/mosquitto/netprobe-broker-user.sh,
// to its OWN lab's ACL, and reloads mosquitto (SIGHUP). It borrows HQ's client certificate: the
// broker checks the certificate's CA, the password names the user. Nothing outside this lab changes.
//
// Phase 1: one HQ instance. Phase 2: two HQ instances in one MQTT 5 shared subscription group.
import { execFileSync, type ChildProcess } from "node:child_process";
import { appendFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { ulid } from "ulid";

const ROOT = new URL("../../", import.meta.url).pathname;
const SELF = join(ROOT, "scripts/bench/fleet-sim.ts");
const SITE = "sim";

const { values: args } = parseArgs({
  options: {
    probes: { type: "string", default: "1000" },
    seconds: { type: "string", default: "300" },
    rate: { type: "string", default: "1" },
    "shared-seconds": { type: "string" },
    role: { type: "string", default: "main" },
    creds: { type: "string" },
    group: { type: "string" },
    ids: { type: "string" },
  },
});

const num = (s: string | undefined, name: string): number => {
  const n = Number(s);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number`);
  return n;
};

interface Creds {
  url: string;
  username: string;
  password: string;
  ca_file: string;
  cert_file: string;
  key_file: string;
}
const out = (m: unknown): void => void process.stdout.write(`${JSON.stringify(m)}\n`);

// ---------------------------------------------------------------------------------------------
// role probes: N real uplinks in this process
async function runProbes(): Promise<void> {
  const { MqttUplink } = await import("../../services/probe/src/uplink/mqtt-link.ts");
  const { silentLogger } = await import("../../services/contract/src/log.ts");
  const c = JSON.parse(readFileSync(args.creds!, "utf8")) as Creds;
  const n = num(args.probes, "probes");
  const seconds = num(args.seconds, "seconds");
  const rate = num(args.rate, "rate");
  const log = silentLogger();
  const bootId = ulid();
  const startedAt = new Date().toISOString();
  interface Sim {
    name: string;
    rows: Array<{ id: number; topic: string; payload: string; qos: 0 | 1; retain: boolean }>;
    nextId: number;
    seq: number;
    published: number;
    acked: number;
    uplink: InstanceType<typeof MqttUplink>;
  }
  const sims: Sim[] = [];
  for (let i = 0; i < n; i++) {
    const name = `p${String(i + 1).padStart(4, "0")}`;
    const sim = { name, rows: [], nextId: 1, seq: 0, published: 0, acked: 0 } as unknown as Sim;
    const outbox = {
      peek: (afterId: number, limit: number) => sim.rows.filter((r) => r.id > afterId).slice(0, limit),
      ack: (ids: number[]) => {
        const gone = new Set(ids);
        const before = sim.rows.length;
        sim.rows = sim.rows.filter((r) => !gone.has(r.id));
        sim.acked += before - sim.rows.length;
      },
    };
    sim.uplink = new MqttUplink(
      {
        url: c.url,
        protocolVersion: 5,
        clientId: `sim-${name}`,
        username: c.username,
        password: c.password,
        caFile: c.ca_file,
        certFile: c.cert_file,
        keyFile: c.key_file,
        rejectUnauthorized: true,
        keepaliveMs: 30_000,
        reconnectMinMs: 500,
        reconnectMaxMs: 5000,
      },
      `netprobe/v1/${SITE}/${name}/`,
      outbox,
      (state) =>
        JSON.stringify({ schema: 1, state, version: "0.0.0-sim", boot_id: bootId, started_at: startedAt }),
      log,
    );
    sims.push(sim);
  }
  // Connect in batches so 1,000 TLS handshakes do not all land in the same instant.
  for (let i = 0; i < sims.length; i++) {
    sims[i]!.uplink.start();
    if (i % 50 === 49) await new Promise((r) => setTimeout(r, 100));
  }
  const t0 = Date.now();
  while (sims.some((s) => !s.uplink.connected)) {
    if (Date.now() - t0 > 120_000) throw new Error("probes did not all connect within 120 s");
    await new Promise((r) => setTimeout(r, 200));
  }
  out({ connected: n, ms: Date.now() - t0 });
  const periodMs = 1000 / rate;
  const total = Math.round(seconds * rate);
  const start = Date.now() + 500;
  // Probe i publishes at start + k*period + i/n*period: spread evenly over each period.
  await Promise.all(
    sims.map(async (s, i) => {
      for (let k = 0; k < total; k++) {
        const due = start + k * periodMs + (i / n) * periodMs;
        const wait = due - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        s.seq++;
        const payload = JSON.stringify({
          schema: 1,
          id: ulid(),
          seq: s.seq,
          site: SITE,
          probe: s.name,
          check: "gw",
          kind: "icmp",
          area: "lan",
          target: "192.0.2.1",
          started_at: new Date().toISOString(),
          boot_id: bootId,
          mono_ms: performance.now(),
          duration_ms: 1,
          status: "ok",
          metrics: { sent: 3, received: 3, loss_pct: 0, rtt_avg_ms: 1 + (s.seq % 7) / 10 },
          detail: {},
          version: "0.0.0-sim",
        });
        s.rows.push({ id: s.nextId++, topic: "results/gw", payload, qos: 1, retain: false });
        s.published++;
        s.uplink.kick();
      }
    }),
  );
  const drainStart = Date.now();
  while (sims.some((s) => s.rows.length > 0) && Date.now() - drainStart < 60_000)
    await new Promise((r) => setTimeout(r, 200));
  out({
    done: true,
    published: Object.fromEntries(sims.map((s) => [s.name, s.published])),
    unacked: sims.reduce((a, s) => a + s.rows.length, 0),
    dropped: sims.reduce((a, s) => a + s.uplink.dropped, 0),
    publish_seconds: (Date.now() - start) / 1000,
  });
  // Wait for the main process to say stop (HQ must see every probe still online first).
  for await (const line of createInterface({ input: process.stdin })) if (line === "stop") break;
  await Promise.all(sims.map((s) => s.uplink.stop()));
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------
// role hq: the real Fleet + connectFleet, measured
async function runHq(): Promise<void> {
  const { Fleet } = await import("../../services/hq/src/fleet.ts");
  const { connectFleet } = await import("../../services/hq/src/fleet-link.ts");
  const { loadHqConfig } = await import("../../services/hq/src/hq-config.ts");
  const { silentLogger } = await import("../../services/contract/src/log.ts");
  const c = JSON.parse(readFileSync(args.creds!, "utf8")) as Creds;
  const cfg = loadHqConfig(
    {
      url: c.url,
      username: c.username,
      password: c.password,
      ca: c.ca_file,
      cert: c.cert_file,
      key: c.key_file,
      ...(args.group ? { group: args.group } : {}),
    },
    {},
  );
  const fleet = new Fleet({ resultsPerCheck: 60 });
  const latencies: number[] = [];
  const ids: string[] = [];
  fleet.on("change", (ch) => {
    if (ch.part !== "result") return;
    const p = fleet.get(ch.key, ch.at)!;
    const last = p.checks[0]!.results.at(-1)!;
    latencies.push(ch.at - Date.parse(last.started_at));
    if (args.ids) ids.push(last.id);
  });
  const link = connectFleet(cfg, fleet, silentLogger(), () => out({ ready: true }));
  let cpu0 = process.cpuUsage();
  let wall0 = Date.now();
  for await (const line of createInterface({ input: process.stdin })) {
    if (line === "mark") {
      cpu0 = process.cpuUsage();
      wall0 = Date.now();
      continue;
    }
    if (line !== "report") continue;
    const cpu = process.cpuUsage(cpu0);
    const sorted = Float64Array.from(latencies).sort();
    const pct = (q: number) =>
      sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! : null;
    const probes = fleet.list().filter((p) => p.site === SITE);
    if (args.ids) writeFileSync(args.ids, ids.join("\n"));
    out({
      received: fleet.counters.results,
      duplicates: fleet.counters.duplicates,
      malformed: fleet.counters.malformed,
      latency_ms: { p50: pct(0.5), p99: pct(0.99), max: sorted.length ? sorted[sorted.length - 1] : null },
      cpu_pct: Math.round(((cpu.user + cpu.system) / 1000 / (Date.now() - wall0)) * 1000) / 10,
      rss_mb: Math.round(process.memoryUsage().rss / 1e5) / 10,
      probes: probes.length,
      online: probes.filter((p) => p.state === "online").length,
      results_per_probe: Object.fromEntries(probes.map((p) => [p.probe, p.results_total])),
      connected: link.status.connected,
    });
  }
  await link.stop();
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------
// role main: the lab, the sim user, the two phases
function lines(child: ChildProcess): AsyncIterator<string> {
  return createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
}
async function nextJson(it: AsyncIterator<string>, what: string): Promise<Record<string, unknown>> {
  const r = await it.next();
  if (r.done) throw new Error(`${what}: process ended`);
  return JSON.parse(r.value) as Record<string, unknown>;
}

async function runMain(): Promise<void> {
  const { labUp } = await import("../lab/lab.ts");
  const { labCredentials, tlsDir } = await import("../lab/broker-tls.ts");
  const n = num(args.probes, "probes");
  const seconds = num(args.seconds, "seconds");
  const rate = num(args.rate, "rate");
  const sharedSeconds = num(args["shared-seconds"] ?? String(seconds), "shared-seconds");
  console.log(`fleet-sim: ${n} probes × ${rate}/s, ${seconds} s with one HQ, ${sharedSeconds} s with two`);
  const lab = await labUp({ ephemeral: true });
  try {
    // The sim user (see the header): like netprobe-broker-user.sh, widened to the sim site.
    const dir = tlsDir(lab.info.dir);
    const hq = labCredentials(lab.info.dir, "hq");
    const sim: Creds = { ...hq, username: "sim", password: ulid() };
    execFileSync("mosquitto_passwd", ["-b", join(dir, "passwd"), sim.username, sim.password]);
    appendFileSync(
      join(dir, "acl"),
      `\n# fleet simulation (scripts/bench/fleet-sim.ts)\nuser sim\ntopic write netprobe/v1/${SITE}/#\n`,
    );
    const simFile = join(dir, "sim.json");
    writeFileSync(simFile, JSON.stringify(sim), { mode: 0o600 });
    const pid = (await lab.status()).daemons.mosquitto.pid;
    if (!pid) throw new Error("the lab's mosquitto is not running");
    process.kill(pid, "SIGHUP");
    await new Promise((r) => setTimeout(r, 500));
    const hqFile = join(dir, "hq.json");
    const node = process.execPath;
    const ulimit = (argv: string[]) => ["sh", "-c", `ulimit -n "$(ulimit -Hn)"; exec "$@"`, "sh", ...argv];

    const phase = async (label: string, secs: number, groups: Array<string | undefined>) => {
      const hqs = groups.map((g, i) =>
        lab.spawn(
          "hq",
          ulimit([
            node,
            SELF,
            "--role",
            "hq",
            "--creds",
            hqFile,
            ...(g ? ["--group", g, "--ids", join(lab.info.dir, `ids-${i}.txt`)] : []),
          ]),
          { stdio: ["pipe", "pipe", "inherit"] },
        ),
      );
      const hqIt = hqs.map((h) => lines(h));
      for (const it of hqIt) await nextJson(it, "hq ready");
      const probes = lab.spawn(
        "probe",
        ulimit([
          node,
          SELF,
          "--role",
          "probes",
          "--creds",
          simFile,
          "--probes",
          String(n),
          "--seconds",
          String(secs),
          "--rate",
          String(rate),
        ]),
        { stdio: ["pipe", "pipe", "inherit"] },
      );
      const pIt = lines(probes);
      const conn = await nextJson(pIt, "probes connect");
      console.log(
        `[${label}] ${String(conn.connected)} probes connected in ${String(conn.ms)} ms; publishing…`,
      );
      for (const h of hqs) h.stdin!.write("mark\n");
      const done = await nextJson(pIt, "probes done");
      await new Promise((r) => setTimeout(r, 3000));
      for (const h of hqs) h.stdin!.write("report\n");
      const reports = [];
      for (const it of hqIt) reports.push(await nextJson(it, "hq report"));
      probes.stdin!.write("stop\n");
      for (const h of hqs) h.stdin!.end();
      await new Promise((r) => probes.once("exit", r));
      await Promise.all(
        hqs.map((h) => new Promise((r) => (h.exitCode === null ? h.once("exit", r) : r(null)))),
      );
      const published = done.published as Record<string, number>;
      const totalPub = Object.values(published).reduce((a, b) => a + b, 0);
      const received = reports.reduce((a, r) => a + (r.received as number), 0);
      console.log(
        `[${label}] published ${totalPub} (unacked ${String(done.unacked)}, dropped ${String(done.dropped)}), received by HQ ${received}, lost ${totalPub - received}`,
      );
      reports.forEach((r, i) => {
        const perProbe = r.results_per_probe as Record<string, number>;
        const wrong =
          groups.length === 1
            ? Object.keys(published).filter((p) => perProbe[p] !== published[p]).length
            : null;
        console.log(
          `[${label}] HQ#${i + 1}: received ${String(r.received)} (${((100 * (r.received as number)) / totalPub).toFixed(1)}%), duplicates ${String(r.duplicates)}, malformed ${String(r.malformed)}, latency p50 ${String(r.latency_ms && (r.latency_ms as { p50: number }).p50)} ms p99 ${String((r.latency_ms as { p99: number }).p99)} ms max ${String((r.latency_ms as { max: number }).max)} ms, CPU ${String(r.cpu_pct)}%, RSS ${String(r.rss_mb)} MB, probes known ${String(r.probes)} online ${String(r.online)}${wrong === null ? "" : `, probes with a wrong result count ${wrong}`}`,
        );
      });
      if (groups.length === 2) {
        const a = new Set(readFileSync(join(lab.info.dir, "ids-0.txt"), "utf8").split("\n").filter(Boolean));
        const b = readFileSync(join(lab.info.dir, "ids-1.txt"), "utf8").split("\n").filter(Boolean);
        const both = b.filter((id) => a.has(id)).length;
        console.log(
          `[${label}] results received by both instances: ${both}; by either: ${a.size + b.length - both}`,
        );
      }
    };
    await phase("1 HQ", seconds, [undefined]);
    await phase("2 HQ shared", sharedSeconds, ["hq", "hq"]);
  } finally {
    await lab.down();
  }
}

const role = args.role;
const main = role === "probes" ? runProbes : role === "hq" ? runHq : runMain;
main().catch((err: unknown) => {
  console.error(`fleet-sim (${role}): ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
