/**
 * Turns a parsed config file into a `Config`: environment overrides, defaults, unknown keys, the
 * schema, then the rules that need more than one value or a check kind's own schema. Every
 * problem is collected; a `Config` is returned only when there are none.
 */
import type { TSchema } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { AREAS, type Area } from "../checks/check.ts";
import { CHECK_KINDS, checkKind } from "../checks/registry.ts";
import { formatByteSize, parseByteSize } from "./byte-size.ts";
import { formatDuration, parseDuration } from "./duration.ts";
import { applyEnvOverrides, envOverrideFor, isMapping } from "./env.ts";
import { ProblemList, formatPath, type KeyPath } from "./problems.ts";
import { resolveLedConfig } from "../leds/led-config.ts";
import {
  stampReflectorConfigProblem,
  type StampReflectorConfig,
} from "../../../contract/src/net/stamp-reflector.ts";
import {
  BROKER_URL_PROTOCOLS,
  ConfigFileSchema,
  ConfigSchema,
  LIMITS,
  LOG_LEVELS,
  MESSAGES,
  TLS_URL_PROTOCOLS,
  type CheckConfig,
  type Config,
  type ThresholdBounds,
} from "./schema.ts";

/** Outcome of validating a config: the loaded config, or every problem found as `path: message`. */
export type ConfigResult = { ok: true; config: Config } | { ok: false; problems: string[] };

/**
 * Validates a parsed config file (the object YAML gave) without throwing. With `env`, the
 * environment overrides (see env.ts) are applied first and problems they cause name the variable.
 */
export function validateConfig(raw: unknown, env: NodeJS.ProcessEnv = {}): ConfigResult {
  // An empty file parses to null: treat it as an empty mapping so that each missing key is named.
  const input = raw ?? {};
  if (!isMapping(input)) {
    return { ok: false, problems: ["(top level): must be a mapping (key: value pairs)"] };
  }
  const root = withoutNulls(structuredClone(input));
  const sources = applyEnvOverrides(root, env);
  fillDefaults(ConfigFileSchema, root);
  const problems = new ProblemList();
  for (const error of Value.Errors(ConfigFileSchema, root)) problems.addSchemaError(error);
  const config = resolve(new Reader(root, problems));
  if (problems.size > 0) return { ok: false, problems: problems.format(root, sources) };
  // Every rule above should make this hold; if one is missing, fail loudly rather than hand the
  // service a config that breaks its own contract.
  const broken = [...Value.Errors(ConfigSchema, config)];
  if (broken.length > 0) {
    return {
      ok: false,
      problems: broken.map((e) => `internal error: resolved config${e.path}: ${e.message}`),
    };
  }
  return { ok: true, config };
}

/**
 * Drops keys whose value is null, in place: in YAML `key:` with nothing after it (say, a section
 * whose lines are all commented out) means "not set", so it takes its default or is reported as
 * required, rather than failing as "must be a mapping". List entries keep their nulls.
 */
function withoutNulls<T>(value: T): T {
  if (Array.isArray(value)) for (const item of value as unknown[]) withoutNulls(item);
  else if (isMapping(value)) {
    for (const [key, v] of Object.entries(value)) {
      if (v === null) delete value[key];
      else withoutNulls(v);
    }
  }
  return value;
}

/**
 * Fills missing keys from the schema's `default`s, in place, and returns the value. Unlike
 * TypeBox's `Value.Default`, a value of the wrong type is left alone for validation to report:
 * `Value.Default` merges a mapping into a list's `[]` default (typebox 0.34), so `checks:` written
 * as a mapping would silently become an empty list. Defaults inside union alternatives are not
 * filled (only a union's own default is).
 */
export function fillDefaults(schema: TSchema, value: unknown): unknown {
  const filled: unknown = value === undefined ? structuredClone(schema.default as unknown) : value;
  if (schema.type === "object" && isMapping(filled) && isMapping(schema.properties)) {
    for (const [key, propertySchema] of Object.entries(schema.properties as Record<string, TSchema>)) {
      const v = fillDefaults(propertySchema, filled[key]);
      if (v !== undefined) filled[key] = v;
    }
  }
  if (schema.type === "array" && Array.isArray(filled) && isMapping(schema.items)) {
    const items = schema.items as TSchema;
    filled.forEach((item, i) => {
      filled[i] = fillDefaults(items, item);
    });
  }
  return filled;
}

/**
 * The name a check gets when the file gives none: kind and target in the check-name alphabet
 * (`icmp` + `192.0.2.1` → `icmp-192-0-2-1`).
 */
export function deriveCheckName(kind: string, target: string): string {
  return `${kind}-${target}`
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 64)
    .replace(/-+$/, "");
}

/**
 * Reads values the schema already accepted; anything it rejected reads as the fallback. The
 * fallbacks only keep the types whole: a config with problems is never returned.
 */
class Reader {
  readonly root: Record<string, unknown>;
  readonly problems: ProblemList;

  constructor(root: Record<string, unknown>, problems: ProblemList) {
    this.root = root;
    this.problems = problems;
  }

  get(path: KeyPath): unknown {
    let node: unknown = this.root;
    for (const seg of path) {
      if (Array.isArray(node)) node = (node as unknown[])[Number(seg)];
      else if (isMapping(node)) node = node[seg];
      else return undefined;
    }
    return node;
  }

  set(path: KeyPath, value: unknown): void {
    const parent = this.get(path.slice(0, -1));
    const leaf = path.at(-1);
    if (leaf === undefined) return;
    if (Array.isArray(parent)) (parent as unknown[])[Number(leaf)] = value;
    else if (isMapping(parent)) parent[leaf] = value;
  }

  /**
   * The value when neither it nor a parent has a problem, else undefined. (A mapping or list is
   * returned even when something inside it has one: read its entries with `valid` too.)
   */
  valid(path: KeyPath): unknown {
    return this.problems.has(path) ? undefined : this.get(path);
  }

  add(path: KeyPath, message: string): void {
    this.problems.add(path, message);
  }

  str(path: KeyPath): string {
    const v = this.valid(path);
    return typeof v === "string" ? v : "";
  }

  int(path: KeyPath, fallback: number): number {
    const v = this.valid(path);
    return typeof v === "number" ? v : fallback;
  }

  bool(path: KeyPath, fallback: boolean): boolean {
    const v = this.valid(path);
    return typeof v === "boolean" ? v : fallback;
  }

  oneOf<T extends string | number>(path: KeyPath, values: readonly T[], fallback: T): T {
    const v = this.valid(path);
    return values.find((x) => x === v) ?? fallback;
  }

  /** Reports a missing key that has no default, naming its environment variable if it has one. */
  required(path: KeyPath): void {
    if (this.get(path) !== undefined || this.problems.has(path.slice(0, -1))) return;
    const env = envOverrideFor(path);
    this.add(path, env ? `required (or set ${env.name})` : "required");
  }

  /** A duration in ms, checked against limits; undefined (problem recorded) when unusable. */
  duration(
    path: KeyPath,
    limits: { min?: number; max?: number; wholeSeconds?: boolean } = {},
  ): number | undefined {
    const v = this.valid(path);
    if (v === undefined) return undefined;
    const ms = parseDuration(v);
    const fmt = limits.wholeSeconds ? (n: number) => `${n / 1000}s` : formatDuration;
    let problem: string | undefined;
    if (ms === undefined) problem = "must be a whole number of milliseconds";
    else if (limits.min !== undefined && ms < limits.min) {
      problem = limits.min === 1 ? "must be greater than 0" : `must be ≥ ${fmt(limits.min)}`;
    } else if (limits.max !== undefined && ms > limits.max) problem = `must be ≤ ${fmt(limits.max)}`;
    else if (limits.wholeSeconds && ms % 1000 !== 0) problem = "must be a whole number of seconds";
    if (problem !== undefined) {
      this.add(path, problem);
      return undefined;
    }
    return ms;
  }

  /** A fraction from 0 to 1, written as a number or a percentage string. */
  fraction(path: KeyPath): number | undefined {
    const v = this.valid(path);
    if (typeof v === "number") return v;
    if (typeof v !== "string") return undefined;
    const pct = Number(v.slice(0, -1));
    if (pct > 100) {
      this.add(path, "must be between 0% and 100%");
      return undefined;
    }
    return pct / 100;
  }
}

interface CheckDefaults {
  interval_ms: number;
  timeout_ms: number;
  jitter: number;
}

function resolve(r: Reader): Config {
  r.required(["site"]);
  r.required(["probe"]);
  const site = r.str(["site"]);
  const probe = r.str(["probe"]);

  const maxBytesPath = ["store", "max_bytes"];
  let maxBytes = parseByteSize(r.valid(maxBytesPath));
  if (maxBytes !== undefined && (maxBytes < LIMITS.max_bytes.min || maxBytes > LIMITS.max_bytes.max)) {
    const limit =
      maxBytes < LIMITS.max_bytes.min
        ? `≥ ${formatByteSize(LIMITS.max_bytes.min)}`
        : `≤ ${formatByteSize(LIMITS.max_bytes.max)}`;
    r.add(maxBytesPath, `must be ${limit}`);
    maxBytes = undefined;
  }

  const defaults = resolveDefaults(r);
  const checks = resolveChecks(r, defaults);

  return {
    site,
    probe,
    log_level: r.oneOf(["log_level"], LOG_LEVELS, "info"),
    store: {
      path: r.str(["store", "path"]),
      max_rows: r.int(["store", "max_rows"], 0),
      max_bytes: maxBytes ?? 0,
    },
    broker: resolveBroker(r, site, probe),
    areas: {
      fail_after: r.int(["areas", "fail_after"], 0),
      recover_after: r.int(["areas", "recover_after"], 0),
    },
    leds: resolveLedConfig(r),
    defaults,
    checks,
    stamp_reflector: resolveStampReflector(r),
  };
}

function resolveStampReflector(r: Reader): StampReflectorConfig {
  const raw = r.valid(["stamp_reflector"]);
  const config = (isMapping(raw) ? raw : {}) as StampReflectorConfig;
  const problem = stampReflectorConfigProblem(config);
  if (problem !== undefined) r.add(["stamp_reflector", problem.field], problem.message);
  return config;
}

function resolveBroker(r: Reader, site: string, probe: string): Config["broker"] {
  const p = (key: string): KeyPath => ["broker", key];
  r.required(p("url"));
  const url = r.str(p("url"));
  let protocol: string | undefined;
  if (url !== "") {
    const problem = brokerUrlProblem(url);
    if (problem === undefined) protocol = new URL(url).protocol;
    else r.add(p("url"), problem);
  }

  const protocolVersion = r.oneOf(p("protocol_version"), [5, 4] as const, 5);
  const username = r.str(p("username"));
  const password = r.str(p("password"));
  if (password !== "" && username === "" && protocolVersion === 4) {
    r.add(p("username"), "required when a password is set with MQTT 3.1.1 (protocol_version: 4)");
  }

  const caFile = r.str(p("ca_file"));
  const certFile = r.str(p("cert_file"));
  const keyFile = r.str(p("key_file"));
  if (protocol !== undefined && !(TLS_URL_PROTOCOLS as readonly string[]).includes(protocol)) {
    for (const [key, value] of [
      ["ca_file", caFile],
      ["cert_file", certFile],
      ["key_file", keyFile],
    ] as const) {
      if (value !== "") r.add(p(key), `only used with mqtts:// or wss:// (broker.url is ${protocol}//)`);
    }
  }
  const allowInsecurePassword = r.bool(p("allow_insecure_password"), false);
  if (
    password !== "" &&
    protocol !== undefined &&
    !(TLS_URL_PROTOCOLS as readonly string[]).includes(protocol) &&
    !allowInsecurePassword
  ) {
    r.add(
      p("password"),
      `would be sent in clear text over ${protocol}//: use mqtts:// or wss://, or set broker.allow_insecure_password: true`,
    );
  }
  if (certFile !== "" && keyFile === "") r.add(p("key_file"), "required when broker.cert_file is set");
  if (keyFile !== "" && certFile === "") r.add(p("cert_file"), "required when broker.key_file is set");

  const keepalive = r.duration(p("keepalive"), { ...LIMITS.keepalive_ms, wholeSeconds: true });
  const reconnectMin = r.duration(p("reconnect_min"), LIMITS.reconnect_ms);
  const reconnectMax = r.duration(p("reconnect_max"), LIMITS.reconnect_ms);
  if (reconnectMin !== undefined && reconnectMax !== undefined && reconnectMax < reconnectMin) {
    r.add(p("reconnect_max"), `must be ≥ broker.reconnect_min (${formatDuration(reconnectMin)})`);
  }

  return {
    url,
    protocol_version: protocolVersion,
    client_id: r.str(p("client_id")) || `netprobe-${site}-${probe}`,
    username,
    password,
    ca_file: caFile,
    cert_file: certFile,
    key_file: keyFile,
    reject_unauthorized: r.bool(p("reject_unauthorized"), true),
    allow_insecure_password: allowInsecurePassword,
    commands_per_minute: r.int(p("commands_per_minute"), 60),
    commands_burst: r.int(p("commands_burst"), 30),
    keepalive_ms: keepalive ?? 0,
    reconnect_min_ms: reconnectMin ?? 0,
    reconnect_max_ms: reconnectMax ?? 0,
  };
}

/** Why a broker URL is unusable, or undefined when it is fine. */
export function brokerUrlProblem(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return MESSAGES.brokerUrl;
  }
  if (!(BROKER_URL_PROTOCOLS as readonly string[]).includes(parsed.protocol) || parsed.hostname === "") {
    return MESSAGES.brokerUrl;
  }
  // Credentials belong in username/password: those are redacted, a URL is logged as it is.
  if (parsed.username !== "" || parsed.password !== "") {
    return "must not contain a user name or password (use broker.username and broker.password)";
  }
  return undefined;
}

function resolveDefaults(r: Reader): CheckDefaults {
  const interval = r.duration(["defaults", "interval"], LIMITS.interval_ms);
  const timeout = r.duration(["defaults", "timeout"], LIMITS.timeout_ms);
  if (interval !== undefined && timeout !== undefined && timeout > interval) {
    r.add(["defaults", "timeout"], `must be ≤ defaults.interval (${formatDuration(interval)})`);
  }
  return {
    interval_ms: interval ?? 0,
    timeout_ms: timeout ?? 0,
    jitter: r.fraction(["defaults", "jitter"]) ?? 0,
  };
}

function resolveChecks(r: Reader, defaults: CheckDefaults): CheckConfig[] {
  const list = r.valid(["checks"]);
  if (!Array.isArray(list)) return [];
  const names = new Map<string, number>();
  return list.map((_, i) => resolveCheck(r, ["checks", String(i)], defaults, names));
}

function resolveCheck(
  r: Reader,
  base: KeyPath,
  defaults: CheckDefaults,
  names: Map<string, number>,
): CheckConfig {
  const p = (...keys: string[]): KeyPath => [...base, ...keys];
  const kindName = r.str(p("kind"));
  const kind = kindName === "" ? undefined : checkKind(kindName);
  if (kindName !== "" && kind === undefined) {
    r.add(p("kind"), `unknown check kind "${kindName}" (known: ${Object.keys(CHECK_KINDS).join(", ")})`);
  }
  const target = r.str(p("target"));

  const explicitName = r.get(p("name")) !== undefined;
  const name = explicitName ? r.str(p("name")) : kindName && target ? deriveCheckName(kindName, target) : "";
  if (!explicitName && kindName !== "" && target !== "" && name === "") {
    r.add(p("name"), "cannot be derived from kind and target: set a name");
  }
  if (name !== "") {
    const first = names.get(name);
    if (first === undefined) names.set(name, Number(base[1]));
    else {
      const other = formatPath(["checks", String(first)], r.root);
      r.add(
        p("name"),
        explicitName
          ? `duplicate check name "${name}" (also used by ${other})`
          : `duplicate check name "${name}" (derived from kind and target; also used by ${other}): set a name`,
      );
    }
  }

  const hasInterval = r.get(p("interval")) !== undefined;
  const interval = hasInterval ? r.duration(p("interval"), LIMITS.interval_ms) : defaults.interval_ms;
  let timeout: number | undefined;
  if (r.get(p("timeout")) === undefined) {
    timeout = Math.min(defaults.timeout_ms, interval ?? defaults.timeout_ms);
  } else {
    timeout = r.duration(p("timeout"), LIMITS.timeout_ms);
    if (timeout !== undefined && interval !== undefined && timeout > interval) {
      r.add(p("timeout"), `must be ≤ interval (${formatDuration(interval)})`);
    }
  }
  const jitter = r.get(p("jitter")) === undefined ? defaults.jitter : r.fraction(p("jitter"));

  return {
    name,
    kind: kindName,
    target,
    area: r.oneOf<Area>(p("area"), AREAS, kind?.defaultArea ?? "wan"),
    interval_ms: interval ?? 0,
    timeout_ms: timeout ?? 0,
    jitter: jitter ?? 0,
    enabled: r.bool(p("enabled"), true),
    ...(r.valid(p("fail_after")) === undefined ? {} : { fail_after: r.int(p("fail_after"), 1) }),
    ...(r.valid(p("recover_after")) === undefined ? {} : { recover_after: r.int(p("recover_after"), 1) }),
    options: resolveOptions(r, p("options"), kind),
    thresholds: resolveThresholds(r, p("thresholds")),
  };
}

/** Validates options against the kind's own schema and fills the kind's defaults. */
function resolveOptions(
  r: Reader,
  path: KeyPath,
  kind: ReturnType<typeof checkKind>,
): Record<string, unknown> {
  const raw = r.valid(path);
  if (kind === undefined || !isMapping(raw)) return {};
  const options = fillDefaults(kind.options, structuredClone(raw));
  r.set(path, options); // so that problem paths are formatted (and sorted) against what was checked
  for (const error of Value.Errors(kind.options, options)) r.problems.addSchemaError(error, path);
  return isMapping(options) ? options : {};
}

function resolveThresholds(r: Reader, path: KeyPath): Record<string, ThresholdBounds> {
  const raw = r.valid(path);
  if (!isMapping(raw)) return {};
  const out: Record<string, ThresholdBounds> = {};
  for (const metric of Object.keys(raw)) {
    const at = [...path, metric];
    const b = r.valid(at);
    if (!isMapping(b)) continue;
    const bounds = b as ThresholdBounds;
    out[metric] = bounds;
    const { warn, fail, warn_below: warnBelow, fail_below: failBelow } = bounds;
    if (warn !== undefined && fail !== undefined && warn > fail) {
      r.add(at, `warn (${warn}) must be ≤ fail (${fail})`);
    } else if (warnBelow !== undefined && failBelow !== undefined && warnBelow < failBelow) {
      r.add(at, `warn_below (${warnBelow}) must be ≥ fail_below (${failBelow})`);
    } else {
      const upper = Math.min(warn ?? Infinity, fail ?? Infinity);
      const lower = Math.max(warnBelow ?? -Infinity, failBelow ?? -Infinity);
      if (lower >= upper)
        r.add(at, "warn_below/fail_below must be lower than warn/fail (every value would breach)");
    }
  }
  return out;
}
