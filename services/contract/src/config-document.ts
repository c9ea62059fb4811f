/**
 * The config document HQ delivers to a probe (`cmd/apply_config`, docs/fleet-config.md) and the
 * hash both sides compute of it. The document is what a probe's config file holds (before
 * defaults and environment overrides): HQ composes it from templates, the probe validates it with
 * its own schema, writes it as its config file and reports the hash of the file it runs in the
 * retained `config` topic (`document_hash`), so HQ sees drift — a local edit as well as a failed
 * rollout — by comparing two strings.
 */
import { createHash } from "node:crypto";

/** JSON with object keys sorted at every level (array order kept). */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        )
      : v,
  );
}

/** sha256 (hex) of a config document in canonical JSON: equal documents hash equal on both sides. */
export function documentHash(document: unknown): string {
  return createHash("sha256").update(canonicalJson(document)).digest("hex");
}

/** A document hash: 64 lowercase hex digits. */
export const DOCUMENT_HASH_PATTERN = "^[0-9a-f]{64}$";

/** Confirm window when HQ does not say: an applied config not confirmed by then is rolled back. */
export const CONFIRM_DEFAULT_S = 300;
/** Shortest and longest confirm windows a command may ask for. */
export const CONFIRM_MIN_S = 10;
export const CONFIRM_MAX_S = 3600;
