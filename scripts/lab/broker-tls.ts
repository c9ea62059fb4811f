// The lab broker's security, built like a real deployment (deploy/mosquitto/): a lab CA, a
// server certificate for the broker, a client certificate + password per user, and the ACL,
// written by deploy/mosquitto/netprobe-broker-user.sh itself. Everything lives in `<lab dir>/tls/`
// and is created once per lab (a repair keeps it, so running clients stay valid).
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ADDR } from "./topology.ts";

/** The lab's broker users: two probes of site `lab` (the second for ACL tests) and headquarters. */
export const LAB_BROKER_USERS = {
  "probe-1": { role: "probe", site: "lab", probe: "probe-1" },
  "probe-2": { role: "probe", site: "lab", probe: "probe-2" },
  hq: { role: "hq", name: "hq" },
} as const;
/** A lab broker user. */
export type LabBrokerUser = keyof typeof LAB_BROKER_USERS;

/** The TLS listener's port (the plain 1883 listener is anonymous and confined to `netprobe-lab/#`). */
export const BROKER_TLS_PORT = 8883;

/** What a client needs to reach the lab broker as one user. */
export interface LabCredentials {
  url: string;
  username: string;
  password: string;
  ca_file: string;
  cert_file: string;
  key_file: string;
}

const USER_SCRIPT = fileURLToPath(new URL("../../deploy/mosquitto/netprobe-broker-user.sh", import.meta.url));
/** The example config the lab broker runs (paths under /etc/mosquitto/netprobe/ are replaced). */
export const DEPLOY_BROKER_CONF = fileURLToPath(
  new URL("../../deploy/mosquitto/netprobe.conf", import.meta.url),
);
const DEPLOY_DIR = "/etc/mosquitto/netprobe/";

/** The directory of a lab's broker certificates, passwords and ACL. */
export function tlsDir(labDir: string): string {
  return join(labDir, "tls");
}

/** The mosquitto config lines of the TLS listener: deploy/mosquitto/netprobe.conf, pointed at the lab. */
export function tlsListenerConfig(labDir: string): string {
  return readFileSync(DEPLOY_BROKER_CONF, "utf8").replaceAll(DEPLOY_DIR, `${tlsDir(labDir)}/`);
}

/** The JSON file holding one lab user's LabCredentials (scripts/lab/hq-subscriber.ts reads it). */
export function credentialsFile(labDir: string, user: LabBrokerUser): string {
  return join(tlsDir(labDir), `${user}.json`);
}

/** Credentials of one lab user (after ensureBrokerTls). */
export function labCredentials(labDir: string, user: LabBrokerUser): LabCredentials {
  return JSON.parse(readFileSync(credentialsFile(labDir, user), "utf8")) as LabCredentials;
}

/** The environment that points the probe's uplink at the lab broker as `user` (NETPROBE_BROKER_*). */
export function probeBrokerEnv(labDir: string, user: LabBrokerUser = "probe-1"): Record<string, string> {
  const c = labCredentials(labDir, user);
  return {
    NETPROBE_BROKER_URL: c.url,
    NETPROBE_BROKER_USERNAME: c.username,
    NETPROBE_BROKER_PASSWORD: c.password,
    NETPROBE_BROKER_CA_FILE: c.ca_file,
    NETPROBE_BROKER_CERT_FILE: c.cert_file,
    NETPROBE_BROKER_KEY_FILE: c.key_file,
  };
}

/** The ACL of the anonymous plain listener (1883): `netprobe-lab/#` only. */
export function anonAclFile(labDir: string): string {
  return join(tlsDir(labDir), "anon.acl");
}

/** A CA that did not sign the lab broker's certificate, for the CA-pinning test. */
export function otherCaFile(labDir: string): string {
  return join(tlsDir(labDir), "other-ca.pem");
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim() ?? String(err);
    throw new Error(`openssl ${args[0]} failed: ${stderr}`);
  }
}

/** EC P-256 key + certificate signed by the lab CA (extensions from `ext`). */
function issue(dir: string, name: string, subject: string, ext: string): void {
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${name}.key`], dir);
  openssl(["req", "-new", "-key", `${name}.key`, "-subj", subject, "-out", `${name}.csr`], dir);
  openssl(
    [
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-days",
      "30",
      "-sha256",
      "-extfile",
      `${name}.ext`,
      "-out",
      `${name}.pem`,
    ],
    dir,
  );
  rmSync(join(dir, `${name}.csr`));
}

function selfSignedCa(dir: string, name: string, subject: string): void {
  openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${name}.key`], dir);
  openssl(
    [
      "req",
      "-x509",
      "-new",
      "-key",
      `${name}.key`,
      "-subj",
      subject,
      "-days",
      "30",
      "-sha256",
      "-out",
      `${name}.pem`,
    ],
    dir,
  );
}

/**
 * Creates the lab CA, the broker's certificate (SAN: the HQ address, 127.0.0.1 and the lab's
 * broker names), per-user client certificates and passwords, the ACL and the password file.
 * Idempotent: an existing, complete set is kept.
 */
export function ensureBrokerTls(labDir: string): void {
  const dir = tlsDir(labDir);
  if (existsSync(join(dir, "complete"))) return;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  selfSignedCa(dir, "ca", "/O=netprobe lab/CN=netprobe lab CA");
  selfSignedCa(dir, "other-ca", "/O=somebody else/CN=another CA");
  issue(
    dir,
    "broker",
    "/O=netprobe lab/CN=broker.lab.example",
    [
      "basicConstraints=CA:FALSE",
      "keyUsage=digitalSignature,keyEncipherment",
      "extendedKeyUsage=serverAuth",
      `subjectAltName=IP:${ADDR.hq4},IP:${ADDR.hq6},IP:127.0.0.1,DNS:broker.lab.example,DNS:hq.lab.example`,
      "",
    ].join("\n"),
  );
  const env = {
    ...process.env,
    NETPROBE_ACL_FILE: join(dir, "acl"),
    NETPROBE_PASSWD_FILE: join(dir, "passwd"),
  };
  for (const [key, u] of Object.entries(LAB_BROKER_USERS) as [
    LabBrokerUser,
    (typeof LAB_BROKER_USERS)[LabBrokerUser],
  ][]) {
    const username = u.role === "probe" ? `${u.site}/${u.probe}` : u.name;
    issue(
      dir,
      key,
      `/O=netprobe lab/CN=${username.replaceAll("/", "\\/")}`, // -subj splits at an unescaped "/"
      "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
    );
    const password = randomBytes(18).toString("base64url");
    const args = u.role === "probe" ? ["probe", u.site, u.probe] : ["hq", u.name];
    execFileSync("sh", [USER_SCRIPT, ...args], {
      env: { ...env, NETPROBE_USER_PASSWORD: password },
      stdio: ["ignore", "ignore", "pipe"],
    });
    const creds: LabCredentials = {
      url: `mqtts://${ADDR.hq4}:${BROKER_TLS_PORT}`,
      username,
      password,
      ca_file: join(dir, "ca.pem"),
      cert_file: join(dir, `${key}.pem`),
      key_file: join(dir, `${key}.key`),
    };
    writeFileSync(join(dir, `${key}.json`), `${JSON.stringify(creds, null, 2)}\n`, { mode: 0o600 });
  }
  // The plain listener is for the lab's own smoke tests: anonymous, and nowhere near netprobe/.
  writeFileSync(join(dir, "anon.acl"), "topic readwrite netprobe-lab/#\n");
  writeFileSync(join(dir, "complete"), "");
}
