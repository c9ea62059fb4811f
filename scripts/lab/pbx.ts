// The lab's PBX (issue 5): a hosted PBX / SIP trunk on the WAN side, behind the office's NAT like
// a real one. kamailio (from Debian) answers OPTIONS, registers one test account with digest
// authentication and proxies INVITEs for the `echo` extension to rtp-echo.ts, the project's own
// echo service whose impairment (delay, jitter, loss, one-way audio) is known ground truth.
//
//   wan(pbx0) 203.0.113.1/32 ── peer ── (eth0)pbx 203.0.113.60  kamailio :5060 udp+tcp
//                                                                 rtp-echo :5070 udp, RTP 20000+

import { spawn } from "node:child_process";
import {
  accessSync,
  closeSync,
  constants as fsConstants,
  openSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";
import { run, runOk, signal, sleep, tail } from "./run.ts";
import { ADDR, type LabHost } from "./topology.ts";

/** The lab PBX's account and addresses (documentation ranges only). */
export const PBX = {
  address4: ADDR.pbx4,
  address6: ADDR.pbx6,
  /** wan's side of the point-to-point link. */
  wanAddress6: "2001:db8:60::1",
  sipPort: 5060,
  echoPort: 5070,
  domain: "pbx.lab.example",
  username: "office100",
  password: "lab-office100-secret",
  /** What sip-auth-fail changes the account's password to on the PBX. */
  changedPassword: "changed-by-the-pbx-admin",
  extension: "echo",
  /** Digest algorithm kamailio challenges with ("MD5" or "SHA-256", RFC 8760). */
  algorithm: "SHA-256",
} as const;

/** What the faults make of the PBX. */
export interface PbxState {
  /** kamailio stopped. */
  down: boolean;
  /** The account's password was changed on the PBX (the probe keeps the old one). */
  authFail: boolean;
  /** Share of echoed RTP packets the echo drops (0–100). */
  loss_pct: number;
  /** RFC 3550 jitter the echo adds, in ms (a random hold of 0–3×jitter per packet). */
  jitter_ms: number;
  /** Fixed hold of every echoed packet (ms). */
  delay_ms: number;
  /** The echo sends no RTP back (its RTCP receiver reports still flow). */
  oneWay: boolean;
}

/** The PBX with every fault off. */
export const PBX_HEALTHY: PbxState = {
  down: false,
  authFail: false,
  loss_pct: 0,
  jitter_ms: 0,
  delay_ms: 0,
  oneWay: false,
};

type Namespaces = Record<LabHost, string>;

/** Debian package of each command the PBX needs. */
const COMMANDS: Record<string, string> = { kamailio: "kamailio", sipsak: "sipsak" };

/** Path of the echo's impairment file (read at every INVITE) in a lab directory. */
export function echoConfigPath(dir: string): string {
  return join(dir, "rtp-echo.json");
}

/** Path of the echo's per-call ground truth (one JSON line per finished call). */
export function echoCallsPath(dir: string): string {
  return join(dir, "rtp-echo-calls.jsonl");
}

/** Builds the PBX host's link and routes, starts kamailio and the echo, waits until both answer. */
export async function buildPbx(ns: Namespaces, dir: string): Promise<void> {
  const missing = Object.entries(COMMANDS).filter(([cmd]) => !onPath(cmd));
  if (missing.length)
    throw new Error(
      `the lab PBX needs ${missing.map(([c, p]) => `${c} (Debian package ${p})`).join(", ")}: run scripts/setup.sh`,
    );
  if ((await run(["ip", "-n", ns.pbx, "link", "show", "dev", "eth0"])).code !== 0) {
    if ((await run(["ip", "-n", ns.wan, "link", "show", "dev", "pbx0"])).code === 0)
      await runOk(["ip", "-n", ns.wan, "link", "del", "pbx0"]);
    // Created from inside wan, peer placed straight into pbx: never in the root namespace.
    await runOk([
      "ip",
      "-n",
      ns.wan,
      "link",
      "add",
      "pbx0",
      "type",
      "veth",
      "peer",
      "name",
      "eth0",
      "netns",
      ns.pbx,
    ]);
  }
  // A point-to-point /32 (peer) link: the PBX sits inside the HQ /25 by address but on its own wire.
  const batches: [string, string[]][] = [
    [
      ns.wan,
      [
        "link set pbx0 up",
        `addr replace ${ADDR.wanHq4}/32 peer ${PBX.address4}/32 dev pbx0`,
        `addr replace ${PBX.wanAddress6}/64 dev pbx0 nodad`,
      ],
    ],
    [
      ns.pbx,
      [
        "link set eth0 up",
        `addr replace ${PBX.address4}/32 peer ${ADDR.wanHq4}/32 dev eth0`,
        `addr replace ${PBX.address6}/64 dev eth0 nodad`,
        `route replace default via ${ADDR.wanHq4} dev eth0`,
        `route replace default via ${PBX.wanAddress6} dev eth0`,
      ],
    ],
  ];
  for (const [n, lines] of batches)
    await runOk(["ip", "-n", n, "-batch", "-"], { input: `${lines.join("\n")}\n` });
  await applyPbx(ns, dir, PBX_HEALTHY, true);
}

/** Applies the PBX faults; restarts kamailio only when its config or running state must change. */
export async function applyPbx(ns: Namespaces, dir: string, state: PbxState, fresh = false): Promise<void> {
  writeFileSync(
    echoConfigPath(dir),
    `${JSON.stringify({ loss_pct: state.loss_pct, jitter_ms: state.jitter_ms, delay_ms: state.delay_ms, one_way: state.oneWay })}\n`,
  );
  const config = kamailioConfig(state.authFail ? PBX.changedPassword : PBX.password);
  const configPath = join(dir, "kamailio.cfg");
  let previous = "";
  try {
    previous = readFileSync(configPath, "utf8");
  } catch {
    // first start
  }
  const running = pidAlive(join(dir, "kamailio.pid"), "kamailio");
  if (fresh || state.down || previous !== config) await stopPid(join(dir, "kamailio.pid"), "kamailio");
  if (fresh || !pidAlive(join(dir, "rtp-echo.pid"), "rtp-echo")) await startEcho(ns.pbx, dir);
  if (state.down) return;
  writeFileSync(configPath, config);
  if (fresh || !running || previous !== config) await startKamailio(ns.pbx, dir, configPath);
}

/** The kamailio configuration of the lab PBX. */
export function kamailioConfig(password: string): string {
  const modules = [
    "kex",
    "corex",
    "tm",
    "tmx",
    "sl",
    "rr",
    "pv",
    "maxfwd",
    "usrloc",
    "registrar",
    "textops",
    "siputils",
    "xlog",
    "auth",
  ];
  return [
    "#!KAMAILIO",
    "# netprobe lab PBX: one account, OPTIONS, REGISTER with digest auth, INVITE to the echo.",
    "debug=1",
    "log_stderror=yes",
    "children=2",
    "tcp_children=2",
    "auto_aliases=no",
    `alias="${PBX.domain}"`,
    `listen=udp:${PBX.address4}:${PBX.sipPort}`,
    `listen=tcp:${PBX.address4}:${PBX.sipPort}`,
    'server_header="Server: kamailio (netprobe lab PBX)"',
    `mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/:/usr/lib/kamailio/modules/:/usr/lib/aarch64-linux-gnu/kamailio/modules/"`,
    ...modules.map((m) => `loadmodule "${m}.so"`),
    'modparam("usrloc", "db_mode", 0)',
    'modparam("rr", "enable_full_lr", 1)',
    `modparam("auth", "algorithm", "${PBX.algorithm}")`,
    // A fixed nonce secret: nonces stay valid across the restarts that sip-auth-fail makes.
    'modparam("auth", "secret", "netprobe-lab-nonce-secret")',
    "",
    "request_route {",
    '  if (!mf_process_maxfwd_header("10")) { sl_send_reply("483", "Too Many Hops"); exit; }',
    "  force_rport();",
    "  if (has_totag()) {",
    "    if (loose_route()) { t_relay(); exit; }",
    '    if (is_method("ACK")) { if (t_check_trans()) { t_relay(); } exit; }',
    '    sl_send_reply("404", "Not Here"); exit;',
    "  }",
    '  if (is_method("CANCEL")) { if (t_check_trans()) { t_relay(); } exit; }',
    "  t_check_trans();",
    '  if (is_method("OPTIONS")) { sl_send_reply("200", "OK"); exit; }',
    '  if (is_method("REGISTER|INVITE")) {',
    // flags 0: plain password; checks 1: the digest user must be the From user.
    `    if ($fU != "${PBX.username}" || !pv_auth_check("$fd", "${password}", "0", "1")) {`,
    '      auth_challenge("$fd", "1");',
    "      exit;",
    "    }",
    "    consume_credentials();",
    "  }",
    '  if (is_method("REGISTER")) { save("location"); exit; }',
    '  if (is_method("INVITE")) {',
    "    record_route();",
    `    if ($rU == "${PBX.extension}") { $du = "sip:${PBX.address4}:${PBX.echoPort}"; t_relay(); exit; }`,
    '    sl_send_reply("404", "Not Found"); exit;',
    "  }",
    '  sl_send_reply("405", "Method Not Allowed");',
    "}",
    "",
  ].join("\n");
}

async function startKamailio(pbxNs: string, dir: string, configPath: string): Promise<void> {
  const logPath = join(dir, "kamailio.log");
  const pid = spawnDetached(
    pbxNs,
    ["kamailio", "-f", configPath, "-DD", "-E", "-m", "32", "-M", "4"],
    logPath,
  );
  writeFileSync(join(dir, "kamailio.pid"), String(pid));
  await waitReady(pbxNs, "kamailio", logPath, join(dir, "kamailio.pid"), async () => {
    const r = await run(
      ["ip", "netns", "exec", pbxNs, "sipsak", "-s", `sip:${PBX.address4}:${PBX.sipPort}`, "-D", "1"],
      {
        timeoutMs: 3_000,
      },
    );
    return r.code === 0 ? undefined : `sipsak OPTIONS: ${(r.stdout + r.stderr).trim() || `exit ${r.code}`}`;
  });
}

async function startEcho(pbxNs: string, dir: string): Promise<void> {
  await stopPid(join(dir, "rtp-echo.pid"), "rtp-echo");
  const script = fileURLToPath(new URL("./rtp-echo.ts", import.meta.url));
  const logPath = join(dir, "rtp-echo.log");
  const pid = spawnDetached(
    pbxNs,
    [
      process.execPath,
      script,
      "--address",
      PBX.address4,
      "--port",
      String(PBX.echoPort),
      "--config",
      echoConfigPath(dir),
      "--calls",
      echoCallsPath(dir),
    ],
    logPath,
  );
  writeFileSync(join(dir, "rtp-echo.pid"), String(pid));
  await waitReady(pbxNs, "rtp-echo", logPath, join(dir, "rtp-echo.pid"), async () => {
    const r = await run(
      ["ip", "netns", "exec", pbxNs, "sipsak", "-s", `sip:${PBX.address4}:${PBX.echoPort}`, "-D", "1"],
      {
        timeoutMs: 3_000,
      },
    );
    return r.code === 0 ? undefined : `sipsak OPTIONS: ${(r.stdout + r.stderr).trim() || `exit ${r.code}`}`;
  });
}

function spawnDetached(ns: string, argv: string[], logPath: string): number {
  const fd = openSync(logPath, "a");
  try {
    // NODE_OPTIONS cleared: a test runner's loaders must not follow the echo.
    const child = spawn("ip", ["netns", "exec", ns, ...argv], {
      detached: true,
      stdio: ["ignore", fd, fd],
      env: { ...process.env, NODE_OPTIONS: "" },
    });
    child.on("error", () => undefined);
    child.unref();
    if (child.pid === undefined) throw new Error(`could not start ${argv[0]} in ${ns}`);
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

async function waitReady(
  ns: string,
  name: string,
  logPath: string,
  pidFile: string,
  check: () => Promise<string | undefined>,
): Promise<void> {
  const deadline = Date.now() + 15_000;
  let last = "not checked";
  for (;;) {
    const pid = Number(readFileSync(pidFile, "utf8"));
    if (!procExists(pid))
      throw new Error(`${name} exited at start in ${ns}\n--- last lines of ${logPath} ---\n${tail(logPath)}`);
    const problem = await check();
    if (problem === undefined) return;
    last = problem;
    if (Date.now() > deadline)
      throw new Error(
        `${name} did not answer within 15 s in ${ns}: ${last}\n--- last lines of ${logPath} ---\n${tail(logPath)}`,
      );
    await sleep(100);
  }
}

function pidAlive(pidFile: string, comm: string): boolean {
  try {
    const pid = Number(readFileSync(pidFile, "utf8"));
    // `ip netns exec` execs in place, so the pid becomes the daemon's own.
    const c = readFileSync(`/proc/${pid}/comm`, "utf8").trim();
    return c === comm || c === "ip";
  } catch {
    return false;
  }
}

async function stopPid(pidFile: string, comm: string): Promise<void> {
  if (!pidAlive(pidFile, comm)) return;
  const pid = Number(readFileSync(pidFile, "utf8"));
  signal(pid, "SIGTERM");
  for (let i = 0; i < 150 && procExists(pid); i++) await sleep(20);
  if (procExists(pid)) signal(pid, "SIGKILL");
  for (let i = 0; i < 100 && procExists(pid); i++) await sleep(20);
}

function procExists(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

function onPath(cmd: string): boolean {
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/sbin"];
  return dirs.some((d) => {
    try {
      accessSync(join(d, cmd), fsConstants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}
