// Composes the alert path of HQ: the incident engine fed from Fleet's changes and the broker link,
// its store, and HQ's own webhook sender. start()/stop() like the other long-lived parts; the web
// server reads it for /metrics and the alert API (alerts-http.ts).
import { readFileSync } from "node:fs";
import type { Logger } from "../../../contract/src/log.ts";
import type { Fleet, FleetChange } from "../fleet.ts";
import type { LinkStatus } from "../fleet-link.ts";
import { HqConfigError, type HqConfig } from "../hq-config.ts";
import { MemoryIncidentStore } from "./incident-store.ts";
import { IncidentEngine, type IncidentNotice, type IncidentStore } from "./incidents.ts";
import { renderMetrics } from "./metrics.ts";
import { WebhookSender, type WebhookTarget } from "./webhook.ts";

/** How often timers (unreachable delay, settle, resolve) are looked at. */
export const TICK_MS = 250;

/** The receivers of cfg.alerts.webhooks with their secrets read; throws HqConfigError naming the file. */
export function webhookTargets(cfg: HqConfig): WebhookTarget[] {
  return cfg.alerts.webhooks.map((w, i) => {
    let secret: string | undefined;
    if (w.secret_file !== undefined) {
      try {
        secret = readFileSync(w.secret_file, "utf8").replace(/\r?\n$/, "");
      } catch (err) {
        throw new HqConfigError(
          `alerts.webhooks[${i}].secret_file: cannot read ${w.secret_file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
        );
      }
      if (secret.length < 16)
        throw new HqConfigError(`alerts.webhooks[${i}].secret_file: the secret needs at least 16 characters`);
    }
    return {
      name: w.name,
      url: w.url,
      ...(secret !== undefined ? { secret } : {}),
      timeoutMs: w.timeout_s * 1000,
      maxAttempts: w.max_attempts,
      backoffMs: w.backoff_s * 1000,
    };
  });
}

export class Alerting {
  readonly engine: IncidentEngine;
  readonly store: IncidentStore;
  readonly sender: WebhookSender;
  readonly #fleet: Fleet;
  readonly #link: () => LinkStatus;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | undefined;
  #connected = true;
  readonly #onChange = (c: FleetChange): void => {
    if (c.part !== "state" && c.part !== "health") return;
    this.engine.observe(c.key, this.#fleet.get(c.key, c.at), c.at);
  };
  readonly #onNotify = (n: IncidentNotice): void => {
    this.#log.info(
      { incident: n.incident.id, status: n.status, kind: n.incident.kind, site: n.incident.site },
      n.incident.title,
    );
    this.sender.notify(n);
  };

  constructor(
    cfg: HqConfig,
    fleet: Fleet,
    link: () => LinkStatus,
    log: Logger,
    store: IncidentStore = new MemoryIncidentStore(),
  ) {
    const a = cfg.alerts;
    this.#fleet = fleet;
    this.#link = link;
    this.#log = log;
    this.store = store;
    this.engine = new IncidentEngine(store, {
      unreachableAfterMs: a.unreachable_after_s * 1000,
      settleMs: a.settle_s * 1000,
      resolveAfterMs: a.resolve_after_s * 1000,
      flapWindowMs: a.flap_window_s * 1000,
      correlateWindowMs: a.correlate_window_s * 1000,
    });
    this.sender = new WebhookSender(webhookTargets(cfg), a.notifications_per_site_hour, log);
  }

  start(): void {
    this.#fleet.on("change", this.#onChange);
    this.engine.on("notify", this.#onNotify);
    const now = Date.now();
    for (const p of this.#fleet.list(now)) this.engine.observe(p.key, this.#fleet.get(p.key, now), now);
    this.#timer = setInterval(() => {
      try {
        const now = Date.now();
        const connected = this.#link().connected;
        if (connected !== this.#connected) {
          this.#connected = connected;
          this.engine.setBroker(connected, now);
        }
        this.engine.tick(now);
      } catch (err) {
        this.#log.error({ err: String(err) }, "incident timers failed");
      }
    }, TICK_MS);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#fleet.off("change", this.#onChange);
    this.engine.off("notify", this.#onNotify);
    this.sender.stop();
  }

  /** The Prometheus exposition as of now. */
  metrics(): string {
    const now = Date.now();
    return renderMetrics({
      probes: this.#fleet.list(now).map((p) => this.#fleet.get(p.key, now)!),
      counters: this.#fleet.counters,
      brokerConnected: this.#link().connected,
      incidents: this.engine.open(),
      maintenance: this.engine.maintenance(),
      deliveries: this.sender.counters,
      now,
    });
  }
}
