// Headquarters' view of the fleet: every probe's current state, built from the MQTT contract
// (services/probe/src/contract/payloads.ts — the one definition; nothing here redefines a payload).
// Pure and synchronous: the MQTT side hands it (topic, payload, receive time), the web page and
// `netprobe hq watch` read snapshots and listen for changes. A malformed message never throws out
// of ingest(): it is counted by reason and reported to the caller, and the state stays as it was.
import { EventEmitter } from "node:events";
import { TypeCompiler, type TypeCheck } from "@sinclair/typebox/compiler";
import type { TSchema } from "@sinclair/typebox";
import {
  ConfigPayload,
  EventPayload,
  HealthPayload,
  ReplyPayload,
  ResultPayload,
  StatePayload,
  type AreaStateName,
} from "../../probe/src/contract/payloads.ts";
import {
  areaLook,
  lookName,
  PANEL,
  RECENT_CHANGE_MS,
  statusLook,
  type PanelLed,
} from "../../probe/src/leds/led-table.ts";

/** Topic root of the contract; HQ subscribes to `netprobe/v1/+/+/#`. */
export const TOPIC_ROOT = "netprobe/v1/";
/** The fleet subscription (wrapped in `$share/<group>/` when several HQ instances split the load). */
export const FLEET_FILTER = `${TOPIC_ROOT}+/+/#`;
/** Largest payload HQ parses; a bigger one is counted as malformed (too_large). */
export const MAX_PAYLOAD_BYTES = 1024 * 1024;

/** Why a message was not taken into the state. */
export type RejectReason = "bad_topic" | "too_large" | "bad_json" | "invalid_payload" | "mismatch";

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
  /** The panel left to right, as the technician at the rack sees it now (DESIGN.md §6). */
  leds: LedView[];
  events: FleetEvent[];
  results_total: number;
  duplicates: number;
}

/** A probe plus its per-check result history (the drill-down). */
export interface ProbeDetail extends ProbeView {
  checks: CheckHistory[];
}

/** Counters of the whole service. */
export interface FleetCounters {
  messages: number;
  results: number;
  duplicates: number;
  malformed: number;
  malformed_by_reason: Record<RejectReason, number>;
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
  | { ok: false; reason: RejectReason; topic: string; detail: string };

/** Sizes of the in-memory history. */
export interface FleetLimits {
  /** Results kept per check (ring buffer). */
  resultsPerCheck: number;
  /** Events kept per probe. */
  eventsPerProbe: number;
  /** Result ids remembered per probe for duplicate detection. */
  dedupPerProbe: number;
}

const DEFAULT_LIMITS: FleetLimits = { resultsPerCheck: 120, eventsPerProbe: 20, dedupPerProbe: 4096 };

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
}

/** Events: `change` after every accepted message. */
export interface FleetEvents {
  change: [change: FleetChange];
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
        this.counters.malformed++;
        this.counters.malformed_by_reason[out.reason]++;
      }
      return out;
    } catch (err) {
      this.counters.malformed++;
      this.counters.malformed_by_reason.invalid_payload++;
      return { ok: false, reason: "invalid_payload", topic, detail: String(err) };
    }
  }

  #ingest(topic: string, payload: Buffer | string, now: number): IngestOutcome {
    const bad = (reason: RejectReason, detail: string): IngestOutcome => ({
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
    if (size > MAX_PAYLOAD_BYTES) return bad("too_large", `${size} bytes`);
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
    switch (part) {
      case "state": {
        const p = body as StatePayload;
        v.state = p.state;
        v.state_at = now;
        v.version = p.version;
        v.boot_id = p.boot_id;
        v.started_at = p.started_at;
        break;
      }
      case "health":
        v.health = body as HealthPayload;
        v.health_at = now;
        break;
      case "config": {
        const p = body as ConfigPayload;
        v.config_hash = p.config_hash;
        rec.recentMs = p.config.leds.recent_change_ms;
        break;
      }
      case "event": {
        const p = body as EventPayload;
        v.events.unshift({ ...p, site, probe, received_at: now });
        if (v.events.length > this.#limits.eventsPerProbe) v.events.length = this.#limits.eventsPerProbe;
        break;
      }
      case "reply":
        this.counters.replies++;
        break;
      case "result": {
        const p = body as ResultPayload;
        if (p.site !== site || p.probe !== probe || p.check !== sub)
          return bad("mismatch", `payload names ${p.site}/${p.probe} check ${p.check}`);
        if (!rec.ids.add(p.id)) {
          this.counters.duplicates++;
          v.duplicates++;
          v.last_seen = now;
          return { ok: true, key, part: "ignored" };
        }
        this.counters.results++;
        v.results_total++;
        let h = rec.checks.get(p.check);
        if (!h) {
          h = { check: p.check, kind: p.kind, area: p.area, target: p.target, results: [] };
          rec.checks.set(p.check, h);
        }
        h.kind = p.kind;
        h.area = p.area;
        h.target = p.target;
        const point: ResultPoint = {
          id: p.id,
          seq: p.seq,
          check: p.check,
          kind: p.kind,
          area: p.area,
          target: p.target,
          status: p.status,
          started_at: p.started_at,
          duration_ms: p.duration_ms,
          metrics: p.metrics,
          ...(p.error ? { error: p.error } : {}),
          received_at: now,
        };
        // Results arrive in seq order except after a reconnect's replay: keep the buffer sorted.
        const r = h.results;
        let i = r.length;
        while (i > 0 && r[i - 1]!.seq > point.seq) i--;
        r.splice(i, 0, point);
        if (r.length > this.#limits.resultsPerCheck) r.shift();
        break;
      }
    }
    v.last_seen = now;
    this.emit("change", { key, part, at: now });
    return { ok: true, key, part };
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
          events: [],
          results_total: 0,
          duplicates: 0,
        },
        checks: new Map(),
        ids: new RecentIds(this.#limits.dedupPerProbe),
        recentMs: RECENT_CHANGE_MS,
      };
      this.#probes.set(key, rec);
    }
    return rec;
  }

  /** Number of probes known. */
  get size(): number {
    return this.#probes.size;
  }

  /** Every probe, sorted by site then probe, with its panel as of `now`. */
  list(now: number = Date.now()): ProbeView[] {
    return [...this.#probes.values()]
      .sort((a, b) => (a.view.key < b.view.key ? -1 : a.view.key > b.view.key ? 1 : 0))
      .map((r) => this.#view(r, now));
  }

  /** One probe with its result history; undefined when unknown. */
  get(key: string, now: number = Date.now()): ProbeDetail | undefined {
    const r = this.#probes.get(key);
    if (!r) return undefined;
    return {
      ...this.#view(r, now),
      checks: [...r.checks.values()].map((h) => ({ ...h, results: [...h.results] })),
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
