// Commands from headquarters, straight into the CommandProcessor with a double of the service:
// validation with every problem named, replies and where they go, idempotency, drops, and a fuzz.
import { Writable } from "node:stream";
import { pino } from "pino";
import { Value } from "@sinclair/typebox/value";
import { describe, expect, it } from "vitest";
import type { Area } from "../../../services/probe/src/checks/check.ts";
import { redactConfig, configHash } from "../../../services/probe/src/config/redact.ts";
import { validateConfig } from "../../../services/probe/src/config/validate.ts";
import { ReplyPayload } from "../../../services/contract/src/payloads.ts";
import { CONFIRM_DEFAULT_S, documentHash } from "../../../services/contract/src/config-document.ts";
import {
  CommandProcessor,
  jsonDepthExceeds,
  MAX_DOCUMENT_COMMAND_BYTES,
  validateCommand,
  type CommandRate,
  type CommandTarget,
  type IncomingCommand,
  type ReloadOutcome,
} from "../../../services/probe/src/uplink/commands.ts";
import { malformedCommands } from "../../fixtures/command-fuzz.ts";

const BASE = "netprobe/v1/lab/probe-1/";

function config() {
  const r = validateConfig({
    site: "lab",
    probe: "probe-1",
    broker: { url: "mqtts://203.0.113.50:8883", username: "lab.probe-1", password: "hunter2" },
    checks: [{ name: "gateway-icmp", kind: "icmp", target: "192.0.2.1", area: "lan" }],
  });
  if (!r.ok) throw new Error(r.problems.join("\n"));
  return r.config;
}

/** A service double that records what was asked of it. */
function fakeService(
  reload: () => ReloadOutcome | Promise<ReloadOutcome> = () => ({ ok: true, hash: "h", changed: [] }),
) {
  const calls: string[] = [];
  const target: CommandTarget = {
    runCheck: (name) => {
      calls.push(`run ${name}`);
      return name === "gateway-icmp" ? [name] : undefined;
    },
    runArea: (area: Area) => {
      calls.push(`area ${area}`);
      return area === "lan" ? ["gateway-icmp"] : [];
    },
    identify: (ms) => void calls.push(`identify ${ms}`),
    reload: () => {
      calls.push("reload");
      return Promise.resolve(reload());
    },
    effectiveConfig: () => ({ config: redactConfig(config()), hash: configHash(config()) }),
    applyConfig: (_document, hash, confirmMs) => {
      calls.push(`apply ${hash.slice(0, 8)} ${confirmMs}`);
      pending = hash;
      return Promise.resolve({
        ok: true,
        hash: "c".repeat(64),
        changed: ["checks"],
        confirmBy: "2025-01-01T00:05:00.000Z",
      });
    },
    confirmConfig: (hash) => {
      calls.push(`confirm ${hash.slice(0, 8)}`);
      const ok = pending === hash;
      if (ok) pending = undefined;
      return Promise.resolve(ok);
    },
    rollbackConfig: () => {
      calls.push("rollback");
      return Promise.resolve(
        previous
          ? { ok: true, hash: "d".repeat(64), documentHash: previous }
          : { ok: false, code: "no_previous", message: "nothing to go back to" },
      );
    },
  };
  let pending: string | undefined;
  let previous: string | undefined;
  return { target, calls, setPrevious: (h: string | undefined) => void (previous = h) };
}

function setup(
  opts: {
    reload?: () => ReloadOutcome | Promise<ReloadOutcome>;
    memorySize?: number;
    now?: () => number;
    rate?: CommandRate;
  } = {},
) {
  const lines: Array<Record<string, unknown>> = [];
  const dropped: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split("\n")) {
        if (!l) continue;
        const line = JSON.parse(l) as Record<string, unknown>;
        lines.push(line);
        if (String(line.msg).startsWith("command dropped")) dropped.push(line);
      }
      done();
    },
  });
  const log = pino({ level: "info" }, sink);
  const svc = fakeService(opts.reload);
  const processor = new CommandProcessor({
    base: BASE,
    site: "lab",
    probe: "probe-1",
    target: svc.target,
    log,
    ...(opts.memorySize ? { memorySize: opts.memorySize } : {}),
    ...(opts.rate ? { rate: opts.rate } : {}),
    ...(opts.now ? { now: opts.now } : {}),
  });
  const send = async (name: string, payload: unknown, extra: Partial<IncomingCommand> = {}) => {
    const out = await processor.handle({
      name,
      payload: Buffer.isBuffer(payload) ? payload : Buffer.from(JSON.stringify(payload)),
      ...extra,
    });
    const replies = out.replies.map((r) => ({ ...r, body: JSON.parse(r.payload) as ReplyPayload }));
    for (const r of replies) expect([...Value.Errors(ReplyPayload, r.body)]).toEqual([]);
    return { replies, after: out.after, reply: replies[0]?.body };
  };
  const drops = () => dropped;
  return { send, calls: svc.calls, lines, drops, processor, setPrevious: svc.setPrevious };
}

describe("commands: validation", () => {
  it("run with a check name starts that check and replies on reply/<request_id>", async () => {
    const t = setup();
    const { replies, reply } = await t.send("run", { schema: 1, request_id: "r1", check: "gateway-icmp" });
    expect(t.calls).toEqual(["run gateway-icmp"]);
    expect(replies.map((r) => r.topic)).toEqual([`${BASE}reply/r1`]);
    expect(reply).toMatchObject({
      ok: true,
      command: "run",
      request_id: "r1",
      result: { started: ["gateway-icmp"] },
    });
  });

  it("run with an area starts its checks; an area without checks is unknown_area", async () => {
    const t = setup();
    expect((await t.send("run", { schema: 1, request_id: "a1", area: "lan" })).reply?.result).toEqual({
      started: ["gateway-icmp"],
    });
    expect((await t.send("run", { schema: 1, request_id: "a2", area: "phone" })).reply?.error?.code).toBe(
      "unknown_area",
    );
  });

  it("run of a check that does not exist is unknown_check", async () => {
    const t = setup();
    const { reply } = await t.send("run", { schema: 1, request_id: "u1", check: "nope" });
    expect(reply).toMatchObject({
      ok: false,
      error: { code: "unknown_check", message: "no enabled check named nope" },
    });
  });

  it("run with both check and area, or neither, is refused and runs nothing", async () => {
    const t = setup();
    for (const [id, body] of [
      ["b1", { check: "gateway-icmp", area: "lan" }],
      ["b2", {}],
    ] as const) {
      const { reply } = await t.send("run", { schema: 1, request_id: id, ...body });
      expect(reply?.error?.code).toBe("invalid_command");
      expect(reply?.error?.problems).toContain("(payload): set exactly one of check, area");
    }
    expect(t.calls).toEqual([]);
  });

  it("every problem of a payload is named with its field", async () => {
    const t = setup();
    const { reply } = await t.send("identify", {
      schema: 2,
      request_id: "i1",
      duration_s: "10",
      blink: true,
    });
    expect(reply?.error?.code).toBe("invalid_command");
    expect(reply?.error?.problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^schema: must be 1/),
        expect.stringMatching(/^duration_s: /),
        expect.stringMatching(/^blink: /),
      ]),
    );
    expect(t.calls).toEqual([]);
  });

  it("identify defaults to 30 s and passes milliseconds; 0 and 3601 s are refused", async () => {
    const t = setup({ now: () => Date.parse("2025-01-01T00:00:00Z") });
    const { reply } = await t.send("identify", { schema: 1, request_id: "i2" });
    expect(reply?.result).toEqual({ duration_s: 30, until: "2025-01-01T00:00:30.000Z" });
    await t.send("identify", { schema: 1, request_id: "i3", duration_s: 5 });
    expect(t.calls).toEqual(["identify 30000", "identify 5000"]);
    for (const d of [0, 3601, 2.5])
      expect(validateCommand("identify", { schema: 1, request_id: "x", duration_s: d }).ok).toBe(false);
  });

  it("reload: an invalid file is config_invalid with every problem; a valid one lists what changed", async () => {
    const bad = setup({
      reload: () => ({
        ok: false,
        code: "config_invalid",
        message: "2 problems",
        problems: ["a: x", "b: y"],
      }),
    });
    const r1 = await bad.send("reload", { schema: 1, request_id: "l1" });
    expect(r1.reply?.error).toEqual({
      code: "config_invalid",
      message: "2 problems",
      problems: ["a: x", "b: y"],
    });
    let reconnects = 0;
    const after = () => Promise.resolve(void (reconnects += 1));
    const good = setup({ reload: () => ({ ok: true, hash: "abc", changed: ["broker"], after }) });
    const r2 = await good.send("reload", { schema: 1, request_id: "l2" });
    expect(r2.reply?.result).toEqual({ config_hash: "abc", changed: ["broker"] });
    await r2.after?.();
    expect(reconnects).toBe(1);
  });

  it("config replies with the effective config and never the password", async () => {
    const t = setup();
    const { replies, reply } = await t.send("config", { schema: 1, request_id: "c1" });
    expect(reply?.result).toMatchObject({ config_hash: configHash(config()), config: { site: "lab" } });
    expect(replies[0]?.payload).not.toContain("hunter2");
    expect(replies[0]?.payload).toContain('"password":"***"');
  });

  it("an unknown command gets unknown_command naming the known ones", async () => {
    const t = setup();
    const { reply } = await t.send("shutdown", { schema: 1, request_id: "s1" });
    expect(reply?.error?.code).toBe("unknown_command");
    expect(reply?.error?.message).toContain("run, identify, reload, config");
    expect(reply?.command).toBe("shutdown");
  });
});

describe("commands: apply_config, confirm_config, rollback_config", () => {
  const document = {
    site: "lab",
    probe: "probe-1",
    broker: { url: "mqtts://203.0.113.50:8883" },
    checks: [{ name: "gateway-icmp", kind: "icmp", target: "192.0.2.1", area: "lan", options: { count: 3 } }],
  };
  const hash = documentHash(document);

  it("apply_config with the document's hash applies it (confirm window in ms) and replies with both hashes", async () => {
    const t = setup();
    const { reply } = await t.send("apply_config", {
      schema: 1,
      request_id: "ap1",
      document,
      document_hash: hash,
      confirm_s: 60,
    });
    expect(t.calls).toEqual([`apply ${hash.slice(0, 8)} 60000`]);
    expect(reply).toMatchObject({
      ok: true,
      command: "apply_config",
      result: {
        config_hash: "c".repeat(64),
        document_hash: hash,
        changed: ["checks"],
        confirm_by: "2025-01-01T00:05:00.000Z",
      },
    });
    // Without confirm_s: the contract's default window.
    await t.send("apply_config", { schema: 1, request_id: "ap2", document, document_hash: hash });
    expect(t.calls.at(-1)).toBe(`apply ${hash.slice(0, 8)} ${CONFIRM_DEFAULT_S * 1000}`);
  });

  it("a document_hash that is not the document's is hash_mismatch, and nothing is applied", async () => {
    const t = setup();
    const damaged = { ...document, probe: "probe-2" };
    const { reply } = await t.send("apply_config", {
      schema: 1,
      request_id: "ap3",
      document: damaged,
      document_hash: hash,
    });
    expect(reply?.error?.code).toBe("hash_mismatch");
    expect(reply?.error?.message).toContain(documentHash(damaged));
    expect(t.calls).toEqual([]);
  });

  it("the hash is of the document in canonical form: key order does not matter", async () => {
    const t = setup();
    const reordered = { checks: document.checks, broker: document.broker, probe: "probe-1", site: "lab" };
    const { reply } = await t.send("apply_config", {
      schema: 1,
      request_id: "ap4",
      document: reordered,
      document_hash: hash,
    });
    expect(reply?.ok).toBe(true);
  });

  it("confirm_s bounds, hash pattern and a document that is not an object are invalid_command", () => {
    for (const bad of [
      { document, document_hash: hash, confirm_s: 9 },
      { document, document_hash: hash, confirm_s: 3601 },
      { document, document_hash: "ABC" },
      { document: [1, 2], document_hash: hash },
      { document_hash: hash },
    ])
      expect(validateCommand("apply_config", { schema: 1, request_id: "x", ...bad }).ok).toBe(false);
  });

  it("apply_config takes a whole config file: 200 KiB and 20 levels deep pass the size and nesting limits, other commands keep 8 KiB", async () => {
    const t = setup();
    let deep: Record<string, unknown> = { leaf: 1 };
    for (let i = 0; i < 14; i++) deep = { nested: deep };
    const big = {
      ...document,
      checks: [{ ...document.checks[0], options: { blob: "x".repeat(200 * 1024), deep } }],
    };
    const { reply } = await t.send("apply_config", {
      schema: 1,
      request_id: "ap5",
      document: big,
      document_hash: documentHash(big),
    });
    expect(reply?.ok).toBe(true);
    const tooBig = { ...document, filler: "x".repeat(MAX_DOCUMENT_COMMAND_BYTES) };
    const r2 = await t.send(
      "apply_config",
      {
        schema: 1,
        request_id: "ap6",
        document: tooBig,
        document_hash: documentHash(tooBig),
      },
      { responseTopic: `${BASE}reply/big` },
    );
    expect(r2.reply?.error?.code).toBe("too_large");
    const r3 = await t.send(
      "identify",
      { schema: 1, request_id: "ap7", pad: "x".repeat(9000) },
      { responseTopic: `${BASE}reply/big2` },
    );
    expect(r3.reply?.error?.code).toBe("too_large");
  });

  it("confirm_config for the pending hash confirms; for another hash, or nothing pending, it is not_pending", async () => {
    const t = setup();
    await t.send("apply_config", { schema: 1, request_id: "c0", document, document_hash: hash });
    const other = await t.send("confirm_config", {
      schema: 1,
      request_id: "c1",
      document_hash: "0".repeat(64),
    });
    expect(other.reply?.error?.code).toBe("not_pending");
    const ok = await t.send("confirm_config", { schema: 1, request_id: "c2", document_hash: hash });
    expect(ok.reply?.result).toEqual({ document_hash: hash, confirmed: true });
    const again = await t.send("confirm_config", { schema: 1, request_id: "c3", document_hash: hash });
    expect(again.reply?.error?.code).toBe("not_pending");
  });

  it("rollback_config replies with the config now running, or no_previous", async () => {
    const t = setup();
    const none = await t.send("rollback_config", { schema: 1, request_id: "rb1" });
    expect(none.reply?.error).toEqual({ code: "no_previous", message: "nothing to go back to" });
    t.setPrevious("e".repeat(64));
    const ok = await t.send("rollback_config", { schema: 1, request_id: "rb2" });
    expect(ok.reply?.result).toEqual({ config_hash: "d".repeat(64), document_hash: "e".repeat(64) });
  });

  it("a repeated apply_config request_id is replayed, not applied twice", async () => {
    const t = setup();
    const body = { schema: 1, request_id: "dup-ap", document, document_hash: hash };
    const first = await t.send("apply_config", body);
    const again = await t.send("apply_config", body);
    expect(again.reply).toEqual({ ...first.reply, replayed: true });
    expect(t.calls).toHaveLength(1);
  });
});

describe("commands: where replies go, and drops", () => {
  it("MQTT 5: the reply also goes to the response topic, with the correlation data", async () => {
    const t = setup();
    const correlationData = Buffer.from([1, 2, 3]);
    const { replies } = await t.send(
      "run",
      { schema: 1, request_id: "m1", check: "gateway-icmp" },
      { responseTopic: `${BASE}reply/hq/inbox`, correlationData },
    );
    expect(replies.map((r) => r.topic)).toEqual([`${BASE}reply/m1`, `${BASE}reply/hq/inbox`]);
    for (const r of replies) expect(r.correlationData).toEqual(correlationData);
  });

  it("bad JSON without a response topic is dropped with a log line; with one, it is answered there", async () => {
    const t = setup();
    const dropped = await t.send("run", Buffer.from("{not json"));
    expect(dropped.replies).toEqual([]);
    expect(t.drops()).toHaveLength(1);
    expect(t.drops()[0]).toMatchObject({ level: 40, reason: "bad_json", command: "run" });
    const answered = await t.send("run", Buffer.from("{not json"), { responseTopic: "hq/inbox" });
    expect(answered.replies.map((r) => r.topic)).toEqual(["hq/inbox"]);
    expect(answered.reply).toMatchObject({ request_id: null, ok: false, error: { code: "bad_json" } });
  });

  it("a request_id that cannot be a topic level is not used as one", async () => {
    const t = setup();
    for (const id of ["a/b", "x+", "#", "", "y".repeat(65)]) {
      expect((await t.send("run", { schema: 1, request_id: id, check: "gateway-icmp" })).replies).toEqual([]);
    }
    expect(t.drops()).toHaveLength(5);
    expect(t.calls).toEqual([]);
  });

  it("a response topic with wildcards or a $ prefix is ignored (logged)", async () => {
    const t = setup();
    for (const [i, rt] of ["hq/+/inbox", "hq/#", "$SYS/x"].entries()) {
      const { replies } = await t.send("config", { schema: 1, request_id: `w${i}` }, { responseTopic: rt });
      expect(replies.map((r) => r.topic)).toHaveLength(1);
    }
    expect(t.lines.filter((l) => l.msg === "ignoring unusable response topic")).toHaveLength(3);
  });

  it("a retained command is never carried out", async () => {
    const t = setup();
    const { replies } = await t.send(
      "run",
      { schema: 1, request_id: "rt", check: "gateway-icmp" },
      { retain: true },
    );
    expect(replies).toEqual([]);
    expect(t.calls).toEqual([]);
    expect(t.drops()).toHaveLength(1);
  });

  it("a payload over 8 KiB is refused unparsed", async () => {
    const t = setup();
    const big = { schema: 1, request_id: "big", check: "a".repeat(70_000) };
    expect((await t.send("run", big)).replies).toEqual([]);
    const answered = await t.send("run", big, { responseTopic: "hq/inbox" });
    expect(answered.reply?.error?.code).toBe("too_large");
  });
});

describe("commands: idempotency per request_id", () => {
  it("a repeated request_id replays the first reply without running again", async () => {
    const t = setup();
    const first = await t.send("run", { schema: 1, request_id: "d1", check: "gateway-icmp" });
    const again = await t.send("run", { check: "gateway-icmp", request_id: "d1", schema: 1 });
    expect(t.calls).toEqual(["run gateway-icmp"]);
    expect(again.reply).toEqual({ ...first.reply, replayed: true });
  });

  it("two copies arriving together (QoS 1 redelivery) run once", async () => {
    const t = setup();
    const [a, b] = await Promise.all([
      t.send("reload", { schema: 1, request_id: "d2" }),
      t.send("reload", { schema: 1, request_id: "d2" }),
    ]);
    expect(t.calls).toEqual(["reload"]);
    expect([a.reply?.replayed, b.reply?.replayed]).toEqual([undefined, true]);
  });

  it("the same request_id for a different request is request_id_conflict and changes nothing", async () => {
    const t = setup();
    await t.send("run", { schema: 1, request_id: "d3", check: "gateway-icmp" });
    const { reply } = await t.send("reload", { schema: 1, request_id: "d3" });
    expect(reply?.error?.code).toBe("request_id_conflict");
    expect(t.calls).toEqual(["run gateway-icmp"]);
  });

  it("memory is bounded by time: a full memory drops new ids rather than forget one early", async () => {
    let now = 0;
    const t = setup({ memorySize: 3, now: () => now });
    for (const id of ["e1", "e2", "e3", "e4"])
      await t.send("run", { schema: 1, request_id: id, check: "gateway-icmp" });
    expect(t.processor.remembered).toBe(3);
    expect(t.calls).toHaveLength(3); // e4 dropped unread: no room without forgetting e1
    expect(t.processor.dropped).toBe(1);
    await t.send("run", { schema: 1, request_id: "e1", check: "gateway-icmp" }); // remembered: replayed
    expect(t.calls).toHaveLength(3);
    now += 16 * 60_000;
    await t.send("run", { schema: 1, request_id: "e1", check: "gateway-icmp" }); // expired: runs again
    expect(t.calls).toHaveLength(4);
  });

  it("memory is sized from the rate: every id the bucket lets through in 15 minutes stays remembered", async () => {
    let now = 0;
    const t = setup({ now: () => now, rate: { perMinute: 60, burst: 30 } });
    const ids: string[] = [];
    // 15 minutes at twice the allowed rate, each command a new id, with a duplicate of the first
    // one between every two: the first id must never run again.
    for (let i = 0; i < 1800; i++) {
      now += 500;
      ids.push(`m${i}`);
      await t.send("run", { schema: 1, request_id: `m${i}`, check: "gateway-icmp" });
      await t.send("run", { schema: 1, request_id: "m0", check: "gateway-icmp" });
    }
    expect(now).toBeLessThanOrEqual(15 * 60_000);
    const executed = t.calls.length;
    expect(executed).toBeGreaterThan(400);
    expect(executed).toBeLessThanOrEqual(30 + 15 * 60); // burst + rate × window
    expect(t.processor.remembered).toBe(executed);
    expect(t.processor.dropped).toBe(
      3600 - executed - t.lines.filter((l) => l.msg === "repeated request_id: replaying the reply").length,
    );
  });
});

describe("commands: rate, size and depth limits", () => {
  it("a burst beyond the bucket is dropped unread and counted, with one summary log line", async () => {
    let now = 0;
    const t = setup({ now: () => now, rate: { perMinute: 60, burst: 5 } });
    for (let i = 0; i < 50; i++)
      await t.send("run", { schema: 1, request_id: `r${i}`, check: "gateway-icmp" });
    expect(t.calls).toHaveLength(5);
    expect(t.processor.dropped).toBe(45);
    const summaries = t.lines.filter((l) => l.msg === "commands rate-limited: dropped unread");
    expect(summaries).toHaveLength(1);
    now += 2000; // refills 2 tokens at 1 a second
    for (let i = 50; i < 55; i++)
      await t.send("run", { schema: 1, request_id: `r${i}`, check: "gateway-icmp" });
    expect(t.calls).toHaveLength(7);
  });

  it("deep payloads never reach JSON.parse: 30,000 levels are too_large, 3,000 fail the nesting scan", async () => {
    const t = setup();
    const deep = (n: number) =>
      Buffer.from(`{"schema":1,"request_id":"deep","x":${"[".repeat(n)}${"]".repeat(n)}}`);
    const huge = await t.send("run", deep(30_000), { responseTopic: "hq/inbox" });
    expect(huge.reply?.error?.code).toBe("too_large");
    const { reply } = await t.send("run", deep(3000), { responseTopic: "hq/inbox" });
    expect(reply?.error?.code).toBe("bad_json");
    expect(reply?.error?.message).toMatch(/nests deeper than 8 levels/);
    expect(JSON.stringify(t.lines)).not.toContain("RangeError");
    expect(t.calls).toEqual([]);
  });

  it("the depth scanner skips brackets inside strings and escapes", () => {
    const ok = Buffer.from(JSON.stringify({ a: "[[[[[[[[[[[[", b: '\\"{{{{{{{{{{{', c: [[1]] }));
    expect(jsonDepthExceeds(ok, 3)).toBe(false);
    expect(jsonDepthExceeds(Buffer.from("[[[[]]]]"), 3)).toBe(true);
    expect(jsonDepthExceeds(Buffer.from("[[[]]]"), 3)).toBe(false);
  });

  it("overlapping reloads share one re-read of the file (plus one that follows the running one)", async () => {
    let release: () => void = () => undefined;
    let reads = 0;
    const t = setup({
      rate: { perMinute: 6000, burst: 1000 },
      reload: () => {
        reads += 1;
        return new Promise((resolve) => {
          release = () => resolve({ ok: true, hash: `h${reads}`, changed: [] });
        });
      },
    });
    const first = t.send("reload", { schema: 1, request_id: "rl-0" });
    await new Promise((r) => setImmediate(r));
    const rest = Array.from({ length: 300 }, (_, i) =>
      t.send("reload", { schema: 1, request_id: `rl-${i + 1}` }),
    );
    await new Promise((r) => setImmediate(r));
    expect(reads).toBe(1);
    release();
    await first;
    await new Promise((r) => setImmediate(r));
    expect(reads).toBe(2);
    release();
    const replies = await Promise.all(rest);
    expect(reads).toBe(2);
    expect(new Set(replies.map((r) => (r.reply?.result as { config_hash: string }).config_hash))).toEqual(
      new Set(["h2"]),
    );
  });
});

describe("commands: fuzz", () => {
  it("10,000 malformed commands: each gets an error reply or a log line, none is carried out", async () => {
    const t = setup({ rate: { perMinute: 100_000, burst: 10_000 } });
    const cases = malformedCommands(10_000, 7);
    let answered = 0;
    for (const c of cases) {
      const extra = c.respond
        ? {
            responseTopic: `${BASE}reply/${c.respond.suffix}`,
            correlationData: Buffer.from(c.respond.correlation),
          }
        : {};
      const dropsBefore = t.drops().length;
      const { replies } = await t.send(c.name, c.payload, extra);
      const canAnswer = c.requestId !== undefined || c.respond !== undefined;
      expect(replies.length > 0, c.kind).toBe(canAnswer);
      if (replies.length > 0) {
        answered += 1;
        for (const r of replies) expect(r.body.ok, c.kind).toBe(false);
        if (c.requestId) expect(replies[0]?.topic).toBe(`${BASE}reply/${c.requestId}`);
      } else {
        expect(t.drops().length, c.kind).toBe(dropsBefore + 1);
      }
    }
    expect(t.calls).toEqual([]);
    expect(answered + t.drops().length).toBe(10_000);
    console.log(`fuzz: ${answered} error replies, ${t.drops().length} dropped with a log line`);
  }, 60_000);
});
