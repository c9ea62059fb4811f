// Headquarters killed with SIGKILL in the middle of ingest (issue 17: "ingest that loses nothing
// and counts nothing twice"): a probe publishes results at a steady rate through the lab's real
// mosquitto (TLS, ACL) while the real `netprobe hq serve` writes them to its SQLite history; HQ is
// SIGKILLed twice and restarted. With a persistent session (client_id) the broker keeps what
// arrives meanwhile, and HQ acknowledges a message only after its batch is committed, so every
// result must be stored exactly once: the count of rows equals the count published, by id.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import Database from "better-sqlite3";
import { ulid } from "ulid";
import { describe, expect, it } from "vitest";
import { labCredentials } from "../../scripts/lab/broker-tls.ts";
import { useLab } from "./lab-fixture.ts";
import { PROBE_BASE, startClient } from "./mqtt-driver.ts";
import { waitFor } from "./probe-harness.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const CLI = join(ROOT, "services/probe/src/cli.ts");
const TOTAL = 3000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("HQ SIGKILLed during ingest", () => {
  const lab = useLab();

  it(`${TOTAL} results at ~300/s, HQ SIGKILLed twice mid-stream: every one stored exactly once`, async () => {
    const dir = lab().info.dir;
    const c = labCredentials(dir, "hq");
    const db = join(dir, "hq-crash.db");
    const config = join(dir, "hq-crash.json");
    writeFileSync(
      config,
      JSON.stringify({
        broker: {
          url: c.url,
          username: c.username,
          password: c.password,
          ca_file: c.ca_file,
          client_id: "hq-crash",
        },
        auth: { token_file: join(dir, "hq-crash-token") },
        http: { port: 8099 },
        history: { engine: "sqlite", path: db },
      }),
      { mode: 0o600 },
    );
    const hqLog: string[] = [];
    const serve = async () => {
      const hq = lab().spawn(
        "hq",
        [
          process.execPath,
          CLI,
          "hq",
          "serve",
          "--config",
          config,
          "--cert",
          c.cert_file,
          "--key",
          c.key_file,
        ],
        { stdio: ["ignore", "ignore", "pipe"] },
      );
      const log = hqLog;
      createInterface({ input: hq.stderr! }).on("line", (l) => log.push(l));
      await waitFor("hq connected to the broker", 20_000, () =>
        log.some((l) => l.includes("connected to the fleet broker")),
      );
      await sleep(300); // the first start subscribes right after connecting
      return hq;
    };
    const kill9 = async (hq: Awaited<ReturnType<typeof serve>>) => {
      hq.kill("SIGKILL");
      if (hq.exitCode === null && hq.signalCode === null) await new Promise((r) => hq.once("exit", r));
    };

    let hq = await serve();
    const probe = startClient(lab(), "probe", "probe-1");
    await probe.connected();
    const ids: string[] = [];
    const bootId = "3f1c2a9e-lab-crash";
    let lastAck = 0;
    for (let i = 1; i <= TOTAL; i++) {
      const id = ulid();
      ids.push(id);
      const result = {
        schema: 1,
        id,
        seq: i,
        site: "lab",
        probe: "probe-1",
        check: `wan-icmp-${i % 5}`,
        kind: "icmp",
        area: "wan",
        target: "203.0.113.10",
        started_at: new Date(Date.now() - (TOTAL - i) * 10).toISOString(),
        boot_id: bootId,
        mono_ms: 1000 + i * 10,
        duration_ms: 3.2,
        status: i % 50 === 0 ? "fail" : "ok",
        metrics: { rtt_avg_ms: 0.5 + (i % 7) / 10, loss_pct: 0 },
        detail: {},
        version: "0.1.0",
      };
      lastAck = probe.publishAsync(`${PROBE_BASE}results/${result.check}`, JSON.stringify(result), {
        qos: 1,
      });
      if (i % 30 === 0) await sleep(100);
      // Two crashes: one a third of the way in, one at two thirds, each down for a second.
      if (i === TOTAL / 3 || i === (2 * TOTAL) / 3) {
        await kill9(hq);
        await sleep(1000);
        hq = await serve();
      }
    }
    await probe.acked(lastAck, 30_000);
    // Everything the broker took must reach the table, each once.
    const count = () => {
      const d = new Database(db, { readonly: true, fileMustExist: true });
      try {
        return d.prepare("SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS ids FROM results").get() as {
          n: number;
          ids: number;
        };
      } finally {
        d.close();
      }
    };
    await waitFor(`${TOTAL} results in HQ's history`, 60_000, () => count().n >= TOTAL).catch(
      (err: unknown) => {
        throw new Error(
          `${String(err)}: ${JSON.stringify(count())} stored; HQ said:\n${hqLog.slice(-15).join("\n")}`,
        );
      },
    );
    await sleep(1000);
    const stored = count();
    hq.kill("SIGTERM");
    await new Promise((r) => hq.once("exit", r));
    await probe.stop();
    const d = new Database(db, { readonly: true });
    const storedIds = new Set(
      (d.prepare("SELECT id FROM results").all() as { id: string }[]).map((r) => r.id),
    );
    d.close();
    console.log(
      `published ${TOTAL}, stored ${stored.n} rows (${stored.ids} distinct ids) across two SIGKILLs`,
    );
    expect(stored).toEqual({ n: TOTAL, ids: TOTAL });
    expect(ids.filter((id) => !storedIds.has(id))).toEqual([]);
  }, 180_000);
});
