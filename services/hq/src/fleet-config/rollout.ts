// A staged rollout of desired config documents (docs/fleet-config.md, "Rollout"). Stages are
// cumulative counts of the probes that need the change (`1,10%,100%`: one probe, then up to 10 %
// of them, then the rest); probes already on the desired document are skipped, not counted.
// Per probe, "commit confirmed": cmd/apply_config → its reply ok → the retained `config` shows the
// new document_hash with the probe online (the round trip HQ → probe → HQ works on the new config)
// → cmd/confirm_config → its reply ok. The first failure stops the rollout: nothing more is sent,
// and the failed probe rolls back by itself when its confirm window passes. The transport is
// injected (MQTT in service.ts, a script in the unit tests).
import type { ReplyPayload } from "../../../contract/src/payloads.ts";

/** What HQ sees of one probe right now (from Fleet). */
export interface ProbeConfigState {
  online: boolean;
  document_hash: string | null;
  pending: { document_hash: string } | null;
  rolled_back: { document_hash: string; at: string } | null;
}

/** What the rollout needs of the MQTT side. */
export interface RolloutTransport {
  /** Publishes `cmd/<name>` to the probe and resolves with its reply, or "timeout". */
  command(
    key: string,
    name: string,
    payload: Record<string, unknown>,
    timeoutMs: number,
  ): Promise<ReplyPayload | "timeout">;
  /** The probe's state as of now; undefined when HQ never heard of it. */
  state(key: string): ProbeConfigState | undefined;
  /** Resolves when `until(state)` is true or after `timeoutMs` (false then). */
  waitFor(key: string, until: (s: ProbeConfigState) => boolean, timeoutMs: number): Promise<boolean>;
}

/** One probe to roll out to. */
export interface RolloutTarget {
  key: string;
  document: Record<string, unknown>;
  hash: string;
}

/** Timing of a rollout. */
export interface RolloutOptions {
  /** Cumulative stages: `1`, `10%`, `100%`, comma-separated. */
  stages: string;
  /** The probe's confirm window (cmd/apply_config confirm_s). */
  confirmS: number;
  /** Longest wait for a reply. */
  replyTimeoutMs: number;
  /** Longest wait, after the reply, for the retained config to show the new hash. */
  effectiveTimeoutMs: number;
  /** Probes of a stage rolled at once (default 1). After a failure no new one starts; those in flight finish. */
  parallel?: number;
}

/** A failure's stable code (docs/fleet-config.md lists them). */
export type FailureCode =
  | "offline"
  | "refused"
  | "reply_timeout"
  | "not_applied"
  | "rolled_back"
  | "confirm_failed"
  | "confirm_timeout";

/** One probe's outcome. */
export interface ProbeOutcome {
  key: string;
  stage: number;
  hash: string;
  outcome: "confirmed" | "skipped" | "failed";
  code?: FailureCode;
  /** The probe's refusal (code, message and every problem) or what HQ waited for. */
  detail?: string;
  problems?: string[];
}

/** Callbacks as the rollout goes (the service stores each outcome at once). */
export interface RolloutEvents {
  onProbe?(o: ProbeOutcome): void | Promise<void>;
  onStage?(stage: number, keys: string[]): void | Promise<void>;
}

/** Parses `1,10%,100%`; throws RangeError naming the bad part. */
export function parseStages(spec: string): Array<{ count: number } | { percent: number }> {
  const parts = spec.split(",").map((p) => p.trim());
  if (parts.length === 0 || parts.some((p) => p === ""))
    throw new RangeError(`stages: ${JSON.stringify(spec)} has an empty stage`);
  return parts.map((p) => {
    const m = /^(\d+)(%?)$/.exec(p);
    const n = m ? Number(m[1]) : NaN;
    if (!m || n < 1 || (m[2] === "%" && n > 100))
      throw new RangeError(
        `stages: ${JSON.stringify(p)} is neither a probe count (1, 5) nor a percentage (10%, 100%)`,
      );
    return m[2] === "%" ? { percent: n } : { count: n };
  });
}

/**
 * How many probes each stage has done by its end, for `n` probes: cumulative, never more than n,
 * empty stages left out, and the last stage always reaches n (a rollout covers its whole scope).
 */
export function stageSizes(spec: string, n: number): number[] {
  const out: number[] = [];
  for (const s of parseStages(spec)) {
    const upTo = Math.min(n, "count" in s ? s.count : Math.ceil((s.percent / 100) * n));
    if (upTo > (out.at(-1) ?? 0)) out.push(upTo);
  }
  if (n > 0 && out.at(-1) !== n) out.push(n);
  return out;
}

/** The outcome of a whole rollout. */
export interface RolloutOutcome {
  state: "done" | "stopped";
  reason: string | null;
  probes: ProbeOutcome[];
}

function replyProblem(r: ReplyPayload): { detail: string; problems?: string[] } {
  const e = r.error;
  return e
    ? { detail: `${e.code}: ${e.message}`, ...(e.problems ? { problems: e.problems } : {}) }
    : { detail: "reply not ok" };
}

/** Rolls one probe forward; resolves with its outcome (never throws for a probe's failure). */
export async function rollOne(
  t: RolloutTarget,
  stage: number,
  tr: RolloutTransport,
  o: RolloutOptions,
): Promise<ProbeOutcome> {
  const fail = (code: FailureCode, detail: string, problems?: string[]): ProbeOutcome => ({
    key: t.key,
    stage,
    hash: t.hash,
    outcome: "failed",
    code,
    detail,
    ...(problems ? { problems } : {}),
  });
  const before = tr.state(t.key);
  if (!before?.online) return fail("offline", "the probe is not online at HQ");
  const rolledBackAt = before.rolled_back?.at ?? null;
  const reply = await tr.command(
    t.key,
    "apply_config",
    { document: t.document, document_hash: t.hash, confirm_s: o.confirmS },
    o.replyTimeoutMs,
  );
  if (reply === "timeout")
    return fail("reply_timeout", `no reply to apply_config within ${o.replyTimeoutMs} ms`);
  if (!reply.ok) {
    const p = replyProblem(reply);
    return fail("refused", p.detail, p.problems);
  }
  // A rollback of this document after we sent it (a new rolled_back entry) ends the wait early.
  const rolledBack = (s: ProbeConfigState) =>
    s.rolled_back !== null && s.rolled_back.document_hash === t.hash && s.rolled_back.at !== rolledBackAt;
  const on = await tr.waitFor(
    t.key,
    (s) => rolledBack(s) || (s.online && s.document_hash === t.hash),
    o.effectiveTimeoutMs,
  );
  const now = tr.state(t.key);
  if (now && rolledBack(now)) return fail("rolled_back", "the probe went back to its previous config");
  if (!on || !now)
    return fail(
      now?.online === false ? "offline" : "not_applied",
      `the retained config did not show document ${t.hash.slice(0, 12)} with the probe online within ${o.effectiveTimeoutMs} ms`,
    );
  const confirm = await tr.command(t.key, "confirm_config", { document_hash: t.hash }, o.replyTimeoutMs);
  if (confirm === "timeout")
    return fail("confirm_timeout", `no reply to confirm_config within ${o.replyTimeoutMs} ms`);
  if (!confirm.ok) {
    const p = replyProblem(confirm);
    return fail("confirm_failed", p.detail, p.problems);
  }
  return { key: t.key, stage, hash: t.hash, outcome: "confirmed" };
}

/**
 * Runs a rollout to its end or its first failure; in key order, `parallel` probes at a time within
 * a stage (a stage starts when the one before has finished).
 */
export async function runRollout(
  targets: readonly RolloutTarget[],
  tr: RolloutTransport,
  o: RolloutOptions,
  ev: RolloutEvents = {},
): Promise<RolloutOutcome> {
  const probes: ProbeOutcome[] = [];
  const sorted = [...targets].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const todo: RolloutTarget[] = [];
  for (const t of sorted) {
    if (tr.state(t.key)?.document_hash === t.hash && tr.state(t.key)?.pending === null) {
      const s: ProbeOutcome = { key: t.key, stage: 0, hash: t.hash, outcome: "skipped" };
      probes.push(s);
      await ev.onProbe?.(s);
    } else todo.push(t);
  }
  const sizes = stageSizes(o.stages, todo.length);
  const parallel = Math.max(1, Math.floor(o.parallel ?? 1));
  let done = 0;
  let failed: ProbeOutcome | undefined;
  for (const [i, upTo] of sizes.entries()) {
    const stage = i + 1;
    const batch = todo.slice(done, upTo);
    await ev.onStage?.(
      stage,
      batch.map((t) => t.key),
    );
    let next = 0;
    const worker = async (): Promise<void> => {
      while (failed === undefined && next < batch.length) {
        const t = batch[next++]!;
        const out = await rollOne(t, stage, tr, o);
        probes.push(out);
        await ev.onProbe?.(out);
        if (out.outcome === "failed") failed ??= out;
      }
    };
    await Promise.all(Array.from({ length: Math.min(parallel, batch.length) }, () => worker()));
    if (failed)
      return {
        state: "stopped",
        reason: `stage ${failed.stage}, ${failed.key}: ${failed.code}: ${failed.detail ?? ""}`.trim(),
        probes,
      };
    done = upTo;
  }
  return { state: "done", reason: null, probes };
}
