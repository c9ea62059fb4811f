import { pino } from "pino";

/** Structured JSON logger, one event per line (docs/architecture.md, "Conventions"). */
export type Logger = pino.Logger;

/** Creates the service logger; `level` comes from config or NETPROBE_LOG_LEVEL. */
export function createLogger(level: string = process.env.NETPROBE_LOG_LEVEL ?? "info"): Logger {
  return pino(
    { level, base: { svc: "netprobe" }, redact: ["*.password", "*.key", "password", "key"] },
    pino.destination(2),
  );
}

/** A logger that discards everything, for tests and one-shot CLI runs. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
