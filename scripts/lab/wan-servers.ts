// The lab's internet services (DNS, HTTP(S), TCP echo, SNTP) on the `wan` host: their addresses,
// the example.net zone, the lab CA and certificates, and starting / switching the daemon
// (wan-servers-daemon.ts). lab.ts calls ensureWanServers() from labUp; faults.ts switches the
// daemon's behaviour through FaultActions.applyWanServers.

import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Answer } from "dns-packet";
import { isAlive, runOk, sleep, tail } from "./run.ts";

/** The documentation zone the lab's authoritative server serves (RFC 2606). */
export const WAN_ZONE = "example.net";

const SOA = {
  mname: "ns.example.net",
  rname: "hostmaster.example.net",
  serial: 2024010101,
  refresh: 3600,
  retry: 600,
  expire: 86400,
  minimum: 60,
};

function rr(type: string, data: unknown, ttl = 60): Answer {
  return { name: "", type, ttl, data };
}

/** Addresses of the WAN services (all on `wan`'s loopback) and the zone's records. */
export const WAN = {
  /** The provider's resolver (switchable: dns-slow, dns-servfail, dns-hijack, dns-spoof). */
  dnsResolver4: "203.0.113.53",
  dnsResolver6: "2001:db8:3::53",
  /** Authoritative server of example.net. */
  dnsAuth4: "203.0.113.54",
  dnsAuth6: "2001:db8:3::54",
  /** HTTP :80, HTTPS :443, TCP echo :7 (www.example.net). */
  web4: "203.0.113.80",
  web6: "2001:db8:3::80",
  /** SNTP :123 (ntp.example.net). */
  ntp4: "203.0.113.123",
  ntp6: "2001:db8:3::123",
  /** Where the hijacking / spoofing resolver points names. */
  hijack4: "203.0.113.66",
  hijack6: "2001:db8:3::66",
  webName: "www.example.net",
  /** A TXT set too big for one 1232-byte UDP answer: truncated, then fetched over TCP. */
  bigName: "big.example.net",
  soa: SOA,
  records: {
    "example.net": [
      rr("SOA", SOA),
      rr("NS", "ns.example.net"),
      rr("MX", { preference: 10, exchange: "mail.example.net" }),
    ],
    "ns.example.net": [rr("A", "203.0.113.54"), rr("AAAA", "2001:db8:3::54")],
    "www.example.net": [rr("A", "203.0.113.80"), rr("AAAA", "2001:db8:3::80")],
    "mail.example.net": [rr("A", "203.0.113.80")],
    "ntp.example.net": [rr("A", "203.0.113.123"), rr("AAAA", "2001:db8:3::123")],
    "big.example.net": Array.from({ length: 24 }, (_, i) =>
      rr("TXT", [`netprobe lab record ${String(i).padStart(2, "0")} ${"x".repeat(60)}`]),
    ),
  } as Readonly<Record<string, readonly Answer[]>>,
} as const;

/** How the daemon behaves; the dns-* and cert-expiring faults switch it. */
export interface WanMode {
  /** Extra delay of every answer of the provider's resolver. */
  dnsDelayMs: number;
  dnsServfail: boolean;
  /** NXDOMAIN answers become an address (WAN.hijack4/6). */
  dnsHijack: boolean;
  /** Existing names get a wrong address (WAN.hijack4/6). */
  dnsSpoof: boolean;
  cert: "valid" | "expiring";
  /** Added to every SNTP timestamp the server sends. */
  ntpOffsetMs: number;
}

/** Delay of the dns-slow fault. */
export const DNS_SLOW_MS = 300;
/** Validity of the normal certificate and of the one cert-expiring switches to, in days. */
export const CERT_DAYS = { valid: 365, expiring: 5 } as const;

/** The daemon's behaviour with no fault on. */
export function defaultWanMode(): WanMode {
  return {
    dnsDelayMs: 0,
    dnsServfail: false,
    dnsHijack: false,
    dnsSpoof: false,
    cert: "valid",
    ntpOffsetMs: 0,
  };
}

/** The daemon's behaviour for a set of lab faults (the SNTP offset is not a fault: left as is). */
export function wanModeFor(faults: Readonly<Record<string, boolean>>): Omit<WanMode, "ntpOffsetMs"> {
  return {
    dnsDelayMs: faults["dns-slow"] === true ? DNS_SLOW_MS : 0,
    dnsServfail: faults["dns-servfail"] === true,
    dnsHijack: faults["dns-hijack"] === true,
    dnsSpoof: faults["dns-spoof"] === true,
    cert: faults["cert-expiring"] === true ? "expiring" : "valid",
  };
}

/** Files of the WAN services in a lab directory. */
export function wanFiles(dir: string) {
  return {
    socket: join(dir, "wan-servers.sock"),
    pid: join(dir, "wan-servers.pid"),
    log: join(dir, "wan-servers.log"),
    /** The lab CA: a probe trusts the lab's HTTPS server with `ca_file` set to this. */
    ca: { key: join(dir, "wan-ca.key"), cert: join(dir, "wan-ca.pem") },
    webValid: { key: join(dir, "wan-web.key"), cert: join(dir, "wan-web.pem") },
    webExpiring: { key: join(dir, "wan-web.key"), cert: join(dir, "wan-web-expiring.pem") },
  };
}

const DAEMON = fileURLToPath(new URL("./wan-servers-daemon.ts", import.meta.url));

/** What ensureWanServers needs to know about the lab. */
export interface WanLab {
  dir: string;
  ns: { wan: string };
}

/**
 * Adds the service addresses on `wan`, generates the CA and certificates (first time only), starts
 * the daemon unless it already runs, and resets it to no-fault behaviour. Idempotent (repair).
 */
export async function ensureWanServers(lab: WanLab): Promise<void> {
  for (const a of [WAN.dnsResolver4, WAN.dnsAuth4, WAN.web4, WAN.ntp4])
    await runOk(["ip", "-n", lab.ns.wan, "addr", "replace", `${a}/32`, "dev", "lo"]);
  for (const a of [WAN.dnsResolver6, WAN.dnsAuth6, WAN.web6, WAN.ntp6])
    await runOk(["ip", "-n", lab.ns.wan, "addr", "replace", `${a}/128`, "dev", "lo", "nodad"]);
  const files = wanFiles(lab.dir);
  if (!existsSync(files.webExpiring.cert)) await generateCertificates(lab.dir);
  if (!daemonRunning(lab)) await startDaemon(lab);
  await setWanServers(lab.dir, defaultWanMode());
}

/** Whether the daemon of this lab runs, in its namespace. */
export function daemonRunning(lab: WanLab): boolean {
  const pid = daemonPid(lab.dir);
  if (pid === undefined || !isAlive(pid)) return false;
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    return (
      cmdline.includes("wan-servers") &&
      statSync(`/proc/${pid}/ns/net`).ino === statSync(`/run/netns/${lab.ns.wan}`).ino
    );
  } catch {
    return false;
  }
}

function daemonPid(dir: string): number | undefined {
  try {
    const pid = Number(readFileSync(wanFiles(dir).pid, "utf8").trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

async function startDaemon(lab: WanLab): Promise<void> {
  const files = wanFiles(lab.dir);
  const fd = openSync(files.log, "a");
  let pid: number | undefined;
  try {
    // NODE_OPTIONS cleared: a test runner's loaders must not follow the daemon.
    const child = spawn("ip", ["netns", "exec", lab.ns.wan, process.execPath, DAEMON, lab.dir], {
      detached: true,
      stdio: ["ignore", fd, fd],
      env: { ...process.env, NODE_OPTIONS: "" },
    });
    child.on("error", () => undefined);
    child.unref();
    pid = child.pid;
  } finally {
    closeSync(fd);
  }
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (daemonRunning(lab) && (await ping(lab.dir))) return;
    const died = pid === undefined || !isAlive(pid);
    if (died || Date.now() > deadline) {
      throw new Error(
        `wan-servers did not come up${died ? " (exited)" : " within 15 s"}\n--- last lines of ${files.log} ---\n${tail(files.log)}`,
      );
    }
    await sleep(100);
  }
}

async function ping(dir: string): Promise<boolean> {
  try {
    await setWanServers(dir, {});
    return true;
  } catch {
    return false;
  }
}

/** Changes the daemon's behaviour; resolves once it is in effect. */
export function setWanServers(dir: string, patch: Partial<WanMode>): Promise<WanMode> {
  return new Promise((resolve, reject) => {
    const conn = connect(wanFiles(dir).socket);
    let reply = "";
    const timer = setTimeout(
      () => conn.destroy(new Error("wan-servers: no reply on the control socket")),
      5000,
    );
    conn.setEncoding("utf8");
    conn.on("data", (d: string) => (reply += d));
    conn.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    conn.on("end", () => {
      clearTimeout(timer);
      try {
        const r = JSON.parse(reply) as { ok: boolean; mode?: WanMode; error?: string };
        if (r.ok && r.mode) resolve(r.mode);
        else reject(new Error(`wan-servers refused ${JSON.stringify(patch)}: ${r.error ?? reply}`));
      } catch {
        reject(new Error(`wan-servers: bad reply ${JSON.stringify(reply)}`));
      }
    });
    conn.write(`${JSON.stringify(patch)}\n`);
  });
}

/** The lab CA and two certificates for www.example.net signed by it: one valid a year, one expiring soon. */
async function generateCertificates(dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const f = wanFiles(dir);
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await runOk([
    "openssl",
    "req",
    "-x509",
    ...ec,
    "-keyout",
    f.ca.key,
    "-out",
    f.ca.cert,
    "-days",
    "3650",
    "-subj",
    "/O=netprobe lab/CN=netprobe lab CA",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  const csr = join(dir, "wan-web.csr");
  await runOk([
    "openssl",
    "req",
    ...ec,
    "-keyout",
    f.webValid.key,
    "-out",
    csr,
    "-subj",
    `/O=netprobe lab/CN=${WAN.webName}`,
  ]);
  const ext = join(dir, "wan-web.ext");
  writeFileSync(
    ext,
    `subjectAltName=DNS:${WAN.webName},IP:${WAN.web4},IP:${WAN.web6}\nextendedKeyUsage=serverAuth\n`,
  );
  for (const [out, days] of [
    [f.webValid.cert, CERT_DAYS.valid],
    [f.webExpiring.cert, CERT_DAYS.expiring],
  ] as const) {
    await runOk([
      "openssl",
      "x509",
      "-req",
      "-in",
      csr,
      "-CA",
      f.ca.cert,
      "-CAkey",
      f.ca.key,
      "-CAcreateserial",
      "-out",
      out,
      "-days",
      String(days),
      "-extfile",
      ext,
    ]);
  }
}

/** The daemon's log (for test failure messages). */
export function wanServersLog(dir: string): string {
  return tail(wanFiles(dir).log, 40);
}
