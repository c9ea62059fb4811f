// `netprobe hq serve|watch`: the headquarters fleet service and its terminal view.
import { Command, Option } from "commander";
import { createLogger, silentLogger, type Logger } from "../../contract/src/log.ts";
import { startStampReflector, type StampReflector } from "../../contract/src/net/stamp-reflector.ts";
import { Alerting } from "./alerts/alerting.ts";
import { Fleet, type ProbeView } from "./fleet.ts";
import { connectFleet } from "./fleet-link.ts";
import { HqConfigError, loadHqConfig, type HqConfig, type HqFlags } from "./hq-config.ts";
import { Access, hashPassword } from "./web-access.ts";
import { serveFleetWeb } from "./web.ts";
import { terminalSafe } from "../../contract/src/printable-text.ts";
import { reportCommand } from "./report/report-command.ts";
import { ReportSchedule } from "./report/schedule.ts";
import { defaultHistoryFile, HistoryIngest, historyStoreOf } from "./history/ingest.ts";
import { restoreSqliteHistory } from "./history/sqlite-store.ts";
import { PersistentIncidentStore } from "./alerts/incident-store.ts";
import { configCommand } from "./fleet-config/cli.ts";
import { FleetConfig } from "./fleet-config/service.ts";
import { mqttTransport } from "./fleet-config/transport.ts";

const EXIT_USAGE = 2;

function brokerOptions(cmd: Command): Command {
  return (
    cmd
      .option("-c, --config <file>", "HQ config file (YAML; docs/hq.md)")
      .option("--url <url>", "fleet broker URL (or $NETPROBE_HQ_BROKER_URL)")
      .option("--username <user>", "broker user")
      .option("--password-file <file>", "file holding the broker password (or $NETPROBE_HQ_BROKER_PASSWORD)")
      // Refused with an explanation (hq-config.ts): a password on the command line shows in `ps`.
      .addOption(new Option("--password <password>").hideHelp())
      .option("--ca <file>", "CA certificate that signed the broker's (pinned)")
      .option("--cert <file>", "client certificate")
      .option("--key <file>", "client key")
      .option("--client-id <id>", "fixed client id: a persistent session, results queue while HQ is down")
      .option(
        "--group <name>",
        "MQTT 5 shared subscription group: instances with the same group split the fleet",
      )
      .option("--mqtt3", "speak MQTT 3.1.1 (no shared subscriptions)")
  );
}

function configOrExit(flags: HqFlags): HqConfig {
  try {
    return loadHqConfig(flags);
  } catch (err) {
    console.error(err instanceof HqConfigError ? err.message : `cannot read the HQ config: ${String(err)}`);
    process.exit(EXIT_USAGE);
  }
}

function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    process.once("SIGTERM", () => resolve("SIGTERM"));
    process.once("SIGINT", () => resolve("SIGINT"));
  });
}

const ANSI: Record<string, string> = {
  green: "\x1b[32m",
  amber: "\x1b[33m",
  red: "\x1b[31m",
  off: "\x1b[90m",
};

/** One line per probe: state, last seen, the LED panel in colour, the first problem. */
export function formatFleet(probes: readonly ProbeView[], now: number, colour: boolean): string {
  const seen = (ms: number) => {
    const s = Math.max(0, Math.round((now - ms) / 1000));
    return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m` : `${Math.floor(s / 3600)}h`;
  };
  const lines = [
    `${probes.length} probes, ${probes.filter((p) => p.state === "online").length} online — ${new Date(now).toISOString()}`,
    `${"SITE/PROBE".padEnd(28)} ${"STATE".padEnd(8)} ${"SEEN".padStart(5)}  LINK LAN  DHCP DNS  WAN  TEL  STAT  PROBLEM`,
  ];
  for (const p of probes) {
    const leds = p.leds
      .map((l) => {
        const [c = "off", pattern] = l.look.split("-", 2);
        const mark = (c === "off" ? "○" : "●") + (pattern ? "*" : " ");
        return (colour ? `${ANSI[c] ?? ""}${mark}\x1b[0m` : mark) + "   ";
      })
      .join("");
    const problem =
      p.leds.find((l) => l.led !== "status" && (l.state === "failing" || l.state === "degraded")) ??
      undefined;
    lines.push(
      `${p.key.padEnd(28)} ${p.state.padEnd(8)} ${seen(p.last_seen).padStart(5)}  ${leds}${
        problem ? `${problem.led.toUpperCase()}: ${problem.reason}` : ""
      }`,
    );
  }
  lines.push("● solid  ●* blinking   (green ok, amber degraded/queuing, red failing, grey off)");
  return lines.join("\n");
}

/** `netprobe hq …` */
export function hqCommand(): Command {
  const hq = new Command("hq").description(
    "headquarters: the fleet service, its web page and a terminal view",
  );

  brokerOptions(hq.command("serve"))
    .description("subscribe to the fleet and serve the live web page (SIGTERM/SIGINT stop it)")
    .option("--host <addr>", "address to serve the page on (default 127.0.0.1)")
    .addOption(new Option("--port <port>", "HTTP port (0: any free port; default 8080)"))
    .action(async (flags: HqFlags) => {
      const cfg = configOrExit(flags);
      const log: Logger = createLogger().child({ part: "hq" });
      const h = cfg.history;
      const fleet = new Fleet({
        resultsPerCheck: h.results_per_check,
        eventsPerProbe: h.events_per_probe,
        checksPerProbe: h.checks_per_probe,
        probes: h.probes,
        payloadBytes: h.payload_bytes,
        ratePerProbe: h.rate_per_probe,
        burstPerProbe: h.burst_per_probe,
      });
      let access;
      try {
        access = new Access(cfg, log);
      } catch (err) {
        console.error(err instanceof HqConfigError ? err.message : `cannot set up access: ${String(err)}`);
        process.exit(EXIT_USAGE);
      }
      // History first: results are acknowledged to the broker only once stored (docs/hq.md, History).
      const store = historyStoreOf(cfg);
      const history = store ? new HistoryIngest(store, fleet, log.child({ part: "history" })) : undefined;
      try {
        await history?.start();
      } catch (err) {
        log.fatal({ err: String(err), engine: cfg.history.engine }, "cannot open the history store");
        process.exit(1);
      }
      let alerting: Alerting;
      try {
        const alertLog = log.child({ part: "alerts" });
        alerting = new Alerting(
          cfg,
          fleet,
          () => link.status,
          alertLog,
          store ? await PersistentIncidentStore.open(store, alertLog) : undefined,
        );
      } catch (err) {
        console.error(err instanceof HqConfigError ? err.message : `cannot set up alerts: ${String(err)}`);
        process.exit(EXIT_USAGE);
      }
      const link = connectFleet(cfg, fleet, log, undefined, history);
      alerting.start();
      // Fleet config keeps its templates and rollouts in the history store (docs/fleet-config.md).
      let fleetConfig: FleetConfig | undefined;
      try {
        fleetConfig = store
          ? new FleetConfig(
              store,
              fleet,
              mqttTransport(fleet, () => link.client),
              log.child({ part: "fleet-config" }),
            )
          : undefined;
        await fleetConfig?.start();
      } catch (err) {
        log.fatal(
          { err: String(err) },
          "cannot set up fleet config (the history store, schemas/config.schema.json)",
        );
        await link.stop();
        process.exit(1);
      }
      let web;
      try {
        web = await serveFleetWeb(
          fleet,
          () => link.status,
          cfg,
          log,
          access,
          store ?? undefined,
          alerting,
          fleetConfig,
        );
      } catch (err) {
        log.fatal({ err: String(err), host: cfg.http.host, port: cfg.http.port }, "cannot serve the page");
        await link.stop();
        process.exit(1);
      }
      log.info(
        {
          url: web.url,
          subscription: link.status.subscription,
          token_file: access.tokenFile,
          login: `${web.url}login`,
        },
        "serving the fleet page",
      );
      const reports =
        store && cfg.reports
          ? new ReportSchedule(store, cfg.reports, log.child({ part: "reports" }))
          : undefined;
      reports?.start();
      // The STAMP reflector (off by default): probes' stamp checks measure the WAN up to HQ.
      let reflector: StampReflector | undefined;
      if (cfg.stamp_reflector.enabled) {
        try {
          reflector = await startStampReflector(cfg.stamp_reflector, log.child({ part: "stamp-reflector" }));
        } catch (err) {
          log.error(
            { err: String(err), address: cfg.stamp_reflector.address },
            "cannot start the STAMP reflector",
          );
        }
      }
      const signal = await untilSignal();
      log.info({ signal, counters: fleet.counters, history: history?.counters }, "stopping");
      setTimeout(() => process.exit(1), 5000).unref();
      await reports?.stop();
      await reflector?.stop();
      await web.close();
      alerting.stop();
      await link.stop();
      // The last incident changes reach the store before it closes.
      if (alerting.store instanceof PersistentIncidentStore) await alerting.store.flush();
      await history?.stop();
      process.exit(0);
    });

  brokerOptions(hq.command("watch"))
    .description("the fleet view in the terminal, redrawn every second")
    .option("--once <seconds>", "collect for N seconds, print the view once and exit (for scripts)")
    .option("--json", "with --once: print the probes as JSON")
    .action(async (flags: HqFlags & { once?: string; json?: boolean }) => {
      const cfg = configOrExit(flags);
      const fleet = new Fleet();
      const link = connectFleet(cfg, fleet, silentLogger());
      const tty = process.stdout.isTTY;
      if (flags.once !== undefined) {
        await new Promise((r) => setTimeout(r, Number(flags.once) * 1000));
        const probes = fleet.list();
        const wasConnected = link.status.connected;
        process.stdout.write(
          `${flags.json ? JSON.stringify(probes, null, 2) : terminalSafe(formatFleet(probes, Date.now(), tty))}\n`,
        );
        await link.stop();
        process.exit(wasConnected ? 0 : 1);
      }
      const draw = () => {
        const head = link.status.connected
          ? `broker ${cfg.broker.url} connected`
          : `broker ${cfg.broker.url} NOT connected${link.status.last_error ? `: ${link.status.last_error}` : ""}`;
        process.stdout.write(
          `${tty ? "\x1b[H\x1b[2J" : ""}${terminalSafe(`${head}\n${formatFleet(fleet.list(), Date.now(), tty)}`)}\n`,
        );
      };
      const timer = setInterval(draw, 1000);
      draw();
      await untilSignal();
      clearInterval(timer);
      await link.stop();
      process.exit(0);
    });

  hq.command("backup <file>")
    .description(
      "a consistent copy of the history store while HQ runs (SQLite online backup; PostgreSQL: pg_dump -Fc)",
    )
    .option("-c, --config <file>", "HQ config file (YAML; docs/hq.md)")
    .action(async (file: string, flags: HqFlags) => {
      const cfg = configOrExit({ ...flags, url: flags.url ?? "mqtt://unused" });
      const store = historyStoreOf(cfg);
      if (!store) {
        console.error("history.engine is none: there is no history to back up");
        process.exit(EXIT_USAGE);
      }
      try {
        await store.open();
        await store.backup(file);
        const s = await store.stats();
        process.stdout.write(`${JSON.stringify({ file, ...s })}\n`);
      } catch (err) {
        console.error(`backup failed: ${String(err)}`);
        process.exitCode = 1;
      } finally {
        await store.close();
      }
    });

  hq.command("restore <file>")
    .description(
      "replace the SQLite history with a backup (stop HQ first); PostgreSQL: pg_restore (docs/hq.md)",
    )
    .option("-c, --config <file>", "HQ config file (YAML; docs/hq.md)")
    .action((file: string, flags: HqFlags) => {
      const cfg = configOrExit({ ...flags, url: flags.url ?? "mqtt://unused" });
      if (cfg.history.engine !== "sqlite") {
        console.error(
          "restore replaces an SQLite file; for PostgreSQL use pg_restore --clean --dbname=… <file> (docs/hq.md)",
        );
        process.exit(EXIT_USAGE);
      }
      try {
        const out = restoreSqliteHistory(file, cfg.history.path ?? defaultHistoryFile());
        process.stdout.write(`${JSON.stringify(out)}\n`);
      } catch (err) {
        console.error(`restore failed: ${err instanceof Error ? err.message : String(err)}`);
        process.exit(1);
      }
    });

  hq.command("hash-password")
    .description("read a password on stdin, print its scrypt hash for auth.users[].password_hash")
    .action(async () => {
      const chunks: Buffer[] = [];
      for await (const c of process.stdin as AsyncIterable<Buffer>) chunks.push(c);
      const password = Buffer.concat(chunks)
        .toString("utf8")
        .replace(/\r?\n$/, "");
      if (password.length < 8) {
        console.error("a password of at least 8 characters is needed on stdin");
        process.exit(EXIT_USAGE);
      }
      process.stdout.write(`${await hashPassword(password)}\n`);
    });

  hq.addCommand(reportCommand());
  hq.addCommand(configCommand());

  return hq;
}
