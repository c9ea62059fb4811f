// Who may read HQ's page and API (docs/hq.md, "Access"). Three ways in, checked in this order:
//   1. `Authorization: Bearer <token>` — API clients; tokens come from files (never argv), the
//      operator's one is generated (random, mode 0600) when its file is missing;
//   2. the session cookie the login form sets (user + scrypt-hashed password, or a token);
//   3. a header naming the user, believed only from the configured reverse proxy's address
//      (oauth2-proxy in front for OIDC).
// Secrets are compared as fixed-length digests with timingSafeEqual; failed logins are limited per
// source address; every table here is bounded, so no client can grow it without limit.
import { createHash, randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import type { IncomingMessage } from "node:http";
import { isIP } from "node:net";
import { homedir, networkInterfaces } from "node:os";
import { dirname, join } from "node:path";
import type { Logger } from "../../contract/src/log.ts";
import { HqConfigError, type HqConfig } from "./hq-config.ts";

/** What a principal may do: `viewer` reads; `operator` also changes (alerts, fleet config, commands). */
export type Role = "viewer" | "operator";

/** An authenticated caller. */
export interface Principal {
  user: string;
  role: Role;
  via: "token" | "session" | "proxy";
  /** The session id, for SSE clients to be dropped when it ends. */
  session?: string;
}

/** Name of the session cookie. */
export const SESSION_COOKIE = "netprobe_hq_session";
/** Failed logins per source address per window before it gets 429. */
export const LOGIN_FAILURES_ALLOWED = 10;
const LOGIN_WINDOW_MS = 5 * 60_000;
const MAX_SESSIONS = 1000;
const MAX_TRACKED_SOURCES = 10_000;
/** scrypt parameters of new hashes (N 2^15: ~60 ms here, 32 MiB; RFC 7914 §2). */
const SCRYPT = { N: 32768, r: 8, p: 1, maxmem: 64 * 1024 * 1024 } as const;
/** Password checks running at once: scrypt is CPU- and memory-hungry by design. */
const MAX_CONCURRENT_SCRYPT = 2;

function scryptAsync(password: string, salt: Buffer, keylen: number, o: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(password, salt, keylen, o, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

/** `scrypt$N$r$p$<salt base64>$<hash base64>` of a password, for `auth.users[].password_hash`. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scryptAsync(password, salt, 32, SCRYPT);
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString("base64")}$${key.toString("base64")}`;
}

/** True when `password` matches a hash made by hashPassword (constant time in the hash). */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [tag, n, r, p, salt, hash] = stored.split("$");
  if (tag !== "scrypt" || !salt || !hash) return false;
  const want = Buffer.from(hash, "base64");
  const o = { N: Number(n), r: Number(r), p: Number(p), maxmem: SCRYPT.maxmem };
  if (!(o.N > 1 && o.r > 0 && o.p > 0) || want.length < 16) return false;
  const got = await scryptAsync(password, Buffer.from(salt, "base64"), want.length, o);
  return timingSafeEqual(got, want);
}

const digest = (s: string): Buffer => createHash("sha256").update(s, "utf8").digest();

interface TokenEntry {
  name: string;
  role: Role;
  sha256: Buffer;
}

/** Where the operator's token lives when `auth.token_file` is not set. */
export function defaultTokenFile(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.STATE_DIRECTORY?.split(":")[0];
  return dir ? join(dir, "hq-token") : join(homedir(), ".netprobe", "hq-token");
}

function readToken(file: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(file, "utf8").trim();
  } catch (err) {
    throw new HqConfigError(
      `${what}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
    );
  }
  if (text.length < 16)
    throw new HqConfigError(`${what}: the token in ${file} is shorter than 16 characters`);
  return text;
}

/** The operator's token file, created with a random token (mode 0600) when missing. */
function operatorToken(file: string, log: Logger): string {
  if (!existsSync(file)) {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    // `wx`: never overwrite a token another HQ instance just wrote.
    writeFileSync(file, `${randomBytes(32).toString("base64url")}\n`, { flag: "wx", mode: 0o600 });
    chmodSync(file, 0o600);
    log.warn(
      { token_file: file },
      "generated the operator access token: log in with it (user left empty) or send Authorization: Bearer <token>",
    );
  } else if ((statSync(file).mode & 0o077) !== 0) {
    log.warn({ token_file: file }, "the token file is readable by group or others: chmod 600 it");
  }
  return readToken(file, "auth.token_file");
}

/** The addresses a client may name in `Host` (besides auth.allowed_hosts). */
function listenNames(host: string): string[] {
  const names = ["localhost", "127.0.0.1", "::1", host];
  if (host === "0.0.0.0" || host === "::" || host === "")
    for (const list of Object.values(networkInterfaces()))
      for (const a of list ?? []) names.push(a.address.replace(/%.*$/, ""));
  return names;
}

/** The host name of a Host header, lower case, without port or IPv6 brackets; null if unusable. */
export function hostName(header: string | undefined): string | null {
  if (!header || header.length > 260) return null;
  const h = header.trim().toLowerCase();
  const m = h.startsWith("[") ? /^\[([0-9a-f:.]+)\](?::\d{1,5})?$/.exec(h) : /^([^:]+)(?::\d{1,5})?$/.exec(h);
  return m?.[1] ?? null;
}

/** Counters of refused requests, shown on the page and in /api/fleet. */
export interface AccessCounters {
  unauthorized: number;
  host_refused: number;
  login_ok: number;
  login_failed: number;
  login_rate_limited: number;
}

interface Session {
  user: string;
  role: Role;
  expires: number;
}

/** The access rules of one HQ web server. */
export class Access {
  readonly counters: AccessCounters = {
    unauthorized: 0,
    host_refused: 0,
    login_ok: 0,
    login_failed: 0,
    login_rate_limited: 0,
  };
  readonly #tokens: TokenEntry[];
  readonly #users: NonNullable<HqConfig["auth"]["users"]>;
  readonly #hosts: Set<string>;
  readonly #proxy: HqConfig["http"]["trusted_proxy"];
  readonly #sessionMs: number;
  readonly #sessions = new Map<string, Session>();
  readonly #failures = new Map<string, { count: number; since: number }>();
  #scrypting = 0;
  /** Where the operator's token was read from (for the start-up log line). */
  readonly tokenFile: string | null;
  /** Whether the page is served over TLS (session cookies get `Secure`). */
  readonly secure: boolean;

  constructor(cfg: HqConfig, log: Logger, env: NodeJS.ProcessEnv = process.env) {
    this.#tokens = [];
    if (env.NETPROBE_HQ_TOKEN !== undefined) {
      if (env.NETPROBE_HQ_TOKEN.length < 16)
        throw new HqConfigError("$NETPROBE_HQ_TOKEN: shorter than 16 characters");
      this.#tokens.push({ name: "operator", role: "operator", sha256: digest(env.NETPROBE_HQ_TOKEN) });
      this.tokenFile = null;
    } else {
      this.tokenFile = cfg.auth.token_file ?? defaultTokenFile(env);
      const token = operatorToken(this.tokenFile, log);
      this.#tokens.push({ name: "operator", role: "operator", sha256: digest(token) });
    }
    for (const t of cfg.auth.tokens ?? [])
      this.#tokens.push({
        name: t.name,
        role: t.role,
        sha256: digest(readToken(t.file, `auth.tokens ${t.name}`)),
      });
    this.#users = cfg.auth.users ?? [];
    this.#hosts = new Set(
      [...listenNames(cfg.http.host), ...(cfg.http.allowed_hosts ?? [])].map((h) => h.toLowerCase()),
    );
    this.#proxy = cfg.http.trusted_proxy;
    this.#sessionMs = cfg.auth.session_hours * 3600_000;
    this.secure = cfg.http.tls !== undefined;
  }

  /** True when the request names this server in `Host` (a DNS-rebound page names its own). */
  hostAllowed(req: IncomingMessage): boolean {
    const name = hostName(req.headers.host);
    const ok = name !== null && this.#hosts.has(name);
    if (!ok) this.counters.host_refused++;
    return ok;
  }

  /** The caller, or null; counts nothing (the router counts a refusal). */
  principal(req: IncomingMessage, now: number = Date.now()): Principal | null {
    const auth = req.headers.authorization;
    if (auth !== undefined) {
      const m = /^Bearer ([\x21-\x7e]{1,512})$/i.exec(auth);
      return m ? this.#byToken(m[1]!) : null;
    }
    const sid = cookie(req.headers.cookie, SESSION_COOKIE);
    if (sid !== undefined) {
      const s = this.#sessions.get(sid);
      if (s && s.expires > now) return { user: s.user, role: s.role, via: "session", session: sid };
      if (s) this.#sessions.delete(sid);
    }
    const p = this.#proxy;
    if (p && p.addresses.includes(normalAddress(req.socket.remoteAddress))) {
      const user = req.headers[p.user_header.toLowerCase()];
      if (typeof user === "string" && user.length > 0 && user.length <= 256)
        return { user, role: p.role, via: "proxy" };
    }
    return null;
  }

  /** True while a principal's session (if it has one) is still open. */
  stillValid(p: Principal, now: number = Date.now()): boolean {
    if (p.session === undefined) return true;
    const s = this.#sessions.get(p.session);
    return s !== undefined && s.expires > now;
  }

  #byToken(token: string): Principal | null {
    const d = digest(token);
    let hit: TokenEntry | undefined;
    // Compare against every entry, no early exit: the time does not tell which one matched.
    for (const t of this.#tokens) if (timingSafeEqual(d, t.sha256) && !hit) hit = t;
    return hit ? { user: hit.name, role: hit.role, via: "token" } : null;
  }

  /**
   * A login attempt from the form: a user and password, or (user empty) an access token. Returns
   * the new session id, or why not: `limited` (429) when this source failed too often or too many
   * password checks are running.
   */
  async login(
    source: string,
    user: string,
    password: string,
    now: number = Date.now(),
  ): Promise<{ ok: true; session: string; principal: Principal } | { ok: false; why: "denied" | "limited" }> {
    const f = this.#failures.get(source);
    if (f && now - f.since > LOGIN_WINDOW_MS) this.#failures.delete(source);
    else if (f && f.count >= LOGIN_FAILURES_ALLOWED) {
      this.counters.login_rate_limited++;
      return { ok: false, why: "limited" };
    }
    let who: Principal | null = null;
    if (user === "") who = this.#byToken(password);
    else {
      if (this.#scrypting >= MAX_CONCURRENT_SCRYPT) {
        this.counters.login_rate_limited++;
        return { ok: false, why: "limited" };
      }
      const u = this.#users.find((x) => x.name === user);
      this.#scrypting++;
      try {
        // An unknown user costs the same scrypt as a known one: the time does not tell which exist.
        const ok = await verifyPassword(password, u?.password_hash ?? DUMMY_HASH);
        if (ok && u) who = { user: u.name, role: u.role, via: "session" };
      } finally {
        this.#scrypting--;
      }
    }
    if (!who) {
      this.counters.login_failed++;
      const entry = this.#failures.get(source) ?? { count: 0, since: now };
      entry.count++;
      this.#failures.set(source, entry);
      if (this.#failures.size > MAX_TRACKED_SOURCES)
        this.#failures.delete(this.#failures.keys().next().value!);
      return { ok: false, why: "denied" };
    }
    this.counters.login_ok++;
    this.#failures.delete(source);
    const session = randomBytes(32).toString("base64url");
    this.#sessions.set(session, { user: who.user, role: who.role, expires: now + this.#sessionMs });
    // Oldest first (Map order): past the cap the oldest session ends.
    if (this.#sessions.size > MAX_SESSIONS) this.#sessions.delete(this.#sessions.keys().next().value!);
    return { ok: true, session, principal: { ...who, via: "session", session } };
  }

  /** Ends a session (logout). */
  logout(session: string | undefined): void {
    if (session !== undefined) this.#sessions.delete(session);
  }

  /** The Set-Cookie value for a session id ("" clears it). */
  cookie(session: string): string {
    const age = session === "" ? 0 : Math.floor(this.#sessionMs / 1000);
    return `${SESSION_COOKIE}=${session}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${age}${this.secure ? "; Secure" : ""}`;
  }
}

// A valid hash of a random password, verified when the user is unknown.
const DUMMY_HASH = `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${randomBytes(16).toString("base64")}$${randomBytes(32).toString("base64")}`;

/** One cookie's value from a Cookie header. */
export function cookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const i = part.indexOf("=");
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

/** `::ffff:192.0.2.1` → `192.0.2.1`, as configured addresses are written. */
export function normalAddress(a: string | undefined): string {
  if (!a) return "";
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  return v4 ? v4[1]! : isIP(a) ? a.toLowerCase() : a;
}
