// HQ's own notification path, for teams without Prometheus (docs/alerting.md, "Webhooks"): one JSON
// POST per incident notice to every configured receiver, signed (HMAC-SHA256 over
// `<timestamp>.<body>`, the scheme Stripe and GitHub use, so receivers have libraries for it),
// retried with exponential backoff on network errors, 5xx and 429, deduplicated by incident id
// (a notice is delivered once per status and re-open), and rate-limited per site.
import { createHmac } from "node:crypto";
import type { Logger } from "../../../contract/src/log.ts";
import { dependentAreas, KIND_TITLE, type Incident, type IncidentNotice } from "./incidents.ts";

/** One receiver. */
export interface WebhookTarget {
  name: string;
  url: string;
  /** HMAC key; without it no signature header is sent. */
  secret?: string;
  timeoutMs: number;
  maxAttempts: number;
  /** First retry delay; doubled per attempt, at most 60 s. */
  backoffMs: number;
}

/** Outcomes counted (exposed as netprobe_hq_notifications_total{outcome}). */
export interface DeliveryCounters {
  sent: number;
  retried: number;
  failed: number;
  deduplicated: number;
  rate_limited: number;
}

/** The JSON body of a notification (docs/alerting.md has an example). */
export interface WebhookBody {
  version: 1;
  status: IncidentNotice["status"];
  /** The incident id: the same for its firing and its resolved notice. */
  dedup_key: string;
  /** Unique per notice: `<incident>:<status>:<re-open count>`. */
  delivery_id: string;
  summary: string;
  incident: {
    id: string;
    kind: string;
    kind_title: string;
    title: string;
    site: string;
    probe: string;
    sites: string[];
    root_area: string;
    dependent_areas: string[];
    targets: string[];
    members: Incident["members"];
    evidence: Incident["evidence"];
    last_health: Incident["last_health"];
    opened_at: string;
    acknowledged_at: string | null;
    acknowledged_by: string | null;
    resolved_at: string | null;
    reopened: number;
  };
  sent_at: string;
}

/** Header carrying `sha256=<hex>` of HMAC-SHA256(secret, `<timestamp>.<body>`). */
export const SIGNATURE_HEADER = "x-netprobe-signature";
export const TIMESTAMP_HEADER = "x-netprobe-timestamp";
export const DELIVERY_HEADER = "x-netprobe-delivery";
/** Delivery ids remembered for deduplication. */
const DEDUP_KEPT = 10_000;
const MAX_BACKOFF_MS = 60_000;

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** The body of one notice. */
export function webhookBody(n: IncidentNotice, now: number): WebhookBody {
  const i = n.incident;
  return {
    version: 1,
    status: n.status,
    dedup_key: i.id,
    delivery_id: `${i.id}:${n.status}:${i.reopened}`,
    summary: `${n.status === "resolved" ? "RESOLVED" : "FIRING"}: ${i.title}`,
    incident: {
      id: i.id,
      kind: i.kind,
      kind_title: KIND_TITLE[i.kind],
      title: i.title,
      site: i.site,
      probe: i.probe,
      sites: i.sites,
      root_area: i.root_area,
      dependent_areas: dependentAreas(i),
      targets: i.targets,
      members: i.members,
      evidence: i.evidence,
      last_health: i.last_health,
      opened_at: new Date(i.opened_at).toISOString(),
      acknowledged_at: iso(i.acknowledged_at),
      acknowledged_by: i.acknowledged_by,
      resolved_at: iso(i.resolved_at),
      reopened: i.reopened,
    },
    sent_at: new Date(now).toISOString(),
  };
}

/** `sha256=<hex>` of the body as signed; receivers recompute it with their copy of the secret. */
export function signature(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex")}`;
}

/** I/O of the sender, replaceable in unit tests. */
export interface SenderIo {
  fetch: typeof fetch;
  sleep: (ms: number) => Promise<void>;
  now: () => number;
}

const realIo: SenderIo = {
  fetch: (...a) => fetch(...a),
  sleep: (ms) => new Promise((r) => setTimeout(r, ms).unref()),
  now: () => Date.now(),
};

/** Sends incident notices to the receivers; notify() never throws and never blocks. */
export class WebhookSender {
  readonly counters: DeliveryCounters = { sent: 0, retried: 0, failed: 0, deduplicated: 0, rate_limited: 0 };
  readonly #targets: readonly WebhookTarget[];
  readonly #perSiteHour: number;
  readonly #log: Logger;
  readonly #io: SenderIo;
  readonly #seen = new Set<string>();
  readonly #limited = new Set<string>();
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  /** Per receiver and incident: the notices go out in order (a resolved never overtakes its firing). */
  readonly #chains = new Map<string, Promise<void>>();
  #stopped = false;

  constructor(targets: readonly WebhookTarget[], perSiteHour: number, log: Logger, io: SenderIo = realIo) {
    this.#targets = targets;
    this.#perSiteHour = perSiteHour;
    this.#log = log;
    this.#io = io;
  }

  notify(n: IncidentNotice): void {
    if (this.#targets.length === 0 || this.#stopped) return;
    const i = n.incident;
    const deliveryId = `${i.id}:${n.status}:${i.reopened}`;
    if (this.#seen.has(deliveryId)) {
      this.counters.deduplicated++;
      return;
    }
    this.#remember(deliveryId);
    // A firing notice past the site's budget is not sent, nor then its resolved one.
    if (n.status === "firing" && !this.#take(i.site)) {
      this.counters.rate_limited++;
      this.#limited.add(i.id);
      this.#log.warn({ incident: i.id, site: i.site }, "notification rate limit reached: not sent");
      return;
    }
    if (n.status === "resolved" && this.#limited.delete(i.id)) {
      this.counters.rate_limited++;
      return;
    }
    const body = JSON.stringify(webhookBody(n, this.#io.now()));
    for (const t of this.#targets) {
      const chainKey = `${t.name}\u0000${i.id}`;
      const prev = this.#chains.get(chainKey) ?? Promise.resolve();
      const next = prev.then(() => this.#deliver(t, deliveryId, body));
      this.#chains.set(chainKey, next);
      void next.finally(() => {
        if (this.#chains.get(chainKey) === next) this.#chains.delete(chainKey);
      });
    }
  }

  /** Resolves once every queued delivery finished (or gave up). */
  async idle(): Promise<void> {
    while (this.#chains.size > 0) await Promise.all([...this.#chains.values()]);
  }

  /** Stops retrying; deliveries in flight end at their next attempt. */
  stop(): void {
    this.#stopped = true;
  }

  async #deliver(t: WebhookTarget, deliveryId: string, body: string): Promise<void> {
    for (let attempt = 1; attempt <= t.maxAttempts && !this.#stopped; attempt++) {
      const timestamp = String(Math.floor(this.#io.now() / 1000));
      const headers: Record<string, string> = {
        "content-type": "application/json",
        "user-agent": "netprobe-hq",
        [TIMESTAMP_HEADER]: timestamp,
        [DELIVERY_HEADER]: deliveryId,
      };
      if (t.secret !== undefined) headers[SIGNATURE_HEADER] = signature(t.secret, timestamp, body);
      let problem: string;
      let retry = true;
      try {
        const res = await this.#io.fetch(t.url, {
          method: "POST",
          headers,
          body,
          signal: AbortSignal.timeout(t.timeoutMs),
          redirect: "error",
        });
        await res.body?.cancel();
        if (res.ok) {
          this.counters.sent++;
          return;
        }
        problem = `HTTP ${res.status}`;
        retry = res.status >= 500 || res.status === 429 || res.status === 408;
      } catch (err) {
        problem = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      }
      if (!retry || attempt === t.maxAttempts) {
        this.counters.failed++;
        // The URL may carry a token in its query: only the receiver's name is logged.
        this.#log.error(
          { webhook: t.name, delivery: deliveryId, attempt, problem },
          "webhook delivery failed",
        );
        return;
      }
      this.counters.retried++;
      this.#log.warn({ webhook: t.name, delivery: deliveryId, attempt, problem }, "webhook delivery retried");
      await this.#io.sleep(Math.min(MAX_BACKOFF_MS, t.backoffMs * 2 ** (attempt - 1)));
    }
  }

  #remember(id: string): void {
    this.#seen.add(id);
    if (this.#seen.size > DEDUP_KEPT) this.#seen.delete(this.#seen.values().next().value!);
  }

  /** A token of the site's hourly budget (a bucket refilled continuously). */
  #take(site: string): boolean {
    const now = this.#io.now();
    const b = this.#buckets.get(site) ?? { tokens: this.#perSiteHour, at: now };
    b.tokens = Math.min(this.#perSiteHour, b.tokens + ((now - b.at) / 3_600_000) * this.#perSiteHour);
    b.at = now;
    this.#buckets.set(site, b);
    if (b.tokens < 1) return false;
    b.tokens--;
    return true;
  }
}
