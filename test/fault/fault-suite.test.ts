// The fault suite: the real `netprobe run` in the lab, probing every second, against the faults a
// probe meets in years unattended. Each row counts what the probe produced (its own seq) against
// what headquarters received through the real broker, checks the database and that the service is
// still up, and asserts 0 lost. The table is printed at the end and written to
// test-artifacts/fault-table.md. NETPROBE_FAULT_LONG=1: the full durations of issue 8.
import { execFileSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  rmSync,
  statSync,
  statfsSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { useLab } from "../lab/lab-fixture.ts";
import { PROBE_BASE, startClient } from "../lab/mqtt-driver.ts";
import { exited, startHq, startProbe, waitFor } from "../lab/probe-harness.ts";
import {
  count,
  countAtHq,
  fillToZero,
  integrity,
  scribble,
  mark,
  maxSeq,
  publishTable,
  sleep,
  statusOf,
  type FaultRow,
  type Mark,
} from "./fault-harness.ts";

const LONG = process.env.NETPROBE_FAULT_LONG === "1";
const MODE = LONG ? "long mode, NETPROBE_FAULT_LONG=1" : "default mode";
const BROKER_DOWN_MS = LONG ? 10 * 60_000 : 2 * 60_000;
const FLAP_MS = LONG ? 5 * 60_000 : 2 * 60_000;
const FLAP_HALF_MS = 3000; // broker down 3 s, up 3 s
const KILLS = LONG ? 100 : 50;
const MIGRATION_KILLS = 5;
const DRAIN_MS = LONG ? 240_000 : 90_000;

const ICMP = "options: { count: 3, interval_ms: 20, wait_ms: 400 }";
/** Six checks every second (the lab config runs every 2 s or slower). */
const CHECKS = [
  `  - { name: gateway-icmp, kind: icmp, target: 192.0.2.1, area: lan, ${ICMP} }`,
  `  - { name: wan-icmp, kind: icmp, target: 203.0.113.10, area: wan, ${ICMP} }`,
  `  - { name: wan-icmp6, kind: icmp, target: "2001:db8:3::10", area: wan, ${ICMP} }`,
  `  - { name: far-icmp, kind: icmp, target: 203.0.113.200, area: wan, ${ICMP} }`,
  "  - { name: web-tcp, kind: tcp, target: 203.0.113.80:80, area: wan }",
  "  - { name: dns-tcp, kind: tcp, target: 192.0.2.1:53, area: lan }",
];
/** A TCP connect to a LAN address nobody holds: no ARP answer, so it would hang until the timeout. */
const STUCK = "  - { name: stuck, kind: tcp, target: 192.0.2.99:80, area: wan, interval: 2s, timeout: 1s }";

function config(extra: string[] = []): string {
  return [
    "site: lab",
    "probe: probe-1",
    "log_level: info",
    "broker:",
    "  url: mqtts://203.0.113.50:8883",
    "  keepalive: 5s",
    "  reconnect_min: 500ms",
    "  reconnect_max: 2s",
    "areas: { fail_after: 2, recover_after: 2 }",
    "leds: { backend: none }",
    "defaults: { interval: 1s, timeout: 1s, jitter: 0 }",
    "checks:",
    ...CHECKS,
    ...extra,
    "",
  ].join("\n");
}

type Probe = ReturnType<typeof startProbe>;
type Hq = ReturnType<typeof startHq>;

describe("fault suite: the real service, probing every second", () => {
  const lab = useLab();
  const rows: FaultRow[] = [];
  let hq: Hq;
  let probe: Probe | undefined;
  let configFile: string;
  let db: string;

  afterAll(async () => {
    if (rows.length > 0) publishTable(rows, MODE);
    probe?.kill("SIGKILL");
    await hq?.stop();
  });

  const alive = (p: Probe | undefined) => !!p && p.exitCode === null && p.signalCode === null;
  const start = (env: Record<string, string> = {}, file = configFile) =>
    startProbe(lab(), { NETPROBE_STORE_PATH: db, ...env }, file);

  /** Waits until the outbox is empty and HQ has the last committed seq; returns that seq. */
  async function drained(file: string, what: string, ms = DRAIN_MS): Promise<number> {
    await waitFor(`${what}: outbox drained`, ms, () => statusOf(file)?.outbox.rows === 0);
    const last = maxSeq(file);
    await waitFor(`${what}: seq ${last} at HQ`, 15_000, () =>
      hq.messages.some((m) => m.topic.includes("/results/") && (m.payload as { seq?: number }).seq === last),
    );
    return last;
  }

  /** Up = the process runs and HQ received a result in the last few seconds. */
  async function up(p: Probe | undefined): Promise<boolean> {
    if (!alive(p)) return false;
    const n = hq.messages.length;
    try {
      await waitFor("a fresh result at HQ", 10_000, () =>
        hq.messages.slice(n).some((m) => m.topic.includes("/results/")),
      );
      return alive(p);
    } catch {
      return false;
    }
  }

  /** Counts a row, records it, and asserts 0 lost / integrity ok / up. */
  function record(
    fault: string,
    times: number,
    from: Mark,
    to: number,
    o: { up: boolean; integrity?: string; evicted?: number; note?: string; file?: string },
  ): FaultRow {
    const c = count(hq.messages, from, to);
    const evicted = o.evicted ?? 0;
    const row: FaultRow = {
      fault,
      times,
      produced: c.produced,
      delivered: c.delivered,
      evicted,
      lost: c.produced - c.delivered - evicted,
      duplicated: c.duplicated,
      integrity: o.integrity ?? integrity(o.file ?? db),
      up: o.up,
      note: o.note ?? "",
    };
    rows.push(row);
    console.log(`fault row: ${JSON.stringify(row)}`);
    expect(row.produced, `${fault}: results produced`).toBeGreaterThan(0);
    if (evicted === 0) expect(c.missing, `${fault}: seqs never delivered`).toEqual([]);
    expect(row.lost, `${fault}: lost`).toBe(0);
    expect(row.integrity, `${fault}: integrity`).toBe("ok");
    expect(row.up, `${fault}: service up`).toBe(true);
    return row;
  }

  it("setup: HQ subscribed, the probe running and delivering", async () => {
    configFile = join(lab().info.dir, "fault-probe.yaml");
    db = join(lab().info.dir, "fault.db");
    writeFileSync(configFile, config());
    hq = startHq(lab(), "hq-fault", true);
    await waitFor("HQ connected", 15_000, () => hq.connected());
    probe = start();
    await waitFor("results at HQ", 20_000, () => hq.on("results/").length >= 6);
  });

  it(`broker down for ${BROKER_DOWN_MS / 60_000} min, then back`, async () => {
    const from = mark(hq.messages, db);
    const t0 = Date.now();
    await lab().fault("broker-down", true);
    await sleep(BROKER_DOWN_MS);
    const queued = statusOf(db)?.outbox.rows ?? 0;
    await lab().fault("broker-down", false);
    const to = await drained(db, "after the broker outage");
    record("broker down", 1, from, to, {
      up: await up(probe),
      note: `${Math.round(BROKER_DOWN_MS / 1000)} s down, ${queued} rows queued, drained ${Math.round((Date.now() - t0 - BROKER_DOWN_MS) / 1000)} s after`,
    });
    expect(queued).toBeGreaterThan(BROKER_DOWN_MS / 1000); // ≥ 1 result per second was kept
  });

  it(`uplink flapping every ${FLAP_HALF_MS / 1000} s for ${FLAP_MS / 60_000} min`, async () => {
    const from = mark(hq.messages, db);
    const until = Date.now() + FLAP_MS;
    let flaps = 0;
    while (Date.now() < until) {
      await lab().fault("broker-down", true);
      await sleep(FLAP_HALF_MS);
      await lab().fault("broker-down", false);
      await sleep(FLAP_HALF_MS);
      flaps++;
    }
    const to = await drained(db, "after flapping");
    record("uplink flapping", flaps, from, to, {
      up: await up(probe),
      note: `broker stopped/started ${flaps}× (${FLAP_HALF_MS / 1000} s down, ${FLAP_HALF_MS / 1000} s up)`,
    });
  });

  it("config reload with an invalid file: refused, the old config keeps running", async () => {
    const from = mark(hq.messages, db);
    const cmd = startClient(lab(), "hq", "hq");
    try {
      await cmd.connected();
      await cmd.subscribe(`${PROBE_BASE}reply/#`);
      writeFileSync(configFile, config().replace("interval: 1s", "interval: 0s"));
      const reply = await cmd.command("reload", { request_id: "fault-reload-bad" });
      expect(reply).toMatchObject({ ok: false, error: { code: "config_invalid" } });
      // The six checks keep their 1 s cadence under the old config.
      const n = hq.messages.length;
      await sleep(10_000);
      const after = hq.messages.slice(n).filter((m) => m.topic.includes("/results/")).length;
      expect(after).toBeGreaterThanOrEqual(6 * 8);
      writeFileSync(configFile, config());
      const to = await drained(db, "after the refused reload");
      record("config reload, invalid file", 1, from, to, {
        up: await up(probe),
        note: `refused (${String(reply.error?.code)}); ${after} results in the next 10 s`,
      });
    } finally {
      writeFileSync(configFile, config());
      await cmd.stop();
    }
  });

  it("SIGTERM during heavy publishing: clean exit within 5 s, nothing lost", async () => {
    const from = mark(hq.messages, db);
    await lab().fault("broker-down", true);
    await sleep(30_000);
    const backlog = statusOf(db)?.outbox.rows ?? 0;
    await lab().fault("broker-down", false);
    // Stop while the backlog is streaming out.
    await waitFor("the backlog draining", 30_000, () => (statusOf(db)?.outbox.rows ?? 0) < backlog - 20);
    const left = statusOf(db)?.outbox.rows ?? 0;
    probe!.kill("SIGTERM");
    const { code, ms } = await exited(probe!);
    const integrityAfterStop = integrity(db);
    probe = start();
    const to = await drained(db, "after SIGTERM and restart");
    record("SIGTERM during heavy publishing", 1, from, to, {
      up: await up(probe),
      integrity: integrityAfterStop,
      note: `exit ${code} in ${ms} ms with ${left}/${backlog} rows still queued`,
    });
    expect(code).toBe(0);
    expect(ms).toBeLessThan(5000);
  });

  it(`kill -9 at ${KILLS} random instants (start-up, writes, publishes) and ${MIGRATION_KILLS} during migrations`, async () => {
    const from = mark(hq.messages, db);
    probe!.kill("SIGKILL");
    await exited(probe!);
    const broken: string[] = [];
    let earliest = Infinity;
    for (let i = 0; i < KILLS; i++) {
      // A quarter in the first 600 ms (node start, store open, first writes), the rest later.
      const at = i % 4 === 0 ? Math.random() * 600 : 600 + Math.random() * 2400;
      earliest = Math.min(earliest, at);
      const p = start();
      await sleep(at);
      p.kill("SIGKILL");
      await exited(p);
      const r = integrity(db);
      if (r !== "ok") broken.push(`kill ${i + 1} at ${Math.round(at)} ms: ${r}`);
    }
    // Fresh databases killed while the schema is being created, then opened again.
    for (let i = 0; i < MIGRATION_KILLS; i++) {
      const file = join(lab().info.dir, `fault-migration-${i}.db`);
      const m: Mark = { idx: hq.messages.length, seq: 0 };
      const p = start({ NETPROBE_STORE_PATH: file });
      await sleep(250 + Math.random() * 500);
      p.kill("SIGKILL");
      await exited(p);
      const r = integrity(file);
      if (r !== "ok" && r !== "missing") broken.push(`migration kill ${i + 1}: ${r}`);
      // Opening again finishes the migration and delivers what both runs produced.
      const again = start({ NETPROBE_STORE_PATH: file });
      await waitFor("results from the re-opened database", 20_000, () => maxSeq(file) >= 6);
      const last = await drained(file, `re-opened migration db ${i + 1}`);
      again.kill("SIGTERM");
      await exited(again);
      const c = count(hq.messages, m, last);
      if (c.missing.length > 0 || integrity(file) !== "ok")
        broken.push(`migration db ${i + 1}: missing ${c.missing.length}, ${integrity(file)}`);
    }
    probe = start();
    const to = await drained(db, "after the kills");
    record("kill -9", KILLS + MIGRATION_KILLS, from, to, {
      up: await up(probe),
      integrity: broken.length === 0 ? integrity(db) : broken.join("; "),
      note: `earliest kill ${Math.round(earliest)} ms after spawn; ${MIGRATION_KILLS} fresh DBs killed while migrating, re-opened and delivered`,
    });
  });

  it("a check that hangs: killed by its timeout, the others unaffected", async () => {
    probe!.kill("SIGTERM");
    await exited(probe!);
    const stuckConfig = join(lab().info.dir, "fault-stuck.yaml");
    writeFileSync(stuckConfig, config([STUCK]));
    const from = mark(hq.messages, db);
    probe = start({}, stuckConfig);
    const WINDOW_MS = 20_000;
    await waitFor("first result", 15_000, () =>
      hq.messages.slice(from.idx).some((m) => m.topic.includes("/results/")),
    );
    const n = hq.messages.length;
    await sleep(WINDOW_MS);
    const window = hq.messages.slice(n).filter((m) => m.topic.includes("/results/"));
    const stuck = window.filter((m) => m.payload.check === "stuck");
    const others = window.filter((m) => m.payload.check !== "stuck");
    const to = await drained(db, "with the hanging check");
    record("check that hangs", stuck.length, from, to, {
      up: await up(probe),
      note: `stuck: ${stuck.length} results, all ${[...new Set(stuck.map((m) => `${String(m.payload.status)}/${String((m.payload.error as { code?: string } | undefined)?.code)}`))].join(",")}, max ${Math.max(...stuck.map((m) => m.payload.duration_ms as number))} ms; others: ${others.length} in ${WINDOW_MS / 1000} s`,
    });
    expect(stuck.length).toBeGreaterThanOrEqual(WINDOW_MS / 2000 - 2); // every 2 s, never piles up
    for (const m of stuck) {
      expect(m.payload.status).not.toBe("ok");
      expect(m.payload.duration_ms as number).toBeLessThan(2500);
    }
    // The six others keep their 1 s cadence (allowing for start and window edges).
    expect(others.length).toBeGreaterThanOrEqual(6 * (WINDOW_MS / 1000 - 3));
    probe.kill("SIGTERM");
    await exited(probe);
    probe = undefined;
  });

  it("disk full: the database on a small tmpfs fills; probing goes on, eviction per policy, recovery", async () => {
    // A 24 MiB tmpfs (RAM, never the real disk) mounted before the probe starts, so its mount
    // namespace (ip netns exec) has it too; unmounted in finally.
    if (alive(probe)) {
      probe!.kill("SIGTERM");
      await exited(probe!);
    }
    const dir = `/run/netprobe-fault-${lab().info.name}`;
    mkdirSync(dir, { recursive: true });
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=24m,mode=0755", "tmpfs", dir]);
    const file = join(dir, "probe.db");
    try {
      const from = mark(hq.messages, file);
      probe = start({ NETPROBE_STORE_PATH: file });
      const p = probe;
      await waitFor("results from the tmpfs database", 20_000, () => maxSeq(file) >= 6).catch(
        (err: Error) => {
          throw new Error(`${err.message}; probe log:\n${p.log.slice(-15).join("\n")}`);
        },
      );
      await lab().fault("broker-down", true);
      // Leave ~256 KiB free: the store gives its 8 MiB reserve back, caps the file and evicts.
      const avail = statfsSync(dir).bavail * statfsSync(dir).bsize;
      expect(avail).toBeGreaterThan(1 << 20);
      execFileSync("fallocate", ["-l", String(avail - 256 * 1024), join(dir, "filler")]);
      const seqAtFull = maxSeq(file);
      await waitFor("evictions", 180_000, () => (statusOf(file)?.outbox.evicted ?? 0) > 0);
      const evictingSince = maxSeq(file);
      await sleep(15_000);
      const whileFull = maxSeq(file) - evictingSince;
      expect(whileFull, "results stored while the disk is full").toBeGreaterThan(30);
      // Space comes back, then the broker: the store lifts its cap and everything left drains.
      rmSync(join(dir, "filler"));
      await lab().fault("broker-down", false);
      const to = await drained(file, "after disk full");
      const evicted = statusOf(file)?.outbox.evicted ?? 0;
      // A restart publishes a health carrying the persistent eviction count.
      probe.kill("SIGTERM");
      await exited(probe);
      probe = start({ NETPROBE_STORE_PATH: file });
      const health = await waitFor("health with the eviction count at HQ", 20_000, () =>
        hq
          .on("health")
          .slice(-5)
          .find((m) => ((m.payload.outbox as { evicted?: number } | undefined)?.evicted ?? 0) >= evicted),
      );
      const isUp = await up(probe);
      await drained(file, "after the restart on the tmpfs");
      record("disk full (24 MiB tmpfs)", 1, from, to, {
        up: isUp,
        evicted,
        file,
        note: `full after seq ${seqAtFull}; ${whileFull} results stored in 15 s while full; health.outbox.evicted = ${String((health.payload.outbox as { evicted: number }).evicted)}`,
      });
      expect(evicted).toBeGreaterThan(0);
    } finally {
      await lab().fault("broker-down", false);
      if (alive(probe)) {
        probe!.kill("SIGTERM");
        await exited(probe!);
      }
      probe = undefined;
      execFileSync("umount", ["-l", dir]);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  /** The store part of the last health HQ received (health.store), if any. */
  const storeHealth = (fromIdx: number) =>
    hq.messages
      .slice(fromIdx)
      .filter((m) => m.topic.endsWith("/health"))
      .map(
        (m) =>
          m.payload.store as
            | { state: string; reason: string | null; not_kept: number; quarantined: string | null }
            | undefined,
      )
      .at(-1);

  /** Mounts a tmpfs of `size` (RAM, never the real disk) before the probe starts; returns the directory. */
  function smallVolume(size: string, tag: string): string {
    const dir = `/run/netprobe-fault-${lab().info.name}-${tag}`;
    mkdirSync(dir, { recursive: true });
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size},mode=0755`, "tmpfs", dir]);
    return dir;
  }
  function unmount(dir: string): void {
    execFileSync("umount", ["-l", dir]);
    rmSync(dir, { recursive: true, force: true });
  }
  async function stopProbe(): Promise<void> {
    if (alive(probe)) {
      probe!.kill("SIGTERM");
      await exited(probe!);
    }
    probe = undefined;
  }

  it("a 4 MiB store volume fills to 0 bytes free while running: same process probes and publishes on, health says why, recovers", async () => {
    await stopProbe();
    const dir = smallVolume("4m", "4m");
    const file = join(dir, "probe.db");
    try {
      const from = hq.messages.length;
      probe = start({ NETPROBE_STORE_PATH: file });
      const p = probe;
      const pid = p.pid;
      await waitFor("results from the 4 MiB volume", 20_000, () => maxSeq(file) >= 6);
      fillToZero(join(dir, "filler"));
      expect(statfsSync(dir).bavail).toBe(0);
      const degraded = await waitFor("health.store degraded at HQ", 30_000, () => {
        const h = storeHealth(from);
        return h?.state === "degraded" && h;
      });
      expect(degraded.reason).toMatch(/^store: disk full — /);
      const n = hq.messages.length;
      await sleep(20_000);
      const fresh = hq.messages.slice(n).filter((m) => m.topic.includes("/results/")).length;
      expect(alive(p) && p.pid === pid, "same process still running").toBe(true);
      expect(fresh, "results at HQ in 20 s on a full disk").toBeGreaterThanOrEqual(6 * 15);
      const whileFull = storeHealth(from)!;
      rmSync(join(dir, "filler"));
      const healed = await waitFor("health.store ok again at HQ", 30_000, () => {
        const h = storeHealth(from);
        return h?.state === "ok" && h;
      });
      const c = countAtHq(hq.messages, from);
      const row: FaultRow = {
        fault: "disk full (4 MiB tmpfs, 0 bytes free) while running",
        times: 1,
        produced: c.produced,
        delivered: c.delivered,
        evicted: c.missing.length,
        lost: 0,
        duplicated: c.duplicated,
        integrity: integrity(file),
        up: await up(p),
        note: `same PID ${String(pid)}; ${fresh} results at HQ in 20 s at 0 bytes free; health: "${whileFull.reason}", not_kept ${whileFull.not_kept}; ok again (not_kept ${healed.not_kept}) after the filler was removed; ${c.missing.length} seqs neither kept nor delivered`,
      };
      rows.push(row);
      console.log(`fault row: ${JSON.stringify(row)}`);
      expect(row.up).toBe(true);
      expect(row.integrity).toBe("ok");
    } finally {
      await stopProbe();
      unmount(dir);
    }
  });

  it("0 bytes free at start-up: the service starts, probes and publishes from memory, says so, and moves to the file when space returns", async () => {
    await stopProbe();
    const dir = smallVolume("4m", "zero");
    const file = join(dir, "probe.db");
    try {
      fillToZero(join(dir, "filler"));
      const from = hq.messages.length;
      probe = start({ NETPROBE_STORE_PATH: file });
      const p = probe;
      const pid = p.pid;
      const h = await waitFor("health.store at HQ", 30_000, () => {
        const s = storeHealth(from);
        return s?.state === "degraded" && s;
      });
      expect(h.reason).toBe("store: disk full — results kept in memory only (lost on restart)");
      await sleep(15_000);
      expect(alive(p) && p.pid === pid, "same process still running").toBe(true);
      const atHq = hq.messages.slice(from).filter((m) => m.topic.includes("/results/")).length;
      expect(atHq).toBeGreaterThanOrEqual(6 * 12);
      rmSync(join(dir, "filler"));
      await waitFor("health.store ok again at HQ", 30_000, () => storeHealth(from)?.state === "ok");
      await waitFor("results in the file", 15_000, () => maxSeq(file) > 0);
      const c = countAtHq(hq.messages, from);
      const row: FaultRow = {
        fault: "0 bytes free at start-up (4 MiB tmpfs)",
        times: 1,
        produced: c.produced,
        delivered: c.delivered,
        evicted: 0,
        lost: c.missing.length,
        duplicated: c.duplicated,
        integrity: integrity(file),
        up: await up(p),
        note: `same PID ${String(pid)}; health: "${h.reason}"; ${atHq} results at HQ in the first ~15 s; the buffer moved into the file when space returned`,
      };
      rows.push(row);
      console.log(`fault row: ${JSON.stringify(row)}`);
      expect(row.lost).toBe(0);
      expect(row.up).toBe(true);
      expect(row.integrity).toBe("ok");
    } finally {
      await stopProbe();
      unmount(dir);
    }
  });

  it("a damaged database (garbled header, truncated, an interior page overwritten): quarantined, a fresh buffer, probing on, HQ told", async () => {
    await stopProbe();
    // A real populated database: the service itself writes it for 15 s with the broker down.
    const base = join(lab().info.dir, "fault-populated.db");
    await lab().fault("broker-down", true);
    probe = start({ NETPROBE_STORE_PATH: base });
    await sleep(15_000);
    await stopProbe();
    await lab().fault("broker-down", false);
    const populated = maxSeq(base);
    expect(populated).toBeGreaterThan(60);
    const size = statSync(base).size;
    const damages: Record<string, (f: string) => void> = {
      "garbled header": (f) => scribble(f, 0, 100),
      truncated: (f) => truncateSync(f, Math.floor(size / 2)),
      "interior page overwritten": (f) => scribble(f, Math.floor(size / 4096 / 2) * 4096, 4096),
    };
    for (const [damage, apply] of Object.entries(damages)) {
      const dir = join(lab().info.dir, `fault-corrupt-${damage.replaceAll(" ", "-")}`);
      mkdirSync(dir, { recursive: true });
      const file = join(dir, "netprobe.db");
      copyFileSync(base, file);
      apply(file);
      const from = hq.messages.length;
      probe = start({ NETPROBE_STORE_PATH: file });
      const p = probe;
      const pid = p.pid;
      try {
        const event = await waitFor(`${damage}: store_quarantined event at HQ`, 20_000, () =>
          hq.messages
            .slice(from)
            .find((m) => m.topic.endsWith("/events") && m.payload.type === "store_quarantined"),
        );
        const movedTo = String(event.payload.moved_to);
        expect(movedTo).toMatch(/netprobe\.db\.corrupt-\d{8}T\d{6}Z$/);
        expect(existsSync(movedTo), "damaged file kept").toBe(true);
        const nextSeq = event.payload.next_seq as number;
        expect(nextSeq, "seq stays above the damaged file's").toBeGreaterThan(populated);
        await waitFor(
          `${damage}: health.store.quarantined at HQ`,
          15_000,
          () => storeHealth(from)?.quarantined === movedTo,
        );
        await sleep(10_000);
        expect(alive(p) && p.pid === pid, "same process still running").toBe(true);
        const to = await drained(file, `${damage}: the fresh buffer`);
        record(`damaged database: ${damage}`, 1, { idx: from, seq: nextSeq - 1 }, to, {
          up: await up(p),
          file,
          note: `same PID ${String(pid)}; moved to ${movedTo.slice(dir.length + 1)} (+ ${readdirSync(dir).filter((f) => f.includes(".corrupt-")).length - 1} -wal/-shm); next_seq ${nextSeq} from ${String(event.payload.seq_from)}; ${String(event.payload.problem).slice(0, 70)}`,
        });
      } finally {
        await stopProbe();
      }
    }
  });
});
