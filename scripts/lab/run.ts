import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { constants as osConstants } from "node:os";

// Process helpers for the lab. Every command the lab runs goes through here so that it is easy to
// see that nothing touches the root namespace's network: callers pass `ip -n <ns>` or
// `ip netns exec <ns>` argv, never a bare `ip link`/`nft`.

/** Outcome of a finished command: exit code (124 = timed out, 127 = could not start, 128+n = signal n). */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options for {@link run}. */
export interface RunOptions {
  timeoutMs?: number;
  input?: string;
  /** Called with the child as soon as it exists (the lab tracks it so down() can kill it). */
  onSpawn?: (child: ChildProcess) => void;
}

/** Runs argv to completion and never throws for a failing command: the code says what happened. */
export function run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) return Promise.reject(new Error("run: empty argv"));
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
    opts.onSpawn?.(child);
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    let spawnError: Error | undefined;
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    // A child that exits before reading its input makes the pipe raise EPIPE; that is not our error.
    child.stdin.on("error", () => undefined);
    child.stdin.end(opts.input ?? "");
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, opts.timeoutMs ?? 30_000);
    child.on("error", (err) => (spawnError = err));
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (spawnError) resolve({ code: 127, stdout, stderr: `${stderr}${spawnError.message}\n` });
      else if (timedOut)
        resolve({ code: 124, stdout, stderr: `${stderr}timed out after ${opts.timeoutMs}ms\n` });
      else resolve({ code: code ?? 128 + signalNumber(signal), stdout, stderr });
    });
  });
}

/** Runs argv and returns its stdout; throws an error naming the command and its stderr if it fails. */
export async function runOk(argv: readonly string[], opts: RunOptions = {}): Promise<string> {
  const r = await run(argv, opts);
  if (r.code !== 0)
    throw new Error(`\`${argv.join(" ")}\` exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

/** Synchronous run, for teardown from a process `exit` hook where nothing asynchronous can happen. */
export function runSync(argv: readonly string[], timeoutMs = 10_000): RunResult {
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw new Error("runSync: empty argv");
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: timeoutMs, stdio: ["ignore", "pipe", "pipe"] });
  if (r.error) return { code: 127, stdout: r.stdout ?? "", stderr: r.error.message };
  return { code: r.status ?? 128 + signalNumber(r.signal), stdout: r.stdout, stderr: r.stderr };
}

function signalNumber(signal: NodeJS.Signals | null): number {
  return signal ? (osConstants.signals[signal] ?? 0) : 0;
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Blocks the thread for `ms` milliseconds (teardown from an `exit` hook only). */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * True while the process exists and has not exited. A zombie counts as exited: a child of ours that
 * died while our event loop was blocked stays a zombie until Node reaps it, and `kill(pid, 0)` would
 * still succeed on it.
 */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Field 3 (state) follows the parenthesised command name, which may itself contain ") ".
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** The kernel's start time of a process (clock ticks since boot), to tell a pid from a reused one. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

/** Sends a signal, ignoring a process that is already gone. */
export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** Last `lines` lines of a file, or a note that it does not exist. */
export function tail(path: string, lines = 20): string {
  try {
    const text = readFileSync(path, "utf8").trimEnd();
    return text.split("\n").slice(-lines).join("\n") || "(empty)";
  } catch {
    return `(no ${path})`;
  }
}
