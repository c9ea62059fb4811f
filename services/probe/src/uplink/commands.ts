/**
 * Commands from headquarters (`cmd/<name>`, docs/mqtt.md): validation, idempotency per
 * `request_id`, dispatch, and the reply. Pure of MQTT: the uplink hands in what arrived and
 * publishes what comes back, so unit tests and the fuzz drive this directly.
 *
 * Hostile by default: a compromised HQ client (or anyone holding its credentials) can publish
 * as fast as the broker lets it. So, before any work: a token bucket (excess is dropped and counted,
 * never answered: a reply per flooded message would double the flood), a size limit, and a nesting
 * limit checked by a byte scan before JSON.parse (a 30,000-deep array makes the canonicalizer's
 * recursion throw RangeError). Reloads that overlap share one re-read of the file.
 *
 * Idempotency memory: request ids with the time they were first seen, for 15 minutes, not the
 * store's state table. It is sized from the token bucket (burst + rate × window), so within the
 * window every id the bucket let through is still remembered; if it is ever full anyway, a new id is
 * dropped rather than an old one forgotten — a duplicate within the window never runs twice. A repeat can only come from the broker redelivering a
 * QoS 1 message or from HQ retrying after a lost reply, both within seconds to minutes of the
 * original and within one connection's life; the uplink's sessions are clean, so nothing queued
 * for the probe survives a restart of the probe. Every command is harmless to repeat after a
 * restart anyway (run once more, blink again, reload the same file). Writing each id to SQLite
 * would cost an SD-card write per command, for no case that needs it.
 */
import { createHash } from "node:crypto";
import { Value } from "@sinclair/typebox/value";
import type { TSchema } from "@sinclair/typebox";
import type { Area } from "../checks/check.ts";
import { canonicalJson } from "../config/redact.ts";
import type { Config } from "../config/schema.ts";
import {
  ApplyConfigCommand,
  ConfigCommand,
  ConfirmConfigCommand,
  IDENTIFY_DEFAULT_S,
  IdentifyCommand,
  ReloadCommand,
  REQUEST_ID_PATTERN,
  RollbackConfigCommand,
  RunCommand,
  SCHEMA_VERSION,
  replyTopic,
  type CommandErrorCode,
  type CommandName,
  type ReplyPayload,
} from "../../../contract/src/payloads.ts";
import type { Logger } from "../../../contract/src/log.ts";
import { CONFIRM_DEFAULT_S, documentHash } from "../../../contract/src/config-document.ts";

/** What the commands act on: the service implements it; unit tests pass a double. */
export interface CommandTarget {
  /** Starts one enabled check now; returns the names started, or undefined when there is no such check. */
  runCheck(name: string): string[] | undefined;
  /** Starts every enabled check of an area now; returns their names (empty: none in that area). */
  runArea(area: Area): string[];
  /** Blinks every LED amber for this long. */
  identify(durationMs: number): void;
  /** Re-reads the config file and applies it, or refuses it and keeps the running one. */
  reload(): Promise<ReloadOutcome>;
  /** The running config with secrets redacted, and its hash. */
  effectiveConfig(): { config: Config; hash: string };
  /**
   * Makes `document` (its hash already checked) the config file and applies it like a reload,
   * pending until confirmed within `confirmMs`; invalid or restart-only: refused, nothing changes.
   */
  applyConfig(
    document: Record<string, unknown>,
    documentHash: string,
    confirmMs: number,
  ): Promise<ApplyOutcome>;
  /** Confirms the pending document `documentHash`; false when no such document is pending. */
  confirmConfig(documentHash: string): Promise<boolean>;
  /** Goes back to the last-known-good config file now. */
  rollbackConfig(): Promise<RollbackOutcome>;
}

/** The outcome of an apply; `after` as in {@link ReloadOutcome}. */
export type ApplyOutcome =
  | { ok: true; hash: string; changed: string[]; confirmBy: string; after?: () => Promise<void> }
  | {
      ok: false;
      code: "config_invalid" | "restart_required" | "internal";
      message: string;
      problems: string[];
    };

/** The outcome of a rollback; `after` as in {@link ReloadOutcome}. */
export type RollbackOutcome =
  | { ok: true; hash: string; documentHash: string; after?: () => Promise<void> }
  | { ok: false; code: "no_previous" | "internal"; message: string };

/** The outcome of a reload; `after` runs once the reply is out (e.g. reconnecting to a new broker). */
export type ReloadOutcome =
  | { ok: true; hash: string; changed: string[]; after?: () => Promise<void> }
  | { ok: false; code: "config_invalid" | "restart_required"; message: string; problems: string[] };

/** A message that arrived on `cmd/<name>`. */
export interface IncomingCommand {
  /** The topic after `cmd/` (unchecked: may be anything a publisher chose). */
  name: string;
  payload: Buffer;
  /** MQTT 5 Response Topic, when the requester set one. */
  responseTopic?: string | undefined;
  /** MQTT 5 Correlation Data, echoed on the reply. */
  correlationData?: Buffer | undefined;
  /** Set when the broker delivered a retained message. */
  retain?: boolean | undefined;
}

/** A reply to publish (QoS 1, not retained, with the reply expiry). */
export interface OutgoingReply {
  /** Absolute topic. */
  topic: string;
  payload: string;
  correlationData?: Buffer | undefined;
}

/** What handling one command produced: the replies (none: dropped, and logged) and work for after. */
export interface CommandOutcome {
  replies: OutgoingReply[];
  after?: (() => Promise<void>) | undefined;
}

/** Settings of a CommandProcessor. */
export interface CommandProcessorOptions {
  /** The probe's base topic, `netprobe/v1/<site>/<probe>/`. */
  base: string;
  site: string;
  probe: string;
  target: CommandTarget;
  log: Logger;
  /** Largest payload accepted (default 8 KiB); a command is a few hundred bytes. */
  maxPayloadBytes?: number;
  /** Commands accepted per minute, sustained, and in one burst (default 60 and 30). */
  rate?: CommandRate;
  /** Request ids remembered (default: burst + rate × memoryTtlMs, at most 10,000). */
  memorySize?: number;
  /** How long a request id is remembered (default 15 minutes). */
  memoryTtlMs?: number;
  now?: () => number;
}

/** A token bucket's settings: `perMinute` sustained, `burst` at once. */
export interface CommandRate {
  perMinute: number;
  burst: number;
}

/** Largest command payload accepted by default: a command is a few hundred bytes. */
export const MAX_COMMAND_BYTES = 8 * 1024;
/** Commands accepted by default: 1 a second sustained, 30 at once (an operator clicks, a script retries). */
export const DEFAULT_COMMAND_RATE: CommandRate = { perMinute: 60, burst: 30 };
/** Deepest JSON nesting accepted; every command is a flat object (depth 1)… */
export const MAX_COMMAND_DEPTH = 8;
/** …except `apply_config`, which carries a whole config file: its own, larger limits. */
export const MAX_DOCUMENT_COMMAND_BYTES = 256 * 1024;
export const MAX_DOCUMENT_COMMAND_DEPTH = 32;
const MAX_MEMORY = 10_000;
/** At most one "rate limited" summary line per this long, so a flood does not flood the journal too. */
const DROP_LOG_EVERY_MS = 10_000;
const MAX_PROBLEMS = 10;
const MAX_TEXT = 200;
const REQUEST_ID = new RegExp(REQUEST_ID_PATTERN);

interface Remembered {
  /** sha256 of name + canonical payload: an 8 KiB payload is not kept 10,000 times. */
  fingerprint: string;
  at: number;
  reply: Promise<ReplyPayload>;
}

/** What carrying out one command came to: the reply's result, or its error. */
type Executed =
  | { ok: true; result: NonNullable<ReplyPayload["result"]>; after?: () => Promise<void> }
  | { ok: false; code: CommandErrorCode; message: string; problems?: string[] };

/** What a command's `execute` may use. */
interface ExecuteContext {
  target: CommandTarget;
  now: () => number;
  /** The target's reload, overlapping requests coalesced (CommandProcessor). */
  reload: () => Promise<ReloadOutcome>;
}

/** One HQ command: its payload schema, the rules the schema cannot state, its parse and its effect. */
interface CommandSpec<Args> {
  schema: TSchema;
  /** Size and nesting limits when not the processor's (default: maxPayloadBytes, MAX_COMMAND_DEPTH). */
  maxBytes?: number;
  maxDepth?: number;
  /** Rules JSON Schema states but TypeBox's checker does not apply, as `path: what`. */
  rules?: (payload: Record<string, unknown>) => string[];
  /** The arguments of a payload that passed `schema` and `rules`. */
  parse: (payload: Record<string, unknown>) => Args;
  execute: (args: Args, ctx: ExecuteContext) => Executed | Promise<Executed>;
}

/** A command spec with its argument type erased, so the table can hold every command. */
interface Command {
  schema: TSchema;
  maxBytes: number | undefined;
  maxDepth: number;
  rules: (payload: Record<string, unknown>) => string[];
  run: (payload: Record<string, unknown>, ctx: ExecuteContext) => Promise<Executed>;
}

function command<Args>(spec: CommandSpec<Args>): Command {
  return {
    schema: spec.schema,
    maxBytes: spec.maxBytes,
    maxDepth: spec.maxDepth ?? MAX_COMMAND_DEPTH,
    rules: spec.rules ?? (() => []),
    run: async (payload, ctx) => spec.execute(spec.parse(payload), ctx),
  };
}

/**
 * Every command from HQ, each declared once: adding one is an entry here (plus its payload schema
 * and reply result in the contract). `satisfies` makes a contract command without an entry a type error.
 */
const COMMAND_TABLE = {
  run: command({
    schema: RunCommand,
    // RunCommand's `oneOf`: TypeBox's checker ignores it.
    rules: (p) => ("check" in p === "area" in p ? ["(payload): set exactly one of check, area"] : []),
    parse: (p): { check: string } | { area: Area } =>
      typeof p.check === "string" ? { check: p.check } : { area: p.area as Area },
    execute: (a, { target }) => {
      if ("check" in a) {
        const started = target.runCheck(a.check);
        if (!started)
          return { ok: false, code: "unknown_check", message: `no enabled check named ${a.check}` };
        return { ok: true, result: { started } };
      }
      const started = target.runArea(a.area);
      if (started.length === 0)
        return { ok: false, code: "unknown_area", message: `no enabled check in area ${a.area}` };
      return { ok: true, result: { started } };
    },
  }),
  identify: command({
    schema: IdentifyCommand,
    parse: (p) => ({ durationS: typeof p.duration_s === "number" ? p.duration_s : IDENTIFY_DEFAULT_S }),
    execute: ({ durationS }, { target, now }) => {
      target.identify(durationS * 1000);
      return {
        ok: true,
        result: { duration_s: durationS, until: new Date(now() + durationS * 1000).toISOString() },
      };
    },
  }),
  reload: command({
    schema: ReloadCommand,
    parse: () => ({}),
    execute: async (_, { reload }) => {
      const r = await reload();
      if (!r.ok) return { ok: false, code: r.code, message: r.message, problems: r.problems };
      return {
        ok: true,
        result: { config_hash: r.hash, changed: r.changed },
        ...(r.after ? { after: r.after } : {}),
      };
    },
  }),
  config: command({
    schema: ConfigCommand,
    parse: () => ({}),
    execute: (_, { target }) => {
      const { config, hash } = target.effectiveConfig();
      return { ok: true, result: { config_hash: hash, config } };
    },
  }),
  apply_config: command({
    schema: ApplyConfigCommand,
    maxBytes: MAX_DOCUMENT_COMMAND_BYTES,
    maxDepth: MAX_DOCUMENT_COMMAND_DEPTH,
    parse: (p) => ({
      document: p.document as Record<string, unknown>,
      documentHash: p.document_hash as string,
      confirmS: typeof p.confirm_s === "number" ? p.confirm_s : CONFIRM_DEFAULT_S,
    }),
    execute: async (a, { target }) => {
      // Before anything else: a document damaged or cut on the way must not be validated, let alone written.
      const actual = documentHash(a.document);
      if (actual !== a.documentHash)
        return {
          ok: false,
          code: "hash_mismatch",
          message: `document_hash ${a.documentHash} is not the hash of the document sent (${actual}); nothing was changed`,
        };
      const r = await target.applyConfig(a.document, a.documentHash, a.confirmS * 1000);
      if (!r.ok) return { ok: false, code: r.code, message: r.message, problems: r.problems };
      return {
        ok: true,
        result: {
          config_hash: r.hash,
          document_hash: a.documentHash,
          changed: r.changed,
          confirm_by: r.confirmBy,
        },
        ...(r.after ? { after: r.after } : {}),
      };
    },
  }),
  confirm_config: command({
    schema: ConfirmConfigCommand,
    parse: (p) => ({ documentHash: p.document_hash as string }),
    execute: async ({ documentHash: hash }, { target }) =>
      (await target.confirmConfig(hash))
        ? { ok: true, result: { document_hash: hash, confirmed: true } }
        : {
            ok: false,
            code: "not_pending",
            message: `no applied config with hash ${hash} is waiting for confirmation`,
          },
  }),
  rollback_config: command({
    schema: RollbackConfigCommand,
    parse: () => ({}),
    execute: async (_, { target }) => {
      const r = await target.rollbackConfig();
      if (!r.ok) return { ok: false, code: r.code, message: r.message };
      return {
        ok: true,
        result: { config_hash: r.hash, document_hash: r.documentHash },
        ...(r.after ? { after: r.after } : {}),
      };
    },
  }),
} as const satisfies Record<CommandName, Command>;

/** Validates, de-duplicates and runs commands; never throws for anything a publisher can send. */
export class CommandProcessor {
  readonly #o: Required<Omit<CommandProcessorOptions, "now" | "memorySize" | "rate">> & {
    now: () => number;
  };
  readonly #fixedMemorySize: number | undefined;
  readonly #memory = new Map<string, Remembered>();
  #rate: CommandRate = DEFAULT_COMMAND_RATE;
  #memorySize = 0;
  #tokens = 0;
  #refilledAt: number;
  #dropped = 0;
  #droppedSinceLog = 0;
  #dropLoggedAt = -Infinity;
  #reloadRunning: Promise<ReloadOutcome> | undefined;
  #reloadNext: Promise<ReloadOutcome> | undefined;

  constructor(options: CommandProcessorOptions) {
    const { rate, memorySize, ...rest } = options;
    this.#o = {
      maxPayloadBytes: MAX_COMMAND_BYTES,
      memoryTtlMs: 15 * 60_000,
      now: Date.now,
      ...rest,
    };
    this.#fixedMemorySize = memorySize;
    this.#refilledAt = this.#o.now();
    this.setRate(rate ?? DEFAULT_COMMAND_RATE);
    this.#tokens = this.#rate.burst;
  }

  /** Request ids currently remembered. */
  get remembered(): number {
    return this.#memory.size;
  }

  /** Commands dropped unread because they came faster than the rate allows, or memory was full. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Applies a new rate (a reload); the bucket keeps its tokens, capped at the new burst. */
  setRate(rate: CommandRate): void {
    this.#rate = { perMinute: Math.max(0, rate.perMinute), burst: Math.max(1, rate.burst) };
    this.#tokens = Math.min(this.#tokens, this.#rate.burst);
    this.#memorySize =
      this.#fixedMemorySize ??
      Math.min(
        MAX_MEMORY,
        Math.ceil(this.#rate.burst + (this.#rate.perMinute * this.#o.memoryTtlMs) / 60_000),
      );
  }

  /** Handles one command; resolves with what to publish. Never rejects. */
  async handle(cmd: IncomingCommand): Promise<CommandOutcome> {
    if (!this.#takeToken()) {
      this.#drop("rate");
      return { replies: [] };
    }
    try {
      return await this.#handle(cmd);
    } catch (err) {
      // A bug, not input: still answer if we can, and keep the service running.
      this.#o.log.error({ err: String(err), command: clip(cmd.name) }, "command failed");
      const responseTopic = usableResponseTopic(cmd.responseTopic);
      if (!responseTopic) return { replies: [] };
      const reply = this.#reply(cmd.name, null, { code: "internal", message: String(err) });
      return {
        replies: [
          { topic: responseTopic, payload: JSON.stringify(reply), correlationData: cmd.correlationData },
        ],
      };
    }
  }

  async #handle(cmd: IncomingCommand): Promise<CommandOutcome> {
    const log = this.#o.log;
    const command = clip(cmd.name);
    const responseTopic = usableResponseTopic(cmd.responseTopic);
    if (cmd.responseTopic !== undefined && responseTopic === undefined)
      log.warn({ command, response_topic: clip(cmd.responseTopic) }, "ignoring unusable response topic");
    if (cmd.retain) {
      // A retained command would run again on every reconnect of every probe: never act on one.
      log.warn({ command }, "command dropped: it was retained (publish commands with retain=false)");
      return { replies: [] };
    }

    // Size, nesting, UTF-8, JSON: before this there is no request id to answer to, only a response topic.
    let parsed: unknown;
    let early: { code: CommandErrorCode; message: string } | undefined;
    const known: Command | undefined = Object.hasOwn(COMMAND_TABLE, cmd.name)
      ? COMMAND_TABLE[cmd.name as CommandName]
      : undefined;
    const maxBytes = Math.max(this.#o.maxPayloadBytes, known?.maxBytes ?? 0);
    const maxDepth = known?.maxDepth ?? MAX_COMMAND_DEPTH;
    if (cmd.payload.length > maxBytes) {
      early = {
        code: "too_large",
        message: `payload is ${cmd.payload.length} bytes; at most ${maxBytes} accepted`,
      };
    } else if (jsonDepthExceeds(cmd.payload, maxDepth)) {
      early = {
        code: "bad_json",
        message:
          maxDepth === MAX_COMMAND_DEPTH
            ? `payload nests deeper than ${maxDepth} levels; a command is a flat object`
            : `payload nests deeper than ${maxDepth} levels`,
      };
    } else {
      try {
        parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(cmd.payload));
      } catch (err) {
        early = { code: "bad_json", message: `payload is not JSON: ${clip(errorText(err))}` };
      }
    }
    const requestId = early ? undefined : requestIdOf(parsed);
    const targets = this.#targets(requestId, responseTopic);
    if (targets.length === 0) {
      log.warn(
        { command, reason: early?.code ?? "no_request_id", bytes: cmd.payload.length },
        "command dropped: no usable request_id and no response topic to answer to",
      );
      return { replies: [] };
    }
    const send = (reply: ReplyPayload): OutgoingReply[] =>
      targets.map((topic) => ({
        topic,
        payload: JSON.stringify(reply),
        correlationData: cmd.correlationData,
      }));

    if (early || requestId === undefined) {
      const error = early ?? {
        code: "invalid_command" as const,
        message: "request_id is missing or invalid",
        problems: requestIdProblems(parsed),
      };
      log.warn({ command, code: error.code }, "command refused");
      return { replies: send(this.#reply(command, null, error)) };
    }

    // Idempotency: the same id with the same request is answered from memory without running again.
    const fingerprint = createHash("sha256")
      .update(`${cmd.name}\n${canonicalJson(parsed)}`)
      .digest("hex");
    const seen = this.#recall(requestId);
    if (seen) {
      if (seen.fingerprint !== fingerprint) {
        log.warn(
          { command, request_id: requestId },
          "command refused: request_id reused for another request",
        );
        return {
          replies: send(
            this.#reply(command, requestId, {
              code: "request_id_conflict",
              message: `request_id ${requestId} was already used for a different request`,
            }),
          ),
        };
      }
      log.info({ command, request_id: requestId }, "repeated request_id: replaying the reply");
      return { replies: send({ ...(await seen.reply), replayed: true }) };
    }

    if (!this.#hasRoom()) {
      // Only when memorySize was set below what the rate lets through: never forget an id early.
      this.#drop("memory");
      return { replies: [] };
    }
    let after: (() => Promise<void>) | undefined;
    const reply = this.#execute(command, cmd.name, parsed, requestId).then((r) => {
      after = r.after;
      return r.reply;
    });
    this.#remember(requestId, { fingerprint, at: this.#o.now(), reply });
    const done = await reply;
    if (done.ok) log.info({ command, request_id: requestId }, "command done");
    else log.warn({ command, request_id: requestId, code: done.error?.code }, "command refused");
    return { replies: send(done), after };
  }

  async #execute(
    command: string,
    name: string,
    payload: unknown,
    requestId: string,
  ): Promise<{ reply: ReplyPayload; after?: () => Promise<void> }> {
    const valid = validateCommand(name, payload);
    const done: Executed = valid.ok
      ? await valid.command.run(valid.payload, {
          target: this.#o.target,
          now: this.#o.now,
          reload: () => this.#reload(),
        })
      : valid;
    if (!done.ok) {
      const { code, message, problems } = done;
      return { reply: this.#reply(command, requestId, { code, message, ...(problems ? { problems } : {}) }) };
    }
    return {
      reply: this.#reply(command, requestId, undefined, done.result),
      ...(done.after ? { after: done.after } : {}),
    };
  }

  /**
   * One reload at a time. A request arriving while one runs may carry an edit that run read too
   * early, so one more run follows it; every request arriving meanwhile shares that follow-up.
   */
  #reload(): Promise<ReloadOutcome> {
    if (!this.#reloadRunning) return this.#startReload();
    this.#reloadNext ??= this.#reloadRunning.then(() => {
      this.#reloadNext = undefined;
      return this.#startReload();
    });
    return this.#reloadNext;
  }

  #startReload(): Promise<ReloadOutcome> {
    const run = this.#o.target
      .reload()
      .then((r) => (r.ok && r.after ? { ...r, after: once(r.after) } : r))
      .finally(() => {
        if (this.#reloadRunning === run) this.#reloadRunning = undefined;
      });
    this.#reloadRunning = run;
    return run;
  }

  #takeToken(): boolean {
    const now = this.#o.now();
    const elapsed = Math.max(0, now - this.#refilledAt);
    this.#refilledAt = now;
    this.#tokens = Math.min(this.#rate.burst, this.#tokens + (elapsed * this.#rate.perMinute) / 60_000);
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  #drop(reason: "rate" | "memory"): void {
    this.#dropped += 1;
    this.#droppedSinceLog += 1;
    const now = this.#o.now();
    if (now - this.#dropLoggedAt < DROP_LOG_EVERY_MS) return;
    this.#o.log.warn(
      {
        reason,
        dropped: this.#droppedSinceLog,
        dropped_total: this.#dropped,
        per_minute: this.#rate.perMinute,
        burst: this.#rate.burst,
      },
      "commands rate-limited: dropped unread",
    );
    this.#dropLoggedAt = now;
    this.#droppedSinceLog = 0;
  }

  #targets(requestId: string | undefined, responseTopic: string | undefined): string[] {
    const out: string[] = [];
    if (requestId !== undefined) out.push(replyTopic(this.#o.base, requestId));
    if (responseTopic !== undefined && !out.includes(responseTopic)) out.push(responseTopic);
    return out;
  }

  #reply(
    command: string,
    requestId: string | null,
    error?: { code: CommandErrorCode; message: string; problems?: string[] },
    result?: ReplyPayload["result"],
  ): ReplyPayload {
    return {
      schema: SCHEMA_VERSION,
      request_id: requestId,
      command: clip(command, 64),
      ok: error === undefined,
      at: new Date(this.#o.now()).toISOString(),
      site: this.#o.site,
      probe: this.#o.probe,
      ...(result ? { result } : {}),
      ...(error ? { error } : {}),
    };
  }

  #recall(id: string): Remembered | undefined {
    const r = this.#memory.get(id);
    if (!r) return undefined;
    if (this.#o.now() - r.at > this.#o.memoryTtlMs) {
      this.#memory.delete(id);
      return undefined;
    }
    return r;
  }

  /** Forgets expired ids (a Map iterates in insertion order: oldest first); true if one more fits. */
  #hasRoom(): boolean {
    const now = this.#o.now();
    for (const [id, r] of this.#memory) {
      if (now - r.at <= this.#o.memoryTtlMs) break;
      this.#memory.delete(id);
    }
    return this.#memory.size < this.#memorySize;
  }

  #remember(id: string, r: Remembered): void {
    this.#memory.set(id, r);
  }
}

/** The outcome of validating one command payload. */
export type CommandValidation =
  | { ok: true; command: Command; payload: Record<string, unknown> }
  | { ok: false; code: "unknown_command" | "invalid_command"; message: string; problems?: string[] };

/** Checks a parsed payload against the schema and rules of `cmd/<name>`. Every problem at once. */
export function validateCommand(name: string, payload: unknown): CommandValidation {
  if (!Object.hasOwn(COMMAND_TABLE, name)) {
    return {
      ok: false,
      code: "unknown_command",
      message: `unknown command ${JSON.stringify(clip(name))}; known: ${Object.keys(COMMAND_TABLE).join(", ")}`,
    };
  }
  const command: Command = COMMAND_TABLE[name as CommandName];
  const problems: string[] = [];
  if (typeof payload !== "object" || payload === null || Array.isArray(payload)) {
    problems.push(`(payload): must be a JSON object, got ${jsonType(payload)}`);
  } else {
    for (const e of Value.Errors(command.schema, payload)) {
      if (problems.length >= MAX_PROBLEMS) break;
      problems.push(problemText(e.path, e.message, e.value));
    }
    problems.push(...command.rules(payload as Record<string, unknown>));
  }
  if (problems.length > 0) {
    return {
      ok: false,
      code: "invalid_command",
      message: `invalid ${name} command: ${problems.length} problem${problems.length === 1 ? "" : "s"}`,
      problems,
    };
  }
  return { ok: true, command, payload: payload as Record<string, unknown> };
}

/**
 * True when the JSON text in `bytes` nests arrays/objects deeper than `max`. A byte scan (strings
 * and their escapes skipped) that costs one pass and no allocation, so a hostile payload is
 * refused before JSON.parse builds it. Not a validator: JSON.parse still judges what passes.
 */
export function jsonDepthExceeds(bytes: Uint8Array, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (inString) {
      if (b === 0x5c)
        i += 1; // backslash: skip the escaped byte
      else if (b === 0x22) inString = false;
    } else if (b === 0x22) inString = true;
    else if (b === 0x5b || b === 0x7b) {
      if (++depth > max) return true;
    } else if (b === 0x5d || b === 0x7d) depth -= 1;
  }
  return false;
}

function once(fn: () => Promise<void>): () => Promise<void> {
  let p: Promise<void> | undefined;
  return () => (p ??= fn());
}

function problemText(path: string, message: string, value: unknown): string {
  const field = path === "" ? "(payload)" : clip(path.slice(1).replaceAll("/", "."), 64);
  if (path === "/schema")
    return `schema: must be ${SCHEMA_VERSION} (this probe speaks payload schema ${SCHEMA_VERSION})`;
  if (path === "/request_id" && typeof value === "string")
    return "request_id: must be 1-64 characters from A-Z a-z 0-9 _ . : - (it becomes a topic level)";
  return `${field}: ${clip(message)}`;
}

function requestIdOf(payload: unknown): string | undefined {
  if (typeof payload !== "object" || payload === null || Array.isArray(payload)) return undefined;
  const id = (payload as Record<string, unknown>).request_id;
  return typeof id === "string" && REQUEST_ID.test(id) ? id : undefined;
}

function requestIdProblems(payload: unknown): string[] {
  if (typeof payload !== "object" || payload === null || Array.isArray(payload))
    return [`(payload): must be a JSON object, got ${jsonType(payload)}`];
  const id = (payload as Record<string, unknown>).request_id;
  if (id === undefined) return ["request_id: required"];
  return [problemText("/request_id", `must be a string, got ${jsonType(id)}`, id)];
}

/** A response topic we may publish to: a topic name, not a filter, not a broker-internal `$` topic. */
function usableResponseTopic(topic: string | undefined): string | undefined {
  if (topic === undefined || topic === "" || topic.length > 1024) return undefined;
  if (topic.startsWith("$") || topic.includes("+") || topic.includes("#") || topic.includes("\0"))
    return undefined;
  return topic;
}

function jsonType(v: unknown): string {
  return v === null ? "null" : Array.isArray(v) ? "an array" : typeof v;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Keeps what a publisher chose from blowing up replies and logs. */
function clip(text: string, max = MAX_TEXT): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
