// Fleet config at HQ (docs/fleet-config.md, "At headquarters"): templates stored with their
// history, each probe's desired document composed from them and validated, drift (desired vs the
// document_hash of the probe's retained `config`), staged rollouts and rollbacks. The HTTP routes
// (http.ts) and the CLI (cli.ts, over those routes) are its only callers.
import { randomUUID } from "node:crypto";
import type { Logger } from "../../../contract/src/log.ts";
import type { ReplyPayload } from "../../../contract/src/payloads.ts";
import type { Fleet } from "../fleet.ts";
import type { ConfigHistory, RolloutProbeRecord, RolloutRecord } from "../history/store.ts";
import {
  compose,
  ComposeError,
  templateProblems,
  templatesFor,
  type Composed,
  type Level,
  type Template,
} from "./compose.ts";
import { documentDiff } from "./diff.ts";
import { runRollout, stageSizes, type ProbeOutcome, type RolloutTransport } from "./rollout.ts";
import { documentValidator, type DocumentValidator, type Problem } from "./validate.ts";
import { CONFIRM_DEFAULT_S, CONFIRM_MAX_S, CONFIRM_MIN_S } from "../../../contract/src/config-document.ts";

/** A probe's desired document, or why there is none. */
export type Desired =
  | ({ ok: true; problems: [] } & Composed)
  | {
      ok: false;
      error: "no_template" | "compose" | "invalid";
      message: string;
      problems: Problem[];
      hash?: string;
    };

/** One row of `hq config status`. */
export interface StatusRow {
  key: string;
  online: boolean;
  desired_hash: string | null;
  effective_hash: string | null;
  /** in_sync, drift, pending (applied, not yet confirmed), unknown (the probe never said), invalid, no_template */
  drift: "in_sync" | "drift" | "pending" | "unknown" | "invalid" | "no_template";
  detail: string | null;
}

/** What a rollout request says. */
export interface RolloutRequest {
  /** `all`, `site:<id>`, `group:<name>`, `probe:<site/probe>` */
  scope: string;
  stages: string;
  confirm_s: number;
  reply_timeout_s: number;
  effective_timeout_s: number;
  /** Probes of a stage rolled at once. */
  parallel: number;
  comment: string;
  author: string;
}

/** Outcome of a request that may be refused: an HTTP status and a body. */
export type Answer = { code: number; body: unknown };

const DEFAULT_STAGES = "1,10%,100%";
/** Most probes of a stage rolled at once. */
export const MAX_PARALLEL = 50;

export class FleetConfig {
  readonly #store: ConfigHistory;
  readonly #fleet: Fleet;
  readonly #tr: RolloutTransport;
  readonly #log: Logger;
  readonly #validate: DocumentValidator;
  #templates: Template[] | undefined;
  #running: string | undefined;
  /** The promise of the running rollout (tests and shutdown wait for it). */
  current: Promise<void> = Promise.resolve();

  constructor(
    store: ConfigHistory,
    fleet: Fleet,
    transport: RolloutTransport,
    log: Logger,
    validate?: DocumentValidator,
  ) {
    this.#store = store;
    this.#fleet = fleet;
    this.#tr = transport;
    this.#log = log;
    this.#validate = validate ?? documentValidator();
  }

  /** A rollout left `running` by an HQ that stopped is over: marked stopped, saying why. */
  async start(): Promise<void> {
    for (const r of await this.#store.rollouts(1000))
      if (r.state === "running")
        await this.#store.putRollout({
          ...r,
          state: "stopped",
          reason: "HQ stopped during the rollout (unconfirmed probes rolled back by themselves)",
          finished_at: Date.now(),
        });
  }

  async templates(): Promise<Template[]> {
    this.#templates ??= (await this.#store.currentTemplates()).map((t) => ({
      level: t.level as Level,
      name: t.name,
      body: t.body as Template["body"],
    }));
    return this.#templates;
  }

  /** Every probe HQ knows of: heard on MQTT, or named by a probe template. */
  async probeKeys(): Promise<string[]> {
    const keys = new Set(this.#fleet.list().map((p) => p.key));
    for (const t of await this.templates()) if (t.level === "probe") keys.add(t.name);
    return [...keys].sort();
  }

  /** The desired document of `site/probe`, composed and validated. */
  desiredWith(templates: readonly Template[], key: string): Desired {
    const [site = "", probe = ""] = key.split("/");
    if (templatesFor(templates, site, probe).length === 0)
      return { ok: false, error: "no_template", message: "no template covers this probe", problems: [] };
    let c: Composed;
    try {
      c = compose(templates, site, probe);
    } catch (err) {
      if (!(err instanceof ComposeError)) throw err;
      return {
        ok: false,
        error: "compose",
        message: err.message,
        problems: [{ path: err.path, message: err.message }],
      };
    }
    const problems = this.#validate(c.document);
    if (problems.length > 0)
      return {
        ok: false,
        error: "invalid",
        message: `the composed document is invalid: ${problems.length} problem${problems.length === 1 ? "" : "s"}`,
        problems,
        hash: c.hash,
      };
    return { ok: true, problems: [], ...c };
  }

  async desired(key: string): Promise<Desired> {
    return this.desiredWith(await this.templates(), key);
  }

  /** Stores a template version; refused (nothing stored) when it breaks a known probe's document. */
  async setTemplate(
    level: string,
    name: string,
    body: unknown,
    author: string,
    comment: string,
    force = false,
  ): Promise<Answer> {
    const shape = templateProblems({ level, name, body });
    if (shape.length > 0) return { code: 400, body: { error: "invalid template", problems: shape } };
    const next = (await this.templates()).filter((t) => !(t.level === level && t.name === name));
    next.push({ level: level as Level, name, body: body as Template["body"] });
    const affected: Array<{ key: string; hash?: string; error?: string; problems: Problem[] }> = [];
    const keys = new Set(await this.probeKeys());
    if (level === "probe") keys.add(name); // a probe HQ has not heard of yet is checked too
    for (const key of [...keys].sort()) {
      const d = this.desiredWith(next, key);
      if (d.ok) affected.push({ key, hash: d.hash, problems: [] });
      else if (d.error !== "no_template") affected.push({ key, error: d.message, problems: d.problems });
    }
    const broken = affected.filter((a) => a.error !== undefined);
    if (broken.length > 0 && !force)
      return {
        code: 422,
        body: {
          error: "the template makes these probes' documents invalid; nothing was stored",
          probes: broken,
        },
      };
    const version = await this.#store.putTemplate({ level, name, body, author, at: Date.now(), comment });
    this.#templates = undefined;
    this.#log.info({ level, name, version, author }, "config template stored");
    return { code: 200, body: { level, name, version, probes: affected } };
  }

  async deleteTemplate(level: string, name: string, author: string, comment: string): Promise<Answer> {
    const exists = (await this.templates()).some((t) => t.level === level && t.name === name);
    if (!exists) return { code: 404, body: { error: `no template ${level}:${name}` } };
    const version = await this.#store.putTemplate({
      level,
      name,
      body: null,
      author,
      at: Date.now(),
      comment,
    });
    this.#templates = undefined;
    return { code: 200, body: { level, name, version, deleted: true } };
  }

  /** Desired vs effective per probe. */
  async status(): Promise<StatusRow[]> {
    const templates = await this.templates();
    return (await this.probeKeys()).map((key) => {
      const v = this.#fleet.view(key);
      const d = this.desiredWith(templates, key);
      const effective = v?.document_hash ?? null;
      const row = (drift: StatusRow["drift"], detail: string | null): StatusRow => ({
        key,
        online: v?.state === "online",
        desired_hash: d.ok ? d.hash : (d.hash ?? null),
        effective_hash: effective,
        drift,
        detail,
      });
      if (!d.ok) return row(d.error === "no_template" ? "no_template" : "invalid", d.message);
      if (effective === null) return row("unknown", "the probe has not reported a document_hash");
      if (v?.config_pending)
        return row("pending", `waiting for confirmation of ${v.config_pending.document_hash.slice(0, 12)}`);
      return effective === d.hash ? row("in_sync", null) : row("drift", null);
    });
  }

  /** The desired document against the effective one, as readable lines. */
  async diff(key: string): Promise<Answer> {
    const v = this.#fleet.view(key);
    const d = await this.desired(key);
    if (!v && !d.ok) return { code: 404, body: { error: `no probe ${key} and no template for it` } };
    const effectiveHash = v?.document_hash ?? null;
    // The document itself when HQ knows it (it sent it); otherwise the probe's redacted config,
    // which has defaults filled in and durations in ms, so more lines differ.
    const known = effectiveHash ? await this.#store.document(effectiveHash) : undefined;
    const effective = known ?? this.#fleet.configOf(key);
    const against = known !== undefined ? "document" : effective !== undefined ? "redacted_config" : "none";
    const desired = d.ok ? d.document : undefined;
    return {
      code: 200,
      body: {
        key,
        desired_hash: d.ok ? d.hash : null,
        effective_hash: effectiveHash,
        in_sync: d.ok && effectiveHash === d.hash,
        against,
        ...(d.ok ? {} : { desired_error: d.message, problems: d.problems }),
        lines: documentDiff(effective ?? {}, desired ?? {}),
      },
    };
  }

  #scopeKeys(scope: string, keys: string[], templates: Template[]): string[] | null {
    if (scope === "all") return keys;
    const [kind, ...rest] = scope.split(":");
    const arg = rest.join(":");
    if (kind === "probe") return keys.includes(arg) ? [arg] : [];
    if (kind === "site") return keys.filter((k) => k.split("/")[0] === arg);
    if (kind === "group") {
      const g = templates.find((t) => t.level === "group" && t.name === arg);
      return g ? keys.filter((k) => g.body.sites?.includes(k.split("/")[0]!)) : [];
    }
    return null;
  }

  /** Starts a rollout in the background; refused before anything is sent when a document is invalid. */
  async startRollout(r: RolloutRequest): Promise<Answer> {
    if (this.#running) return { code: 409, body: { error: `rollout ${this.#running} is still running` } };
    try {
      stageSizes(r.stages, 1);
    } catch (err) {
      return { code: 400, body: { error: (err as Error).message } };
    }
    if (!Number.isInteger(r.parallel) || r.parallel < 1 || r.parallel > MAX_PARALLEL)
      return { code: 400, body: { error: `parallel: 1..${MAX_PARALLEL} probes at once` } };
    if (!Number.isInteger(r.confirm_s) || r.confirm_s < CONFIRM_MIN_S || r.confirm_s > CONFIRM_MAX_S)
      return { code: 400, body: { error: `confirm_s: ${CONFIRM_MIN_S}..${CONFIRM_MAX_S} seconds` } };
    const templates = await this.templates();
    const keys = this.#scopeKeys(r.scope, await this.probeKeys(), templates);
    if (keys === null)
      return { code: 400, body: { error: "scope: all, site:<id>, group:<name> or probe:<site/probe>" } };
    const targets: Array<{ key: string; document: Record<string, unknown>; hash: string }> = [];
    const invalid: Array<{ key: string; error: string; problems: Problem[] }> = [];
    for (const key of keys) {
      const d = this.desiredWith(templates, key);
      if (d.ok) targets.push({ key, document: d.document, hash: d.hash });
      else if (d.error !== "no_template" || r.scope.startsWith("probe:"))
        invalid.push({ key, error: d.message, problems: d.problems });
    }
    const id = `r-${new Date().toISOString().replace(/[-:.]/g, "").slice(0, 15)}-${randomUUID().slice(0, 8)}`;
    const record: RolloutRecord = {
      id,
      author: r.author,
      comment: r.comment,
      stages: r.stages,
      scope: r.scope,
      state: "running",
      reason: null,
      started_at: Date.now(),
      finished_at: null,
    };
    if (invalid.length > 0) {
      // Validation at HQ: nothing is sent; the refusal is history like any rollout.
      const reason = `HQ validation: ${invalid.map((i) => `${i.key}: ${i.error}`).join("; ")}`;
      await this.#store.putRollout({ ...record, state: "stopped", reason, finished_at: Date.now() });
      for (const i of invalid)
        await this.#store.putRolloutProbe({
          rollout_id: id,
          site: i.key.split("/")[0]!,
          probe: i.key.split("/")[1] ?? "",
          stage: 0,
          document_hash: "",
          outcome: "failed",
          code: "invalid",
          detail: i.problems.map((p) => `${p.path || "(document)"}: ${p.message}`).join("\n") || i.error,
          at: Date.now(),
        });
      return { code: 422, body: { error: "invalid documents: nothing was sent", id, probes: invalid } };
    }
    if (targets.length === 0)
      return { code: 404, body: { error: `no probe in scope ${r.scope} has a template` } };
    for (const t of targets) await this.#store.putDocument(t.hash, t.document, Date.now());
    await this.#store.putRollout(record);
    await this.#store.audit({
      at: Date.now(),
      actor: r.author,
      action: "rollout",
      subject: r.scope,
      detail: JSON.stringify({
        id,
        stages: r.stages,
        parallel: r.parallel,
        probes: targets.length,
        comment: r.comment,
      }),
    });
    this.#running = id;
    this.#log.info(
      { id, scope: r.scope, stages: r.stages, probes: targets.length, author: r.author },
      "rollout started",
    );
    const record1 = (o: ProbeOutcome): RolloutProbeRecord => ({
      rollout_id: id,
      site: o.key.split("/")[0]!,
      probe: o.key.split("/")[1]!,
      stage: o.stage,
      document_hash: o.hash,
      outcome: o.outcome,
      code: o.code ?? null,
      detail: [o.detail, ...(o.problems ?? [])].filter((x) => x !== undefined).join("\n") || null,
      at: Date.now(),
    });
    this.current = runRollout(
      targets,
      this.#tr,
      {
        stages: r.stages,
        confirmS: r.confirm_s,
        replyTimeoutMs: r.reply_timeout_s * 1000,
        effectiveTimeoutMs: r.effective_timeout_s * 1000,
        parallel: r.parallel,
      },
      {
        onProbe: async (o) => {
          await this.#store.putRolloutProbe(record1(o));
          if (o.outcome === "failed")
            this.#log.warn({ id, probe: o.key, code: o.code, detail: o.detail }, "rollout: probe failed");
        },
      },
    )
      .then(async (out) => {
        await this.#store.putRollout({
          ...record,
          state: out.state,
          reason: out.reason,
          finished_at: Date.now(),
        });
        this.#log.info({ id, state: out.state, reason: out.reason }, "rollout finished");
      })
      .catch(async (err: unknown) => {
        this.#log.error({ id, err: String(err) }, "rollout failed with an error");
        await this.#store
          .putRollout({
            ...record,
            state: "stopped",
            reason: `internal: ${String(err)}`,
            finished_at: Date.now(),
          })
          .catch(() => undefined);
      })
      .finally(() => {
        this.#running = undefined;
      });
    return { code: 202, body: { id, probes: targets.length } };
  }

  async rollouts(limit = 20): Promise<RolloutRecord[]> {
    return this.#store.rollouts(limit);
  }

  async rollout(id: string): Promise<Answer> {
    const r = (await this.#store.rollouts(1000)).find((x) => x.id === id);
    if (!r) return { code: 404, body: { error: `no rollout ${id}` } };
    return { code: 200, body: { ...r, probes: await this.#store.rolloutProbes(id) } };
  }

  /** cmd/rollback_config to one probe; the reply as it came. */
  async rollback(key: string, author: string, timeoutMs = 30_000): Promise<Answer> {
    const v = this.#fleet.view(key);
    if (!v) return { code: 404, body: { error: `HQ has not heard of probe ${key}` } };
    await this.#store.audit({
      at: Date.now(),
      actor: author,
      action: "rollback",
      subject: key,
      detail: "{}",
    });
    const reply: ReplyPayload | "timeout" = await this.#tr.command(key, "rollback_config", {}, timeoutMs);
    if (reply === "timeout")
      return { code: 504, body: { error: `no reply from ${key} within ${timeoutMs} ms` } };
    return { code: reply.ok ? 200 : 409, body: reply };
  }

  /** Template versions and the audit trail, newest first. */
  async history(level?: string, name?: string): Promise<Answer> {
    const versions = await this.#store.templateVersions({
      ...(level !== undefined ? { level } : {}),
      ...(name !== undefined ? { name } : {}),
    });
    return {
      code: 200,
      body: {
        versions,
        audit: level === undefined ? await this.#store.auditLog(100) : [],
        rollouts: level === undefined ? await this.#store.rollouts(20) : [],
      },
    };
  }
}

/** Defaults of a rollout request. */
export const ROLLOUT_DEFAULTS = {
  stages: DEFAULT_STAGES,
  confirm_s: CONFIRM_DEFAULT_S,
  reply_timeout_s: 30,
  effective_timeout_s: 60,
  parallel: 1,
} as const;
