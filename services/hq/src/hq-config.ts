// Settings of the HQ fleet service: a small YAML file (`netprobe hq serve --config FILE`), flags,
// or NETPROBE_HQ_* variables; flags win over the file, the file over the environment.
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
      },
      { additionalProperties: false, default: {} },
    ),
    history: Type.Object(
      {
        results_per_check: Type.Integer({ minimum: 1, maximum: 10_000, default: 120 }),
        events_per_probe: Type.Integer({ minimum: 1, maximum: 1000, default: 20 }),
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
  const raw = {
    ...file,
    broker: {
      ...prune({
        url: env.NETPROBE_HQ_BROKER_URL,
        username: env.NETPROBE_HQ_BROKER_USERNAME,
        password: env.NETPROBE_HQ_BROKER_PASSWORD,
        ca_file: env.NETPROBE_HQ_BROKER_CA_FILE,
        cert_file: env.NETPROBE_HQ_BROKER_CERT_FILE,
        key_file: env.NETPROBE_HQ_BROKER_KEY_FILE,
      }),
      ...fb,
      ...prune({
        url: flags.url,
        username: flags.username,
        password: flags.password,
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
  };
  const withDefaults = Value.Default(HqConfigSchema, structuredClone(raw));
  const problems = [...Value.Errors(HqConfigSchema, withDefaults)].map(
    (e) => `${e.path || "/"}: ${e.message}`,
  );
  if (problems.length > 0) throw new HqConfigError(`invalid HQ config:\n  ${problems.join("\n  ")}`);
  const cfg = withDefaults as HqConfig;
  if (cfg.broker.shared_group && cfg.broker.protocol_version !== 5)
    throw new HqConfigError("broker.shared_group needs MQTT 5 (protocol_version 5)");
  return cfg;
}
