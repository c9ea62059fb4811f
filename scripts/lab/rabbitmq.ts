// A second fleet broker for the lab: RabbitMQ with its MQTT plugin (Debian 12's rabbitmq-server
// 3.10, MQTT 3.1.1 only), the kind of clustered broker a large fleet runs on. It is not one of the
// lab's standing daemons (peers.ts): Erlang takes seconds to boot, so only the tests that need it
// start it, inside the lab's hq namespace next to mosquitto, on other ports:
//
//   203.0.113.50:1884  MQTT, passwords           203.0.113.50:8884  MQTT over mutual TLS + passwords
//
// Everything of the node lives in `<lab dir>/rabbitmq/`: config, definitions (users and topic
// permissions, loaded at boot: much faster than rabbitmqctl calls), Mnesia, logs, the Erlang cookie
// (HOME) and a node name of its own, so neither the Debian service's node nor another lab's is
// touched. epmd and Erlang distribution listen on the namespace's loopback only; epmd is started
// by the node inside the namespace and killed by stop() (and by the lab's namespace sweep).
import type { ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { LAB_BROKER_USERS, labCredentials, tlsDir, type LabBrokerUser } from "./broker-tls.ts";
import type { Lab } from "./lab.ts";
import { isAlive, run, signal, sleep, tail, type RunResult } from "./run.ts";
import { ADDR } from "./topology.ts";

/** MQTT over plain TCP (username + password). mosquitto has 1883. */
export const RABBIT_MQTT_PORT = 1884;
/** MQTT over TLS: the lab CA's broker certificate, client certificate required, plus password. */
export const RABBIT_MQTT_TLS_PORT = 8884;

const SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"; // not /usr/sbin's wrapper: it su's to `rabbitmq`
const CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl";
const READY_TIMEOUT_MS = 60_000;

/** Options of {@link startRabbitMq}. */
export interface RabbitMqOptions {
  /** Lab users to create (default: every user of LAB_BROKER_USERS, same names and passwords). */
  users?: readonly LabBrokerUser[];
  /** Confine each user to its topics like deploy/mosquitto's ACL (default true). */
  topicAcl?: boolean;
}

/** A running RabbitMQ node in a lab. */
export interface RabbitMq {
  /** The MQTT listeners' address (the lab's HQ address). */
  host: string;
  /** Plain MQTT port. */
  port: number;
  /** MQTT over TLS port. */
  tlsPort: number;
  /** Erlang node name (`netprobe-<lab>@localhost`). */
  nodename: string;
  /** The node's directory. */
  dir: string;
  /** The node's own log. */
  logPath: string;
  /** ms from the spawn of the node to its first CONNACK, for the last start. */
  startupMs: number;
  /** A LabCredentials file for `user` pointing at this node's TLS listener (test/lab/mqtt-driver.ts reads it). */
  credentialsFile(user: LabBrokerUser): string;
  /** NETPROBE_BROKER_* variables that point the probe's uplink at this node as `user` (TLS). */
  probeEnv(user?: LabBrokerUser): Record<string, string>;
  /** rabbitmqctl against this node, inside the namespace. */
  ctl(args: readonly string[]): Promise<RunResult>;
  /** Stops the node (SIGTERM: a clean shutdown that keeps durable queues and persistent messages) and its epmd. */
  stop(): Promise<void>;
  /** Starts the stopped node again from the same Mnesia directory; resolves with its start-up ms. */
  start(): Promise<number>;
}

/** Starts a RabbitMQ node with the MQTT plugin in the lab's hq namespace; resolves once it accepts MQTT logins. */
export async function startRabbitMq(lab: Lab, opts: RabbitMqOptions = {}): Promise<RabbitMq> {
  const users = opts.users ?? (Object.keys(LAB_BROKER_USERS) as LabBrokerUser[]);
  const dir = join(lab.info.dir, "rabbitmq");
  const nodename = `netprobe-${lab.info.name}@localhost`;
  const logDir = join(dir, "log");
  const home = join(dir, "home");
  for (const d of [dir, logDir, home, join(dir, "mnesia"), join(dir, "conf.d")])
    mkdirSync(d, { recursive: true, mode: 0o700 });
  // Both the node and rabbitmqctl read the cookie from $HOME; an Erlang cookie must be private.
  writeFileSync(join(home, ".erlang.cookie"), randomBytes(20).toString("hex"), { mode: 0o400, flag: "w" });
  writeFileSync(join(dir, "enabled_plugins"), "[rabbitmq_mqtt].\n");
  writeFileSync(
    join(dir, "definitions.json"),
    JSON.stringify(definitions(lab.info.dir, users, opts), null, 2),
  );
  writeFileSync(join(dir, "rabbitmq.conf"), config(lab.info.dir, dir));
  writeFileSync(join(dir, "rabbitmq-env.conf"), "# the lab sets everything in the environment\n");
  for (const user of users) {
    const c = labCredentials(lab.info.dir, user);
    const creds = { ...c, url: `mqtts://${ADDR.hq4}:${RABBIT_MQTT_TLS_PORT}` };
    writeFileSync(join(dir, `${user}.json`), `${JSON.stringify(creds, null, 2)}\n`, { mode: 0o600 });
  }

  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin",
    HOME: home,
    LANG: "C.UTF-8",
    RABBITMQ_NODENAME: nodename,
    RABBITMQ_USE_LONGNAME: "false",
    RABBITMQ_CONF_ENV_FILE: join(dir, "rabbitmq-env.conf"),
    RABBITMQ_CONFIG_FILE: join(dir, "rabbitmq.conf"),
    RABBITMQ_CONFIG_FILES: join(dir, "conf.d"),
    RABBITMQ_ADVANCED_CONFIG_FILE: join(dir, "advanced.config"),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, "enabled_plugins"),
    RABBITMQ_MNESIA_BASE: join(dir, "mnesia"),
    RABBITMQ_LOG_BASE: logDir,
    RABBITMQ_PID_FILE: join(dir, "rabbitmq.pid"),
    // Erlang distribution (rabbitmqctl's way in) and epmd on the namespace's loopback only.
    ERL_EPMD_ADDRESS: "127.0.0.1",
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: "-kernel inet_dist_use_interface {127,0,0,1}",
  };
  const logPath = join(logDir, `${nodename}.log`);
  const consolePath = join(logDir, "console.log");
  let child: ChildProcess | undefined;

  const readyCheck = async (): Promise<string | undefined> => {
    const hq = labCredentials(lab.info.dir, "hq");
    // -E: exit once the subscription is acknowledged, i.e. after a real MQTT login and SUBACK.
    const r = await lab.exec(
      "hq",
      [
        "mosquitto_sub",
        "-V",
        "mqttv311",
        "-h",
        ADDR.hq4,
        "-p",
        String(RABBIT_MQTT_PORT),
        "-u",
        hq.username,
        "-P",
        hq.password,
        "-i",
        `${lab.info.name}-rabbit-ready`,
        "-t",
        "netprobe/v1/lab/ready/state",
        "-E",
      ],
      { timeoutMs: 5_000 },
    );
    return r.code === 0 ? undefined : `mosquitto_sub: ${(r.stderr || r.stdout).trim() || `exit ${r.code}`}`;
  };

  const start = async (): Promise<number> => {
    if (child && child.exitCode === null && child.signalCode === null)
      throw new Error(`rabbitmq ${nodename} is already running`);
    const t0 = Date.now();
    const fd = openSync(consolePath, "a");
    try {
      child = lab.spawn("hq", [SERVER], { env, stdio: ["ignore", fd, fd] });
    } finally {
      closeSync(fd);
    }
    const c = child;
    let exit: string | undefined;
    c.once("exit", (code, sig) => (exit = `exited ${code ?? sig}`));
    let last = "starting";
    for (;;) {
      if (exit !== undefined)
        throw new Error(`rabbitmq ${nodename} ${exit} while starting\n${logTails(logPath, consolePath)}`);
      // The listener opens only once the node has booted, loaded the definitions and the plugin.
      const problem = await readyCheck();
      if (problem === undefined) return Date.now() - t0;
      last = problem;
      if (Date.now() - t0 > READY_TIMEOUT_MS)
        throw new Error(
          `rabbitmq ${nodename} did not accept MQTT within ${READY_TIMEOUT_MS / 1000} s: ${last}\n` +
            logTails(logPath, consolePath),
        );
      await sleep(250);
    }
  };

  const stop = async (): Promise<void> => {
    const c = child;
    child = undefined;
    if (c?.pid !== undefined && c.exitCode === null && c.signalCode === null) {
      // `ip netns exec` execs in place, into rabbitmq-server's shell, which traps SIGTERM, stops
      // the VM cleanly (durable queues and persistent messages are kept) and waits for it.
      const gone = new Promise<void>((resolve) => c.once("exit", () => resolve()));
      signal(c.pid, "SIGTERM");
      const forced = setTimeout(() => c.pid !== undefined && signal(c.pid, "SIGKILL"), 15_000);
      await gone;
      clearTimeout(forced);
    }
    // epmd was started by the node (`epmd -daemon`) and outlives it; a VM is left only when its
    // shell was killed outright. Nothing else in the lab runs Erlang.
    const leftovers = async () => [
      ...(await namespacePidsNamed(lab, "beam.smp")),
      ...(await namespacePidsNamed(lab, "epmd")),
    ];
    for (const pid of await leftovers()) signal(pid, "SIGTERM");
    const deadline = Date.now() + 5_000;
    while ((await leftovers()).some(isAlive) && Date.now() < deadline) await sleep(50);
    for (const pid of await leftovers()) signal(pid, "SIGKILL");
  };

  const rabbit: RabbitMq = {
    host: ADDR.hq4,
    port: RABBIT_MQTT_PORT,
    tlsPort: RABBIT_MQTT_TLS_PORT,
    nodename,
    dir,
    logPath,
    startupMs: 0,
    credentialsFile: (user) => join(dir, `${user}.json`),
    probeEnv: (user = "probe-1") => {
      const c = JSON.parse(readFileSync(join(dir, `${user}.json`), "utf8")) as Record<string, string>;
      return {
        NETPROBE_BROKER_URL: c.url ?? "",
        NETPROBE_BROKER_USERNAME: c.username ?? "",
        NETPROBE_BROKER_PASSWORD: c.password ?? "",
        NETPROBE_BROKER_CA_FILE: c.ca_file ?? "",
        NETPROBE_BROKER_CERT_FILE: c.cert_file ?? "",
        NETPROBE_BROKER_KEY_FILE: c.key_file ?? "",
      };
    },
    ctl: (args) =>
      lab.exec(
        "hq",
        ["env", ...Object.entries(env).map(([k, v]) => `${k}=${v}`), CTL, "-n", nodename, ...args],
        {
          timeoutMs: 30_000,
        },
      ),
    stop,
    start: async () => {
      rabbit.startupMs = await start();
      return rabbit.startupMs;
    },
  };
  try {
    await rabbit.start();
  } catch (err) {
    await stop();
    throw err;
  }
  return rabbit;
}

/** The node's rabbitmq.conf: the MQTT plugin on the HQ address, nothing else reachable from outside. */
function config(labDir: string, dir: string): string {
  const tls = tlsDir(labDir);
  return [
    `# netprobe lab: RabbitMQ as a fleet MQTT broker (scripts/lab/rabbitmq.ts).`,
    // No AMQP listener: the lab's clients speak MQTT only.
    `listeners.tcp = none`,
    `mqtt.listeners.tcp.default = ${ADDR.hq4}:${RABBIT_MQTT_PORT}`,
    `mqtt.listeners.ssl.default = ${ADDR.hq4}:${RABBIT_MQTT_TLS_PORT}`,
    `mqtt.allow_anonymous = false`,
    `mqtt.vhost = /`,
    `mqtt.exchange = amq.topic`,
    // Mutual TLS like deploy/mosquitto/netprobe.conf: the lab CA, certificate required, then a password.
    `ssl_options.cacertfile = ${join(tls, "ca.pem")}`,
    `ssl_options.certfile = ${join(tls, "broker.pem")}`,
    `ssl_options.keyfile = ${join(tls, "broker.key")}`,
    `ssl_options.verify = verify_peer`,
    `ssl_options.fail_if_no_peer_cert = true`,
    `ssl_options.versions.1 = tlsv1.2`,
    `ssl_options.versions.2 = tlsv1.3`,
    `load_definitions = ${join(dir, "definitions.json")}`,
    `log.console = false`,
    `log.file.level = info`,
    // A lab node on a busy CI machine: do not block publishers over the host's free disk or memory.
    `disk_free_limit.absolute = 1MB`,
    `vm_memory_high_watermark.relative = 0.8`,
    ``,
  ].join("\n");
}

/** RabbitMQ's password hash: base64(salt ‖ SHA-256(salt ‖ password)), rabbit_password_hashing_sha256. */
function passwordHash(password: string): string {
  const salt = randomBytes(4);
  const hash = createHash("sha256").update(salt).update(password, "utf8").digest();
  return Buffer.concat([salt, hash]).toString("base64");
}

/** A regex matching a topic prefix as RabbitMQ sees it: MQTT `/` is AMQP `.`, and MQTT `.` is `/`. */
function routingKeyPrefix(topicPrefix: string): string {
  const key = [...topicPrefix].map((ch) => (ch === "/" ? "." : ch === "." ? "/" : ch)).join("");
  return `^${key.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`;
}

/** Users, their vhost permissions and (optionally) topic permissions mirroring deploy/mosquitto's ACL. */
function definitions(labDir: string, users: readonly LabBrokerUser[], opts: RabbitMqOptions) {
  const acl = opts.topicAcl ?? true;
  const topicPermissions = users.flatMap((user) => {
    const u = LAB_BROKER_USERS[user];
    const username = labCredentials(labDir, user).username;
    const [write, read] =
      u.role === "probe"
        ? [
            `${routingKeyPrefix(`netprobe/v1/${u.site}/${u.probe}/`)}(state|health|events|config|results\\..+|reply\\..+)$`,
            `${routingKeyPrefix(`netprobe/v1/${u.site}/${u.probe}/cmd/`)}`,
          ]
        : [`^netprobe\\.v1\\.[^.]+\\.[^.]+\\.cmd\\.`, `^netprobe\\.v1\\.`];
    return acl ? [{ user: username, vhost: "/", exchange: "amq.topic", write, read }] : [];
  });
  return {
    rabbit_version: "3.10.8",
    users: users.map((user) => {
      const c = labCredentials(labDir, user);
      return {
        name: c.username,
        password_hash: passwordHash(c.password),
        hashing_algorithm: "rabbit_password_hashing_sha256",
        tags: [],
      };
    }),
    vhosts: [{ name: "/" }],
    // The MQTT plugin declares a queue per subscriber and binds it to amq.topic: every user needs
    // that on its own resources; what it may publish and read is the topic permission's job.
    permissions: users.map((user) => ({
      user: labCredentials(labDir, user).username,
      vhost: "/",
      configure: ".*",
      write: ".*",
      read: ".*",
    })),
    topic_permissions: topicPermissions,
  };
}

/** Pids in the hq namespace whose command name is `comm`. */
async function namespacePidsNamed(lab: Lab, comm: string): Promise<number[]> {
  const r = await run(["ip", "netns", "pids", lab.info.ns.hq]);
  return r.stdout
    .split("\n")
    .map(Number)
    .filter((pid) => {
      if (!Number.isInteger(pid) || pid <= 0) return false;
      try {
        return readFileSync(`/proc/${pid}/comm`, "utf8").trim() === comm;
      } catch {
        return false; // gone
      }
    });
}

function logTails(logPath: string, consolePath: string): string {
  return `--- last lines of ${logPath} ---\n${tail(logPath)}\n--- last lines of ${consolePath} ---\n${tail(consolePath)}`;
}
