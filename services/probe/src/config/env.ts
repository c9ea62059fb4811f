/**
 * Environment overrides. balena device (and fleet) variables configure a probe without editing its
 * file, so the few per-device settings can come from the environment. This table is the only place
 * that maps variables to config keys; docs/config.md renders it.
 */

/** The variable naming the config file (when `--config` is not given). */
export const CONFIG_FILE_ENV = "NETPROBE_CONFIG";

/** One environment variable that overrides one config key. */
export interface EnvOverride {
  /** Variable name. */
  readonly name: string;
  /** Config key it sets, as path segments (`["broker", "url"]`). */
  readonly path: readonly string[];
  /** What it is for, one line (rendered in docs/config.md). */
  readonly description: string;
}

/** Every override, in the order they are documented. Values are used as strings, verbatim. */
export const ENV_OVERRIDES: readonly EnvOverride[] = [
  { name: "NETPROBE_SITE", path: ["site"], description: "site id" },
  { name: "NETPROBE_PROBE", path: ["probe"], description: "probe id" },
  { name: "NETPROBE_LOG_LEVEL", path: ["log_level"], description: "log level" },
  { name: "NETPROBE_STORE_PATH", path: ["store", "path"], description: "SQLite database file" },
  { name: "NETPROBE_BROKER_URL", path: ["broker", "url"], description: "broker URL" },
  { name: "NETPROBE_BROKER_USERNAME", path: ["broker", "username"], description: "broker user name" },
  { name: "NETPROBE_BROKER_PASSWORD", path: ["broker", "password"], description: "broker password (secret)" },
  { name: "NETPROBE_BROKER_CA_FILE", path: ["broker", "ca_file"], description: "CA bundle file" },
  {
    name: "NETPROBE_BROKER_CERT_FILE",
    path: ["broker", "cert_file"],
    description: "client certificate file",
  },
  { name: "NETPROBE_BROKER_KEY_FILE", path: ["broker", "key_file"], description: "client key file" },
];

/** The override variable for a config key, if there is one. */
export function envOverrideFor(path: readonly string[]): EnvOverride | undefined {
  return ENV_OVERRIDES.find(
    (o) => o.path.length === path.length && o.path.every((seg, i) => seg === path[i]),
  );
}

/**
 * Writes the set variables into `raw` (a parsed config file, modified in place) and returns which
 * variable set which key. An empty variable counts as unset: balena shows unset variables as "".
 * A key whose parent is not a mapping is left alone; validation reports the parent.
 */
export function applyEnvOverrides(
  raw: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
): { name: string; path: readonly string[] }[] {
  const applied: { name: string; path: readonly string[] }[] = [];
  for (const o of ENV_OVERRIDES) {
    const value = env[o.name];
    if (value === undefined || value === "") continue;
    let parent: Record<string, unknown> = raw;
    let reachable = true;
    for (const seg of o.path.slice(0, -1)) {
      const next = parent[seg] ?? (parent[seg] = {});
      if (!isMapping(next)) {
        reachable = false;
        break;
      }
      parent = next;
    }
    const leaf = o.path[o.path.length - 1];
    if (!reachable || leaf === undefined) continue;
    parent[leaf] = value;
    applied.push({ name: o.name, path: o.path });
  }
  return applied;
}

/** A YAML mapping as parsed (a plain object, not an array or null). */
export function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
