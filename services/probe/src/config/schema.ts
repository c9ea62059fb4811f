/**
 * The probe's configuration contract, defined once with TypeBox:
 *
 * - `ConfigFileSchema` is the YAML file as a person writes it (durations as "30s", sizes as
 *   "64MiB", most keys optional with defaults). `schemas/config.schema.json` is generated from it
 *   (editor completion and validation) and so is the reference in `docs/config.md`.
 * - `ConfigSchema` is the loaded, fully-defaulted config the service uses (`Config`): durations in
 *   milliseconds, sizes in bytes, every check's name, area, timing and options resolved.
 *
 * Custom annotations: `errorMessage` (the plain message for a pattern/union mismatch; VS Code's
 * YAML/JSON language services show it too) and `writeOnly: true` (a secret: redacted by
 * `redactConfig`). Rules that need more than one value (timeout ≤ interval, unique names, the
 * check kinds' own option schemas) are enforced in `validate.ts`; the limits they use are here.
 */
import { Type, type Static, type TLiteral, type TSchema, type TUnion } from "@sinclair/typebox";
import { AREAS, CHECK_NAME_PATTERN } from "../../../contract/src/vocabulary.ts";
import { CHECK_KINDS } from "../checks/registry.ts";
import { BYTE_SIZE_PATTERN } from "./byte-size.ts";
import { DURATION_PATTERN, formatDuration } from "./duration.ts";
import { BOARD_IDS } from "../leds/board-profiles.ts";
import { StampReflectorConfigSchema } from "../../../contract/src/net/stamp-reflector.ts";

/** Site and probe ids: they appear in MQTT topics, so no `+`, `#`, `/` or spaces. */
export const ID_PATTERN = "^[A-Za-z0-9_.-]{1,64}$";
/** Metric names in thresholds: snake_case with the unit as suffix (`rtt_avg_ms`). */
export const METRIC_NAME_PATTERN = "^[a-z][a-z0-9_]*$";
/** A percentage string such as `10%` (jitter). */
export const PERCENT_PATTERN = "^\\d+(?:\\.\\d+)?%$";

/** Log levels, lowest first (pino's names). */
export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal"] as const;
/** One log level. */
export type LogLevel = (typeof LOG_LEVELS)[number];
/** LED drivers: none, the terminal panel, onoff GPIO, kernel LED class (hw/README.md). */
export const LED_BACKENDS = ["none", "terminal", "gpio", "kernel"] as const;
/** One LED driver name. */
export type LedBackend = (typeof LED_BACKENDS)[number];
/** URL schemes the uplink can speak. */
export const BROKER_URL_PROTOCOLS = ["mqtt:", "mqtts:", "ws:", "wss:"] as const;
/** Schemes on which the TLS settings (ca_file, cert_file, key_file) take effect. */
export const TLS_URL_PROTOCOLS = ["mqtts:", "wss:"] as const;

/** Limits enforced by the validator (milliseconds, bytes); the descriptions below quote them. */
export const LIMITS = {
  interval_ms: { min: 1000, max: 86_400_000 },
  timeout_ms: { min: 1 },
  keepalive_ms: { min: 1000, max: 65_535_000 },
  reconnect_ms: { min: 100, max: 3_600_000 },
  max_bytes: { min: 1024 ** 2, max: 1024 ** 4 },
  led_blink_ms: { min: 20, max: 10_000 },
  led_recent_change_ms: { min: 0, max: 86_400_000 },
  led_lamp_test_ms: { min: 0, max: 30_000 },
  button_debounce_ms: { min: 0, max: 1000 },
  button_long_press_ms: { min: 500, max: 60_000 },
} as const;

/** The same schema for each LED of the panel (typed, unlike a computed record). */
function perLed<T extends TSchema>(schema: T, options: Record<string, unknown> = {}) {
  const s = schema;
  return Type.Object(
    { link: s, lan: s, dhcp: s, dns: s, wan: s, phone: s, status: s },
    { additionalProperties: false, ...options },
  );
}

/** The GPIOs (BCM numbers) of one bi-colour LED's dies. */
const LedPinsSchema = Type.Object(
  {
    red: Type.Integer({ minimum: 0, maximum: 63, description: "BCM GPIO of the red die" }),
    green: Type.Integer({ minimum: 0, maximum: 63, description: "BCM GPIO of the green die" }),
  },
  { additionalProperties: false },
);

/** Plain messages for values that do not match a pattern or a set of alternatives. */
export const MESSAGES = {
  id: 'must be 1-64 characters from A-Z a-z 0-9 _ . - (it is used in MQTT topics: no spaces, "+", "#" or "/")',
  checkName: "must be 1-64 characters from a-z 0-9 _ - (lower case; it is used in MQTT topics)",
  duration: 'must be a duration such as "500ms", "30s", "5m", "1h" or a number of seconds',
  byteSize: 'must be a number of bytes or a size such as "512KiB", "64MiB", "1GiB"',
  percent: 'must be a percentage such as "10%" (or a fraction from 0 to 1)',
  protocolVersion: "must be 5 (MQTT 5) or 4 (MQTT 3.1.1)",
  metricName: "is not a metric name (snake_case with its unit, e.g. rtt_avg_ms)",
  bounds: "must set at least one of warn, fail, warn_below, fail_below",
  notBlank: "must not be empty",
  brokerUrl: "must be an mqtt://, mqtts://, ws:// or wss:// URL",
} as const;

function oneOf<const T extends string | number>(
  values: readonly T[],
  options: Record<string, unknown> = {},
): TUnion<TLiteral<T>[]> {
  return Type.Union(
    values.map((v) => Type.Literal(v)),
    options,
  );
}

function duration(description: string, defaultValue?: string) {
  return Type.Union([Type.Number({ minimum: 0 }), Type.String({ pattern: DURATION_PATTERN })], {
    description,
    errorMessage: MESSAGES.duration,
    ...(defaultValue === undefined ? {} : { default: defaultValue }),
  });
}

function percent(description: string, defaultValue?: string) {
  return Type.Union([Type.Number({ minimum: 0, maximum: 1 }), Type.String({ pattern: PERCENT_PATTERN })], {
    description,
    errorMessage: MESSAGES.percent,
    ...(defaultValue === undefined ? {} : { default: defaultValue }),
  });
}

function section<P extends Record<string, TSchema>>(description: string, properties: P) {
  return Type.Object(properties, { description, additionalProperties: false, default: {} });
}

const interval = `${formatDuration(LIMITS.interval_ms.min)} to ${formatDuration(LIMITS.interval_ms.max)}`;

/** Threshold bounds for one metric; above `warn`/`fail` (or below `*_below`) makes a run warn/fail. */
export const ThresholdBoundsSchema = Type.Object(
  {
    /** Warn when the metric is above this. */
    warn: Type.Optional(Type.Number({ description: "warn when the metric is above this" })),
    /** Fail when the metric is above this. */
    fail: Type.Optional(Type.Number({ description: "fail when the metric is above this" })),
    /** Warn when the metric is below this (lower is worse, e.g. `mos`). */
    warn_below: Type.Optional(Type.Number({ description: "warn when the metric is below this" })),
    /** Fail when the metric is below this (lower is worse, e.g. `mos`). */
    fail_below: Type.Optional(Type.Number({ description: "fail when the metric is below this" })),
  },
  { additionalProperties: false, minProperties: 1, errorMessage: MESSAGES.bounds },
);
/** Threshold bounds for one metric. */
export type ThresholdBounds = Static<typeof ThresholdBoundsSchema>;

// Editors validate each kind's options through if/then; the loader validates them itself (with
// the kind's own schema) so that it can fill the kind's defaults and name the exact option.
const kindOptionRules = Object.values(CHECK_KINDS).map((k) => ({
  if: { properties: { kind: { const: k.kind } }, required: ["kind"] },
  then: { properties: { options: withoutDefaultedRequired(k.options) } },
}));

/**
 * A copy of a schema in which properties that have a default are no longer required: TypeBox
 * lists them as required (the loader fills them before checking), but in a file they may be left out.
 */
function withoutDefaultedRequired(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(withoutDefaultedRequired);
  if (typeof schema !== "object" || schema === null) return schema;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema)) out[key] = withoutDefaultedRequired(value);
  const props = out.properties as Record<string, { default?: unknown }> | undefined;
  if (Array.isArray(out.required) && props !== undefined) {
    const required = (out.required as string[]).filter((key) => props[key]?.default === undefined);
    if (required.length > 0) out.required = required;
    else delete out.required;
  }
  return out;
}

/** One entry of `checks:` as written in the file. */
export const CheckFileSchema = Type.Object(
  {
    name: Type.Optional(
      Type.String({
        pattern: CHECK_NAME_PATTERN,
        errorMessage: MESSAGES.checkName,
        description:
          "Unique check name, used in MQTT topics and the store: 1-64 characters from a-z 0-9 _ -. " +
          'Default: derived from kind and target ("icmp" + "192.0.2.1" → icmp-192-0-2-1).',
      }),
    ),
    kind: Type.String({
      enum: Object.keys(CHECK_KINDS),
      description: "Check kind; see the table of kinds and their options.",
    }),
    target: Type.String({
      minLength: 1,
      pattern: "\\S",
      errorMessage: MESSAGES.notBlank,
      description: "What to probe: an address, host name or URL, depending on the kind.",
    }),
    area: Type.Optional(
      oneOf(AREAS, { description: "Area (LED) the check reports into. Default: the kind's own area." }),
    ),
    interval: Type.Optional(duration(`Run interval, ${interval}. Default: defaults.interval.`)),
    timeout: Type.Optional(
      duration(
        "Timeout of one run; at most the interval. Default: defaults.timeout, capped at the interval.",
      ),
    ),
    jitter: Type.Optional(
      percent(
        'Random start delay, as a fraction of the interval ("10%" or 0.1), so checks do not fire in step. ' +
          "Default: defaults.jitter.",
      ),
    ),
    enabled: Type.Optional(
      Type.Boolean({ default: true, description: "false keeps the check configured but never runs it." }),
    ),
    fail_after: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 100,
        description:
          "Consecutive failing runs before this check turns its area red. Default: the kind's own " +
          "(link: 1), else areas.fail_after.",
      }),
    ),
    recover_after: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 100,
        description: "Consecutive ok runs before this check turns green again. Default: areas.recover_after.",
      }),
    ),
    options: Type.Optional(
      Type.Record(Type.String(), Type.Unknown(), {
        default: {},
        description: "Options of this kind (see its table); missing ones take the kind's defaults.",
      }),
    ),
    thresholds: Type.Optional(
      Type.Record(Type.String({ pattern: METRIC_NAME_PATTERN }), ThresholdBoundsSchema, {
        additionalProperties: false,
        errorMessage: MESSAGES.metricName,
        default: {},
        description:
          "Metric name (snake_case, with unit) → bounds. Above warn → warn, above fail → fail; " +
          "warn_below / fail_below for metrics where lower is worse (e.g. mos). warn ≤ fail, warn_below ≥ fail_below.",
      }),
    ),
  },
  { additionalProperties: false, allOf: kindOptionRules },
);
/** One check as written in the file. */
export type CheckFile = Static<typeof CheckFileSchema>;

/** The YAML config file as a person writes it (input form; see `ConfigSchema` for the loaded form). */
export const ConfigFileSchema = Type.Object(
  {
    site: Type.Optional(
      Type.String({
        pattern: ID_PATTERN,
        errorMessage: MESSAGES.id,
        description:
          "Required. Site (branch office) id, part of every MQTT topic: 1-64 characters from A-Z a-z 0-9 _ . -",
      }),
    ),
    probe: Type.Optional(
      Type.String({
        pattern: ID_PATTERN,
        errorMessage: MESSAGES.id,
        description: "Required. Probe id, unique within the site; same characters as site.",
      }),
    ),
    log_level: Type.Optional(
      oneOf(LOG_LEVELS, { default: "info", description: "Lowest level written to the JSON log (stderr)." }),
    ),
    store: Type.Optional(
      section("Local SQLite buffer of results and the MQTT outbox.", {
        path: Type.Optional(
          Type.String({
            minLength: 1,
            default: "/var/lib/netprobe/netprobe.db",
            description: "Database file; its -wal and -shm files sit beside it.",
          }),
        ),
        max_rows: Type.Optional(
          Type.Integer({
            minimum: 100,
            maximum: 100_000_000,
            default: 100_000,
            description:
              "Most results kept; beyond it the oldest, lowest-priority results are evicted and counted.",
          }),
        ),
        max_bytes: Type.Optional(
          Type.Union([Type.Integer({ minimum: 0 }), Type.String({ pattern: BYTE_SIZE_PATTERN })], {
            default: "64MiB",
            errorMessage: MESSAGES.byteSize,
            description: "Most space the database may take (bytes, or KiB/MiB/GiB); 1MiB to 1024GiB.",
          }),
        ),
      }),
    ),
    broker: Type.Optional(
      section("The MQTT uplink to headquarters.", {
        url: Type.Optional(
          Type.String({
            description:
              "Required. Broker URL: mqtt://, mqtts:// (TLS), ws:// or wss://, e.g. mqtts://hq.example.com:8883. " +
              "No credentials in it: use username and password.",
          }),
        ),
        protocol_version: Type.Optional(
          oneOf([5, 4], {
            default: 5,
            errorMessage: MESSAGES.protocolVersion,
            description: "5 = MQTT 5, 4 = MQTT 3.1.1.",
          }),
        ),
        client_id: Type.Optional(
          Type.String({
            maxLength: 256,
            default: "",
            description: "MQTT client id. Empty: `netprobe-<site>-<probe>`.",
          }),
        ),
        username: Type.Optional(Type.String({ default: "", description: "Broker user name. Empty: none." })),
        password: Type.Optional(
          Type.String({
            default: "",
            writeOnly: true,
            description:
              "Broker password. Empty: none. Never logged or published. MQTT 3.1.1 needs a username with it.",
          }),
        ),
        ca_file: Type.Optional(
          Type.String({
            default: "",
            description:
              "PEM CA bundle that signs the broker's certificate (mqtts/wss only). Empty: system CAs.",
          }),
        ),
        cert_file: Type.Optional(
          Type.String({
            default: "",
            description: "PEM client certificate for mutual TLS (mqtts/wss only); needs key_file.",
          }),
        ),
        key_file: Type.Optional(
          Type.String({ default: "", description: "PEM private key of cert_file; needs cert_file." }),
        ),
        reject_unauthorized: Type.Optional(
          Type.Boolean({
            default: true,
            description: "Verify the broker's certificate and host name. Turn off only in a lab.",
          }),
        ),
        allow_insecure_password: Type.Optional(
          Type.Boolean({
            default: false,
            description:
              "Allow a password over plain mqtt:// or ws://, where anyone on the path reads it. Refused unless this is true.",
          }),
        ),
        commands_per_minute: Type.Optional(
          Type.Integer({
            minimum: 1,
            maximum: 100_000,
            default: 60,
            description:
              "Commands from headquarters accepted per minute, sustained; beyond it they are dropped unread and counted.",
          }),
        ),
        commands_burst: Type.Optional(
          Type.Integer({
            minimum: 1,
            maximum: 100_000,
            default: 30,
            description: "Commands accepted at once before commands_per_minute applies.",
          }),
        ),
        keepalive: Type.Optional(duration("MQTT keepalive: whole seconds, 1s to 65535s.", "30s")),
        reconnect_min: Type.Optional(
          duration(
            `First wait before reconnecting, ${formatDuration(LIMITS.reconnect_ms.min)} to ${formatDuration(LIMITS.reconnect_ms.max)}.`,
            "1s",
          ),
        ),
        reconnect_max: Type.Optional(
          duration(
            `Longest wait between reconnect attempts (the backoff cap); at least reconnect_min, at most ${formatDuration(LIMITS.reconnect_ms.max)}.`,
            "60s",
          ),
        ),
      }),
    ),
    areas: Type.Optional(
      section("Hysteresis that turns check results into area (LED) states.", {
        fail_after: Type.Optional(
          Type.Integer({
            minimum: 1,
            maximum: 100,
            default: 3,
            description: "Consecutive failing runs before an area turns red.",
          }),
        ),
        recover_after: Type.Optional(
          Type.Integer({
            minimum: 1,
            maximum: 100,
            default: 2,
            description: "Consecutive ok runs before a red area turns green again.",
          }),
        ),
      }),
    ),
    leds: Type.Optional(
      section("Status LEDs and the push button (hw/README.md: boards, wiring, legend).", {
        backend: Type.Optional(
          oneOf(LED_BACKENDS, {
            default: "terminal",
            description:
              "LED driver: none; terminal (the panel drawn on the console); gpio (onoff over sysfs GPIO, " +
              "blinking by the service); kernel (LED class devices of the netprobe-leds overlay, blinking by " +
              "the kernel). When gpio or kernel LEDs are missing the panel falls back to terminal and health says why.",
          }),
        ),
        board: Type.Optional(
          oneOf(BOARD_IDS, {
            default: "auto",
            description:
              "Board profile (hw/pin-maps.md): pi4, pi5, cm4, or auto (from the GPIO controller found at start-up).",
          }),
        ),
        pins: Type.Optional(
          Type.Partial(perLed(LedPinsSchema), {
            description:
              "BCM GPIO of each LED's red and green die, e.g. `wan: { red: 12, green: 13 }`. " +
              "Default: the board's map in hw/pin-maps.md; list only the LEDs you rewire.",
          }),
        ),
        active_low: Type.Optional(
          Type.Boolean({
            default: false,
            description: "true when a GPIO must go low to light its die (common-anode LEDs wired to 3.3 V).",
          }),
        ),
        recent_change: Type.Optional(
          duration("How long a failing area's LED blinks red after it turned red; then it is solid.", "5m"),
        ),
        lamp_test: Type.Optional(
          duration("Length of the lamp test at start-up and on a long button press (0: none).", "3s"),
        ),
        blink: Type.Optional(
          section("Time on (and as long off) of each blink pattern.", {
            slow: Type.Optional(duration("slow blink: checking, no verdict yet.", "1s")),
            normal: Type.Optional(duration("blink: failing recently, identify.", "500ms")),
            fast: Type.Optional(duration("fast blink: STATUS while results queue.", "125ms")),
          }),
        ),
        button: Type.Optional(
          section("Push button to ground (short press: run every check now; long press: lamp test).", {
            pin: Type.Optional(
              Type.Union([Type.Integer({ minimum: 0, maximum: 63 }), Type.Null()], {
                description:
                  "BCM GPIO of the button, e.g. 26, with its pull-up set in config.txt (gpio=26=ip,pu). Empty: no button.",
              }),
            ),
            debounce: Type.Optional(duration("Debounce time of the button's edges.", "20ms")),
            long_press: Type.Optional(duration("Hold this long for the lamp test.", "3s")),
          }),
        ),
      }),
    ),
    defaults: Type.Optional(
      section("Timing for checks that do not set their own.", {
        interval: Type.Optional(duration(`Run interval, ${interval}.`, "60s")),
        timeout: Type.Optional(duration("Timeout of one run; at most defaults.interval.", "10s")),
        jitter: Type.Optional(
          percent('Random start delay, as a fraction of the interval ("10%" or 0.1).', "10%"),
        ),
      }),
    ),
    checks: Type.Optional(
      Type.Array(CheckFileSchema, { default: [], description: "The checks this probe runs." }),
    ),
    stamp_reflector: Type.Optional(
      Type.Partial(StampReflectorConfigSchema, {
        description:
          "A STAMP (RFC 8762) Session-Reflector, so HQ or another probe can measure the path to this one (README, STAMP). Off by default.",
        additionalProperties: false,
        default: {},
      }),
    ),
  },
  { additionalProperties: false },
);
/** The YAML config file as written (before defaults and resolution). */
export type ConfigFile = Static<typeof ConfigFileSchema>;

/** One check, fully resolved: what the scheduler runs. */
export const CheckConfigSchema = Type.Object(
  {
    /** Unique name; the MQTT topic `results/<name>` and the store key. */
    name: Type.String({ pattern: CHECK_NAME_PATTERN }),
    /** Key of `CHECK_KINDS`. */
    kind: Type.String(),
    /** What to probe (address, host name or URL, per kind). */
    target: Type.String({ minLength: 1 }),
    /** Area (LED) the results count towards. */
    area: oneOf(AREAS),
    /** Time between run starts. */
    interval_ms: Type.Integer({ minimum: LIMITS.interval_ms.min }),
    /** Abort a run after this long; ≤ interval_ms. */
    timeout_ms: Type.Integer({ minimum: LIMITS.timeout_ms.min }),
    /** Start jitter as a fraction (0–1) of interval_ms: a random delay of up to jitter × interval_ms. */
    jitter: Type.Number({ minimum: 0, maximum: 1 }),
    /** false: configured but never scheduled. */
    enabled: Type.Boolean(),
    /** Hysteresis override: failing runs before red (absent: the kind's, else areas.fail_after). */
    fail_after: Type.Optional(Type.Integer({ minimum: 1 })),
    /** Hysteresis override: ok runs before green (absent: areas.recover_after). */
    recover_after: Type.Optional(Type.Integer({ minimum: 1 })),
    /** The kind's options, validated against its schema and defaulted. */
    options: Type.Record(Type.String(), Type.Unknown()),
    /** Metric name → bounds; empty when none are configured. */
    thresholds: Type.Record(Type.String({ pattern: METRIC_NAME_PATTERN }), ThresholdBoundsSchema),
  },
  { additionalProperties: false },
);
/** One check, fully resolved: what the scheduler runs. */
export type CheckConfig = Static<typeof CheckConfigSchema>;

/** The loaded, fully-defaulted config: what the scheduler, store, uplink and CLI consume. */
export const ConfigSchema = Type.Object(
  {
    /** Site (branch office) id; MQTT topics are `netprobe/v1/<site>/<probe>/…`. */
    site: Type.String({ pattern: ID_PATTERN }),
    /** Probe id, unique within the site. */
    probe: Type.String({ pattern: ID_PATTERN }),
    /** Lowest log level written. */
    log_level: oneOf(LOG_LEVELS),
    /** Local result buffer and outbox. */
    store: Type.Object(
      {
        /** SQLite database file. */
        path: Type.String({ minLength: 1 }),
        /** Most results kept before eviction. */
        max_rows: Type.Integer({ minimum: 1 }),
        /** Most bytes the database may take before eviction. */
        max_bytes: Type.Integer({ minimum: LIMITS.max_bytes.min, maximum: LIMITS.max_bytes.max }),
      },
      { additionalProperties: false },
    ),
    /** MQTT uplink. */
    broker: Type.Object(
      {
        /** Broker URL (mqtt, mqtts, ws or wss); never carries credentials. */
        url: Type.String(),
        /** 5 = MQTT 5, 4 = MQTT 3.1.1. */
        protocol_version: oneOf([5, 4]),
        /** MQTT client id (default `netprobe-<site>-<probe>`). */
        client_id: Type.String({ minLength: 1 }),
        /** User name; "" = none. */
        username: Type.String(),
        /** Password; "" = none. Secret: use `redactConfig` before logging or publishing. */
        password: Type.String({ writeOnly: true }),
        /** PEM CA bundle path; "" = system CAs. */
        ca_file: Type.String(),
        /** PEM client certificate path; "" = none (set together with key_file). */
        cert_file: Type.String(),
        /** PEM client key path; "" = none (set together with cert_file). */
        key_file: Type.String(),
        /** Verify the broker's certificate. */
        reject_unauthorized: Type.Boolean(),
        /** A password may travel over plain mqtt:// or ws:// (validation refuses it otherwise). */
        allow_insecure_password: Type.Boolean(),
        /** Command token bucket: sustained rate. */
        commands_per_minute: Type.Integer({ minimum: 1 }),
        /** Command token bucket: burst. */
        commands_burst: Type.Integer({ minimum: 1 }),
        /** MQTT keepalive (a whole number of seconds, in ms). */
        keepalive_ms: Type.Integer({ minimum: LIMITS.keepalive_ms.min, maximum: LIMITS.keepalive_ms.max }),
        /** First reconnect wait. */
        reconnect_min_ms: Type.Integer({ minimum: LIMITS.reconnect_ms.min }),
        /** Longest reconnect wait (backoff cap); ≥ reconnect_min_ms. */
        reconnect_max_ms: Type.Integer({ minimum: LIMITS.reconnect_ms.min }),
      },
      { additionalProperties: false },
    ),
    /** Area hysteresis. */
    areas: Type.Object(
      {
        /** Consecutive failing runs before an area turns red. */
        fail_after: Type.Integer({ minimum: 1 }),
        /** Consecutive ok runs before a red area turns green. */
        recover_after: Type.Integer({ minimum: 1 }),
      },
      { additionalProperties: false },
    ),
    /** Status LEDs. */
    leds: Type.Object(
      {
        /** LED driver. */
        backend: oneOf(LED_BACKENDS),
        /** Board profile, or auto. */
        board: oneOf(BOARD_IDS),
        /** BCM GPIO of every LED die (the board's defaults filled in). */
        pins: perLed(LedPinsSchema),
        /** A die is lit by driving its GPIO low. */
        active_low: Type.Boolean(),
        /** A failing area blinks for this long after it changed. */
        recent_change_ms: Type.Integer({ minimum: 0 }),
        /** Lamp test length; 0 = none. */
        lamp_test_ms: Type.Integer({ minimum: 0 }),
        /** Time on (= time off) of each blink pattern. */
        blink_ms: Type.Object(
          {
            slow: Type.Integer({ minimum: LIMITS.led_blink_ms.min }),
            normal: Type.Integer({ minimum: LIMITS.led_blink_ms.min }),
            fast: Type.Integer({ minimum: LIMITS.led_blink_ms.min }),
          },
          { additionalProperties: false },
        ),
        /** The push button; pin null = none. */
        button: Type.Object(
          {
            pin: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()]),
            debounce_ms: Type.Integer({ minimum: 0 }),
            long_press_ms: Type.Integer({ minimum: 1 }),
          },
          { additionalProperties: false },
        ),
      },
      { additionalProperties: false },
    ),
    /** The defaults the checks were resolved with (informational: every check carries its own values). */
    defaults: Type.Object(
      {
        /** Default run interval. */
        interval_ms: Type.Integer({ minimum: LIMITS.interval_ms.min }),
        /** Default run timeout (each check's is capped at its interval). */
        timeout_ms: Type.Integer({ minimum: LIMITS.timeout_ms.min }),
        /** Default start jitter, a fraction (0–1) of the interval. */
        jitter: Type.Number({ minimum: 0, maximum: 1 }),
      },
      { additionalProperties: false },
    ),
    /** Every configured check, in file order, including disabled ones. */
    checks: Type.Array(CheckConfigSchema),
    /** The STAMP reflector (services/contract/src/net/stamp-reflector.ts); `enabled: false` opens no port. */
    stamp_reflector: StampReflectorConfigSchema,
  },
  { additionalProperties: false },
);
/** The loaded, fully-defaulted config. */
export type Config = Static<typeof ConfigSchema>;

/** The JSON Schema of the config file, as written to `schemas/config.schema.json`. */
export function configJsonSchema(): Record<string, unknown> {
  // JSON round trip drops TypeBox's symbol-keyed bookkeeping and leaves plain JSON Schema.
  const body = JSON.parse(JSON.stringify(ConfigFileSchema)) as Record<string, unknown>;
  return {
    $schema: "http://json-schema.org/draft-07/schema#",
    title: "netprobe configuration",
    description:
      "The netprobe YAML config file. Generated from services/probe/src/config/schema.ts by scripts/gen/schemas.ts; do not edit.",
    ...body,
  };
}
