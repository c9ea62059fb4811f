// runner/messages.ts: every message's topic and flags come from TOPICS; payloads match their schemas.
import { Value } from "@sinclair/typebox/value";
import { describe, expect, it } from "vitest";
import { validateConfig } from "../../../services/probe/src/config/validate.ts";
import {
  ConfigPayload,
  EventPayload,
  StatePayload,
  TOPICS,
  type ResultPayload,
} from "../../../services/contract/src/payloads.ts";
import {
  configMessage,
  configPayload,
  eventMessage,
  healthMessage,
  quarantineEvent,
  REPLY_DELIVERY,
  resultMessage,
  stateMessage,
  statePayload,
  transitionEvent,
} from "../../../services/probe/src/runner/messages.ts";

const who = { site: "branch-1", probe: "probe-1", bootId: "boot-a", version: "1.2.3" };

const result: ResultPayload = {
  schema: 1,
  id: "01J0000000000000000000000A",
  seq: 7,
  site: "branch-1",
  probe: "probe-1",
  check: "gw-icmp",
  kind: "icmp",
  area: "lan",
  target: "192.0.2.1",
  started_at: "2026-03-01T12:00:00.000Z",
  boot_id: "boot-a",
  mono_ms: 1,
  duration_ms: 2,
  status: "ok",
  metrics: {},
  detail: {},
  version: "1.2.3",
};

describe("message builders", () => {
  it("results, events and health are queued with the contract's flags and the outbox priority", () => {
    const r = resultMessage(result);
    expect(r).toEqual({
      topic: "results/gw-icmp",
      payload: JSON.stringify(result),
      qos: 1,
      retain: false,
      priority: 0,
    });
    const t = transitionEvent(
      { area: "lan", from: "ok", to: "failing", reason: "x", resultId: result.id },
      who,
    );
    expect(Value.Check(EventPayload, t)).toBe(true);
    expect(eventMessage(t)).toMatchObject({
      topic: TOPICS.event.topic,
      qos: TOPICS.event.qos,
      retain: false,
      priority: 2,
    });
    const q = quarantineEvent(
      {
        file: "/d/p.db",
        movedTo: "/d/p.db.corrupt-x",
        at: 0,
        problem: "bad",
        undeliveredRows: 3,
        nextSeq: 9,
        seqFrom: "memory",
      },
      who,
    );
    expect(Value.Check(EventPayload, q)).toBe(true);
    expect(q.reason).toBe("damaged database moved to /d/p.db.corrupt-x; a new buffer started at seq 9");
    const h = healthMessage({
      schema: 1,
      at: result.started_at,
      boot_id: "boot-a",
      mono_ms: 1,
      areas: {},
      outbox: { rows: 0, evicted: 0 },
    });
    expect(h).toMatchObject({ topic: "health", qos: 1, retain: true, priority: 1 });
  });

  it("state and config are retained direct messages; replies expire", () => {
    const s = statePayload("online", who, "2026-03-01T12:00:00.000Z");
    expect(Value.Check(StatePayload, s)).toBe(true);
    expect(stateMessage(s)).toEqual({ topic: "state", payload: JSON.stringify(s), qos: 1, retain: true });
    const checked = validateConfig({
      site: "branch-1",
      probe: "probe-1",
      broker: { url: "mqtts://b.invalid", password: "s3cret" },
    });
    if (!checked.ok) throw new Error(checked.problems.join("\n"));
    const c = configPayload(checked.config, who, "2026-03-01T12:00:00.000Z");
    expect(Value.Check(ConfigPayload, c)).toBe(true);
    const m = configMessage(c);
    expect(m).toMatchObject({ topic: "config", qos: 1, retain: true });
    expect(m.payload).not.toContain("s3cret");
    expect(REPLY_DELIVERY).toEqual({ qos: TOPICS.reply.qos, retain: false, expirySeconds: 60 });
  });
});
