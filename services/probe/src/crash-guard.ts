// The last line of defence: an exception nothing caught, or a rejection nobody handled, ends the
// process — on purpose. State after an unexpected throw cannot be trusted, and a supervisor
// (systemd Restart=, balena) brings a fresh process up at once. What this module adds is honesty
// about it: one structured log line with the error, its stack and the check it came from, the store
// closed (SQLite checkpoints its WAL), and a non-zero exit code instead of a silent death.
//
// The check is known through AsyncLocalStorage: the runner starts every check run inside
// runInCheck(), and everything that run schedules (timers, socket callbacks, promises) carries the
// name along, so a throw from a socket callback three ticks later still names its check.

import { AsyncLocalStorage } from "node:async_hooks";
import type { Logger } from "../../contract/src/log.ts";

/** Exit code after a crash: EX_SOFTWARE (sysexits.h), distinct from 1 (a failed check) and 2 (usage). */
export const EXIT_CRASH = 70;

const currentCheck = new AsyncLocalStorage<string>();

/** Runs `fn` with `check` as the current check of everything it starts, synchronously or later. */
export function runInCheck<T>(check: string, fn: () => T): T {
  return currentCheck.run(check, fn);
}

/** The check whose code is running now, if any. */
export function runningCheck(): string | undefined {
  return currentCheck.getStore();
}

/** What the guard does on a crash; `exit` is process.exit except in tests. */
export interface CrashGuardOptions {
  log: Logger;
  /** Closes what must be closed before the process goes (the store); must be synchronous. */
  close?: () => void;
  exit?: (code: number) => void;
}

/** Installs the process-wide handlers; returns a function that removes them. */
export function installCrashGuard(opts: CrashGuardOptions): () => void {
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  let crashing = false;
  const onFatal =
    (event: "uncaughtException" | "unhandledRejection") =>
    (reason: unknown): void => {
      // A second throw while closing up must not start a second round.
      if (crashing) return;
      crashing = true;
      const check = runningCheck();
      try {
        opts.log.fatal(
          { event, ...(check === undefined ? {} : { check }), err: asError(reason) },
          check === undefined
            ? "crash: exiting for a restart"
            : `crash in check ${check}: exiting for a restart`,
        );
        opts.log.flush();
      } catch {
        // Logging is best effort here; the exit code still tells the supervisor.
      }
      try {
        opts.close?.();
      } catch {
        // The store may be what failed; exiting matters more.
      }
      exit(EXIT_CRASH);
    };
  const onException = onFatal("uncaughtException");
  const onRejection = onFatal("unhandledRejection");
  process.on("uncaughtException", onException);
  process.on("unhandledRejection", onRejection);
  return () => {
    process.off("uncaughtException", onException);
    process.off("unhandledRejection", onRejection);
  };
}

/** pino's error serializer (type, message, stack, code) applies to Error objects under `err`. */
function asError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(`non-error thrown: ${String(reason)}`);
}
