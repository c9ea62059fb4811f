import { existsSync } from "node:fs";
import { Command, Option } from "commander";
import { parse as parseYaml } from "yaml";
import { CHECK_KINDS } from "./checks/registry.ts";
import { ConfigFile, logRecovery } from "./config/config-file.ts";
import type { Config } from "./config/schema.ts";
import {
  loadConfigDocument,
  resolveConfigPath,
  validateConfig,
  validateConfigFile,
  ConfigError,
} from "./config/load.ts";
import { createLogger, silentLogger } from "../../contract/src/log.ts";
import { openLedBackend } from "./leds/led-backend.ts";
import { bootId } from "./runner/clock.ts";
import { envelope } from "./runner/result.ts";
import { scheduledChecks } from "./runner/scheduled-checks.ts";
import { runOnce } from "./runner/scheduler.ts";
import { installCrashGuard } from "./crash-guard.ts";
import { ProbeService } from "./service.ts";
import { statusCommand } from "./cli/status-command.ts";
import { VERSION } from "./version.ts";
import { takeNotifyEnv, Watchdog } from "./watchdog.ts";

/** Exit codes: 0 ok, 1 the check/command failed, 2 bad usage or invalid config. */
const EXIT_FAIL = 1;
const EXIT_USAGE = 2;

const program = new Command("netprobe")
  .version(VERSION)
  .description("Branch-office network probe: checks, LEDs, SQLite store and forward, MQTT to headquarters")
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE));

program
  .command("run")
  .description("run the probe service (SIGTERM/SIGINT stop it cleanly)")
  .option("-c, --config <file>", "config file (default: $NETPROBE_CONFIG)")
  .action(async (opts: { config?: string }) => {
    const configFile = new ConfigFile(resolveConfigPath({ file: opts.config }), process.env);
    // Before the config is read: an apply from HQ whose confirm window passed while the probe was
    // down (a crash, kill -9, a reboot) goes back to the last-known-good file now.
    let recovery = configFile.recover();
    let loaded = loadOrExit(opts.config, recovery.kind !== "waiting");
    const pending = configFile.pending();
    if (!loaded && pending) {
      // The applied file still pending confirmation does not even load: last-known-good now.
      const rolledBack = configFile.rollBack(pending.document_hash, "not_confirmed");
      if (rolledBack) recovery = { kind: "rolled_back", rolledBack };
    }
    loaded ??= loadOrExit(opts.config, true);
    const { config, documentHash } = loaded!;
    const log = createLogger(config.log_level);
    logRecovery(recovery, configFile.path, log.child({ part: "config" }));
    // Taken out of the environment first, so nothing the service spawns can ping for it.
    const watchdog = new Watchdog({ env: takeNotifyEnv(process.env), log: log.child({ part: "watchdog" }) });
    // Missing GPIO never stops the service: the backend falls back to the terminal panel.
    const leds = await openLedBackend(config.leds, log.child({ part: "leds" }));
    const service = new ProbeService(
      config,
      log,
      leds,
      // `cmd/reload` re-reads the same file with the same environment overrides; `cmd/apply_config` replaces it.
      { file: configFile, documentHash },
    );
    // An exception nothing caught: one log line naming the check, the store closed, a non-zero
    // exit for the supervisor to restart us (crash-guard.ts).
    installCrashGuard({ log, close: () => service.closeStore() });
    try {
      service.start();
    } catch (err) {
      log.fatal({ err: String(err) }, "cannot start");
      process.exit(EXIT_FAIL);
    }
    watchdog.start();
    leds.onButton({ short: () => service.runNow(), long: () => service.lampTest() });
    await new Promise<void>((resolve) => {
      const stop = (signal: string) => {
        log.info({ signal }, "stopping");
        resolve();
      };
      process.once("SIGTERM", stop);
      process.once("SIGINT", stop);
    });
    // A stuck stop must not keep a supervisor waiting forever: exit anyway after 5 s.
    setTimeout(() => process.exit(EXIT_FAIL), 5000).unref();
    await watchdog.stop();
    await service.stop();
    process.exit(0);
  });

program
  .command("check")
  .description("run one check once and print its result (options and defaults as in the config file)")
  .argument("<kind>", `check kind (${Object.keys(CHECK_KINDS).join(", ")})`)
  .requiredOption("-t, --target <target>", "what to check")
  .option(
    "-o, --option <key=value...>",
    "check option, repeatable; the value is YAML as in the config file (-o count=10 -o mos=true -o resolvers=[dhcp,192.0.2.53])",
  )
  .option("--timeout <duration>", "run timeout, e.g. 10s")
  .option("--json", "print the result envelope as JSON")
  .option("--force", "run on demand: a check that loads the link (throughput) runs outside its windows")
  .action(
    async (
      kind: string,
      opts: { target: string; option?: string[]; timeout?: string; json?: boolean; force?: boolean },
    ) => {
      const options: Record<string, unknown> = {};
      for (const kv of opts.option ?? []) {
        const eq = kv.indexOf("=");
        if (eq < 1) usage(`--option ${kv}: expected key=value`);
        try {
          options[kv.slice(0, eq)] = parseYaml(kv.slice(eq + 1));
        } catch (err) {
          usage(
            `--option ${kv}: the value is not YAML (${err instanceof Error ? err.message.split("\n")[0] : String(err)})`,
          );
        }
      }
      // One check in a throwaway config: the same validation, defaults and messages as `run`.
      const checked = validateConfig({
        site: "cli",
        probe: "cli",
        broker: { url: "mqtt://localhost" },
        checks: [
          {
            kind,
            target: opts.target,
            options,
            ...(opts.timeout ? { timeout: opts.timeout, interval: "24h" } : {}),
          },
        ],
      });
      if (!checked.ok) usage(checked.problems.map((p) => p.replace(/^checks\[0\]\./, "")).join("\n"));
      // The same scheduled check and envelope as the service's: thresholds and all.
      const [check] = scheduledChecks(checked.config);
      installCrashGuard({ log: createLogger("fatal") });
      const run = await runOnce(
        check!,
        { log: silentLogger(), ...(opts.force ? { onDemand: true } : {}) },
        silentLogger(),
      );
      const result = envelope(run, { site: "cli", probe: "cli", bootId: bootId(), version: VERSION });
      if (opts.json) console.log(JSON.stringify(result, null, 2));
      else {
        const skipped = result.detail.skipped;
        const why = result.error
          ? ` (${result.error.code}: ${result.error.message})`
          : typeof skipped === "string"
            ? `, skipped (${skipped}: ${String(result.detail.skip_reason)})`
            : "";
        console.log(`${result.kind} ${result.target}: ${result.status}${why}`);
        for (const [k, v] of Object.entries(result.metrics)) console.log(`  ${k} = ${v}`);
      }
      // A skipped run measured nothing: a script must not read it as a pass.
      const measured = result.detail.skipped === undefined;
      process.exit(measured && (result.status === "ok" || result.status === "warn") ? 0 : EXIT_FAIL);
    },
  );

const config = program.command("config").description("config tools");
config
  .command("validate")
  .description("validate a config file; prints every problem with its path")
  .argument("<file>")
  .action((file: string) => {
    const r = validateConfigFile(file);
    if (r.ok) {
      console.log(`${file}: ok (${r.config.checks.length} checks)`);
      return;
    }
    console.error(`${file}: ${r.problems.length} problem${r.problems.length === 1 ? "" : "s"}`);
    for (const p of r.problems) console.error(`  ${p}`);
    process.exit(EXIT_USAGE);
  });

program
  .command("status")
  .description("the LED panel and the last result of each check, read from the probe's database")
  .option("-c, --config <file>", "config file (default: $NETPROBE_CONFIG)")
  .option("--db <path>", "database path (instead of the config's store.path)")
  .option("--json", "machine-readable output")
  .action((opts: { config?: string; db?: string; json?: boolean }) => {
    const db = opts.db ?? loadOrExit(opts.config).store.path;
    process.exit(statusCommand(db, opts.json ?? false));
  });

// `lab` (the simulated branch office, a tool of the repository: scripts/lab/) and `hq`
// (headquarters, which has its own bin too: services/hq/bin/netprobe-hq) are tools beside the
// appliance: loaded only when asked for, always from the TypeScript sources (the compiled tree in
// dist/ holds the appliance alone; see scripts/build.ts). The probe service never pays for them.
const TOOLS: Record<string, { file: string; make: string; description: string }> = {
  lab: {
    file: "scripts/lab/lab-command.ts",
    make: "labCommand",
    description: "the simulated branch office in network namespaces (root needed; in a checkout)",
  },
  hq: {
    file: "services/hq/src/hq-command.ts",
    make: "hqCommand",
    description: "headquarters: the fleet service, its web page and a terminal view",
  },
};
const tool = TOOLS[process.argv[2] ?? ""];
if (tool !== undefined) {
  // Relative to the repository root, which is three levels up from services/probe/src and from dist/probe/src alike.
  const file = new URL(`../../../${tool.file}`, import.meta.url);
  if (!existsSync(file))
    usage(`netprobe ${process.argv[2]}: not in this installation (${tool.file} is missing)`);
  const mod = (await import(file.href)) as Record<string, () => Command>;
  program.addCommand(mod[tool.make]!());
} else {
  for (const [name, t] of Object.entries(TOOLS)) program.command(name).description(t.description);
}
program.addOption(new Option("--no-color", "no ANSI colours").hideHelp());

function loadOrExit(file: string | undefined): Config;
function loadOrExit(
  file: string | undefined,
  exit: boolean,
): ReturnType<typeof loadConfigDocument> | undefined;
/** Loads the config; an invalid one is printed and exits 2 (or, with `exit` false, comes back undefined). */
function loadOrExit(file: string | undefined, exit?: boolean) {
  try {
    const loaded = loadConfigDocument({ file, env: process.env });
    return exit === undefined ? loaded.config : loaded;
  } catch (err) {
    if (err instanceof ConfigError) {
      if (exit === false) return undefined;
      console.error(`invalid config: ${err.problems.length} problem${err.problems.length === 1 ? "" : "s"}`);
      for (const p of err.problems) console.error(`  ${p}`);
      process.exit(EXIT_USAGE);
    }
    throw err;
  }
}

function usage(message: string): never {
  console.error(message);
  process.exit(EXIT_USAGE);
}

await program.parseAsync(process.argv);
