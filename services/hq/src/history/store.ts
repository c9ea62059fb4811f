// HQ's history: one interface, two engines (sqlite-store.ts embedded, postgres-store.ts for a
// fleet), the same schema and the same hand-written queries (docs/hq.md, "History"). The page and
// the reports read only what this file declares; ingest writes batches through `write()`.
// Times are ms since the epoch (HQ's clock for received_at, the probe's for at) throughout.
import type { AreaStateName, ResultPayload } from "../../../contract/src/payloads.ts";

/** Network areas in dependency order: a failing earlier area explains a failing later one. */
export const AREA_ORDER = ["link", "lan", "dhcp", "dns", "wan", "phone", "uplink"] as const;

/** A result's status, as the probe published it. */
export type ResultStatus = ResultPayload["status"];

/** One stored result: the envelope minus `detail` (kept on the probe; HQ keeps what it charts). */
export interface StoredResult {
  id: string;
  site: string;
  probe: string;
  check: string;
  kind: string;
  area: string;
  target: string;
  status: ResultStatus;
  /** When it ran: started_at, or received_at when the probe's clock was unsynced. */
  at: number;
  duration_ms: number;
  /** The check's main metric (mainMetric()), null when it reported none. */
  value: number | null;
  /** loss_pct when the check reports one. */
  loss_pct: number | null;
  metrics: Record<string, number>;
  error_code: string | null;
  error_message: string | null;
  seq: number;
  boot_id: string;
  mono_ms: number;
  received_at: number;
}

/** An area transition (or store event) of one probe. */
export interface StoredEvent {
  site: string;
  probe: string;
  type: "area_transition" | "store_quarantined";
  /** The probe's `at`. */
  at: number;
  /** Null for store events. */
  area: string | null;
  from: AreaStateName | null;
  to: AreaStateName | null;
  reason: string;
  result_id: string | null;
  received_at: number;
  /** With mono_ms, the event's identity: a redelivered event is stored once. */
  boot_id: string;
  mono_ms: number;
}

/** An online/offline change of a probe (from the retained `state`; offline from the will). */
export interface StoredStateChange {
  site: string;
  probe: string;
  state: "online" | "offline";
  /** HQ's receive time: the will carries no time of its own. */
  at: number;
  version: string;
  boot_id: string;
}

/** A health snapshot of a probe: each area's state and LED as it published them. */
export interface StoredHealth {
  site: string;
  probe: string;
  at: number;
  areas: Record<string, { state: AreaStateName; led: string; reason: string }>;
  outbox_rows: number;
  evicted: number;
}

/** One write: what ingest collected since the last one (any part may be empty). */
export interface HistoryBatch {
  results: StoredResult[];
  events: StoredEvent[];
  states: StoredStateChange[];
  health: StoredHealth[];
}

/** What `write()` did: results inserted vs already there (same id: a redelivery). */
export interface WriteOutcome {
  inserted: number;
  duplicates: number;
  events: number;
  /** Results refused because `at` is older than raw retention (counted, not stored). */
  expired: number;
}

/** Aggregate resolution; `raw` is the results themselves. */
export type Resolution = "raw" | "1m" | "1h" | "1d";

/** Filter shared by the queries; `from` inclusive, `to` exclusive (ms). */
export interface RangeQuery {
  site?: string;
  probe?: string;
  check?: string;
  area?: string;
  from: number;
  to: number;
}

/** Results of a range, oldest first; `limit` caps them (default 10,000), `after` pages by id. */
export interface ResultQuery extends RangeQuery {
  limit?: number;
  /** Continue after this (at, id) — the last row of the previous page. */
  after?: { at: number; id: string };
}

/** Events of a range, oldest first. */
export interface EventQuery extends Omit<RangeQuery, "check"> {
  limit?: number;
}

/** Roll-ups of a range; `resolution` "auto" picks the coarsest that still gives ≥ ~100 points. */
export interface RollupQuery extends RangeQuery {
  resolution: Exclude<Resolution, "raw"> | "auto";
}

/** One bucket of one check: counts by status, the main metric's min/avg/p95, mean loss. */
export interface RollupRow {
  site: string;
  probe: string;
  check: string;
  kind: string;
  area: string;
  resolution: Exclude<Resolution, "raw">;
  /** Bucket start, ms. */
  bucket: number;
  count: number;
  ok: number;
  warn: number;
  fail: number;
  error: number;
  /** Over results that reported the main metric; null when none did. */
  value_min: number | null;
  value_avg: number | null;
  /** 1m: exact over the bucket's results; 1h/1d: the largest p95 of the finer buckets (an upper bound). */
  value_p95: number | null;
  loss_avg: number | null;
}

/** Time each state of one area covered on one probe in a period (from its transitions). */
export interface AreaAvailability {
  site: string;
  probe: string;
  area: string;
  /** ms the area spent in each state in [from, to); time before the first known state is `unknown`. */
  ms: Record<AreaStateName, number>;
  /**
   * Percent of the time with a verdict (ok, degraded or failing) that was not failing;
   * null when the area had no verdict in the period.
   */
  availability_pct: number | null;
  /** From the roll-ups: percent of the area's results with status ok or warn; null without results. */
  results_ok_pct: number | null;
  results: number;
}

/** An area of one probe failing from `start` to `end` (null: still failing at the period's end). */
export interface Incident {
  site: string;
  probe: string;
  area: string;
  start: number;
  end: number | null;
  /** Within the period: end (or the period's end) − max(start, period start). */
  duration_ms: number;
  /** The earliest area in AREA_ORDER failing on the same probe when this one started (may be itself). */
  root_area: string;
  /** The reason of the transition into failing. */
  reason: string;
  result_id: string | null;
}

/** A check known to the store (for pickers and per-check reports). */
export interface CheckInfo {
  site: string;
  probe: string;
  check: string;
  kind: string;
  area: string;
  target: string;
  first_at: number;
  last_at: number;
}

/** Counts for `/api/meta`, the bench and the tests. */
export interface StoreStats {
  engine: "sqlite" | "postgres";
  results: number;
  events: number;
  rollups_1m: number;
  rollups_1h: number;
  /** Oldest raw result kept, null when empty. */
  oldest_result_at: number | null;
}

/** What retain() removed. */
export interface RetentionOutcome {
  results_deleted: number;
  /** PostgreSQL: result partitions dropped whole. */
  partitions_dropped: number;
  rollups_deleted: number;
  events_deleted: number;
}

/** What the page and the reports read. */
export interface HistoryReader {
  /** Raw results (within raw retention). */
  results(q: ResultQuery): Promise<StoredResult[]>;
  /** The event timeline (area transitions, store events) of a probe, a site or the fleet. */
  events(q: EventQuery): Promise<StoredEvent[]>;
  /** Online/offline changes. */
  states(q: Omit<EventQuery, "area">): Promise<StoredStateChange[]>;
  /** Roll-ups per check and bucket, oldest first. */
  rollups(q: RollupQuery): Promise<RollupRow[]>;
  /** Availability per probe and area over [from, to). `check` is ignored. */
  availability(q: RangeQuery): Promise<AreaAvailability[]>;
  /** Failing spans from the area events that overlap [from, to), oldest first. `check` is ignored. */
  incidents(q: RangeQuery): Promise<Incident[]>;
  /** Checks seen, by site/probe/check. `from`/`to` ignored. */
  checks(q: Partial<RangeQuery>): Promise<CheckInfo[]>;
  stats(): Promise<StoreStats>;
}

/** One version of a config template (docs/fleet-config.md): who wrote it, when and why. */
export interface TemplateVersion {
  level: string;
  name: string;
  /** 1, 2, … per (level, name). */
  version: number;
  /** The template's JSON; null when this version deleted it. */
  body: unknown;
  author: string;
  at: number;
  comment: string;
}

/** A rollout of desired configs, stage by stage. */
export interface RolloutRecord {
  id: string;
  author: string;
  comment: string;
  /** As asked, e.g. `1,10%,100%`. */
  stages: string;
  /** What it covers: `all`, `site:<id>`, `group:<name>`, `probe:<site/probe>`. */
  scope: string;
  state: "running" | "done" | "stopped";
  /** Why it stopped (the first failure), null otherwise. */
  reason: string | null;
  started_at: number;
  finished_at: number | null;
}

/** One probe's part in a rollout. */
export interface RolloutProbeRecord {
  rollout_id: string;
  site: string;
  probe: string;
  /** 1-based stage; 0 for probes skipped because they already ran the desired document. */
  stage: number;
  document_hash: string;
  outcome: "confirmed" | "skipped" | "failed";
  /** For failed: refused, reply_timeout, not_applied, rolled_back, offline, confirm_failed, … */
  code: string | null;
  detail: string | null;
  at: number;
}

/** Something an operator did to fleet config (set, delete, rollout, rollback). */
export interface ConfigAuditEntry {
  at: number;
  actor: string;
  action: string;
  subject: string;
  detail: string;
}

/** Fleet config's history: template versions, documents by hash, rollouts, an audit trail. */
export interface ConfigHistory {
  /** Stores a new version (the next number) and its audit entry; returns the version. */
  putTemplate(t: Omit<TemplateVersion, "version">): Promise<number>;
  /** The latest version of every template not deleted. */
  currentTemplates(): Promise<TemplateVersion[]>;
  /** Every version, newest first (of one template when level and name are given). */
  templateVersions(q?: { level?: string; name?: string; limit?: number }): Promise<TemplateVersion[]>;
  /** Keeps a document under its hash (once). */
  putDocument(hash: string, document: unknown, at: number): Promise<void>;
  document(hash: string): Promise<unknown>;
  putRollout(r: RolloutRecord): Promise<void>;
  putRolloutProbe(p: RolloutProbeRecord): Promise<void>;
  /** Newest first. */
  rollouts(limit?: number): Promise<RolloutRecord[]>;
  rolloutProbes(id: string): Promise<RolloutProbeRecord[]>;
  audit(e: ConfigAuditEntry): Promise<void>;
  /** Newest first. */
  auditLog(limit?: number): Promise<ConfigAuditEntry[]>;
}

/** An alert incident as HQ's incident engine keeps it (services/hq/src/alerts/incidents.ts), stored whole. */
export interface StoredIncident {
  id: string;
  opened_at: number;
  resolved_at: number | null;
  updated_at: number;
  /** The incident document (JSON). */
  body: unknown;
}

/** Where alert incidents outlive an HQ restart (docs/alerting.md, "Storage"). */
export interface IncidentHistory {
  /** Inserts or replaces each incident by id, in one transaction. */
  putIncidents(list: readonly StoredIncident[]): Promise<void>;
  /** Every open incident, and the `resolved` most recently resolved ones. */
  loadIncidents(resolved: number): Promise<StoredIncident[]>;
}

/** The whole store: reads, batched idempotent writes, roll-ups, retention, backup. */
export interface HistoryStore extends HistoryReader, ConfigHistory, IncidentHistory {
  readonly engine: "sqlite" | "postgres";
  /** Creates or migrates the schema. Idempotent. */
  open(): Promise<void>;
  /** One transaction: results by id (a duplicate id is counted, not stored twice), the rest appended. */
  write(batch: HistoryBatch): Promise<WriteOutcome>;
  /** Recomputes the roll-ups of buckets that received results since the last call (up to `now`). */
  rollUp(now: number): Promise<number>;
  /** Drops raw results older than the raw retention, roll-ups and events older than theirs. */
  retain(now: number): Promise<RetentionOutcome>;
  /** A consistent copy to `file` while HQ keeps writing (SQLite online backup; PostgreSQL: pg_dump). */
  backup(file: string): Promise<void>;
  close(): Promise<void>;
}

/** Retention settings both engines honour. */
export interface RetentionPolicy {
  /** Raw results kept, days. */
  raw_days: number;
  /** 1-minute, 1-hour and 1-day roll-ups kept, days. */
  rollup_days: number;
  /** Events, state changes and health kept, days. */
  event_days: number;
}

/** Metrics tried in order for a check's main metric; otherwise duration_ms. */
export const MAIN_METRICS = [
  "rtt_avg_ms",
  "query_ms",
  "latency_ms",
  "response_ms",
  "connect_ms",
  "offer_latency_ms",
  "total_ms",
] as const;

/** The value a check's charts and roll-ups use: its main metric, else its duration. */
export function mainMetric(metrics: Record<string, number>, duration_ms: number): number | null {
  for (const m of MAIN_METRICS) {
    const v = metrics[m];
    if (v !== undefined && Number.isFinite(v)) return v;
  }
  return Number.isFinite(duration_ms) ? duration_ms : null;
}

/** Bucket width of a resolution, ms. */
export const BUCKET_MS: Record<Exclude<Resolution, "raw">, number> = {
  "1m": 60_000,
  "1h": 3_600_000,
  "1d": 86_400_000,
};

/** "auto": the coarsest roll-up that still gives about 100 points over the range. */
export function pickResolution(from: number, to: number): Exclude<Resolution, "raw"> {
  const span = Math.max(0, to - from);
  if (span >= 100 * BUCKET_MS["1d"]) return "1d";
  if (span >= 100 * BUCKET_MS["1h"]) return "1h";
  return "1m";
}
