// Every message the probe sends, built in one place from the topic map (contract/payloads.ts,
// TOPICS): topic, QoS and retain come from there, never written by hand beside it, and each
// payload is serialized once. Results, events and health go through the outbox; state, config and
// command replies are connection-scoped and published directly (docs/architecture.md, "Data path").
import type { Config } from "../config/schema.ts";
import { configHash, redactConfig } from "../config/redact.ts";
import {
  REPLY_EXPIRY_S,
  TOPICS,
  type AreaTransitionEvent,
  type ConfigPayload,
  type EventPayload,
  type HealthPayload,
  type ResultPayload,
  type StatePayload,
  type StoreQuarantinedEvent,
  type TopicKey,
} from "../../../contract/src/payloads.ts";
import type { OutboxMessage, Priority, Quarantine } from "../store/store.ts";
import type { Transition } from "./area-state.ts";
import { monoMs } from "./clock.ts";
import type { ProbeIdentity } from "./result.ts";

/**
 * Outbox priority per queued topic: a full buffer evicts the lowest first (store.ts). It orders
 * the probe's own disk, not the wire, so it stays here rather than in the contract HQ reads.
 */
const OUTBOX_PRIORITY = { result: 0, health: 1, event: 2 } as const satisfies Partial<
  Record<TopicKey, Priority>
>;

/** A message published directly, bypassing the outbox; `topic` is relative to the base topic. */
export interface DirectMessage {
  topic: string;
  payload: string;
  qos: 0 | 1;
  retain: boolean;
}

function queued(key: keyof typeof OUTBOX_PRIORITY, topic: string, payload: unknown): OutboxMessage {
  const spec = TOPICS[key];
  return {
    topic,
    payload: JSON.stringify(payload),
    qos: spec.qos,
    retain: spec.retain,
    priority: OUTBOX_PRIORITY[key],
  };
}

/** `results/<check>`: one numbered result, for the outbox. */
export function resultMessage(r: ResultPayload): OutboxMessage {
  return queued("result", TOPICS.result.topic.replace("<check>", r.check), r);
}

/** `events`: an area transition or a store event, for the outbox. */
export function eventMessage(e: EventPayload): OutboxMessage {
  return queued("event", TOPICS.event.topic, e);
}

/** `health` (retained), for the outbox. */
export function healthMessage(h: HealthPayload): OutboxMessage {
  return queued("health", TOPICS.health.topic, h);
}

/** `config` (retained), published directly on every connect and after a reload. */
export function configMessage(p: ConfigPayload): DirectMessage {
  const { topic, qos, retain } = TOPICS.config;
  return { topic, payload: JSON.stringify(p), qos, retain };
}

/** `state` (retained): the uplink publishes it on every connect and as its will (mqtt-link.ts). */
export function stateMessage(p: StatePayload): DirectMessage {
  const { topic, qos, retain } = TOPICS.state;
  return { topic, payload: JSON.stringify(p), qos, retain };
}

/** How a command reply goes out (`reply/<request_id>`, docs/mqtt.md): directly, and it expires. */
export const REPLY_DELIVERY = {
  qos: TOPICS.reply.qos,
  retain: TOPICS.reply.retain,
  expirySeconds: REPLY_EXPIRY_S,
} as const;

/** The `events` payload of an area transition. */
export function transitionEvent(t: Transition, who: ProbeIdentity, at = new Date()): AreaTransitionEvent {
  return {
    schema: 1,
    type: "area_transition",
    at: at.toISOString(),
    boot_id: who.bootId,
    mono_ms: monoMs(),
    area: t.area,
    from: t.from,
    to: t.to,
    reason: t.reason,
    result_id: t.resultId,
  };
}

/** The `events` payload of a damaged database moved aside (store.ts). */
export function quarantineEvent(q: Quarantine, who: ProbeIdentity, at = new Date()): StoreQuarantinedEvent {
  return {
    schema: 1,
    type: "store_quarantined",
    at: at.toISOString(),
    boot_id: who.bootId,
    mono_ms: monoMs(),
    reason: `damaged database moved to ${q.movedTo}; a new buffer started at seq ${q.nextSeq}`,
    file: q.file,
    moved_to: q.movedTo,
    problem: q.problem,
    undelivered_rows: q.undeliveredRows,
    next_seq: q.nextSeq,
    seq_from: q.seqFrom,
  };
}

/** The `state` payload. */
export function statePayload(
  state: "online" | "offline",
  who: ProbeIdentity,
  startedAt: string,
): StatePayload {
  return { schema: 1, state, version: who.version, boot_id: who.bootId, started_at: startedAt };
}

/** What the retained `config` says of the config file behind the running config (docs/fleet-config.md). */
export type ConfigFileState = Pick<ConfigPayload, "document_hash" | "pending" | "rolled_back">;

/** The `config` payload: the running config with secrets redacted, its hash, and since when it runs. */
export function configPayload(
  config: Config,
  who: ProbeIdentity,
  since: string,
  file: ConfigFileState = {},
): ConfigPayload {
  return {
    schema: 1,
    at: since,
    boot_id: who.bootId,
    config_hash: configHash(config),
    ...(file.document_hash ? { document_hash: file.document_hash } : {}),
    ...(file.pending ? { pending: file.pending } : {}),
    ...(file.rolled_back ? { rolled_back: file.rolled_back } : {}),
    config: redactConfig(config),
  };
}
