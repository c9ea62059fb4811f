import type { Config } from "./config/schema.ts";
import { checkKind } from "./checks/registry.ts";
import type { Area } from "./checks/check.ts";
import { baseTopic, type EventPayload, type HealthPayload, type StatePayload } from "./contract/payloads.ts";
import { areaLook, lookName, statusLook, type LedLook } from "./leds/led-table.ts";
import type { Logger } from "./log.ts";
import { AreaTracker, type Transition } from "./runner/area-state.ts";
import { bootId, monoMs } from "./runner/clock.ts";
import { envelope, reasonOf, type ProbeIdentity } from "./runner/result.ts";
import { Scheduler, type Run, type ScheduledCheck } from "./runner/scheduler.ts";
import { Store } from "./store/store.ts";
import { MqttUplink } from "./uplink/mqtt-link.ts";
import { VERSION } from "./version.ts";

/** Something that shows the panel: the terminal view now, GPIO and kernel LEDs later. */
export interface LedSink {
  show(leds: Record<Area | "status", LedLook>): void;
  stop(): void;
}

/** Key under which the service keeps its last `health` in the store, for `netprobe status`. */
export const HEALTH_STATE_KEY = "health";

/**
 * The appliance service: composes store, scheduler, area tracker, uplink and LEDs, and stops
 * them in reverse order. Every result reaches the store before anything else happens to it.
 */
export class ProbeService {
  readonly #config: Config;
  readonly #log: Logger;
  readonly #leds: LedSink | undefined;
  readonly #who: ProbeIdentity;
  readonly #startedAt = new Date().toISOString();
  #store: Store | undefined;
  #tracker: AreaTracker | undefined;
  #scheduler: Scheduler | undefined;
  #uplink: MqttUplink | undefined;
  #ledTimer: NodeJS.Timeout | undefined;

  constructor(config: Config, log: Logger, leds?: LedSink) {
    this.#config = config;
    this.#log = log;
    this.#leds = leds;
    this.#who = { site: config.site, probe: config.probe, bootId: bootId(), version: VERSION };
  }

  /** Opens the store, connects the uplink and starts probing. Throws only on a broken store. */
  start(): void {
    const c = this.#config;
    const store = new Store(
      c.store.path,
      { maxRows: c.store.max_rows, maxBytes: c.store.max_bytes },
      this.#log,
    );
    store.open();
    this.#store = store;

    const checks: ScheduledCheck[] = c.checks
      .filter((ch) => ch.enabled)
      .map((ch) => {
        const kind = checkKind(ch.kind);
        if (!kind) throw new Error(`checks: unknown kind ${ch.kind}`); // config validation rules this out
        return {
          name: ch.name,
          kind,
          target: ch.target,
          area: ch.area,
          intervalMs: ch.interval_ms,
          timeoutMs: ch.timeout_ms,
          jitter: ch.jitter,
          options: ch.options,
        };
      });
    this.#tracker = new AreaTracker(checks, {
      failAfter: c.areas.fail_after,
      recoverAfter: c.areas.recover_after,
    });

    const b = c.broker;
    this.#uplink = new MqttUplink(
      {
        url: b.url,
        protocolVersion: b.protocol_version,
        clientId: b.client_id,
        username: b.username,
        password: b.password,
        caFile: b.ca_file,
        certFile: b.cert_file,
        keyFile: b.key_file,
        rejectUnauthorized: b.reject_unauthorized,
        keepaliveMs: b.keepalive_ms,
        reconnectMinMs: b.reconnect_min_ms,
        reconnectMaxMs: b.reconnect_max_ms,
      },
      baseTopic(c.site, c.probe),
      store,
      (state) => JSON.stringify(this.#state(state)),
      this.#log.child({ part: "uplink" }),
    );
    this.#uplink.on("connected", () => this.#showLeds());
    this.#uplink.on("disconnected", () => this.#showLeds());
    this.#uplink.start();

    this.#publishHealth();
    this.#scheduler = new Scheduler(checks, { log: this.#log }, (run) => this.#onRun(run), this.#log);
    this.#scheduler.start();
    // Blink patterns depend on time (a failure blinks for 5 minutes), so the panel is refreshed.
    this.#ledTimer = setInterval(() => this.#showLeds(), 1000);
    this.#log.info(
      { checks: checks.length, site: c.site, probe: c.probe, version: VERSION },
      "netprobe started",
    );
  }

  /** Runs a check (or all) now; returns the names started. */
  runNow(name?: string): string[] {
    return this.#scheduler?.runNow(name) ?? [];
  }

  /** Stops probing, delivers what it can within the uplink's grace time, closes the store. */
  async stop(): Promise<void> {
    clearInterval(this.#ledTimer);
    await this.#scheduler?.stop();
    await this.#uplink?.stop();
    this.#leds?.stop();
    this.#store?.close();
    this.#log.info("netprobe stopped");
  }

  #onRun(run: Run): void {
    const store = this.#store;
    const check = this.#config.checks.find((c) => c.name === run.check.name);
    if (!store || !this.#tracker || !check) return;
    const result = envelope(run, check.thresholds, this.#who);
    try {
      store.appendResult(result.check, (seq) => ({
        message: {
          topic: `results/${result.check}`,
          payload: JSON.stringify({ ...result, seq }),
          qos: 1,
          retain: false,
          priority: 0,
        },
        summary: { ...result, seq },
      }));
    } catch (err) {
      // Disk full or I/O error even after eviction: the service keeps probing and says so.
      this.#log.error({ err: String(err), check: result.check }, "could not store result");
    }
    const transitions = this.#tracker.update({
      check: result.check,
      area: result.area,
      status: result.status,
      resultId: result.id,
      reason: reasonOf(result),
    });
    for (const t of transitions) this.#publishEvent(t);
    if (transitions.length > 0) this.#publishHealth();
    this.#uplink?.kick();
    this.#showLeds();
  }

  #publishEvent(t: Transition): void {
    const event: EventPayload = {
      schema: 1,
      type: "area_transition",
      at: new Date().toISOString(),
      boot_id: this.#who.bootId,
      mono_ms: monoMs(),
      area: t.area,
      from: t.from,
      to: t.to,
      reason: t.reason,
      result_id: t.resultId,
    };
    this.#log.info({ area: t.area, from: t.from, to: t.to, reason: t.reason }, "area changed");
    this.#enqueue({ topic: "events", payload: JSON.stringify(event), qos: 1, retain: false, priority: 2 });
  }

  #health(): HealthPayload {
    const now = Date.now();
    const areas = this.#tracker?.snapshot();
    const stats = this.#store?.stats();
    return {
      schema: 1,
      at: new Date(now).toISOString(),
      boot_id: this.#who.bootId,
      mono_ms: monoMs(),
      areas: Object.fromEntries(
        Object.entries(areas ?? {}).map(([area, s]) => [
          area,
          {
            state: s.state,
            since: new Date(s.since).toISOString(),
            led: lookName(areaLook(s.state, s.since, now)),
            last_result_id: s.lastResultId,
            reason: s.reason,
          },
        ]),
      ),
      outbox: { rows: stats?.rows ?? 0, evicted: stats?.evicted ?? 0 },
    };
  }

  #publishHealth(): void {
    const health = this.#health();
    this.#store?.setState(HEALTH_STATE_KEY, health);
    this.#enqueue({ topic: "health", payload: JSON.stringify(health), qos: 1, retain: true, priority: 1 });
  }

  #enqueue(m: { topic: string; payload: string; qos: 0 | 1; retain: boolean; priority: 0 | 1 | 2 }): void {
    try {
      this.#store?.enqueue(m);
    } catch (err) {
      this.#log.error({ err: String(err), topic: m.topic }, "could not queue message");
    }
  }

  #state(state: "online" | "offline"): StatePayload {
    return { schema: 1, state, version: VERSION, boot_id: this.#who.bootId, started_at: this.#startedAt };
  }

  #showLeds(): void {
    if (!this.#leds || !this.#tracker) return;
    const now = Date.now();
    const leds = Object.fromEntries(
      Object.entries(this.#tracker.snapshot()).map(([a, s]) => [a, areaLook(s.state, s.since, now)]),
    ) as Record<Area | "status", LedLook>;
    leds.status = statusLook(this.#uplink?.connected ?? false);
    this.#leds.show(leds);
  }
}
