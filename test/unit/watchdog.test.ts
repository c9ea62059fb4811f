// The systemd watchdog, end to end except PID 1 itself (systemd is not the init here): the real
// Watchdog, the real systemd-notify binary, and a notify socket that records what systemd would
// receive. The unit sets WatchdogSec=; this is what it relies on: READY=1 at start, WATCHDOG=1
// more often than WatchdogSec while the event loop runs, none while it is blocked, STOPPING=1.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../services/contract/src/log.ts";
import { takeNotifyEnv, Watchdog, watchdogMs } from "../../services/probe/src/watchdog.ts";
import { listenNotify, type NotifySocket } from "../doubles/notify-socket.ts";

const CHILD = new URL("../fixtures/watchdog-child.ts", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "netprobe-watchdog-"));
const children: ChildProcess[] = [];
const sockets: NotifySocket[] = [];
let n = 0;

afterEach(() => {
  for (const c of children.splice(0)) c.kill("SIGKILL");
  for (const s of sockets.splice(0)) s.close();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function service(env: Record<string, string>): Promise<{ sock: NotifySocket; child: ChildProcess }> {
  const sock = await listenNotify(join(dir, `notify-${n++}.sock`));
  sockets.push(sock);
  const child = spawn(process.execPath, [CHILD], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", NOTIFY_SOCKET: sock.path, ...env },
    stdio: "inherit",
  });
  children.push(child);
  return { sock, child };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, ms: number, fn: () => T | undefined | false): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(25);
  }
}

function exitOf(child: ChildProcess): Promise<number | string> {
  if (child.exitCode !== null || child.signalCode !== null)
    return Promise.resolve(child.exitCode ?? child.signalCode!);
  return new Promise((r) => child.once("exit", (code, sig) => r(code ?? sig ?? -1)));
}

/** Largest gap between consecutive WATCHDOG=1 pings, ms. */
function maxGap(sock: NotifySocket): number {
  const at = sock.with("WATCHDOG=1").map((m) => m.at);
  return Math.max(...at.slice(1).map((t, i) => t - at[i]!));
}

describe("systemd watchdog (WatchdogSec=2s, via systemd-notify)", { timeout: 30_000 }, () => {
  it("a healthy service says READY=1, pings WATCHDOG=1 well within WatchdogSec, and STOPPING=1 on SIGTERM", async () => {
    const { sock, child } = await service({ WATCHDOG_USEC: "2000000" });
    await until("READY=1", 5000, () => sock.with("READY=1").length > 0);
    await until("5 watchdog pings", 10_000, () => sock.with("WATCHDOG=1").length >= 5);
    expect(sock.messages[0]!.lines).toContain("READY=1");
    // Pings every WatchdogSec/2 = 1 s; systemd restarts after 2 s without one.
    expect(maxGap(sock)).toBeLessThan(2000);
    child.kill("SIGTERM");
    expect(await exitOf(child)).toBe(0);
    expect(sock.messages.at(-1)!.lines).toContain("STOPPING=1");
  });

  it("an event loop blocked for longer than WatchdogSec sends no ping, so a systemd-like supervisor restarts it", async () => {
    const watchdogSec = 2000;
    const { sock, child } = await service({ WATCHDOG_USEC: String(watchdogSec * 1000), BLOCK_MS: "8000" });
    await until("2 watchdog pings", 10_000, () => sock.with("WATCHDOG=1").length >= 2);
    // What PID 1 does with WatchdogSec=: no WATCHDOG=1 for that long → SIGABRT (WatchdogSignal).
    let lastPing = Date.now();
    let seen = sock.with("WATCHDOG=1").length;
    let supervisorFired = false;
    const supervisor = setInterval(() => {
      const now = sock.with("WATCHDOG=1").length;
      if (now !== seen) [seen, lastPing] = [now, Date.now()];
      else if (!supervisorFired && Date.now() - lastPing > watchdogSec) {
        supervisorFired = true;
        child.kill("SIGABRT");
      }
    }, 50);
    child.kill("SIGUSR2"); // the loop is now busy for 8 s
    const code = await exitOf(child);
    clearInterval(supervisor);
    expect(supervisorFired).toBe(true);
    expect(code).toBe("SIGABRT");
    // Nothing arrived after the block began: the last ping is older than WatchdogSec at the kill.
    expect(sock.with("STOPPING=1")).toHaveLength(0);

    // Restart=on-failure: the new instance notifies again.
    const again = await service({ WATCHDOG_USEC: String(watchdogSec * 1000) });
    await until("READY=1 after restart", 5000, () => again.sock.with("READY=1").length > 0);
    await until("a ping after restart", 5000, () => again.sock.with("WATCHDOG=1").length > 0);
  });

  it("a short stall (shorter than WatchdogSec) does not miss the deadline", async () => {
    const { sock, child } = await service({ WATCHDOG_USEC: "2000000", BLOCK_MS: "400" });
    await until("2 watchdog pings", 10_000, () => sock.with("WATCHDOG=1").length >= 2);
    child.kill("SIGUSR2");
    const before = sock.with("WATCHDOG=1").length;
    await until("3 more pings", 10_000, () => sock.with("WATCHDOG=1").length >= before + 3);
    expect(maxGap(sock)).toBeLessThan(2000);
  });

  it("WATCHDOG_PID naming another process (an inherited environment) means no pings for us", async () => {
    const { sock } = await service({ WATCHDOG_USEC: "200000", WATCHDOG_PID: "1" });
    await until("READY=1", 5000, () => sock.with("READY=1").length > 0);
    await sleep(600);
    expect(sock.with("WATCHDOG=1")).toHaveLength(0);
  });
});

describe("watchdog settings", () => {
  it("reads WatchdogSec from WATCHDOG_USEC, only for the process WATCHDOG_PID names", () => {
    expect(watchdogMs({ WATCHDOG_USEC: "30000000" }, 42)).toBe(30_000);
    expect(watchdogMs({ WATCHDOG_USEC: "30000000", WATCHDOG_PID: "42" }, 42)).toBe(30_000);
    expect(watchdogMs({ WATCHDOG_USEC: "30000000", WATCHDOG_PID: "7" }, 42)).toBeUndefined();
    expect(watchdogMs({ WATCHDOG_USEC: "0" }, 42)).toBeUndefined();
    expect(watchdogMs({ WATCHDOG_USEC: "soon" }, 42)).toBeUndefined();
    expect(watchdogMs({}, 42)).toBeUndefined();
  });

  it("takes the notify variables out of the environment, so children cannot ping for the service", () => {
    const env: NodeJS.ProcessEnv = {
      NOTIFY_SOCKET: "/run/x",
      WATCHDOG_USEC: "1",
      WATCHDOG_PID: "2",
      HOME: "/",
    };
    const taken = takeNotifyEnv(env);
    expect(env).toEqual({ HOME: "/" });
    expect(taken).toEqual({ NOTIFY_SOCKET: "/run/x", WATCHDOG_USEC: "1", WATCHDOG_PID: "2" });
  });

  it("refreshes the container healthcheck's heartbeat file while the loop runs", async () => {
    const file = join(dir, "run", "heartbeat");
    const w = new Watchdog({ env: { NETPROBE_HEARTBEAT_FILE: file }, log: silentLogger(), heartbeatMs: 100 });
    w.start();
    const first = statSync(file).mtimeMs;
    writeFileSync(join(dir, "marker"), "");
    await until("a newer heartbeat", 3000, () => statSync(file).mtimeMs > first);
    await w.stop();
  });
});
