// Headquarters' ingest when things die (issues 17 and 19: "ingest that loses nothing and counts
// nothing twice"; "two or more HQ instances on one PostgreSQL … nothing lost when a node dies"). A
// probe publishes results at a steady rate through the lab's real mosquitto (TLS, ACL) while real
// `netprobe hq serve` processes write them to their history:
// - one HQ on SQLite, SIGKILLed twice and restarted;
// - two HQ in one MQTT 5 shared subscription group on one real PostgreSQL, one of them SIGKILLed
//   and restarted while the other carries on.
// With persistent sessions (client_id) the broker keeps what arrives meanwhile, and HQ acknowledges
// a message only after its batch is committed, so every result must be stored exactly once: the
// rows equal the results published, by id.
import type { ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import Database from "better-sqlite3";
import pg from "pg";
import { ulid } from "ulid";
import { afterAll, describe, expect, it } from "vitest";
import { labCredentials } from "../../scripts/lab/broker-tls.ts";
import { startPostgres, type PostgresServer } from "../doubles/postgres-server.ts";
import { useLab } from "./lab-fixture.ts";
import { PROBE_BASE, startClient } from "./mqtt-driver.ts";
import { waitFor } from "./probe-harness.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const CLI = join(ROOT, "services/probe/src/cli.ts");
const TOTAL = 3000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("HQ ingest when an instance dies", () => {
  const lab = useLab();
  let postgres: PostgresServer | undefined;
  afterAll(async () => {
    await postgres?.stop();
  });

  /** Writes an `hq serve` config (broker as the lab's hq user, a persistent session) and returns its path. */
  const hqConfig = (name: string, port: number, history: Record<string, unknown>, group?: string) => {
    const dir = lab().info.dir;
    const c = labCredentials(dir, "hq");
    const file = join(dir, `${name}.json`);
    writeFileSync(
      file,
      JSON.stringify({
        broker: {
          url: c.url,
          username: c.username,
          password: c.password,
          ca_file: c.ca_file,
          client_id: name,
          ...(group ? { shared_group: group } : {}),
        },
        auth: { token_file: join(dir, `${name}-token`) },
        http: { port },
        history,
      }),
      { mode: 0o600 },
    );
    return file;
  };

  /** Starts `hq serve` in the hq namespace; resolves once it is connected and subscribed. */
  const serve = async (config: string, log: string[]): Promise<ChildProcess> => {
    const c = labCredentials(lab().info.dir, "hq");
    const hq = lab().spawn(
      "hq",
      [process.execPath, CLI, "hq", "serve", "--config", config, "--cert", c.cert_file, "--key", c.key_file],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    const before = log.length;
    createInterface({ input: hq.stderr! }).on("line", (l) => log.push(l));
    await waitFor("hq connected to the broker", 20_000, () =>
      log.slice(before).some((l) => l.includes("connected to the fleet broker")),
    );
    await sleep(300); // the first start subscribes right after connecting
    return hq;
  };
  const kill9 = async (hq: ChildProcess) => {
    hq.kill("SIGKILL");
    if (hq.exitCode === null && hq.signalCode === null) await new Promise((r) => hq.once("exit", r));
  };
  const stop = async (hq: ChildProcess) => {
    hq.kill("SIGTERM");
    if (hq.exitCode === null && hq.signalCode === null) await new Promise((r) => hq.once("exit", r));
  };

  /**
   * Publishes TOTAL results as the lab's probe-1 at ~300/s (QoS 1), calling `at(i)` after result i
   * (awaited: the crash happens there); resolves with their ids once the broker acknowledged all.
   */
  const publish = async (at: (i: number) => Promise<void>): Promise<string[]> => {
    const probe = startClient(lab(), "probe", "probe-1");
    await probe.connected();
    const ids: string[] = [];
    let lastAck = 0;
    for (let i = 1; i <= TOTAL; i++) {
      const id = ulid();
      ids.push(id);
      const check = `wan-icmp-${i % 5}`;
      const result = {
        schema: 1,
        id,
        seq: i,
        site: "lab",
        probe: "probe-1",
        check,
        kind: "icmp",
        area: "wan",
        target: "203.0.113.10",
        started_at: new Date(Date.now() - (TOTAL - i) * 10).toISOString(),
        boot_id: "3f1c2a9e-lab-ingest",
        mono_ms: 1000 + i * 10,
        duration_ms: 3.2,
        status: i % 50 === 0 ? "fail" : "ok",
        metrics: { rtt_avg_ms: 0.5 + (i % 7) / 10, loss_pct: 0 },
        detail: {},
        version: "0.1.0",
      };
      lastAck = probe.publishAsync(`${PROBE_BASE}results/${check}`, JSON.stringify(result), { qos: 1 });
      if (i % 30 === 0) await sleep(100);
      await at(i);
    }
    await probe.acked(lastAck, 30_000);
    await probe.stop();
    return ids;
  };

  /** Waits until `count()` reaches TOTAL, then a second more (nothing extra may arrive). */
  const settle = async (count: () => Promise<{ n: number; ids: number }>, log: string[]) => {
    await waitFor(`${TOTAL} results in HQ's history`, 60_000, async () => (await count()).n >= TOTAL).catch(
      async (err: unknown) => {
        throw new Error(
          `${String(err)}: ${JSON.stringify(await count())} stored; HQ said:\n${log.slice(-15).join("\n")}`,
        );
      },
    );
    await sleep(1000);
    return count();
  };

  it(`${TOTAL} results at ~300/s, one HQ on SQLite SIGKILLed twice mid-stream: every one stored exactly once`, async () => {
    const db = join(lab().info.dir, "hq-crash.db");
    const config = hqConfig("hq-crash", 8099, { engine: "sqlite", path: db });
    const log: string[] = [];
    let hq = await serve(config, log);
    // Two crashes: one a third of the way in, one at two thirds, each down for a second.
    const ids = await publish(async (i) => {
      if (i !== TOTAL / 3 && i !== (2 * TOTAL) / 3) return;
      await kill9(hq);
      await sleep(1000);
      hq = await serve(config, log);
    });
    const query = <T>(sql: string): T => {
      const d = new Database(db, { readonly: true, fileMustExist: true });
      try {
        return d.prepare(sql).all() as T;
      } finally {
        d.close();
      }
    };
    const count = () =>
      Promise.resolve(
        query<{ n: number; ids: number }[]>(
          "SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS ids FROM results",
        )[0]!,
      );
    const stored = await settle(count, log);
    await stop(hq);
    const storedIds = new Set(query<{ id: string }[]>("SELECT id FROM results").map((r) => r.id));
    console.log(
      `SQLite: published ${TOTAL}, stored ${stored.n} rows (${stored.ids} distinct ids) across two SIGKILLs`,
    );
    expect(stored).toEqual({ n: TOTAL, ids: TOTAL });
    expect(ids.filter((id) => !storedIds.has(id))).toEqual([]);
  }, 180_000);

  it(`${TOTAL} results, two HQ in one shared group on one PostgreSQL, one SIGKILLed and restarted: every one stored exactly once, both wrote`, async () => {
    postgres = await startPostgres();
    const url = await postgres.createDatabase("hqscale");
    const history = { engine: "postgres", url };
    const configA = hqConfig("hq-a", 8101, history, "hq");
    const configB = hqConfig("hq-b", 8102, history, "hq");
    const log: string[] = [];
    let a = await serve(configA, log);
    const b = await serve(configB, log);
    const ids = await publish(async (i) => {
      if (i === TOTAL / 3) await kill9(a);
      if (i === (2 * TOTAL) / 3) a = await serve(configA, log);
    });
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const count = async () => {
        const r = await client.query<{ n: string; ids: string }>(
          "SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS ids FROM results",
        );
        return { n: Number(r.rows[0]!.n), ids: Number(r.rows[0]!.ids) };
      };
      const stored = await settle(count, log);
      const storedIds = new Set(
        (await client.query<{ id: string }>("SELECT id FROM results")).rows.map((r) => r.id),
      );
      await Promise.all([stop(a), stop(b)]);
      // Each instance logs its ingest counters on the way out: both must have written.
      const written = log
        .filter((l) => l.includes('"stopping"'))
        .map((l) => (JSON.parse(l) as { history?: { written?: number } }).history?.written ?? 0);
      console.log(
        `PostgreSQL, 2 HQ: published ${TOTAL}, stored ${stored.n} rows (${stored.ids} distinct); written per instance (clean stop): ${written.join(", ")}`,
      );
      expect(stored).toEqual({ n: TOTAL, ids: TOTAL });
      expect(ids.filter((id) => !storedIds.has(id))).toEqual([]);
      expect(written.filter((n) => n > 0).length).toBeGreaterThanOrEqual(2);
    } finally {
      await client.end();
    }
  }, 180_000);
});
