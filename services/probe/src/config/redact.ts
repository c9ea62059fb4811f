/**
 * The config as it may leave the process (the retained `config` MQTT topic, logs): secrets replaced
 * by "***", plus a stable hash so HQ can tell which config a probe runs.
 */
import { createHash } from "node:crypto";
import type { TSchema } from "@sinclair/typebox";
import { checkKind } from "../checks/registry.ts";
import { isMapping } from "./env.ts";
import { canonicalJson } from "../../../contract/src/config-document.ts";
import { ConfigSchema, type Config } from "./schema.ts";

/** What a secret is replaced with. */
export const REDACTED = "***";

// Check kinds mark secret options with `writeOnly: true` in their options schema; a key that
// looks like a secret is redacted too, in case a kind forgets.
const SECRET_KEY = /(^|_)(password|passphrase|secret|token|psk)$/i;

/** A deep copy of `config` with every secret (non-empty) replaced by "***". */
export function redactConfig(config: Config): Config {
  const copy = structuredClone(config);
  const redacted = redactBySchema(ConfigSchema, copy) as Config;
  for (const check of redacted.checks) {
    const kind = checkKind(check.kind);
    if (kind) check.options = redactBySchema(kind.options, check.options) as Record<string, unknown>;
  }
  return redacted;
}

function redactBySchema(schema: TSchema | undefined, value: unknown, key = ""): unknown {
  if (typeof value === "string") {
    return value !== "" && (schema?.writeOnly === true || SECRET_KEY.test(key)) ? REDACTED : value;
  }
  if (Array.isArray(value)) {
    const items = schema?.items as TSchema | undefined;
    return value.map((v) => redactBySchema(items, v, key));
  }
  if (isMapping(value)) {
    const props = isMapping(schema?.properties) ? (schema.properties as Record<string, TSchema>) : {};
    const patternProps = isMapping(schema?.patternProperties)
      ? (Object.values(schema.patternProperties)[0] as TSchema | undefined)
      : undefined;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = redactBySchema(props[k] ?? patternProps, v, k);
    return out;
  }
  return value;
}

/** sha256 (hex) of the redacted config with keys sorted: equal configs hash equal on every probe. */
export function configHash(config: Config): string {
  // Hashing the redacted form keeps the hash from being a way to test guesses of the password.
  return createHash("sha256")
    .update(canonicalJson(redactConfig(config)))
    .digest("hex");
}

export { canonicalJson } from "../../../contract/src/config-document.ts";
