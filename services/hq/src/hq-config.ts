// Settings of the HQ fleet service: a small YAML file (`netprobe hq serve --config FILE`), flags,
// or NETPROBE_HQ_* variables; flags win over the file, the file over the environment. Secrets come
// from the file, the environment or files named there, never from argv (it shows in `ps`).
import {
  StampReflectorConfigSchema,
  stampReflectorConfigProblem,
} from "../../contract/src/net/stamp-reflector.ts";
import { readFileSync } from "node:fs";
import { Type, type Static } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { parse } from "yaml";

/** The HQ config file's schema (every key optional except the broker URL). */
export const HqConfigSchema = Type.Object(
  {
    broker: Type.Object(
      {
        url: Type.String({ description: "mqtt://, mqtts://, ws:// or wss:// URL of the fleet broker" }),
        username: Type.Optional(Type.String()),
        password: Type.Optional(Type.String()),
        password_file: Type.Optional(
          Type.String({ description: "file holding the broker password (instead of password)" }),
        ),
        ca_file: Type.Optional(
          Type.String({ description: "CA that signed the broker's certificate (pinned)" }),
        ),
        cert_file: Type.Optional(Type.String({ description: "HQ's client certificate" })),
        key_file: Type.Optional(Type.String()),
        client_id: Type.Optional(Type.String({ description: "default hq-<hostname>-<pid>" })),
        protocol_version: Type.Union([Type.Literal(4), Type.Literal(5)], { default: 5 }),
        shared_group: Type.Optional(
          Type.String({
            pattern: "^[A-Za-z0-9_.-]{1,64}$",
            description: "MQTT 5 shared subscription group: instances with the same group split the fleet",
          }),
        ),
      },
      { additionalProperties: false },
    ),
    http: Type.Object(
      {
        host: Type.String({ default: "127.0.0.1", description: "address the web page is served on" }),
        port: Type.Integer({ minimum: 0, maximum: 65535, default: 8080 }),
        allowed_hosts: Type.Optional(
          Type.Array(Type.String({ minLength: 1, maxLength: 253 }), {
            description:
              "Host header names answered besides the listen address and localhost (the names users type; defeats DNS rebinding)",
          }),
        ),
        tls: Type.Optional(
          Type.Object(
            {
              cert_file: Type.String({ description: "the page's certificate chain (PEM)" }),
              key_file: Type.String({ description: "its private key (PEM)" }),
            },
            { additionalProperties: false, description: "serve HTTPS (session cookies get Secure)" },
          ),
        ),
        trusted_proxy: Type.Optional(
          Type.Object(
            {
              addresses: Type.Array(Type.String({ minLength: 1 }), {
                minItems: 1,
                description: "source addresses of the reverse proxy; the header is ignored from any other",
              }),
              user_header: Type.String({
                default: "x-forwarded-user",
                description:
                  "header naming the user the proxy authenticated (oauth2-proxy: X-Forwarded-User)",
              }),
              role: Type.Union([Type.Literal("viewer"), Type.Literal("operator")], { default: "viewer" }),
            },
            { additionalProperties: false },
          ),
        ),
        sse_clients: Type.Integer({
          minimum: 1,
          maximum: 10_000,
          default: 64,
          description: "live-update (/events) connections served at once",
        }),
        sse_buffer_bytes: Type.Integer({
          minimum: 65_536,
          default: 1_048_576,
          description: "bytes queued for one /events client (beyond the last snapshot) before it is dropped",
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    auth: Type.Object(
      {
        token_file: Type.Optional(
          Type.String({
            description:
              "file with the operator's access token; created (random, mode 0600) when missing. Default $STATE_DIRECTORY/hq-token or ~/.netprobe/hq-token",
          }),
        ),
        tokens: Type.Optional(
          Type.Array(
            Type.Object(
              {
                name: Type.String({ minLength: 1, maxLength: 64 }),
                role: Type.Union([Type.Literal("viewer"), Type.Literal("operator")], { default: "viewer" }),
                file: Type.String({ description: "file holding the token (at least 16 characters)" }),
              },
              { additionalProperties: false },
            ),
            { description: "further API tokens (Grafana, scripts), each in its own file" },
          ),
        ),
        users: Type.Optional(
          Type.Array(
            Type.Object(
              {
                name: Type.String({ minLength: 1, maxLength: 64 }),
                role: Type.Union([Type.Literal("viewer"), Type.Literal("operator")], { default: "viewer" }),
                password_hash: Type.String({
                  pattern: "^scrypt\\$",
                  description: "from `netprobe hq hash-password` (scrypt, node:crypto)",
                }),
              },
              { additionalProperties: false },
            ),
            { description: "users of the login form" },
          ),
        ),
        session_hours: Type.Number({ exclusiveMinimum: 0, maximum: 720, default: 12 }),
      },
      { additionalProperties: false, default: {} },
    ),
    stamp_reflector: Type.Object(StampReflectorConfigSchema.properties, {
      additionalProperties: false,
      default: {},
      description:
        "A STAMP (RFC 8762) Session-Reflector at HQ, so probes measure the WAN to headquarters with a stamp check (README, STAMP). Off by default.",
    }),
    history: Type.Object(
      {
        results_per_check: Type.Integer({ minimum: 1, maximum: 10_000, default: 120 }),
        events_per_probe: Type.Integer({ minimum: 1, maximum: 1000, default: 20 }),
        checks_per_probe: Type.Integer({ minimum: 1, maximum: 10_000, default: 100 }),
        probes: Type.Integer({ minimum: 1, default: 10_000 }),
        payload_bytes: Type.Integer({ minimum: 1024, maximum: 16_777_216, default: 131_072 }),
        rate_per_probe: Type.Number({
          exclusiveMinimum: 0,
          default: 500,
          description: "messages per probe per second, sustained",
        }),
        burst_per_probe: Type.Integer({
          minimum: 1,
          default: 20_000,
          description: "messages a probe may send at once (an outbox drained after an outage)",
        }),
        engine: Type.Union([Type.Literal("sqlite"), Type.Literal("postgres"), Type.Literal("none")], {
          default: "sqlite",
          description:
            "where results, events and roll-ups are kept (docs/hq.md, History): an embedded SQLite file, a PostgreSQL 15+ database, or none (memory only)",
        }),
        path: Type.Optional(
          Type.String({
            description:
              "sqlite: the database file. Default $STATE_DIRECTORY/hq-history.db or ~/.netprobe/hq-history.db",
          }),
        ),
        url: Type.Optional(
          Type.String({
            description:
              "postgres: postgresql://user@host/db (or $NETPROBE_HQ_HISTORY_URL; a password belongs in ~/.pgpass or $PGPASSWORD)",
          }),
        ),
        raw_days: Type.Number({
          exclusiveMinimum: 0,
          maximum: 3660,
          default: 30,
          description: "raw results kept, days",
        }),
        rollup_days: Type.Number({
          exclusiveMinimum: 0,
          maximum: 3660,
          default: 366,
          description: "1-minute, 1-hour and 1-day roll-ups kept, days",
        }),
        event_days: Type.Number({
          exclusiveMinimum: 0,
          maximum: 3660,
          default: 366,
          description: "area events, online/offline changes and health snapshots kept, days",
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    reports: Type.Optional(
      Type.Object(
        {
          schedule: Type.Union([Type.Literal("daily"), Type.Literal("weekly")], {
            description:
              "daily: yesterday (UTC), written after midnight; weekly: the last 7 days, on Mondays",
          }),
          dir: Type.String({
            minLength: 1,
            description: "folder the reports are written to, one subfolder per site",
          }),
          formats: Type.Array(Type.Union([Type.Literal("pdf"), Type.Literal("csv"), Type.Literal("html")]), {
            minItems: 1,
            default: ["pdf", "csv"],
          }),
          sites: Type.Optional(
            Type.Array(Type.String({ minLength: 1 }), { description: "default: every site in the history" }),
          ),
        },
        {
          additionalProperties: false,
          description: "availability reports written on a schedule (docs/hq.md)",
        },
      ),
    ),
    alerts: Type.Object(
      {
        unreachable_after_s: Type.Number({
          minimum: 0,
          default: 60,
          description:
            "a probe offline at HQ (or HQ without its broker) this long is a 'probe unreachable' incident",
        }),
        settle_s: Type.Number({
          minimum: 0,
          maximum: 300,
          default: 2,
          description:
            "a new incident waits this long before it is announced, so its dependent areas fold in",
        }),
        resolve_after_s: Type.Number({
          minimum: 0,
          default: 30,
          description: "an incident resolves after this long with no failing area",
        }),
        flap_window_s: Type.Number({
          minimum: 0,
          default: 600,
          description:
            "the same root failing again within this long after resolving re-opens the same incident",
        }),
        correlate_window_s: Type.Number({
          minimum: 0,
          default: 300,
          description:
            "WAN incidents of several sites opened within this long that share a failing target are one incident",
        }),
        notifications_per_site_hour: Type.Integer({
          minimum: 1,
          default: 20,
          description:
            "firing notifications per site per hour through HQ's own webhooks; further ones are counted, not sent",
        }),
        webhooks: Type.Array(
          Type.Object(
            {
              name: Type.String({
                pattern: "^[A-Za-z0-9_.-]{1,64}$",
                description: "shown in logs instead of the URL",
              }),
              url: Type.String({ pattern: "^https?://", description: "receiver (POST, JSON)" }),
              secret_file: Type.Optional(
                Type.String({
                  description: "file holding the HMAC-SHA256 key of the x-netprobe-signature header",
                }),
              ),
              timeout_s: Type.Number({ exclusiveMinimum: 0, maximum: 60, default: 5 }),
              max_attempts: Type.Integer({ minimum: 1, maximum: 20, default: 6 }),
              backoff_s: Type.Number({
                exclusiveMinimum: 0,
                maximum: 60,
                default: 1,
                description: "first retry delay, doubled per attempt (at most 60 s)",
              }),
            },
            { additionalProperties: false },
          ),
          { default: [], description: "HQ's own notification receivers (docs/alerting.md)" },
        ),
      },
      { additionalProperties: false, default: {} },
    ),
  },
  { additionalProperties: false },
);
/** Effective HQ settings. */
export type HqConfig = Static<typeof HqConfigSchema>;

/** Flags of `netprobe hq serve|watch` that override the file. */
export interface HqFlags {
  config?: string;
  url?: string;
  username?: string;
  password?: string;
  passwordFile?: string;
  ca?: string;
  cert?: string;
  key?: string;
  clientId?: string;
  group?: string;
  host?: string;
  port?: string;
  mqtt3?: boolean;
}

/** Thrown for an unusable config; the message names every problem. */
export class HqConfigError extends Error {}

function prune<T extends Record<string, unknown>>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Merges file, environment and flags, applies defaults, validates. */
export function loadHqConfig(flags: HqFlags, env: NodeJS.ProcessEnv = process.env): HqConfig {
  if (flags.password !== undefined)
    throw new HqConfigError(
      "--password is no longer accepted: a command line shows in `ps`. Use --password-file, " +
        "broker.password_file or password in the config file, or $NETPROBE_HQ_BROKER_PASSWORD",
    );
  let file: Record<string, unknown> = {};
  if (flags.config) {
    const parsed: unknown = parse(readFileSync(flags.config, "utf8"));
    if (parsed !== null && parsed !== undefined) {
      if (typeof parsed !== "object" || Array.isArray(parsed))
        throw new HqConfigError(`${flags.config}: expected a mapping`);
      file = parsed as Record<string, unknown>;
    }
  }
  const fb = (file.broker ?? {}) as Record<string, unknown>;
  const fh = (file.http ?? {}) as Record<string, unknown>;
  const fa = (file.auth ?? {}) as Record<string, unknown>;
  const raw = {
    ...file,
    broker: {
      ...prune({
        url: env.NETPROBE_HQ_BROKER_URL,
        username: env.NETPROBE_HQ_BROKER_USERNAME,
        password: env.NETPROBE_HQ_BROKER_PASSWORD,
        password_file: env.NETPROBE_HQ_BROKER_PASSWORD_FILE,
        ca_file: env.NETPROBE_HQ_BROKER_CA_FILE,
        cert_file: env.NETPROBE_HQ_BROKER_CERT_FILE,
        key_file: env.NETPROBE_HQ_BROKER_KEY_FILE,
      }),
      ...fb,
      ...prune({
        url: flags.url,
        username: flags.username,
        password_file: flags.passwordFile,
        ca_file: flags.ca,
        cert_file: flags.cert,
        key_file: flags.key,
        client_id: flags.clientId,
        shared_group: flags.group,
        protocol_version: flags.mqtt3 ? 4 : undefined,
      }),
    },
    http: {
      ...fh,
      ...prune({ host: flags.host, port: flags.port === undefined ? undefined : Number(flags.port) }),
    },
    auth: { ...prune({ token_file: env.NETPROBE_HQ_TOKEN_FILE }), ...fa },
    history: {
      ...prune({ url: env.NETPROBE_HQ_HISTORY_URL }),
      ...((file.history ?? {}) as Record<string, unknown>),
    },
  };
  const withDefaults = Value.Default(HqConfigSchema, structuredClone(raw));
  const problems = [...Value.Errors(HqConfigSchema, withDefaults)].map(
    (e) => `${e.path || "/"}: ${e.message}`,
  );
  if (problems.length > 0) throw new HqConfigError(`invalid HQ config:\n  ${problems.join("\n  ")}`);
  const cfg = withDefaults as HqConfig;
  if (cfg.broker.shared_group && cfg.broker.protocol_version !== 5)
    throw new HqConfigError("broker.shared_group needs MQTT 5 (protocol_version 5)");
  const reflectorProblem = stampReflectorConfigProblem(cfg.stamp_reflector);
  if (reflectorProblem)
    throw new HqConfigError(`stamp_reflector.${reflectorProblem.field}: ${reflectorProblem.message}`);
  if (cfg.history.engine === "postgres" && !cfg.history.url)
    throw new HqConfigError("history.engine postgres needs history.url (or $NETPROBE_HQ_HISTORY_URL)");
  if (cfg.broker.password_file !== undefined) {
    // A file named on the command line wins over a password from the file or the environment.
    const fromFlag = flags.passwordFile !== undefined;
    if (fromFlag || cfg.broker.password === undefined) {
      try {
        cfg.broker.password = readFileSync(cfg.broker.password_file, "utf8").replace(/\r?\n$/, "");
      } catch (err) {
        throw new HqConfigError(
          `broker.password_file: cannot read ${cfg.broker.password_file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
        );
      }
    }
  }
  return cfg;
}
