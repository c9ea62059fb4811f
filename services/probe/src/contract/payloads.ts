import { FormatRegistry, Type, type Static } from "@sinclair/typebox";
import { AREAS } from "../checks/check.ts";

// TypeBox validates formats only once they are registered; RFC 3339 date-time as in JSON Schema.
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
if (!FormatRegistry.Has("date-time"))
  FormatRegistry.Set("date-time", (v) => RFC3339.test(v) && !Number.isNaN(Date.parse(v)));

/** Version of every MQTT payload's shape; bumped on any incompatible change. */
export const SCHEMA_VERSION = 1;

const Schema = Type.Literal(SCHEMA_VERSION, { description: "payload schema version" });
const AreaName = Type.Union(
  AREAS.map((a) => Type.Literal(a)),
  { description: "network area" },
);
const StatusName = Type.Union([
  Type.Literal("ok"),
  Type.Literal("warn"),
  Type.Literal("fail"),
  Type.Literal("error"),
]);

/** Area state: `unknown` until the first verdict, `off` when no check is configured for it. */
export const AreaStateName = Type.Union([
  Type.Literal("unknown"),
  Type.Literal("ok"),
  Type.Literal("degraded"),
  Type.Literal("failing"),
  Type.Literal("off"),
]);
/** Area state name. */
export type AreaStateName = Static<typeof AreaStateName>;

/** `results/<check>`: one run of one check (DESIGN.md §4). */
export const ResultPayload = Type.Object(
  {
    schema: Schema,
    id: Type.String({ description: "ULID, unique per result; HQ drops duplicates by it" }),
    seq: Type.Integer({ minimum: 1, description: "monotonic per probe, survives restarts" }),
    site: Type.String(),
    probe: Type.String(),
    check: Type.String({ description: "configured check name" }),
    kind: Type.String(),
    area: AreaName,
    target: Type.String(),
    started_at: Type.String({
      format: "date-time",
      description: "wall clock at start (may be wrong before NTP sync)",
    }),
    boot_id: Type.String({
      description: "kernel boot id; with mono_ms orders results without a trusted clock",
    }),
    mono_ms: Type.Number({ description: "CLOCK_MONOTONIC at start, ms since boot" }),
    duration_ms: Type.Number({ minimum: 0 }),
    status: StatusName,
    metrics: Type.Record(Type.String(), Type.Number()),
    detail: Type.Record(Type.String(), Type.Unknown()),
    error: Type.Optional(Type.Object({ code: Type.String(), message: Type.String() })),
    version: Type.String({ description: "netprobe software version" }),
  },
  { additionalProperties: false, $id: "netprobe/v1/result" },
);
/** Result envelope published on `results/<check>`. */
export type ResultPayload = Static<typeof ResultPayload>;

/** `state` (retained): online on every (re)connect, offline via the MQTT will. */
export const StatePayload = Type.Object(
  {
    schema: Schema,
    state: Type.Union([Type.Literal("online"), Type.Literal("offline")]),
    version: Type.String(),
    boot_id: Type.String(),
    started_at: Type.String({ format: "date-time" }),
  },
  { additionalProperties: false, $id: "netprobe/v1/state" },
);
/** Payload of `state`. */
export type StatePayload = Static<typeof StatePayload>;

const AreaHealth = Type.Object(
  {
    state: AreaStateName,
    since: Type.String({ format: "date-time" }),
    led: Type.String({ description: "what the area's LED shows, e.g. red-blink" }),
    last_result_id: Type.Union([Type.String(), Type.Null()]),
    reason: Type.String(),
  },
  { additionalProperties: false },
);

/** `health` (retained): every area's state and what its LED shows, republished on change. */
export const HealthPayload = Type.Object(
  {
    schema: Schema,
    at: Type.String({ format: "date-time" }),
    boot_id: Type.String(),
    mono_ms: Type.Number(),
    areas: Type.Record(Type.String(), AreaHealth),
    outbox: Type.Object(
      {
        rows: Type.Integer(),
        evicted: Type.Integer({ description: "results dropped because the buffer was full, since install" }),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false, $id: "netprobe/v1/health" },
);
/** Payload of `health`. */
export type HealthPayload = Static<typeof HealthPayload>;

/** `events`: one area transition. */
export const EventPayload = Type.Object(
  {
    schema: Schema,
    type: Type.Literal("area_transition"),
    at: Type.String({ format: "date-time" }),
    boot_id: Type.String(),
    mono_ms: Type.Number(),
    area: AreaName,
    from: AreaStateName,
    to: AreaStateName,
    reason: Type.String(),
    result_id: Type.Union([Type.String(), Type.Null()]),
  },
  { additionalProperties: false, $id: "netprobe/v1/event" },
);
/** Payload of `events`. */
export type EventPayload = Static<typeof EventPayload>;

/** Every topic under `netprobe/v1/<site>/<probe>/`, with its payload schema, QoS and retain flag. */
export const TOPICS = {
  state: { topic: "state", schema: StatePayload, qos: 1, retain: true },
  health: { topic: "health", schema: HealthPayload, qos: 1, retain: true },
  result: { topic: "results/<check>", schema: ResultPayload, qos: 1, retain: false },
  event: { topic: "events", schema: EventPayload, qos: 1, retain: false },
} as const;

/** Base topic of one probe. Ids are validated by the config schema (no `+ # /`). */
export function baseTopic(site: string, probe: string): string {
  return `netprobe/v1/${site}/${probe}/`;
}
