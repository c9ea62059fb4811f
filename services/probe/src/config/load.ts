/**
 * Loading the config: find the file, read it, parse YAML, then validate (validate.ts). Every step
 * reports problems as `where: what` lines, all of them at once.
 */
import { readFileSync } from "node:fs";
import { LineCounter, parseDocument } from "yaml";
import { documentHash } from "../../../contract/src/config-document.ts";
import { CONFIG_FILE_ENV } from "./env.ts";
import type { Config } from "./schema.ts";
import { validateConfig } from "./validate.ts";

// The config module's front door: loading, validating, and what may leave the process.
export { validateConfig, type ConfigResult } from "./validate.ts";
export { configHash, redactConfig } from "./redact.ts";
export type { CheckConfig, Config, ThresholdBounds } from "./schema.ts";

/** Where the config is read from when neither `--config` nor NETPROBE_CONFIG names a file. */
export const DEFAULT_CONFIG_PATH = "/etc/netprobe/netprobe.yaml";

/** An invalid or unreadable config; `problems` lists every problem as `path: message`. */
export class ConfigError extends Error {
  /** Stable code for logs and command replies. */
  readonly code = "config_invalid";
  /** Every problem found, e.g. `checks[3].interval: must be ≥ 1s`. */
  readonly problems: string[];

  constructor(problems: string[]) {
    super(`invalid config:\n${problems.map((p) => `  ${p}`).join("\n")}`);
    this.name = "ConfigError";
    this.problems = problems;
  }
}

/** Where to load the config from and which environment overrides it. */
export interface LoadConfigOptions {
  /** Config file (the `--config` flag); default NETPROBE_CONFIG, then /etc/netprobe/netprobe.yaml. */
  file?: string | undefined;
  /** Environment for NETPROBE_CONFIG and the overrides; default `process.env`. */
  env?: NodeJS.ProcessEnv | undefined;
}

/** The config file `loadConfig` reads for these options. */
export function resolveConfigPath(options: LoadConfigOptions = {}): string {
  const env = options.env ?? process.env;
  return options.file || env[CONFIG_FILE_ENV] || DEFAULT_CONFIG_PATH;
}

/** Reads, overrides, defaults and validates the config; throws `ConfigError` listing every problem. */
export function loadConfig(options: LoadConfigOptions = {}): Config {
  return loadConfigDocument(options).config;
}

/** As {@link loadConfig}, with the document hash of the file read (for the retained `config`). */
export function loadConfigDocument(options: LoadConfigOptions = {}): {
  config: Config;
  documentHash: string;
} {
  const env = options.env ?? process.env;
  // Say where a path nobody typed came from, so that a missing file is not a mystery.
  const origin = options.file
    ? ""
    : env[CONFIG_FILE_ENV]
      ? ` (named by ${CONFIG_FILE_ENV})`
      : ` (the default; pass --config FILE or set ${CONFIG_FILE_ENV})`;
  const result = readConfig(resolveConfigPath(options), env, origin);
  if (!result.ok) throw new ConfigError(result.problems);
  return { config: result.config, documentHash: result.documentHash };
}

/**
 * For `netprobe config validate FILE`: the same checks as `loadConfig`, with the same environment
 * overrides the service would apply (so the answer matches what the service would do), no throw.
 */
export function validateConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): ConfigFileResult {
  return readConfig(file, env, "");
}

/** A config file read and validated, with the hash of its document (its content before defaults and environment). */
export type ConfigFileResult =
  { ok: true; config: Config; documentHash: string } | { ok: false; problems: string[] };

function readConfig(file: string, env: NodeJS.ProcessEnv, origin: string): ConfigFileResult {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    return { ok: false, problems: [`${file}: cannot read config file: ${readError(err)}${origin}`] };
  }
  const parsed = parseConfigYaml(text, file);
  if (!parsed.ok) return parsed;
  const r = validateConfig(parsed.value, env);
  // An empty file is an empty mapping to validateConfig, and so to the hash.
  return r.ok ? { ...r, documentHash: documentHash(parsed.value ?? {}) } : r;
}

const READ_ERRORS: Readonly<Record<string, string>> = {
  ENOENT: "no such file",
  EACCES: "permission denied",
  EPERM: "permission denied",
  EISDIR: "is a directory",
};

function readError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  return (code && READ_ERRORS[code]) ?? (err instanceof Error ? err.message : String(err));
}

/**
 * Parses YAML 1.2 text into plain data; syntax errors come back as `file:line:col: message`.
 * Duplicate keys are errors (the second would silently win otherwise); `<<` merge keys work, so
 * checks can share settings through anchors.
 */
export function parseConfigYaml(
  text: string,
  source: string,
): { ok: true; value: unknown } | { ok: false; problems: string[] } {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, merge: true });
  const problems = [...doc.errors, ...doc.warnings].map((e) => {
    const { line, col } = lineCounter.linePos(e.pos[0]);
    return `${source}:${line}:${col}: ${e.message.split("\n")[0] ?? e.message}`;
  });
  if (problems.length > 0) return { ok: false, problems };
  try {
    return { ok: true, value: doc.toJS({ maxAliasCount: 100 }) };
  } catch (err) {
    // toJS throws for alias bombs and aliases to unknown anchors.
    return { ok: false, problems: [`${source}: ${err instanceof Error ? err.message : String(err)}`] };
  }
}
