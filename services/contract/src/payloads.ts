import { FormatRegistry, Type, type Static, type TSchema } from "@sinclair/typebox";
import { AREAS, CHECK_NAME_PATTERN } from "./vocabulary.ts";
import { CONFIRM_DEFAULT_S, CONFIRM_MAX_S, CONFIRM_MIN_S, DOCUMENT_HASH_PATTERN } from "./config-document.ts";

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

/** `results/<check>`: one run of one check (docs/architecture.md, "Result envelope"). */
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
    clock: Type.Optional(
      Type.Union([Type.Literal("unsynced"), Type.Literal("corrected")], {
        description:
          "absent: started_at from a trusted wall clock. unsynced: the wall clock was before 2020 (no RTC, no NTP yet); " +
          "corrected: stored before the wall clock stepped, started_at recomputed from mono_ms and the offset learned after the step",
      }),
    ),
    duration_ms: Type.Number({ minimum: 0 }),
    status: StatusName,
    metrics: Type.Record(Type.String(), Type.Number()),
    detail: Type.Record(Type.String(), Type.Unknown()),
    config_hash: Type.Optional(
      Type.String({
        pattern: "^[0-9a-f]{64}$",
        description: "config_hash of the config that produced this result (as in `config`)",
      }),
    ),
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
    leds: Type.Optional(
      Type.Object(
        {
          requested: Type.String({ description: "LED backend named in the config (leds.backend)" }),
          backend: Type.String({ description: "backend driving the panel: none, terminal, gpio or kernel" }),
          problem: Type.Union([Type.String(), Type.Null()], {
            description:
              "why the requested backend or the button is not in use (e.g. no gpiochip); null when all is well",
          }),
        },
        { additionalProperties: false, description: "the LED panel's driver" },
      ),
    ),
    store: Type.Optional(
      Type.Object(
        {
          state: Type.Union([Type.Literal("ok"), Type.Literal("degraded")], {
            description:
              "degraded: disk full (oldest results evicted, or results not kept), or the buffer is in memory only; STATUS LED red",
          }),
          reason: Type.Union([Type.String(), Type.Null()], {
            description:
              "what is wrong, for a technician, e.g. `store: disk full — results not kept`; null when all is well",
          }),
          not_kept: Type.Integer({
            minimum: 0,
            description:
              "results and messages the store could not write since start (published live when the uplink was up)",
          }),
          quarantined: Type.Union([Type.String(), Type.Null()], {
            description: "where a damaged database was moved this run (`<file>.corrupt-<time>`), or null",
          }),
        },
        { additionalProperties: false, description: "the local buffer" },
      ),
    ),
  },
  { additionalProperties: false, $id: "netprobe/v1/health" },
);
/** Payload of `health`. */
export type HealthPayload = Static<typeof HealthPayload>;

/** `events` of type `area_transition`: an area changed state. */
export const AreaTransitionEvent = Type.Object(
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
  { additionalProperties: false },
);
/** An area transition event. */
export type AreaTransitionEvent = Static<typeof AreaTransitionEvent>;

/** `events` of type `store_quarantined`: a damaged database was moved aside and a new buffer started. */
export const StoreQuarantinedEvent = Type.Object(
  {
    schema: Schema,
    type: Type.Literal("store_quarantined"),
    at: Type.String({ format: "date-time" }),
    boot_id: Type.String(),
    mono_ms: Type.Number(),
    reason: Type.String({ description: "one line for the operator: what happened, where the file went" }),
    file: Type.String({ description: "the database file (store.path)" }),
    moved_to: Type.String({
      description: "where the damaged file (and its -wal, -shm) now is, kept for forensics",
    }),
    problem: Type.String({
      description: "what SQLite reported (open error, quick_check, or a run-time SQLITE_CORRUPT)",
    }),
    undelivered_rows: Type.Union([Type.Integer(), Type.Null()], {
      description: "undelivered messages left in the damaged file (null: unreadable); not delivered",
    }),
    next_seq: Type.Integer({ minimum: 1, description: "first seq of the new buffer" }),
    seq_from: Type.Union(
      [
        Type.Literal("memory"),
        Type.Literal("damaged file"),
        Type.Literal("wall clock"),
        Type.Literal("none"),
      ],
      { description: "where next_seq came from; none: seq restarted at 1 (HQ still dedups by id)" },
    ),
  },
  { additionalProperties: false },
);
/** A store quarantine event. */
export type StoreQuarantinedEvent = Static<typeof StoreQuarantinedEvent>;

/** `events`: an area transition, or a store event. */
export const EventPayload = Type.Union([AreaTransitionEvent, StoreQuarantinedEvent], {
  $id: "netprobe/v1/event",
});
/** Payload of `events`. */
export type EventPayload = Static<typeof EventPayload>;

/**
 * What the contract promises of a reported config (`config`, and the reply to `cmd/config`): the
 * checks by name, kind and area, and how long a failure counts as recent on the LED panel. HQ
 * reads nothing else. The full shape is the probe's config schema (schemas/config.schema.json);
 * it grows with every check kind's options, so the contract leaves the rest open: an HQ accepts
 * the config of a newer probe whose check kinds it does not know. The published JSON Schemas
 * (schemas/mqtt/) plug in the probe's full schema (scripts/gen/mqtt-reference.ts).
 */
export const ReportedConfig = Type.Object(
  {
    checks: Type.Array(
      Type.Object({
        name: Type.String({ pattern: CHECK_NAME_PATTERN }),
        kind: Type.String(),
        area: AreaName,
      }),
    ),
    leds: Type.Object({ recent_change_ms: Type.Integer({ minimum: 0 }) }),
  },
  { description: "the effective config, secrets redacted (schemas/config.schema.json)" },
);

/** The `config` payload around a config schema: the contract's {@link ReportedConfig}, or the probe's full one. */
export function configPayloadSchema<C extends TSchema>(config: C) {
  return Type.Object(
    {
      schema: Schema,
      at: Type.String({ format: "date-time", description: "when this config took effect" }),
      boot_id: Type.String(),
      config_hash: Type.String({
        pattern: "^[0-9a-f]{64}$",
        description: "sha256 of the redacted config with sorted keys: equal configs hash equal",
      }),
      document_hash: Type.Optional(
        Type.String({
          pattern: DOCUMENT_HASH_PATTERN,
          description:
            "documentHash() of the config file as read (before defaults and environment): HQ's desired hash equals it when there is no drift",
        }),
      ),
      pending: Type.Optional(
        Type.Object(
          {
            document_hash: Type.String({ pattern: DOCUMENT_HASH_PATTERN }),
            confirm_by: Type.String({
              format: "date-time",
              description: "unless cmd/confirm_config arrives by then, the probe goes back to `previous`",
            }),
            previous_document_hash: Type.String({ pattern: DOCUMENT_HASH_PATTERN }),
          },
          { additionalProperties: false, description: "an applied config waiting for HQ's confirmation" },
        ),
      ),
      rolled_back: Type.Optional(
        Type.Object(
          {
            document_hash: Type.String({
              pattern: DOCUMENT_HASH_PATTERN,
              description: "the document that was given up",
            }),
            at: Type.String({ format: "date-time" }),
            reason: Type.Union([Type.Literal("not_confirmed"), Type.Literal("command")], {
              description: "not_confirmed: the confirm window passed; command: cmd/rollback_config",
            }),
          },
          { additionalProperties: false, description: "the last rollback since the probe started" },
        ),
      ),
      config,
    },
    { additionalProperties: false, $id: "netprobe/v1/config" },
  );
}

/** `config` (retained): the effective config with secrets redacted, and its hash. */
export const ConfigPayload = configPayloadSchema(ReportedConfig);
/** Payload of `config`. */
export type ConfigPayload = Static<typeof ConfigPayload>;

/** Request ids go into the reply topic `reply/<request_id>`: one topic level, no wildcards. */
export const REQUEST_ID_PATTERN = "^[A-Za-z0-9_.:-]{1,64}$";
const RequestId = Type.String({
  pattern: REQUEST_ID_PATTERN,
  description:
    "chosen by HQ, unique per request (a ULID or UUID): 1-64 of A-Z a-z 0-9 _ . : - ; " +
    "the reply goes to reply/<request_id>, and a repeated id is answered without running again",
});

/** `cmd/run`: run one check, or every check of one area, now. Set exactly one of `check`, `area`. */
export const RunCommand = Type.Object(
  {
    schema: Schema,
    request_id: RequestId,
    check: Type.Optional(
      Type.String({ pattern: CHECK_NAME_PATTERN, description: "a configured check name" }),
    ),
    area: Type.Optional(AreaName),
  },
  {
    additionalProperties: false,
    $id: "netprobe/v1/cmd/run",
    // Enforced in code as well (uplink/commands.ts): TypeBox's checker ignores `oneOf` here.
    oneOf: [{ required: ["check"] }, { required: ["area"] }],
  },
);
/** Payload of `cmd/run`. */
export type RunCommand = Static<typeof RunCommand>;

/** Longest `identify` HQ may ask for. */
export const IDENTIFY_MAX_S = 3600;
/** `identify` blink time when HQ does not say. */
export const IDENTIFY_DEFAULT_S = 30;

/** `cmd/identify`: blink every LED amber so a technician can find the box. */
export const IdentifyCommand = Type.Object(
  {
    schema: Schema,
    request_id: RequestId,
    duration_s: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: IDENTIFY_MAX_S,
        default: IDENTIFY_DEFAULT_S,
        description: "how long the LEDs blink",
      }),
    ),
  },
  { additionalProperties: false, $id: "netprobe/v1/cmd/identify" },
);
/** Payload of `cmd/identify`. */
export type IdentifyCommand = Static<typeof IdentifyCommand>;

/** `cmd/reload`: re-read the config file; an invalid file is refused and the running config stays. */
export const ReloadCommand = Type.Object(
  { schema: Schema, request_id: RequestId },
  { additionalProperties: false, $id: "netprobe/v1/cmd/reload" },
);
/** Payload of `cmd/reload`. */
export type ReloadCommand = Static<typeof ReloadCommand>;

/** `cmd/config`: reply with the effective config, secrets redacted. */
export const ConfigCommand = Type.Object(
  { schema: Schema, request_id: RequestId },
  { additionalProperties: false, $id: "netprobe/v1/cmd/config" },
);
/** Payload of `cmd/config`. */
export type ConfigCommand = Static<typeof ConfigCommand>;

const DocumentHash = Type.String({
  pattern: DOCUMENT_HASH_PATTERN,
  description: "documentHash() of the document (services/contract/src/config-document.ts)",
});

/**
 * `cmd/apply_config`: make this document the probe's config file ("commit confirmed"). The probe
 * checks the hash, validates the document with its config schema (an invalid one is refused with
 * every problem; the running config stays), writes it atomically keeping the file it replaces as
 * last-known-good, applies it like a reload, and goes back to the last-known-good by itself unless
 * `cmd/confirm_config` for this hash arrives within `confirm_s`.
 */
export const ApplyConfigCommand = Type.Object(
  {
    schema: Schema,
    request_id: RequestId,
    document: Type.Record(Type.String(), Type.Unknown(), {
      description: "the whole config file's content, as an object (what netprobe config validate reads)",
    }),
    document_hash: DocumentHash,
    confirm_s: Type.Optional(
      Type.Integer({
        minimum: CONFIRM_MIN_S,
        maximum: CONFIRM_MAX_S,
        default: CONFIRM_DEFAULT_S,
        description: "seconds HQ has to confirm before the probe rolls back",
      }),
    ),
  },
  { additionalProperties: false, $id: "netprobe/v1/cmd/apply_config" },
);
/** Payload of `cmd/apply_config`. */
export type ApplyConfigCommand = Static<typeof ApplyConfigCommand>;

/** `cmd/confirm_config`: HQ heard the probe on the applied config; it becomes last-known-good. */
export const ConfirmConfigCommand = Type.Object(
  { schema: Schema, request_id: RequestId, document_hash: DocumentHash },
  { additionalProperties: false, $id: "netprobe/v1/cmd/confirm_config" },
);
/** Payload of `cmd/confirm_config`. */
export type ConfirmConfigCommand = Static<typeof ConfirmConfigCommand>;

/** `cmd/rollback_config`: go back to the last-known-good file now. */
export const RollbackConfigCommand = Type.Object(
  { schema: Schema, request_id: RequestId },
  { additionalProperties: false, $id: "netprobe/v1/cmd/rollback_config" },
);
/** Payload of `cmd/rollback_config`. */
export type RollbackConfigCommand = Static<typeof RollbackConfigCommand>;

/** Every command, by the name in its topic `cmd/<name>`. */
export const COMMANDS = {
  run: RunCommand,
  identify: IdentifyCommand,
  reload: ReloadCommand,
  config: ConfigCommand,
  apply_config: ApplyConfigCommand,
  confirm_config: ConfirmConfigCommand,
  rollback_config: RollbackConfigCommand,
} as const;
/** A command name. */
export type CommandName = keyof typeof COMMANDS;

/** Stable codes of a failed command (the reply's `error.code`). */
export const COMMAND_ERRORS = {
  bad_json: "the payload is not JSON (or not UTF-8)",
  too_large: "the payload is larger than the probe accepts",
  invalid_command: "the payload does not match the command's schema; `problems` names each field",
  unknown_command: "no command of that name",
  request_id_conflict: "this request_id was already used for a different request",
  unknown_check: "no enabled check of that name",
  unknown_area: "no enabled check in that area",
  config_invalid: "the config file is invalid; `problems` lists every problem, the running config stays",
  restart_required: "the new config changes settings that only a restart applies; nothing was changed",
  hash_mismatch: "document_hash is not the hash of the document sent",
  not_pending: "no applied config with that hash is waiting for confirmation",
  no_previous: "there is no last-known-good config to go back to",
  internal: "the probe failed to carry out the command; see its log",
} as const;
/** A command error code. */
export type CommandErrorCode = keyof typeof COMMAND_ERRORS;

const RunResult = Type.Object(
  {
    started: Type.Array(Type.String(), { description: "checks started (already-running ones are skipped)" }),
  },
  { additionalProperties: false },
);
const IdentifyResult = Type.Object(
  {
    duration_s: Type.Integer({ minimum: 1 }),
    until: Type.String({ format: "date-time", description: "when the LEDs stop blinking" }),
  },
  { additionalProperties: false },
);
const ReloadResult = Type.Object(
  {
    config_hash: Type.String({ description: "hash of the config now running" }),
    changed: Type.Array(Type.String(), {
      description: "top-level sections that changed and were applied (empty: the file was unchanged)",
    }),
  },
  { additionalProperties: false },
);
const ApplyConfigResult = Type.Object(
  {
    config_hash: Type.String({ description: "hash of the config now running" }),
    document_hash: DocumentHash,
    changed: Type.Array(Type.String(), { description: "top-level sections that changed and were applied" }),
    confirm_by: Type.String({ format: "date-time", description: "rolled back unless confirmed by then" }),
  },
  { additionalProperties: false },
);
const ConfirmConfigResult = Type.Object(
  { document_hash: DocumentHash, confirmed: Type.Literal(true) },
  { additionalProperties: false },
);
const RollbackConfigResult = Type.Object(
  {
    config_hash: Type.String({ description: "hash of the config now running" }),
    document_hash: DocumentHash,
  },
  { additionalProperties: false },
);
function configResult<C extends TSchema>(config: C) {
  return Type.Object({ config_hash: Type.String(), config }, { additionalProperties: false });
}

/** The `reply/<request_id>` payload around a config schema (see {@link configPayloadSchema}). */
export function replyPayloadSchema<C extends TSchema>(config: C) {
  return Type.Object(
    {
      schema: Schema,
      request_id: Type.Union([RequestId, Type.Null()], {
        description: "null only when the request had no usable id and was answered on its response topic",
      }),
      command: Type.String({ maxLength: 64, description: "the <name> of cmd/<name>, as received" }),
      ok: Type.Boolean(),
      at: Type.String({ format: "date-time" }),
      site: Type.String(),
      probe: Type.String(),
      replayed: Type.Optional(
        Type.Boolean({
          description: "true: a repeated request_id, answered from memory without running again",
        }),
      ),
      result: Type.Optional(
        Type.Union([
          RunResult,
          IdentifyResult,
          ReloadResult,
          configResult(config),
          ApplyConfigResult,
          ConfirmConfigResult,
          RollbackConfigResult,
        ]),
      ),
      error: Type.Optional(
        Type.Object(
          {
            code: Type.Union(
              Object.keys(COMMAND_ERRORS).map((c) => Type.Literal(c as CommandErrorCode)),
              { description: "stable error code" },
            ),
            message: Type.String(),
            problems: Type.Optional(
              Type.Array(Type.String(), { description: "every problem, `path: what`" }),
            ),
          },
          { additionalProperties: false },
        ),
      ),
    },
    { additionalProperties: false, $id: "netprobe/v1/reply" },
  );
}

/** `reply/<request_id>`: the outcome of one command (also sent to the MQTT 5 response topic). */
export const ReplyPayload = replyPayloadSchema(ReportedConfig);
/** Payload of `reply/<request_id>`. */
export type ReplyPayload = Static<typeof ReplyPayload>;

/** Seconds a reply lives at the broker (MQTT 5 message expiry): an answer nobody collects goes stale. */
export const REPLY_EXPIRY_S = 60;

/** One topic of the contract: where it sits, who publishes it, its payload schema and delivery. */
export interface TopicSpec {
  /** Relative to the base topic; `<…>` marks a variable level. */
  topic: string;
  /** Who publishes: the probe, or headquarters. */
  from: "probe" | "hq";
  schema: TSchema;
  qos: 0 | 1;
  retain: boolean;
  /** One line for docs/mqtt.md. */
  description: string;
}

/** Every topic under `netprobe/v1/<site>/<probe>/`, with its payload schema, QoS and retain flag. */
export const TOPICS = {
  state: {
    topic: "state",
    from: "probe",
    schema: StatePayload,
    qos: 1,
    retain: true,
    description: "online on every (re)connect; offline from the MQTT will, or published on a clean stop",
  },
  health: {
    topic: "health",
    from: "probe",
    schema: HealthPayload,
    qos: 1,
    retain: true,
    description: "every area's state and what its LED shows, the outbox depth; on every change",
  },
  result: {
    topic: "results/<check>",
    from: "probe",
    schema: ResultPayload,
    qos: 1,
    retain: false,
    description: "one result envelope per run (at-least-once: drop duplicates by id)",
  },
  event: {
    topic: "events",
    from: "probe",
    schema: EventPayload,
    qos: 1,
    retain: false,
    description: "one area transition",
  },
  config: {
    topic: "config",
    from: "probe",
    schema: ConfigPayload,
    qos: 1,
    retain: true,
    description: "the effective config, secrets redacted, and its hash; on every connect and after a reload",
  },
  cmd_run: {
    topic: "cmd/run",
    from: "hq",
    schema: RunCommand,
    qos: 1,
    retain: false,
    description: "run one check (`check`) or every check of an area (`area`) now",
  },
  cmd_identify: {
    topic: "cmd/identify",
    from: "hq",
    schema: IdentifyCommand,
    qos: 1,
    retain: false,
    description: "blink every LED amber for `duration_s` seconds",
  },
  cmd_reload: {
    topic: "cmd/reload",
    from: "hq",
    schema: ReloadCommand,
    qos: 1,
    retain: false,
    description: "re-read the config file; an invalid one is refused and the running config stays",
  },
  cmd_config: {
    topic: "cmd/config",
    from: "hq",
    schema: ConfigCommand,
    qos: 1,
    retain: false,
    description: "reply with the effective config, secrets redacted",
  },
  cmd_apply_config: {
    topic: "cmd/apply_config",
    from: "hq",
    schema: ApplyConfigCommand,
    qos: 1,
    retain: false,
    description:
      "make this document the config file, rolled back unless confirmed within `confirm_s` (docs/fleet-config.md)",
  },
  cmd_confirm_config: {
    topic: "cmd/confirm_config",
    from: "hq",
    schema: ConfirmConfigCommand,
    qos: 1,
    retain: false,
    description: "keep the applied document `document_hash`: it becomes last-known-good",
  },
  cmd_rollback_config: {
    topic: "cmd/rollback_config",
    from: "hq",
    schema: RollbackConfigCommand,
    qos: 1,
    retain: false,
    description: "go back to the last-known-good config file now",
  },
  reply: {
    topic: "reply/<request_id>",
    from: "probe",
    schema: ReplyPayload,
    qos: 1,
    retain: false,
    description: `the outcome of a command; also to the MQTT 5 response topic; expires after ${REPLY_EXPIRY_S} s`,
  },
} as const satisfies Record<string, TopicSpec>;
/** A key of TOPICS. */
export type TopicKey = keyof typeof TOPICS;

/** Base topic of one probe. Ids are validated by the config schema (no `+ # /`). */
export function baseTopic(site: string, probe: string): string {
  return `netprobe/v1/${site}/${probe}/`;
}

/** `reply/<request_id>` under a base topic. */
export function replyTopic(base: string, requestId: string): string {
  return `${base}reply/${requestId}`;
}
