/**
 * The probe's config file as something HQ can replace ("commit confirmed", docs/fleet-config.md):
 * read it with its document hash, write a new document atomically while keeping the file it
 * replaces as last-known-good, and go back to that file unless the new one is confirmed in time.
 *
 * Beside the config file `<file>`:
 * - `<file>.last-good`: the file before the latest apply, byte for byte, with its mode;
 * - `<file>.pending.json`: `{document_hash, previous_document_hash, confirm_by}` while an applied
 *   document waits for confirmation.
 * Both live on disk so that a crash, `kill -9` or a reboot inside the confirm window still rolls
 * back: `recover()` at start rolls back at once when the window has passed, and `arm()` waits for
 * what is left of it otherwise. Writes go to a temp file in the same directory, fsync, rename, so a
 * reader (or a power cut) sees the old file or the new one, never half of one.
 */
import { randomBytes } from "node:crypto";
import {
  closeSync,
  existsSync,
  fchmodSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { documentHash } from "../../../contract/src/config-document.ts";
import type { Logger } from "../../../contract/src/log.ts";
import { isMapping } from "./env.ts";
import { parseConfigYaml, validateConfigFile, type ConfigFileResult } from "./load.ts";
import { validateConfig, type ConfigResult } from "./validate.ts";

/** An applied document waiting for confirmation (the `<file>.pending.json` content). */
export interface PendingConfig {
  document_hash: string;
  previous_document_hash: string;
  /** RFC 3339; unless confirmed by then, the file goes back to last-known-good. */
  confirm_by: string;
}

/** The last rollback since start, as the retained `config` reports it. */
export interface RolledBack {
  /** The document that was given up. */
  document_hash: string;
  at: string;
  reason: "not_confirmed" | "command";
}

/** What `recover()` found at start. */
export type Recovery =
  | { kind: "none" }
  | { kind: "waiting"; pending: PendingConfig; remainingMs: number }
  | { kind: "rolled_back"; rolledBack: RolledBack }
  | { kind: "unrecoverable"; problem: string };

/** Timers the confirm window uses (the real ones by default; unit tests pass their own). */
export interface ConfigFileTimers {
  now: () => number;
  setTimeout: (fn: () => void, ms: number) => unknown;
  clearTimeout: (handle: unknown) => void;
}

const REAL_TIMERS: ConfigFileTimers = {
  now: Date.now,
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (t) => clearTimeout(t as NodeJS.Timeout),
};

/** The config file `path`, validated with the environment overrides of `env` (as at start). */
export class ConfigFile {
  readonly path: string;
  readonly lastGoodPath: string;
  readonly pendingPath: string;
  readonly #env: NodeJS.ProcessEnv;
  readonly #timers: ConfigFileTimers;
  #pending: PendingConfig | undefined;
  #rolledBack: RolledBack | undefined;
  #timer: unknown;

  constructor(path: string, env: NodeJS.ProcessEnv = process.env, timers: Partial<ConfigFileTimers> = {}) {
    this.path = path;
    this.lastGoodPath = `${path}.last-good`;
    this.pendingPath = `${path}.pending.json`;
    this.#env = env;
    this.#timers = { ...REAL_TIMERS, ...timers };
  }

  /** Reads, parses and validates the file, exactly as `netprobe config validate` does. */
  read(): ConfigFileResult {
    return validateConfigFile(this.path, this.#env);
  }

  /** Validates a document as if it were the file's content (same environment overrides). */
  check(document: Record<string, unknown>): ConfigResult {
    return validateConfig(document, this.#env);
  }

  /** The applied document waiting for confirmation, if any. */
  pending(): PendingConfig | undefined {
    return this.#pending;
  }

  /** The last rollback since start, if any. */
  rolledBack(): RolledBack | undefined {
    return this.#rolledBack;
  }

  /** Whether there is a last-known-good file to go back to. */
  hasPrevious(): boolean {
    return existsSync(this.lastGoodPath);
  }

  /**
   * At start, before the config is read: a pending apply whose window has passed (the probe was
   * down when it ended) or whose state is unreadable goes back to last-known-good now; one still
   * inside its window stays pending, for `arm()` to wait out the rest.
   */
  recover(): Recovery {
    if (!existsSync(this.pendingPath)) return { kind: "none" };
    const pending = readPending(this.pendingPath);
    if (!pending) {
      if (!this.hasPrevious()) {
        removeFile(this.pendingPath);
        return {
          kind: "unrecoverable",
          problem: `${this.pendingPath} is unreadable and there is no last-known-good file; removed it`,
        };
      }
      // Unreadable state: the safe side is the file that was known to work.
      return {
        kind: "rolled_back",
        // The document given up is the file now; if even that does not parse, its hash is unknown.
        rolledBack: this.#restore(this.#currentHash() ?? "0".repeat(64), "not_confirmed"),
      };
    }
    this.#pending = pending;
    if (!this.hasPrevious()) {
      // A crash between restoring the file and removing the pending state: already rolled back.
      // (Inside the window or not: without last-good there is nothing a timer could go back to.)
      this.#pending = undefined;
      removeFile(this.pendingPath);
      if (this.#currentHash() === pending.previous_document_hash) return { kind: "none" };
      return {
        kind: "unrecoverable",
        problem: `the confirm window of ${pending.document_hash} passed but ${this.lastGoodPath} is missing; keeping the file as it is`,
      };
    }
    const remainingMs = Date.parse(pending.confirm_by) - this.#timers.now();
    if (remainingMs > 0) return { kind: "waiting", pending, remainingMs };
    return { kind: "rolled_back", rolledBack: this.#restore(pending.document_hash, "not_confirmed") };
  }

  /**
   * Makes `document` the config file, pending until `confirmBy` (ms). The file it replaces becomes
   * last-known-good — unless an earlier apply is still pending: then last-known-good stays the
   * confirmed file it replaced, since an unconfirmed document is not known to be good.
   * Throws on an I/O error, leaving the config file as it was.
   */
  write(
    document: Record<string, unknown>,
    hash: string,
    runningHash: string,
    confirmBy: number,
  ): PendingConfig {
    const mode = statSync(this.path).mode & 0o7777;
    const previous = this.#pending?.previous_document_hash ?? runningHash;
    if (!this.#pending) writeAtomic(this.lastGoodPath, readFileSync(this.path), mode);
    const pending: PendingConfig = {
      document_hash: hash,
      previous_document_hash: previous,
      confirm_by: new Date(confirmBy).toISOString(),
    };
    writeAtomic(this.pendingPath, `${JSON.stringify(pending)}\n`, 0o600);
    try {
      writeAtomic(this.path, documentText(document), mode);
    } catch (err) {
      if (this.#pending) writeAtomic(this.pendingPath, `${JSON.stringify(this.#pending)}\n`, 0o600);
      else removeFile(this.pendingPath);
      throw err;
    }
    this.#pending = pending;
    return pending;
  }

  /** Waits out the pending window (what is left of it), then calls `onExpire`. */
  arm(onExpire: () => void): void {
    this.disarm();
    const p = this.#pending;
    if (!p) return;
    const ms = Math.max(0, Date.parse(p.confirm_by) - this.#timers.now());
    this.#timer = this.#timers.setTimeout(() => {
      this.#timer = undefined;
      onExpire();
    }, ms);
  }

  /** Stops waiting (confirmed, rolled back, or the service stops). */
  disarm(): void {
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Confirms the pending document `hash`: it stays, the pending state goes. False: nothing pending with that hash. */
  confirm(hash: string): boolean {
    if (this.#pending?.document_hash !== hash) return false;
    this.disarm();
    removeFile(this.pendingPath);
    this.#pending = undefined;
    return true;
  }

  /**
   * Puts last-known-good back as the config file (an atomic rename: byte for byte, mode kept) and
   * drops the pending state. `givenUp` is the document hash of the file being replaced. Undefined
   * when there is no last-known-good file.
   */
  rollBack(givenUp: string, reason: RolledBack["reason"]): RolledBack | undefined {
    if (!this.hasPrevious()) {
      // Pending with last-good gone (removed by hand): nothing to go back to, so nothing pending either.
      if (this.#pending) this.confirm(this.#pending.document_hash);
      return undefined;
    }
    return this.#restore(this.#pending?.document_hash ?? givenUp, reason);
  }

  /**
   * Undoes a `write` whose file then failed to load (never reached the service): last-known-good
   * back, no rollback reported, since nothing ran on the document.
   */
  abandon(): void {
    if (this.hasPrevious()) this.#putBack();
  }

  #restore(givenUp: string, reason: RolledBack["reason"]): RolledBack {
    this.#putBack();
    this.#rolledBack = { document_hash: givenUp, at: new Date(this.#timers.now()).toISOString(), reason };
    return this.#rolledBack;
  }

  #putBack(): void {
    this.disarm();
    renameSync(this.lastGoodPath, this.path);
    fsyncDir(dirname(this.path));
    removeFile(this.pendingPath);
    this.#pending = undefined;
  }

  /** The document hash of the file as it is now, or undefined when it does not parse. */
  #currentHash(): string | undefined {
    try {
      const parsed = parseConfigYaml(readFileSync(this.path, "utf8"), this.path);
      return parsed.ok ? documentHash(parsed.value ?? {}) : undefined;
    } catch {
      return undefined;
    }
  }
}

/** A document as the config file's text: JSON is YAML, so every reader of the file takes it. */
export function documentText(document: Record<string, unknown>): string {
  return `${JSON.stringify(document, null, 2)}\n`;
}

const HASH = /^[0-9a-f]{64}$/;

function readPending(path: string): PendingConfig | undefined {
  try {
    const p: unknown = JSON.parse(readFileSync(path, "utf8"));
    if (
      isMapping(p) &&
      typeof p.document_hash === "string" &&
      HASH.test(p.document_hash) &&
      typeof p.previous_document_hash === "string" &&
      HASH.test(p.previous_document_hash) &&
      typeof p.confirm_by === "string" &&
      !Number.isNaN(Date.parse(p.confirm_by))
    )
      return {
        document_hash: p.document_hash,
        previous_document_hash: p.previous_document_hash,
        confirm_by: p.confirm_by,
      };
  } catch {
    // unreadable or not JSON: the caller treats it as unknown state
  }
  return undefined;
}

/** Writes `data` to `path` through a temp file in the same directory: fsync, rename, fsync the directory. */
export function writeAtomic(path: string, data: string | Buffer, mode: number): void {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(4).toString("hex")}.tmp`);
  const fd = openSync(tmp, "wx", mode);
  try {
    try {
      writeFileSync(fd, data);
      fchmodSync(fd, mode); // the umask may have taken bits off
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    removeFile(tmp);
    throw err;
  }
  fsyncDir(dirname(path));
}

function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, "r");
    fsyncSync(fd);
  } catch {
    // Some file systems refuse fsync on a directory; the rename itself already happened.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function removeFile(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
}

/** Logs what `recover()` found (once the logger exists: recovery runs before the config is read). */
export function logRecovery(r: Recovery, path: string, log: Logger): void {
  if (r.kind === "rolled_back")
    log.warn(
      { file: path, document_hash: r.rolledBack.document_hash, reason: r.rolledBack.reason },
      "applied config was not confirmed before the probe stopped: rolled back to last-known-good",
    );
  else if (r.kind === "waiting")
    log.info(
      { file: path, document_hash: r.pending.document_hash, confirm_by: r.pending.confirm_by },
      "applied config still waiting for confirmation",
    );
  else if (r.kind === "unrecoverable") log.error({ file: path }, r.problem);
}
