// ProbeService end to end without a network: a real store in a temp dir, a scripted check kind, the
// fake uplink draining the real outbox, a recording LED panel. What HQ would receive is asserted.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { Measurement } from "../../services/probe/src/checks/check.ts";
import { validateConfig } from "../../services/probe/src/config/validate.ts";
import { documentHash } from "../../services/contract/src/config-document.ts";
import { ConfigFile } from "../../services/probe/src/config/config-file.ts";
import type {
  AreaTransitionEvent,
  ConfigPayload,
  HealthPayload,
  ReplyPayload,
  ResultPayload,
} from "../../services/contract/src/payloads.ts";
import { lookName } from "../../services/contract/src/led-table.ts";
import { silentLogger } from "../../services/contract/src/log.ts";
import { monoMs } from "../../services/probe/src/runner/clock.ts";
import type { Clock } from "../../services/probe/src/runner/clock-sync.ts";
import { ProbeService } from "../../services/probe/src/service.ts";
import { fakeUplinks } from "../doubles/fake-uplink.ts";
import { RecordingLeds, scriptedKind } from "../doubles/scripted-check.ts";

const BASE = "netprobe/v1/branch-1/probe-1/";
const failed: Measurement = {
  status: "fail",
  metrics: {},
  error: { code: "refused", message: "connection refused" },
};

let dir: string | undefined;
let service: ProbeService | undefined;
afterEach(async () => {
  await service?.stop();
  service = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

/** A wall clock the test can step, against the real monotonic one. */
function steppableClock() {
  let shift = 0;
  const clock: Clock = { wallMs: () => Date.now() + shift, monoMs };
  return { clock, step: (ms: number) => (shift += ms) };
}

function startService(script: Measurement[], check: Record<string, unknown> = {}, clock?: Clock) {
  dir = mkdtempSync(join(tmpdir(), "np-service-"));
  const checked = validateConfig({
    site: "branch-1",
    probe: "probe-1",
    broker: { url: "mqtt://broker.invalid" },
    store: { path: join(dir, "probe.db") },
    leds: { lamp_test: "0s" },
    areas: { fail_after: 3, recover_after: 2 },
    // jitter 0: the first run starts with the service; later ones only when asked (24 h interval).
    checks: [{ name: "gw-tcp", kind: "tcp", target: "192.0.2.1:443", interval: "24h", jitter: 0, ...check }],
  });
  if (!checked.ok) throw new Error(checked.problems.join("\n"));
  const kind = scriptedKind("tcp", script);
  const uplinks = fakeUplinks();
  const leds = new RecordingLeds();
  service = new ProbeService(checked.config, silentLogger(), leds, undefined, {
    uplink: uplinks.factory,
    kinds: (k) => (k === "tcp" ? kind.kind : undefined),
    ...(clock ? { clock } : {}),
  });
  service.start();
  return { service, kind, uplink: uplinks.latest(), leds };
}

async function until(what: string, ok: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("ProbeService", () => {
  it("a check failing fail_after times in a row turns its area failing: event, health and LED follow", async () => {
    const { service: s, uplink, leds } = startService([failed]);
    uplink.connect();
    const results = () => uplink.payloadsOn("results/gw-tcp") as ResultPayload[];
    const transitions = () =>
      (uplink.payloadsOn("events") as AreaTransitionEvent[]).filter((e) => e.type === "area_transition");
    await until("first result", () => results().length === 1);
    for (const n of [2, 3]) {
      expect(transitions()).toEqual([]); // below fail_after: no verdict yet
      expect(lookName(leds.last!.wan)).toBe("green-slow-blink");
      s.runNow("gw-tcp");
      await until(`result ${n}`, () => results().length === n);
    }
    const [event] = transitions();
    expect(event).toMatchObject({ area: "wan", from: "unknown", to: "failing", result_id: results()[2]!.id });
    expect(event!.reason).toBe("gw-tcp: refused: connection refused");
    expect(lookName(leds.last!.wan)).toBe("red-blink"); // failing, changed in the last 5 minutes
    const health = (uplink.payloadsOn("health") as HealthPayload[]).at(-1)!;
    expect(health.areas.wan).toMatchObject({ state: "failing", led: "red-blink" });
    // Topic flags from the contract: results and events not retained, health retained; all via the outbox.
    const flags = (t: string) => uplink.published.find((p) => p.topic === BASE + t)!;
    expect(flags("results/gw-tcp")).toMatchObject({ qos: 1, retain: false, via: "outbox" });
    expect(flags("events")).toMatchObject({ qos: 1, retain: false, via: "outbox" });
    expect(flags("health")).toMatchObject({ qos: 1, retain: true, via: "outbox" });
    expect(flags("config")).toMatchObject({ qos: 1, retain: true, via: "direct" });
    expect(results().map((r) => r.seq)).toEqual([1, 2, 3].map((i) => results()[0]!.seq + i - 1));
  });

  it("thresholds come with the scheduled check: a slow connect is published as warn", async () => {
    const { uplink } = startService([{ status: "ok", metrics: { connect_ms: 80 } }], {
      thresholds: { connect_ms: { warn: 50, fail: 200 } },
    });
    uplink.connect();
    await until("result", () => uplink.payloadsOn("results/gw-tcp").length === 1);
    const [r] = uplink.payloadsOn("results/gw-tcp") as ResultPayload[];
    expect(r).toMatchObject({
      status: "warn",
      error: { code: "threshold", message: "connect_ms 80 > warn 50" },
    });
  });

  it("a result stored before the wall clock stepped is published with the corrected time", async () => {
    const c = steppableClock();
    const { kind, uplink } = startService([{ status: "ok", metrics: {} }], {}, c.clock);
    const stored = Date.now();
    await until("first run", () => kind.runs() === 1);
    await new Promise((r) => setTimeout(r, 100)); // done, and in the outbox: the uplink is down
    const DAY = 86_400_000;
    c.step(DAY); // NTP; the uplink connecting samples the clock before the outbox drains
    uplink.connect();
    await until("result", () => uplink.payloadsOn("results/gw-tcp").length >= 1);
    const [r] = uplink.payloadsOn("results/gw-tcp") as ResultPayload[];
    expect(r!.clock).toBe("corrected");
    expect(Math.abs(Date.parse(r!.started_at) - (stored + DAY))).toBeLessThan(1000);
  });

  it("cmd/run goes to the service as the command target; the reply is published directly and expires", async () => {
    const { uplink } = startService([{ status: "ok", metrics: {} }]);
    uplink.connect();
    await until("first result", () => uplink.payloadsOn("results/gw-tcp").length === 1);
    const ask = (check: string, id: string) =>
      uplink.emit("command", {
        name: "run",
        payload: Buffer.from(JSON.stringify({ schema: 1, request_id: id, check })),
      });
    ask("gw-tcp", "r1");
    ask("nope", "r2");
    await until(
      "replies",
      () => uplink.published.filter((p) => p.topic.startsWith(BASE + "reply/")).length === 2,
    );
    const [ok] = uplink.payloadsOn("reply/r1") as ReplyPayload[];
    const [refused] = uplink.payloadsOn("reply/r2") as ReplyPayload[];
    expect(ok).toMatchObject({ ok: true, result: { started: ["gw-tcp"] } });
    expect(refused).toMatchObject({ ok: false, error: { code: "unknown_check" } });
    expect(uplink.published.find((p) => p.topic === BASE + "reply/r1")).toMatchObject({
      qos: 1,
      retain: false,
      via: "direct",
      expirySeconds: 60,
    });
    await until("the run it started", () => uplink.payloadsOn("results/gw-tcp").length === 2);
  });
});

describe("ProbeService: config from HQ (apply, confirm, roll back)", () => {
  const doc = (interval: string, extra: Record<string, unknown> = {}) => ({
    site: "branch-1",
    probe: "probe-1",
    broker: { url: "mqtt://broker.invalid" },
    store: { path: join(dir!, "probe.db") },
    leds: { lamp_test: "0s" },
    checks: [{ name: "gw-tcp", kind: "tcp", target: "192.0.2.1:443", interval, jitter: 0 }],
    ...extra,
  });

  /** A service running from a real config file, with the confirm window on a clock the test drives. */
  function startFromFile() {
    dir = mkdtempSync(join(tmpdir(), "np-service-"));
    const path = join(dir, "netprobe.yaml");
    const original = `# written by hand\n${JSON.stringify(doc("24h"))}\n`;
    writeFileSync(path, original);
    let expire: (() => void) | undefined;
    const file = new ConfigFile(
      path,
      {},
      {
        setTimeout: (fn) => (expire = fn),
        clearTimeout: () => (expire = undefined),
      },
    );
    const read = file.read();
    if (!read.ok) throw new Error(read.problems.join("\n"));
    const kind = scriptedKind("tcp", [{ status: "ok", metrics: {} }]);
    const uplinks = fakeUplinks();
    service = new ProbeService(
      read.config,
      silentLogger(),
      undefined,
      { file, documentHash: read.documentHash },
      {
        uplink: uplinks.factory,
        kinds: (k) => (k === "tcp" ? kind.kind : undefined),
      },
    );
    service.start();
    const uplink = () => uplinks.latest();
    uplink().connect();
    let n = 0;
    const command = async (name: string, body: Record<string, unknown>) => {
      const id = `q${++n}`;
      uplinks.latest().emit("command", {
        name,
        payload: Buffer.from(JSON.stringify({ schema: 1, request_id: id, ...body })),
      });
      await until(`reply ${id}`, () => uplinks.latest().payloadsOn(`reply/${id}`).length > 0);
      return uplinks.latest().payloadsOn(`reply/${id}`)[0] as ReplyPayload;
    };
    const retained = () => uplink().payloadsOn("config").at(-1) as ConfigPayload;
    return {
      path,
      original,
      file,
      service,
      uplink,
      command,
      retained,
      expire: () => expire?.(),
      startHash: read.documentHash,
    };
  }

  it("a valid document applies at once, the retained config shows it pending, confirm keeps it, results carry the new config_hash", async () => {
    const t = startFromFile();
    await until("first result", () => t.uplink().payloadsOn("results/gw-tcp").length === 1);
    const before = t.retained();
    expect(before.document_hash).toBe(t.startHash);
    expect(before.pending).toBeUndefined();
    const next = doc("1h");
    const reply = await t.command("apply_config", {
      document: next,
      document_hash: documentHash(next),
      confirm_s: 60,
    });
    expect(reply).toMatchObject({
      ok: true,
      result: { document_hash: documentHash(next), changed: ["checks"] },
    });
    const result = reply.result as { config_hash: string; confirm_by: string };
    expect(result.config_hash).not.toBe(before.config_hash);
    expect(Date.parse(result.confirm_by) - Date.now()).toBeGreaterThan(55_000);
    const pending = t.retained();
    expect(pending).toMatchObject({
      config_hash: result.config_hash,
      document_hash: documentHash(next),
      pending: {
        document_hash: documentHash(next),
        previous_document_hash: t.startHash,
        confirm_by: result.confirm_by,
      },
    });
    expect(JSON.parse(readFileSync(t.path, "utf8"))).toEqual(next);
    // The new schedule ran its first check: under the new config's hash.
    await until("a result under the new config", () =>
      (t.uplink().payloadsOn("results/gw-tcp") as ResultPayload[]).some(
        (r) => r.config_hash === result.config_hash,
      ),
    );
    expect((t.uplink().payloadsOn("results/gw-tcp") as ResultPayload[])[0]!.config_hash).toBe(
      before.config_hash,
    );

    const confirmed = await t.command("confirm_config", { document_hash: documentHash(next) });
    expect(confirmed.result).toEqual({ document_hash: documentHash(next), confirmed: true });
    expect(t.retained().pending).toBeUndefined();
    expect(t.retained().document_hash).toBe(documentHash(next));
    t.expire(); // a window that already ended does nothing
    expect(JSON.parse(readFileSync(t.path, "utf8"))).toEqual(next);
  });

  it("an invalid document is config_invalid with every problem and its path; the file and the running config stay", async () => {
    const t = startFromFile();
    const hashBefore = t.service.effectiveConfig().hash;
    const bad = { ...doc("0s"), leds: { lamp_test: "0s", color: "red" } };
    const reply = await t.command("apply_config", { document: bad, document_hash: documentHash(bad) });
    expect(reply.error?.code).toBe("config_invalid");
    expect(reply.error?.problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^checks\[0\]\.interval: /),
        expect.stringMatching(/^leds\.color: /),
      ]),
    );
    expect(readFileSync(t.path, "utf8")).toBe(t.original);
    expect(existsSync(t.file.lastGoodPath) || existsSync(t.file.pendingPath)).toBe(false);
    expect(t.service.effectiveConfig().hash).toBe(hashBefore);
  });

  it("a document changing what only a restart applies is restart_required, and nothing changes", async () => {
    const t = startFromFile();
    const moved = doc("24h", { probe: "probe-2" });
    const reply = await t.command("apply_config", { document: moved, document_hash: documentHash(moved) });
    expect(reply.error).toMatchObject({
      code: "restart_required",
      problems: ["probe: changed; restart the service to apply it"],
    });
    expect(readFileSync(t.path, "utf8")).toBe(t.original);
  });

  it("not confirmed in time: the file goes back byte for byte, the old config runs, the retained config says rolled_back", async () => {
    const t = startFromFile();
    const hashBefore = t.service.effectiveConfig().hash;
    const next = doc("1h");
    await t.command("apply_config", { document: next, document_hash: documentHash(next), confirm_s: 10 });
    expect(t.service.effectiveConfig().hash).not.toBe(hashBefore);
    const configs = t.uplink().payloadsOn("config").length;
    t.expire();
    await until("the rollback's config", () => t.uplink().payloadsOn("config").length > configs);
    expect(readFileSync(t.path, "utf8")).toBe(t.original);
    expect(t.service.effectiveConfig().hash).toBe(hashBefore);
    const r = t.retained();
    expect(r.document_hash).toBe(t.startHash);
    expect(r.pending).toBeUndefined();
    expect(r.rolled_back).toMatchObject({ document_hash: documentHash(next), reason: "not_confirmed" });
    const late = await t.command("confirm_config", { document_hash: documentHash(next) });
    expect(late.error?.code).toBe("not_pending");
  });

  it("rollback_config goes back now (reason command); with nothing to go back to it is no_previous", async () => {
    const t = startFromFile();
    expect((await t.command("rollback_config", {})).error?.code).toBe("no_previous");
    const next = doc("1h");
    await t.command("apply_config", { document: next, document_hash: documentHash(next) });
    const reply = await t.command("rollback_config", {});
    expect(reply.result).toEqual({ config_hash: expect.any(String) as string, document_hash: t.startHash });
    expect(readFileSync(t.path, "utf8")).toBe(t.original);
    expect(t.retained().rolled_back).toMatchObject({ document_hash: documentHash(next), reason: "command" });
  });
});
