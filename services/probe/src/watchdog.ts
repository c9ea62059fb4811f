/**
 * Liveness for supervisors: systemd's service watchdog (sd_notify(3): READY=1, WATCHDOG=1 while
 * the event loop runs, STOPPING=1) and, for containers, a heartbeat file whose age a healthcheck
 * reads. Both are fed by one timer on the event loop: if the loop is blocked, the timer does not
 * fire, the pings stop, and systemd (WatchdogSec=) or the container engine restarts the service.
 *
 * Node has no AF_UNIX datagram sockets, so messages go through the `systemd-notify` binary. Since
 * systemd 246 it follows every message with a BARRIER=1 and waits until PID 1 has processed it,
 * so the message is attributed to the unit even though the helper exits right after (the race
 * systemd-notify(1) describes); the unit needs NotifyAccess=all because the sender is the helper.
 */
import { spawn } from "node:child_process";
import { mkdirSync, utimesSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import type { Logger } from "../../contract/src/log.ts";

/** Sends one sd_notify message (newline-separated `KEY=value` lines); resolves true if delivered. */
export type NotifySender = (socket: string, state: string) => Promise<boolean>;

/** Where the notifier gets its settings (the environment systemd and the container set). */
export interface WatchdogOptions {
  /** Environment: NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID, NETPROBE_HEARTBEAT_FILE. */
  env: NodeJS.ProcessEnv;
  log: Logger;
  /** How messages reach systemd; default: the systemd-notify binary. */
  send?: NotifySender;
  /** Heartbeat file refresh period when no systemd watchdog sets a faster one (default 10 s). */
  heartbeatMs?: number;
  /** This process's pid (WATCHDOG_PID is compared with it); default process.pid. */
  pid?: number;
}

/** The systemd-notify binary as the transport: `systemd-notify KEY=value…`, exit 0 = delivered. */
export const systemdNotifyBinary: NotifySender = (socket, state) =>
  new Promise((resolve) => {
    const child = spawn("systemd-notify", state.split("\n"), {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", NOTIFY_SOCKET: socket },
      stdio: "ignore",
    });
    // A PID 1 that never answers the barrier must not leave helpers piling up.
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    child.on("error", () => {
      clearTimeout(timer);
      resolve(false);
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve(code === 0);
    });
  });

/**
 * Tells supervisors the service is alive. `start()` after the service started (READY=1),
 * `stop()` when it begins to stop (STOPPING=1). Does nothing when neither NOTIFY_SOCKET nor
 * NETPROBE_HEARTBEAT_FILE is set (a terminal, the lab).
 */
export class Watchdog {
  readonly #log: Logger;
  readonly #send: NotifySender;
  readonly #socket: string | undefined;
  readonly #watchdogMs: number | undefined;
  readonly #heartbeatFile: string | undefined;
  readonly #heartbeatMs: number;
  #timer: NodeJS.Timeout | undefined;
  #inFlight = false;
  #warned = false;

  constructor(opts: WatchdogOptions) {
    const env = opts.env;
    this.#log = opts.log;
    this.#send = opts.send ?? systemdNotifyBinary;
    this.#socket = env.NOTIFY_SOCKET || undefined;
    this.#watchdogMs = watchdogMs(env, opts.pid ?? process.pid);
    this.#heartbeatFile = env.NETPROBE_HEARTBEAT_FILE || undefined;
    this.#heartbeatMs = opts.heartbeatMs ?? 10_000;
  }

  /** The ping period: half of WatchdogSec (sd_watchdog_enabled(3)), else the heartbeat period. */
  get periodMs(): number | undefined {
    if (this.#watchdogMs !== undefined) return Math.max(Math.floor(this.#watchdogMs / 2), 50);
    return this.#heartbeatFile ? this.#heartbeatMs : undefined;
  }

  /** Sends READY=1 and starts the pings. */
  start(): void {
    this.#beat();
    this.#notify("READY=1\nSTATUS=probing");
    const period = this.periodMs;
    if (period !== undefined) this.#timer = setInterval(() => this.#tick(), period);
    if (this.#socket || this.#heartbeatFile)
      this.#log.info(
        {
          systemd: Boolean(this.#socket),
          watchdog_ms: this.#watchdogMs,
          heartbeat_file: this.#heartbeatFile,
        },
        "watchdog started",
      );
  }

  /** Stops the pings and sends STOPPING=1 (so a slow stop is not mistaken for a hang). */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    if (!this.#socket) return;
    // Bounded: a slow PID 1 must not eat into the service's own 5 s to stop.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.#deliver("STOPPING=1\nSTATUS=stopping"),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, 1000))),
    ]);
    clearTimeout(timer);
  }

  // Runs on the event loop: if this runs, the loop is turning.
  #tick(): void {
    this.#beat();
    // One helper at a time: if PID 1 is slow to answer, the next tick tries again.
    if (this.#watchdogMs !== undefined && !this.#inFlight) this.#notify("WATCHDOG=1");
  }

  #notify(state: string): void {
    if (!this.#socket) return;
    this.#inFlight = true;
    void this.#deliver(state).finally(() => (this.#inFlight = false));
  }

  async #deliver(state: string): Promise<void> {
    if (!this.#socket) return;
    let ok = false;
    try {
      ok = await this.#send(this.#socket, state);
    } catch {
      ok = false;
    }
    if (!ok && !this.#warned) {
      this.#warned = true;
      this.#log.warn({ socket: this.#socket }, "cannot notify systemd (is systemd-notify installed?)");
    }
  }

  #beat(): void {
    const file = this.#heartbeatFile;
    if (!file) return;
    try {
      const now = new Date();
      try {
        utimesSync(file, now, now);
      } catch {
        mkdirSync(dirname(file), { recursive: true });
        writeFileSync(file, `${process.pid}\n`);
      }
    } catch (err) {
      if (!this.#warned) {
        this.#warned = true;
        this.#log.warn({ file, err: String(err) }, "cannot write heartbeat file");
      }
    }
  }
}

/**
 * WatchdogSec= as systemd passes it (WATCHDOG_USEC, and WATCHDOG_PID naming the process it is
 * meant for: a child that inherited the variables must not ping for its parent).
 */
export function watchdogMs(env: NodeJS.ProcessEnv, pid: number): number | undefined {
  const usec = Number(env.WATCHDOG_USEC);
  if (!env.WATCHDOG_USEC || !Number.isFinite(usec) || usec <= 0) return undefined;
  if (env.WATCHDOG_PID && Number(env.WATCHDOG_PID) !== pid) return undefined;
  return usec / 1000;
}

/**
 * Removes the notify variables from `env` (sd_notify's unset_environment): with NotifyAccess=all,
 * anything the service spawns could otherwise ping on its behalf and hide a hang.
 */
export function takeNotifyEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const taken: NodeJS.ProcessEnv = {};
  for (const k of ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"]) {
    if (env[k] !== undefined) taken[k] = env[k];
    delete env[k];
  }
  if (env.NETPROBE_HEARTBEAT_FILE !== undefined) taken.NETPROBE_HEARTBEAT_FILE = env.NETPROBE_HEARTBEAT_FILE;
  return taken;
}
