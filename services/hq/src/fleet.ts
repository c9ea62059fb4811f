// Headquarters' view of the fleet: every probe's current state, built from the MQTT contract
// (services/contract/src/payloads.ts — the one definition; nothing here redefines a payload).
// Pure and synchronous: the MQTT side hands it (topic, payload, receive time), the web page and
// `netprobe hq watch` read snapshots and listen for changes. A malformed message never throws out
// of ingest(): it is counted by reason and reported to the caller, and the state stays as it was.
// Every probe is treated as possibly compromised (docs/hq.md, "Bounds"): what one probe can make
// HQ keep is capped — payload size, checks (only those named in its retained config), string
// lengths, metrics per result, message rate — and everything refused is counted.
import { EventEmitter } from "node:events";
import { TypeCompiler, type TypeCheck } from "@sinclair/typebox/compiler";
import type { TSchema } from "@sinclair/typebox";
import { CHECK_NAME_PATTERN } from "../../contract/src/vocabulary.ts";
import {
  ConfigPayload,
  EventPayload,
  HealthPayload,
  ReplyPayload,
  ResultPayload,
  StatePayload,
  type AreaStateName,
} from "../../contract/src/payloads.ts";
import {
  areaLook,
  lookName,
  PANEL,
  RECENT_CHANGE_MS,
  statusLook,
  type PanelLed,
} from "../../contract/src/led-table.ts";

/** Topic root of the contract; HQ subscribes to `netprobe/v1/+/+/#`. */
export const TOPIC_ROOT = "netprobe/v1/";
/** The fleet subscription (wrapped in `$share/<group>/` when several HQ instances split the load). */
export const FLEET_FILTER = `${TOPIC_ROOT}+/+/#`;
/** Default largest payload HQ parses; a bigger one is counted as malformed (too_large). */
export const MAX_PAYLOAD_BYTES = 128 * 1024;
/** Longest site, probe, kind, target or error code HQ keeps; longer ones are cut (and counted). */
export const MAX_NAME_CHARS = 256;
/** Longest free text (error messages, area reasons) HQ keeps. */
export const MAX_TEXT_CHARS = 1024;
/** Largest retained `config` whose redacted config HQ keeps for `hq config diff` (a typical one is a few KiB). */
export const MAX_KEPT_CONFIG_BYTES = 32 * 1024;
/** Most metrics HQ keeps of one result (the largest check reports about 20). */
export const MAX_METRICS = 48;

/** Why a message was not taken into the state. */
export type RejectReason = "bad_topic" | "too_large" | "bad_json" | "invalid_payload" | "mismatch";

/** Why a well-formed message was dropped by a bound (docs/hq.md, "Bounds"). */
export type DropReason =
  "rate_limited" | "unknown_check" | "too_many_checks" | "too_many_probes" | "truncated";

/** The outcome reason of ingest() when it did not take a message. */
export type RefuseReason = RejectReason | DropReason;

/** One result as HQ keeps it (the envelope, minus what the tile never shows). */
export interface ResultPoint {
  id: string;
  seq: number;
  check: string;
  kind: string;
  area: string;
  target: string;
  status: ResultPayload["status"];
  started_at: string;
  duration_ms: number;
  metrics: Record<string, number>;
  error?: { code: string; message: string };
  /** The probe's boot; with mono_ms it orders results across a restarted seq (docs/hq.md). */
  boot_id: string;
  mono_ms: number;
  /** HQ clock, ms since epoch. */
  received_at: number;
}

/** One check's recent results (oldest first) and its last one. */
export interface CheckHistory {
  check: string;
  kind: string;
  area: string;
  target: string;
  results: ResultPoint[];
}

/** An event as HQ keeps it. */
export type FleetEvent = EventPayload & {
  site: string;
  probe: string;
  received_at: number;
};

/** One LED as the page draws it: `lookName` (`red-blink`) plus the area's state and reason. */
export interface LedView {
  led: PanelLed;
  look: string;
  state: AreaStateName | "online" | "offline" | "unknown";
  reason: string;
}

/** What HQ knows about one probe. */
export interface ProbeView {
  key: string;
  site: string;
  probe: string;
  /** From the retained `state` (offline comes from the will); `unknown` until the first one. */
  state: "online" | "offline" | "unknown";
  state_at: number | null;
  version: string | null;
  boot_id: string | null;
  started_at: string | null;
  /** HQ clock, ms since epoch, of the last message of any kind from this probe. */
  last_seen: number;
  health: HealthPayload | null;
  health_at: number | null;
  config_hash: string | null;
  /** documentHash() of the config file the probe runs (retained `config`); null until it says. */
  document_hash: string | null;
  /** An applied config waiting for HQ's confirmation, as the probe reports it. */
  config_pending: ConfigPayload["pending"] | null;
  /** The probe's last rollback since it started. */
  config_rolled_back: ConfigPayload["rolled_back"] | null;
  /** The panel left to right, as the technician at the rack sees it now (docs/architecture.md, "LEDs"). */
  leds: LedView[];
  events: FleetEvent[];
  results_total: number;
  duplicates: number;
  /** Messages of this probe dropped by a bound (rate, unknown or too many checks). */
  dropped: number;
}

/** A probe plus its per-check result history (the drill-down). */
export interface ProbeDetail extends ProbeView {
  checks: CheckHistory[];
}

/** One page of a probe's checks: `next_cursor` is the last check name, null on the last page. */
export interface ProbePage extends ProbeView {
  checks: CheckHistory[];
  checks_total: number;
  next_cursor: string | null;
}

/** Counters of the whole service. */
export interface FleetCounters {
  messages: number;
  results: number;
  duplicates: number;
  malformed: number;
  malformed_by_reason: Record<RejectReason, number>;
  /** Well-formed messages refused by a bound, and strings cut to length. */
  dropped: number;
  dropped_by_reason: Record<DropReason, number>;
  replies: number;
}

/** What changed, for live views: the probe's key and which part. */
export interface FleetChange {
  key: string;
  part: "state" | "health" | "result" | "event" | "config" | "reply";
  /** HQ clock when the message arrived. */
  at: number;
}

/** Outcome of one ingest(). */
export type IngestOutcome =
  | { ok: true; key: string; part: FleetChange["part"] | "ignored" }
  | { ok: false; reason: RefuseReason; topic: string; detail: string };

/** Sizes of the in-memory history. */
export interface FleetLimits {
  /** Results kept per check (ring buffer). */
  resultsPerCheck: number;
  /** Events kept per probe. */
  eventsPerProbe: number;
  /** Result ids remembered per probe for duplicate detection. */
  dedupPerProbe: number;
  /** Checks kept per probe (within those its retained config names, when it has one). */
  checksPerProbe: number;
  /** Probes kept; messages of further ones are dropped. */
  probes: number;
  /** Largest payload parsed, bytes. */
  payloadBytes: number;
  /** Messages per probe per second, sustained (a token bucket)… */
  ratePerProbe: number;
  /** …and the burst it allows (an outbox drained after an outage). */
  burstPerProbe: number;
}

/** The default bounds (docs/hq.md, "Bounds"). */
export const DEFAULT_LIMITS: FleetLimits = {
  resultsPerCheck: 120,
  eventsPerProbe: 20,
  dedupPerProbe: 4096,
  checksPerProbe: 100,
  probes: 10_000,
  payloadBytes: MAX_PAYLOAD_BYTES,
  ratePerProbe: 500,
  burstPerProbe: 20_000,
};

const CHECK_NAME = new RegExp(CHECK_NAME_PATTERN);

const checkers: Record<FleetChange["part"], TypeCheck<TSchema>> = {
  state: TypeCompiler.Compile(StatePayload),
  health: TypeCompiler.Compile(HealthPayload),
  result: TypeCompiler.Compile(ResultPayload),
  event: TypeCompiler.Compile(EventPayload),
  config: TypeCompiler.Compile(ConfigPayload),
  reply: TypeCompiler.Compile(ReplyPayload),
};

function firstError(check: TypeCheck<TSchema>, value: unknown): string {
  const e = check.Errors(value).First();
  return e ? `${e.path || "/"}: ${e.message}` : "does not match the schema";
}

/** A fixed-size FIFO of ids, for duplicate detection at bounded memory. */
class RecentIds {
  readonly #set = new Set<string>();
  readonly #order: string[] = [];
  readonly #max: number;
  constructor(max: number) {
    this.#max = max;
  }
  /** True when the id was new (and is now remembered). */
  add(id: string): boolean {
    if (this.#set.has(id)) return false;
    this.#set.add(id);
    this.#order.push(id);
    if (this.#order.length > this.#max) this.#set.delete(this.#order.shift()!);
    return true;
  }
}

interface ProbeRecord {
  view: Omit<ProbeView, "leds">;
  checks: Map<string, CheckHistory>;
  ids: RecentIds;
  recentMs: number;
  /** Check names of the retained config; null until one arrives (then only the count is capped). */
  configured: Set<string> | null;
  /** The retained config's redacted `config` (what `hq config diff` compares against). */
  config: unknown;
  tokens: number;
  tokensAt: number;
}

/** Cuts a string to `max` characters; `cut()` is called when it had to. */
function bound(s: string, max: number, cut: () => void): string {
  if (s.length <= max) return s;
  cut();
  return `${s.slice(0, max - 1)}…`;
}

/** Cross-boot order by wall clock, unless the probe's clock was not set (then HQ's arrival). */
function wallMs(p: ResultPoint, clock: ResultPayload["clock"]): number {
  const t = Date.parse(p.started_at);
  return clock === "unsynced" || Number.isNaN(t) ? p.received_at : t;
}

/**
 * True when `a` ran before `b`. Within one boot the monotonic clock orders results (seq too, but
 * the store may restart seq at 1 when its buffer is replaced); across boots the wall clock does.
 */
function ranBefore(a: ResultPoint & { wall: number }, b: ResultPoint & { wall: number }): boolean {
  if (a.boot_id === b.boot_id) return a.mono_ms !== b.mono_ms ? a.mono_ms < b.mono_ms : a.seq < b.seq;
  return a.wall < b.wall;
}

/** What the history store keeps of an accepted message (history/ingest.ts), bounded as above. */
export type FleetRecord =
  | { part: "result"; site: string; probe: string; point: ResultPoint; clock: ResultPayload["clock"] }
  | { part: "event"; event: FleetEvent }
  | { part: "state"; site: string; probe: string; state: StatePayload; at: number }
  | { part: "health"; site: string; probe: string; health: HealthPayload; at: number };

/** Events: `change` after every accepted message; `record` (synchronously, within ingest()) before it. */
export interface FleetEvents {
  change: [change: FleetChange];
  /** A command reply (fleet-config/ waits for these by request id). */
  reply: [key: string, reply: ReplyPayload];
  record: [record: FleetRecord];
}

/** The fleet's current state. */
export class Fleet extends EventEmitter<FleetEvents> {
  readonly #probes = new Map<string, ProbeRecord>();
  readonly #limits: FleetLimits;
  readonly counters: FleetCounters = {
    messages: 0,
    results: 0,
    duplicates: 0,
    malformed: 0,
    malformed_by_reason: { bad_topic: 0, too_large: 0, bad_json: 0, invalid_payload: 0, mismatch: 0 },
    dropped: 0,
    dropped_by_reason: {
      rate_limited: 0,
      unknown_check: 0,
      too_many_checks: 0,
      too_many_probes: 0,
      truncated: 0,
    },
    replies: 0,
  };

  constructor(limits: Partial<FleetLimits> = {}) {
    super();
    this.#limits = { ...DEFAULT_LIMITS, ...limits };
  }

  /** Takes one message of the contract; never throws. `now` is HQ's receive time (ms). */
  ingest(topic: string, payload: Buffer | string, now: number = Date.now()): IngestOutcome {
    this.counters.messages++;
    try {
      const out = this.#ingest(topic, payload, now);
      if (!out.ok) {
        if (out.reason in this.counters.dropped_by_reason) {
          this.counters.dropped++;
          this.counters.dropped_by_reason[out.reason as DropReason]++;
          const rec = this.#probes.get(out.topic.split("/").slice(2, 4).join("/"));
          if (rec) rec.view.dropped++;
        } else {
          this.counters.malformed++;
          this.counters.malformed_by_reason[out.reason as RejectReason]++;
        }
      }
      return out;
    } catch (err) {
      this.counters.malformed++;
      this.counters.malformed_by_reason.invalid_payload++;
      return { ok: false, reason: "invalid_payload", topic, detail: String(err) };
    }
  }

  #ingest(topic: string, payload: Buffer | string, now: number): IngestOutcome {
    const bad = (reason: RefuseReason, detail: string): IngestOutcome => ({
      ok: false,
      reason,
      topic,
      detail,
    });
    if (!topic.startsWith(TOPIC_ROOT)) return bad("bad_topic", "not under netprobe/v1/");
    const levels = topic.slice(TOPIC_ROOT.length).split("/");
    const [site, probe, kind, sub, ...more] = levels;
    if (!site || !probe || !kind) return bad("bad_topic", "expected netprobe/v1/<site>/<probe>/<topic>");
    const key = `${site}/${probe}`;
    // Commands are HQ's own; HQ reads them only because the wildcard covers them.
    if (kind === "cmd") return { ok: true, key, part: "ignored" };
    const size = typeof payload === "string" ? Buffer.byteLength(payload) : payload.length;
    if (size > this.#limits.payloadBytes) return bad("too_large", `${size} bytes`);
    if (site.length > MAX_NAME_CHARS || probe.length > MAX_NAME_CHARS)
      return bad("bad_topic", "site or probe name too long");
    const known = this.#probes.get(key);
    if (!known && this.#probes.size >= this.#limits.probes)
      return bad("too_many_probes", `already ${this.#probes.size} probes`);
    if (known && !this.#take(known, now)) return bad("rate_limited", `over ${this.#limits.ratePerProbe}/s`);
    // An empty retained message clears a topic at the broker (a decommissioned probe).
    if (size === 0) {
      if (kind === "state" && sub === undefined) {
        const removed = this.#probes.delete(key);
        if (removed) this.emit("change", { key, part: "state", at: now });
      }
      return { ok: true, key, part: "ignored" };
    }
    let body: unknown;
    try {
      body = JSON.parse(
        typeof payload === "string" ? payload : new TextDecoder("utf-8", { fatal: true }).decode(payload),
      );
    } catch (err) {
      return bad("bad_json", err instanceof Error ? err.message : String(err));
    }
    const part = ((): FleetChange["part"] | undefined => {
      if (more.length > 0) return undefined;
      if (sub === undefined) {
        if (kind === "state" || kind === "health" || kind === "config") return kind;
        if (kind === "events") return "event";
        return undefined;
      }
      if (kind === "results") return "result";
      if (kind === "reply") return "reply";
      return undefined;
    })();
    if (!part) return bad("bad_topic", `unknown topic ${levels.slice(2).join("/")}`);
    const check = checkers[part];
    if (!check.Check(body)) return bad("invalid_payload", firstError(check, body));

    const rec = this.#record(site, probe, now);
    const v = rec.view;
    const cut = () => {
      this.counters.dropped++;
      this.counters.dropped_by_reason.truncated++;
    };
    switch (part) {
      case "state": {
        const p = body as StatePayload;
        v.state = p.state;
        v.state_at = now;
        v.version = bound(p.version, MAX_NAME_CHARS, cut);
        v.boot_id = bound(p.boot_id, MAX_NAME_CHARS, cut);
        v.started_at = p.started_at;
        this.emit("record", {
          part: "state",
          site,
          probe,
          state: { ...p, version: v.version, boot_id: v.boot_id },
          at: now,
        });
        break;
      }
      case "health": {
        // Only the panel's areas are kept, their strings cut: the rest is the probe's to say.
        const p = body as HealthPayload;
        const areas: HealthPayload["areas"] = {};
        for (const led of PANEL) {
          const a = p.areas[led];
          if (a)
            areas[led] = {
              ...a,
              led: bound(a.led, MAX_NAME_CHARS, cut),
              last_result_id: a.last_result_id === null ? null : bound(a.last_result_id, MAX_NAME_CHARS, cut),
              reason: bound(a.reason, MAX_TEXT_CHARS, cut),
            };
        }
        const leds = p.leds && {
          requested: bound(p.leds.requested, MAX_NAME_CHARS, cut),
          backend: bound(p.leds.backend, MAX_NAME_CHARS, cut),
          problem: p.leds.problem === null ? null : bound(p.leds.problem, MAX_TEXT_CHARS, cut),
        };
        v.health = { ...p, boot_id: bound(p.boot_id, MAX_NAME_CHARS, cut), areas, ...(leds ? { leds } : {}) };
        v.health_at = now;
        this.emit("record", { part: "health", site, probe, health: v.health, at: now });
        break;
      }
      case "config": {
        const p = body as ConfigPayload;
        v.config_hash = p.config_hash;
        v.document_hash = p.document_hash ?? null;
        v.config_pending = p.pending ?? null;
        v.config_rolled_back = p.rolled_back ?? null;
        // Kept for diffs only, and only when small: 10,000 probes must not hold 128 KiB each.
        rec.config = size <= MAX_KEPT_CONFIG_BYTES ? p.config : null;
        rec.recentMs = p.config.leds.recent_change_ms;
        // From now on only the checks this config names are kept; histories of removed ones go.
        rec.configured = new Set(p.config.checks.slice(0, this.#limits.checksPerProbe).map((c) => c.name));
        for (const name of rec.checks.keys()) if (!rec.configured.has(name)) rec.checks.delete(name);
        break;
      }
      case "event": {
        const p = body as EventPayload;
        const common = {
          boot_id: bound(p.boot_id, MAX_NAME_CHARS, cut),
          reason: bound(p.reason, MAX_TEXT_CHARS, cut),
          site,
          probe,
          received_at: now,
        };
        v.events.unshift(
          p.type === "store_quarantined"
            ? {
                ...p,
                ...common,
                file: bound(p.file, MAX_TEXT_CHARS, cut),
                moved_to: bound(p.moved_to, MAX_TEXT_CHARS, cut),
                problem: bound(p.problem, MAX_TEXT_CHARS, cut),
              }
            : {
                ...p,
                ...common,
                result_id: p.result_id === null ? null : bound(p.result_id, MAX_NAME_CHARS, cut),
              },
        );
        this.emit("record", { part: "event", event: v.events[0]! });
        if (v.events.length > this.#limits.eventsPerProbe) v.events.length = this.#limits.eventsPerProbe;
        break;
      }
      case "reply":
        this.counters.replies++;
        this.emit("reply", key, body as ReplyPayload);
        break;
      case "result": {
        const p = body as ResultPayload;
        if (p.site !== site || p.probe !== probe || p.check !== sub)
          return bad("mismatch", `payload names ${bound(p.site, 64, cut)}/${bound(p.probe, 64, cut)}`);
        if (!CHECK_NAME.test(p.check)) return bad("invalid_payload", "/check: not a check name");
        let h = rec.checks.get(p.check);
        if (!h && rec.configured && !rec.configured.has(p.check))
          return bad("unknown_check", `${p.check} is not in the probe's config`);
        if (!h && rec.checks.size >= this.#limits.checksPerProbe)
          return bad("too_many_checks", `already ${rec.checks.size} checks`);
        if (p.id.length > MAX_NAME_CHARS) return bad("invalid_payload", "/id: too long");
        if (!rec.ids.add(p.id)) {
          this.counters.duplicates++;
          v.duplicates++;
          v.last_seen = now;
          return { ok: true, key, part: "ignored" };
        }
        this.counters.results++;
        v.results_total++;
        const kind = bound(p.kind, MAX_NAME_CHARS, cut);
        const target = bound(p.target, MAX_NAME_CHARS, cut);
        if (!h) {
          h = { check: p.check, kind, area: p.area, target, results: [] };
          rec.checks.set(p.check, h);
        }
        h.kind = kind;
        h.area = p.area;
        h.target = target;
        const metricNames = Object.keys(p.metrics);
        if (metricNames.length > MAX_METRICS) cut();
        const metrics: Record<string, number> = {};
        for (const m of metricNames.slice(0, MAX_METRICS)) metrics[bound(m, 64, cut)] = p.metrics[m]!;
        const point: ResultPoint & { wall: number } = {
          id: p.id,
          seq: p.seq,
          check: p.check,
          kind,
          area: p.area,
          target,
          status: p.status,
          started_at: p.started_at,
          duration_ms: p.duration_ms,
          metrics,
          ...(p.error
            ? {
                error: {
                  code: bound(p.error.code, MAX_NAME_CHARS, cut),
                  message: bound(p.error.message, MAX_TEXT_CHARS, cut),
                },
              }
            : {}),
          boot_id: bound(p.boot_id, MAX_NAME_CHARS, cut),
          mono_ms: p.mono_ms,
          received_at: now,
          wall: 0,
        };
        point.wall = wallMs(point, p.clock);
        // Results arrive in order except after a reconnect's replay: keep the buffer sorted by when
        // they ran (ranBefore: not by seq alone, which restarts with a new buffer).
        const r = h.results as Array<ResultPoint & { wall: number }>;
        let i = r.length;
        while (i > 0 && ranBefore(point, r[i - 1]!)) i--;
        r.splice(i, 0, point);
        if (r.length > this.#limits.resultsPerCheck) r.shift();
        this.emit("record", { part: "result", site, probe, point, clock: p.clock });
        break;
      }
    }
    v.last_seen = now;
    this.emit("change", { key, part, at: now });
    return { ok: true, key, part };
  }

  /** Takes one token of the probe's bucket; false when it is empty. */
  #take(rec: ProbeRecord, now: number): boolean {
    const { ratePerProbe: rate, burstPerProbe: burst } = this.#limits;
    rec.tokens = Math.min(burst, rec.tokens + ((now - rec.tokensAt) / 1000) * rate);
    rec.tokensAt = now;
    if (rec.tokens < 1) return false;
    rec.tokens--;
    return true;
  }

  #record(site: string, probe: string, now: number): ProbeRecord {
    const key = `${site}/${probe}`;
    let rec = this.#probes.get(key);
    if (!rec) {
      rec = {
        view: {
          key,
          site,
          probe,
          state: "unknown",
          state_at: null,
          version: null,
          boot_id: null,
          started_at: null,
          last_seen: now,
          health: null,
          health_at: null,
          config_hash: null,
          document_hash: null,
          config_pending: null,
          config_rolled_back: null,
          events: [],
          results_total: 0,
          duplicates: 0,
          dropped: 0,
        },
        checks: new Map(),
        ids: new RecentIds(this.#limits.dedupPerProbe),
        recentMs: RECENT_CHANGE_MS,
        configured: null,
        config: null,
        tokens: this.#limits.burstPerProbe - 1,
        tokensAt: now,
      };
      this.#probes.set(key, rec);
    }
    return rec;
  }

  /** One probe's view without its result history; undefined when unknown. */
  view(key: string, now: number = Date.now()): ProbeView | undefined {
    const r = this.#probes.get(key);
    return r ? this.#view(r, now) : undefined;
  }

  /** The redacted config of a probe's retained `config`; undefined when none arrived. */
  configOf(key: string): unknown {
    const c = this.#probes.get(key)?.config;
    return c === null ? undefined : c;
  }

  /** Number of probes known. */
  get size(): number {
    return this.#probes.size;
  }

  /** Every probe, sorted by site then probe, with its panel as of `now`; `after`/`limit` page it. */
  list(now: number = Date.now(), after?: string, limit: number = Infinity): ProbeView[] {
    return [...this.#probes.values()]
      .filter((r) => after === undefined || r.view.key > after)
      .sort((a, b) => (a.view.key < b.view.key ? -1 : a.view.key > b.view.key ? 1 : 0))
      .slice(0, limit)
      .map((r) => this.#view(r, now));
  }

  /** One probe with its result history; undefined when unknown. */
  get(key: string, now: number = Date.now()): ProbeDetail | undefined {
    const r = this.#probes.get(key);
    if (!r) return undefined;
    return { ...this.#view(r, now), checks: [...r.checks.values()].map((h) => historyOf(h)) };
  }

  /**
   * One page of a probe's checks, sorted by name: those after `after`, at most `limit`, each with
   * its last `results` results. Undefined when the probe is unknown.
   */
  page(
    key: string,
    opts: { after?: string; limit: number; results: number },
    now: number = Date.now(),
  ): ProbePage | undefined {
    const r = this.#probes.get(key);
    if (!r) return undefined;
    const names = [...r.checks.keys()].sort();
    const from = opts.after === undefined ? 0 : names.findIndex((n) => n > opts.after!);
    const shown = from < 0 ? [] : names.slice(from, from + opts.limit);
    const last = shown.at(-1);
    return {
      ...this.#view(r, now),
      checks: shown.map((n) => historyOf(r.checks.get(n)!, opts.results)),
      checks_total: names.length,
      next_cursor: last !== undefined && last !== names.at(-1) ? last : null,
    };
  }

  /** The latest events across the fleet, newest first. */
  latestEvents(limit = 30): FleetEvent[] {
    const all: FleetEvent[] = [];
    for (const r of this.#probes.values()) all.push(...r.view.events);
    return all.sort((a, b) => b.received_at - a.received_at).slice(0, limit);
  }

  #view(r: ProbeRecord, now: number): ProbeView {
    return { ...r.view, events: [...r.view.events], leds: panelOf(r.view, now, r.recentMs) };
  }
}

/** A copy of a check's history with its last `results` results (without the sort key). */
function historyOf(h: CheckHistory, results: number = Infinity): CheckHistory {
  // slice(-0) is slice(0), the whole history: `results=0` must give none.
  const last = results >= h.results.length ? h.results : results === 0 ? [] : h.results.slice(-results);
  return { ...h, results: last.map(({ wall: _wall, ...p }: ResultPoint & { wall?: number }) => p) };
}

/**
 * The LED panel as the technician sees it: each area's look from its state and how long ago it
 * changed (the same table the probe drives its LEDs with, so a failure stops blinking after
 * `recent_change_ms` here too), STATUS from the uplink: heartbeat while the probe is online at HQ,
 * queuing (amber fast blink) when HQ lost it — what a powered probe without an uplink shows.
 */
export function panelOf(
  v: Omit<ProbeView, "leds">,
  now: number,
  recentMs: number = RECENT_CHANGE_MS,
): LedView[] {
  const areas = v.health?.areas ?? {};
  return PANEL.map((led): LedView => {
    if (led === "status") {
      const online = v.state === "online";
      return {
        led,
        look: v.state === "unknown" ? "off" : lookName(statusLook(online)),
        state: v.state,
        reason: online
          ? "connected to headquarters"
          : v.state === "offline"
            ? "offline at headquarters"
            : "no state yet",
      };
    }
    const a = areas[led];
    if (!a)
      return { led, look: "off", state: "off", reason: v.health ? "no check configured" : "no health yet" };
    const since = Date.parse(a.since);
    const look = Number.isNaN(since) ? a.led : lookName(areaLook(a.state, since, now, recentMs));
    return { led, look, state: a.state, reason: a.reason };
  });
}
