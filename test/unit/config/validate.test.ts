import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Value } from "@sinclair/typebox/value";
import { describe, expect, it } from "vitest";
import { CHECK_KINDS } from "../../../services/probe/src/checks/registry.ts";
import {
  ConfigError,
  DEFAULT_CONFIG_PATH,
  loadConfig,
  resolveConfigPath,
  validateConfig,
  validateConfigFile,
} from "../../../services/probe/src/config/load.ts";
import { configHash, redactConfig, REDACTED } from "../../../services/probe/src/config/redact.ts";
import { ConfigSchema, type Config } from "../../../services/probe/src/config/schema.ts";
import { deriveCheckName } from "../../../services/probe/src/config/validate.ts";

const REPO = join(import.meta.dirname, "../../..");
const EXAMPLE = join(REPO, "services/probe/netprobe.example.yaml");
const FIXTURES = join(import.meta.dirname, "../../fixtures/config");
const fixture = (name: string) => join(FIXTURES, name);

/** The defaults of a check kind's options, from its own schema (the kind owns them, not this test). */
function kindDefaults(kind: string): unknown {
  const k = CHECK_KINDS[kind];
  if (!k) throw new Error(`no kind ${kind}`);
  return Value.Create(k.options);
}

function load(file: string, env: NodeJS.ProcessEnv = {}): Config {
  return loadConfig({ file, env });
}

function problemsOf(file: string, env: NodeJS.ProcessEnv = {}): string[] {
  const r = validateConfigFile(file, env);
  if (r.ok) throw new Error(`${file} unexpectedly valid`);
  return r.problems;
}

describe("a valid config", () => {
  it("the example file (every option, with its default) loads", () => {
    const config = load(EXAMPLE);
    expect(config.site).toBe("branch-042");
    expect(config.checks.map((c) => c.name)).toEqual(["gw-icmp", "icmp-203-0-113-10"]);
  });

  it("a loaded config always matches the Config schema the rest of the service codes against", () => {
    for (const file of [EXAMPLE, fixture("minimal.yaml"), fixture("anchors.yaml")]) {
      expect([...Value.Errors(ConfigSchema, load(file))], file).toEqual([]);
    }
  });

  it("a minimal file gets every default, durations in ms and sizes in bytes", () => {
    expect(load(fixture("minimal.yaml"))).toEqual({
      site: "branch-042",
      probe: "pi-01",
      log_level: "info",
      store: { path: "/var/lib/netprobe/netprobe.db", max_rows: 100_000, max_bytes: 64 * 1024 * 1024 },
      broker: {
        url: "mqtts://hq.example.com:8883",
        protocol_version: 5,
        client_id: "netprobe-branch-042-pi-01",
        username: "",
        password: "",
        ca_file: "",
        cert_file: "",
        key_file: "",
        reject_unauthorized: true,
        allow_insecure_password: false,
        commands_per_minute: 60,
        commands_burst: 30,
        keepalive_ms: 30_000,
        reconnect_min_ms: 1000,
        reconnect_max_ms: 60_000,
      },
      areas: { fail_after: 3, recover_after: 2 },
      leds: {
        backend: "terminal",
        board: "auto",
        pins: {
          link: { red: 17, green: 27 },
          lan: { red: 22, green: 23 },
          dhcp: { red: 24, green: 25 },
          dns: { red: 5, green: 6 },
          wan: { red: 12, green: 13 },
          phone: { red: 16, green: 19 },
          status: { red: 20, green: 21 },
        },
        active_low: false,
        recent_change_ms: 300_000,
        lamp_test_ms: 3000,
        blink_ms: { slow: 1000, normal: 500, fast: 125 },
        button: { pin: null, debounce_ms: 20, long_press_ms: 3000 },
      },
      defaults: { interval_ms: 60_000, timeout_ms: 10_000, jitter: 0.1 },
      checks: [
        {
          name: "icmp-192-0-2-1",
          kind: "icmp",
          target: "192.0.2.1",
          area: CHECK_KINDS.icmp?.defaultArea,
          interval_ms: 60_000,
          timeout_ms: 10_000,
          jitter: 0.1,
          enabled: true,
          options: kindDefaults("icmp"),
          thresholds: {},
        },
      ],
      stamp_reflector: {
        enabled: false,
        address: "",
        port: 862,
        allow: [],
        mode: "stateful",
        rate_pps: 100,
        burst: 50,
        max_clients: 1024,
        clock_synchronized: false,
        clock_error_ms: 1,
      },
    });
  });

  it("a check's own interval, timeout, jitter and options win over the defaults; missing options are filled", () => {
    const [gw] = load(EXAMPLE).checks;
    expect(gw).toMatchObject({ area: "lan", interval_ms: 30_000, timeout_ms: 10_000, jitter: 0.1 });
    expect(gw?.options).toEqual({ ...(kindDefaults("icmp") as object), count: 5 });
    expect(gw?.thresholds).toEqual({ rtt_avg_ms: { warn: 50, fail: 200 }, loss_pct: { warn: 5, fail: 50 } });
  });

  it("a check that only shortens its interval gets a timeout capped at that interval, not an error", () => {
    const r = validateConfig({
      site: "s",
      probe: "p",
      broker: { url: "mqtt://hq.example.com" },
      checks: [{ kind: "icmp", target: "192.0.2.1", interval: "5s" }],
    });
    expect(r.ok && r.config.checks[0]?.timeout_ms).toBe(5000);
  });

  it("anchors and merge keys let checks share settings", () => {
    const [a, b] = load(fixture("anchors.yaml")).checks;
    expect(b).toMatchObject({ name: "icmp-203-0-113-20", interval_ms: 30_000, thresholds: a?.thresholds });
  });

  it("an empty `key:` means not set: the default applies", () => {
    const r = validateConfig({
      site: "s",
      probe: "p",
      broker: { url: "mqtt://h", client_id: null },
      store: null,
    });
    expect(r.ok && r.config.broker.client_id).toBe("netprobe-s-p");
    expect(r.ok && r.config.store.max_rows).toBe(100_000);
  });

  it("durations accept plain seconds and combined units", () => {
    const r = validateConfig({
      site: "s",
      probe: "p",
      broker: { url: "ws://hq.example.com/mqtt", keepalive: 45, reconnect_max: "1m30s" },
    });
    expect(r.ok && [r.config.broker.keepalive_ms, r.config.broker.reconnect_max_ms]).toEqual([
      45_000, 90_000,
    ]);
  });
});

describe("an invalid config", () => {
  it("a file with three different mistakes reports all three, each with its path", () => {
    expect(problemsOf(fixture("three-mistakes.yaml"))).toEqual([
      "broker.url: must be an mqtt://, mqtts://, ws:// or wss:// URL",
      "checks[0].options.count: must be ≥ 1",
      "checks[1].timeout: must be ≤ interval (5s)",
    ]);
  });

  it("loadConfig throws a ConfigError carrying every problem", () => {
    let error: unknown;
    try {
      load(fixture("three-mistakes.yaml"));
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const e = error as ConfigError;
    expect(e.code).toBe("config_invalid");
    expect(e.problems).toHaveLength(3);
    expect(e.message).toContain("checks[1].timeout: must be ≤ interval (5s)");
  });

  it("a password over plain mqtt:// is accepted only with allow_insecure_password: true", () => {
    const broker = { url: "mqtt://h", username: "s/p", password: "hunter2" };
    const refused = validateConfig({ site: "s", probe: "p", broker, checks: [] });
    expect(refused.ok ? [] : refused.problems).toEqual([
      "broker.password: would be sent in clear text over mqtt://: use mqtts:// or wss://, or set broker.allow_insecure_password: true",
    ]);
    const allowed = validateConfig({
      site: "s",
      probe: "p",
      broker: { ...broker, allow_insecure_password: true },
      checks: [],
    });
    expect(allowed.ok).toBe(true);
    const tls = validateConfig({
      site: "s",
      probe: "p",
      broker: { ...broker, url: "mqtts://h" },
      checks: [],
    });
    expect(tls.ok).toBe(true);
  });

  it("an unknown kind is named with the known ones, and its options are not guessed at", () => {
    const r = validateConfig({
      site: "s",
      probe: "p",
      broker: { url: "mqtt://h" },
      checks: [{ kind: "icmpp", target: "192.0.2.1", options: { anything: 1 } }],
    });
    expect(r.ok ? [] : r.problems).toEqual([
      `checks[0].kind: unknown check kind "icmpp" (known: ${Object.keys(CHECK_KINDS).join(", ")})`,
    ]);
  });

  it("kind-specific option errors name the option under the check", () => {
    const r = validateConfig({
      site: "s",
      probe: "p",
      broker: { url: "mqtt://h" },
      checks: [
        { kind: "icmp", target: "192.0.2.1" },
        { kind: "icmp", target: "192.0.2.2", options: { count: 0, size: "big", cuont: 3 } },
      ],
    });
    expect(r.ok ? [] : r.problems).toEqual([
      "checks[1].options.count: must be ≥ 1",
      "checks[1].options.size: must be a whole number",
      'checks[1].options.cuont: unknown key (did you mean "count"?)',
    ]);
  });

  it("a YAML syntax error names file, line and column", () => {
    const dir = mkdtempSync(join(tmpdir(), "netprobe-config-"));
    const file = join(dir, "bad.yaml");
    writeFileSync(file, "site: a\nprobe: b\nchecks:\n  - kind: icmp\n   target: x\n");
    const [problem] = problemsOf(file);
    expect(problem).toMatch(new RegExp(`^${file.replaceAll("/", "\\/")}:5:\\d+: `));
  });

  it("a missing file is named", () => {
    expect(problemsOf("/nonexistent/netprobe.yaml")).toEqual([
      "/nonexistent/netprobe.yaml: cannot read config file: no such file",
    ]);
  });

  it("a directory is not a config file", () => {
    expect(problemsOf(FIXTURES)).toEqual([`${FIXTURES}: cannot read config file: is a directory`]);
  });

  it("a path from NETPROBE_CONFIG says so", () => {
    expect(() => loadConfig({ env: { NETPROBE_CONFIG: "/nonexistent/a.yaml" } })).toThrow(
      "/nonexistent/a.yaml: cannot read config file: no such file (named by NETPROBE_CONFIG)",
    );
  });

  it.skipIf(existsSync(DEFAULT_CONFIG_PATH))(
    "the default path is named with the ways to choose another",
    () => {
      expect(() => loadConfig({ env: {} })).toThrow(
        `${DEFAULT_CONFIG_PATH}: cannot read config file: no such file (the default; pass --config FILE or set NETPROBE_CONFIG)`,
      );
    },
  );

  it("an empty file reports the required keys", () => {
    const dir = mkdtempSync(join(tmpdir(), "netprobe-config-"));
    const file = join(dir, "empty.yaml");
    writeFileSync(file, "# nothing yet\n");
    expect(problemsOf(file)).toEqual([
      "site: required (or set NETPROBE_SITE)",
      "probe: required (or set NETPROBE_PROBE)",
      "broker.url: required (or set NETPROBE_BROKER_URL)",
    ]);
  });

  it("odd values anywhere never throw: they come back as problems", () => {
    const odd: unknown[] = [null, [], {}, "", 0, -1, 1.5, true, 1e308, [1, 2], { a: 1 }, "-5s"];
    const paths = [
      ["store"],
      ["store", "max_bytes"],
      ["broker", "keepalive"],
      ["defaults"],
      ["checks"],
      ["checks", "0"],
      ["checks", "0", "options"],
      ["checks", "0", "options", "count"],
      ["checks", "0", "thresholds"],
      ["checks", "0", "thresholds", "loss_pct"],
      ["checks", "0", "interval"],
    ];
    for (const path of paths) {
      for (const value of odd) {
        const raw: Record<string, unknown> = {
          site: "s",
          probe: "p",
          store: {},
          broker: { url: "mqtt://h" },
          defaults: {},
          checks: [
            { kind: "icmp", target: "x", options: { count: 1 }, thresholds: { loss_pct: { warn: 1 } } },
          ],
        };
        let node: Record<string, unknown> = raw;
        for (const seg of path.slice(0, -1)) node = node[seg] as Record<string, unknown>;
        node[path.at(-1) ?? ""] = value;
        const r = validateConfig(raw);
        if (!r.ok)
          expect(r.problems.join("\n"), `${path.join(".")} = ${JSON.stringify(value)}`).not.toContain(
            "internal",
          );
      }
    }
  });
});

describe("environment overrides", () => {
  const env = {
    NETPROBE_SITE: "branch-007",
    NETPROBE_PROBE: "pi-02",
    NETPROBE_BROKER_URL: "mqtts://hq.example.com:8883",
    NETPROBE_BROKER_USERNAME: "branch-007",
    NETPROBE_BROKER_PASSWORD: "s3cret",
    NETPROBE_BROKER_CA_FILE: "/etc/netprobe/ca.pem",
    NETPROBE_BROKER_CERT_FILE: "/etc/netprobe/client.pem",
    NETPROBE_BROKER_KEY_FILE: "/etc/netprobe/client.key",
    NETPROBE_STORE_PATH: "/data/netprobe.db",
    NETPROBE_LOG_LEVEL: "debug",
  };

  it("a fleet-wide file gets site, probe and broker from balena device variables", () => {
    const config = load(fixture("env-only.yaml"), env);
    expect(config).toMatchObject({
      site: "branch-007",
      probe: "pi-02",
      log_level: "debug",
      store: { path: "/data/netprobe.db" },
      broker: {
        url: "mqtts://hq.example.com:8883",
        client_id: "netprobe-branch-007-pi-02",
        username: "branch-007",
        password: "s3cret",
        ca_file: "/etc/netprobe/ca.pem",
        cert_file: "/etc/netprobe/client.pem",
        key_file: "/etc/netprobe/client.key",
      },
    });
  });

  it("a variable wins over the file", () => {
    expect(load(fixture("minimal.yaml"), { NETPROBE_SITE: "branch-999" }).site).toBe("branch-999");
  });

  it("an empty variable counts as unset", () => {
    expect(load(fixture("minimal.yaml"), { NETPROBE_SITE: "" }).site).toBe("branch-042");
  });

  it("NETPROBE_CONFIG names the file when --config does not", () => {
    expect(loadConfig({ env: { NETPROBE_CONFIG: fixture("minimal.yaml") } }).probe).toBe("pi-01");
    expect(resolveConfigPath({ file: "/a.yaml", env: { NETPROBE_CONFIG: "/b.yaml" } })).toBe("/a.yaml");
    expect(resolveConfigPath({ env: { NETPROBE_CONFIG: "/b.yaml" } })).toBe("/b.yaml");
    expect(resolveConfigPath({ env: {} })).toBe(DEFAULT_CONFIG_PATH);
  });

  it("bad values are reported with the variable's name, together with the file's problems", () => {
    expect(
      problemsOf(fixture("three-mistakes.yaml"), { NETPROBE_PROBE: "pi/02", NETPROBE_LOG_LEVEL: "loud" }),
    ).toEqual([
      'NETPROBE_PROBE (probe): must be 1-64 characters from A-Z a-z 0-9 _ . - (it is used in MQTT topics: no spaces, "+", "#" or "/")',
      "broker.url: must be an mqtt://, mqtts://, ws:// or wss:// URL",
      "checks[0].options.count: must be ≥ 1",
      "checks[1].timeout: must be ≤ interval (5s)",
      "NETPROBE_LOG_LEVEL (log_level): must be one of trace, debug, info, warn, error, fatal",
    ]);
  });

  it("a variable replaces a broken value from the file, so only the variable is judged", () => {
    const r = validateConfigFile(fixture("three-mistakes.yaml"), {
      NETPROBE_BROKER_URL: "mqtt://hq.example.com",
    });
    expect(r.ok ? [] : r.problems).not.toContain(
      "broker.url: must be an mqtt://, mqtts://, ws:// or wss:// URL",
    );
  });
});

describe("check names", () => {
  it("are derived from kind and target in the topic-safe alphabet", () => {
    expect(deriveCheckName("icmp", "192.0.2.1")).toBe("icmp-192-0-2-1");
    expect(deriveCheckName("icmp", "2001:db8::1")).toBe("icmp-2001-db8-1");
    expect(deriveCheckName("http", "https://Example.COM/health?x=1")).toBe(
      "http-https-example-com-health-x-1",
    );
    expect(deriveCheckName("icmp", "a".repeat(100))).toHaveLength(64);
  });
});

describe("the published config", () => {
  const withSecrets = () =>
    load(fixture("minimal.yaml"), { NETPROBE_BROKER_USERNAME: "u", NETPROBE_BROKER_PASSWORD: "s3cret" });

  it("redacts the broker password and leaves the original untouched", () => {
    const config = withSecrets();
    const redacted = redactConfig(config);
    expect(redacted.broker.password).toBe(REDACTED);
    expect(redacted.broker.username).toBe("u");
    expect(config.broker.password).toBe("s3cret");
    expect(JSON.stringify(redacted)).not.toContain("s3cret");
  });

  it("shows an unset password as empty, not as a redacted secret", () => {
    expect(redactConfig(load(fixture("minimal.yaml"))).broker.password).toBe("");
  });

  it("redacts option keys that look like secrets even when a kind does not mark them", () => {
    const config = load(fixture("minimal.yaml"));
    const check = config.checks[0];
    if (!check) throw new Error("no check");
    check.options = { ...check.options, sip_password: "pw", auth_token: "t", count: 5 };
    const options = redactConfig(config).checks[0]?.options;
    expect(options).toMatchObject({ sip_password: REDACTED, auth_token: REDACTED, count: 5 });
  });

  it("hashes the effective config stably: key order does not matter, values do", () => {
    const reverseKeys = (v: unknown): unknown =>
      Array.isArray(v)
        ? v.map(reverseKeys)
        : typeof v === "object" && v !== null
          ? Object.fromEntries(
              Object.entries(v)
                .reverse()
                .map(([k, x]) => [k, reverseKeys(x)]),
            )
          : v;
    const a = load(fixture("minimal.yaml"));
    const reversed = reverseKeys(a) as Config;
    expect(JSON.stringify(reversed)).not.toBe(JSON.stringify(a));
    expect(configHash(a)).toMatch(/^[0-9a-f]{64}$/);
    expect(configHash(reversed)).toBe(configHash(a));
    expect(configHash(load(fixture("minimal.yaml"), { NETPROBE_SITE: "branch-043" }))).not.toBe(
      configHash(a),
    );
  });

  it("the hash does not reveal the password: changing only the password keeps the hash", () => {
    const a = withSecrets();
    const b = load(fixture("minimal.yaml"), {
      NETPROBE_BROKER_USERNAME: "u",
      NETPROBE_BROKER_PASSWORD: "other",
    });
    expect(configHash(a)).toBe(configHash(b));
  });
});
