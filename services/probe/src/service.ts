import type { Config } from "./config/schema.ts";
import { canonicalJson, configHash, redactConfig } from "./config/redact.ts";
import { documentText, type ConfigFile } from "./config/config-file.ts";
import { parseConfigYaml } from "./config/load.ts";
import { documentHash } from "../../contract/src/config-document.ts";
import type { EventEmitter } from "node:events";
import type { Area } from "./checks/check.ts";
import { baseTopic, type HealthPayload, type ResultPayload } from "../../contract/src/payloads.ts";
import { areaLook, lookName, statusLook, type PanelLooks } from "../../contract/src/led-table.ts";
import { LedController } from "./leds/led-controller.ts";
import type { LedSink } from "./leds/led-sink.ts";
import type { Logger } from "../../contract/src/log.ts";
import { AreaTracker, type Transition } from "./runner/area-state.ts";
import { bootId, monoMs } from "./runner/clock.ts";
import { ClockWatch, correctResult, systemClock, type Clock, type ClockStep } from "./runner/clock-sync.ts";
import {
  configMessage,
  configPayload,
  eventMessage,
  healthMessage,
  quarantineEvent,
  REPLY_DELIVERY,
  resultMessage,
  stateMessage,
  statePayload,
  transitionEvent,
  type DirectMessage,
} from "./runner/messages.ts";
import { envelope, verdictOf, type ProbeIdentity } from "./runner/result.ts";
import { scheduledChecks, type KindLookup } from "./runner/scheduled-checks.ts";
import { Scheduler, type Run, type ScheduledCheck } from "./runner/scheduler.ts";
import { Store, storeInTrouble, storeReason, type OutboxMessage, type Quarantine } from "./store/store.ts";
import { sharedPcap } from "./net/pcap-session.ts";
import {
  CommandProcessor,
  type ApplyOutcome,
  type CommandTarget,
  type RollbackOutcome,
  type IncomingCommand,
  type ReloadOutcome,
} from "./uplink/commands.ts";
import { MqttUplink, type OutboxSource, type UplinkEvents, type UplinkSettings } from "./uplink/mqtt-link.ts";
import { RuntimeStats } from "./runtime-stats.ts";
import { excessCapabilityLine, missingCapabilityLine } from "./capabilities.ts";
import { VERSION } from "./version.ts";
import { StampReflector } from "../../contract/src/net/stamp-reflector.ts";

/** What the service needs of its uplink: MqttUplink, or a double in unit tests. */
export type Uplink = EventEmitter<UplinkEvents> &
  Pick<MqttUplink, "connected" | "start" | "stop" | "kick" | "publishNow">;

/** Makes the uplink for one broker setting (a reload that changes the broker makes a new one). */
export type UplinkFactory = (
  settings: UplinkSettings,
  baseTopic: string,
  outbox: OutboxSource,
  statePayload: (state: "online" | "offline") => string,
  log: Logger,
) => Uplink;

/** The service's parts that are I/O: real by default, doubles in unit tests. */
export interface ServiceParts {
  /** Wall and monotonic clock the step watch compares (default: the system's). */
  clock?: Clock;
  /** Default: MQTT.js through MqttUplink. */
  uplink?: UplinkFactory;
  /** Check kinds by config `kind` (default: the registry). */
  kinds?: KindLookup;
}

/** Key under which the service keeps its last `health` in the store, for `netprobe status`. */
export const HEALTH_STATE_KEY = "health";

/** Key under which the service keeps whether its uplink is connected, for `netprobe status`. */
export const UPLINK_STATE_KEY = "uplink";

/** The value saved under {@link UPLINK_STATE_KEY}. */
export interface UplinkState {
  connected: boolean;
  since: string;
}

/** The config file behind the running config: what reload re-reads and apply_config replaces. */
export interface RunningConfigFile {
  file: ConfigFile;
  /** Document hash of the file the running config was read from. */
  documentHash: string;
}

/**
 * The appliance service: composes store, scheduler, area tracker, uplink and LEDs, and stops
 * them in reverse order. Every result reaches the store before anything else happens to it.
 */
export class ProbeService implements CommandTarget {
  #config: Config;
  /** configHash(#config), kept so that each result does not hash the config again. */
  #configHash: string;
  /** The config file for `reload` and `apply_config`; absent: both are refused. */
  readonly #configFile: ConfigFile | undefined;
  /** Document hash of the file #config was read from. */
  #documentHash: string | undefined;
  #configAt = new Date().toISOString();
  #reloading: Promise<unknown> = Promise.resolve();
  #commands: CommandProcessor | undefined;
  readonly #log: Logger;
  readonly #parts: ServiceParts;
  readonly #leds: LedController | undefined;
  readonly #who: ProbeIdentity;
  readonly #startedAt = new Date().toISOString();
  #store: Store | undefined;
  #tracker: AreaTracker | undefined;
  #scheduler: Scheduler | undefined;
  #uplink: Uplink | undefined;
  #ledTimer: NodeJS.Timeout | undefined;
  #runtime: RuntimeStats | undefined;
  #stampReflector: StampReflector | undefined;
  readonly #clockWatch: ClockWatch;
  #lastStep: ClockStep | undefined;
  /** `health.store.reason` last published: a change republishes health. */
  #storeReason: string | null = null;

  constructor(
    config: Config,
    log: Logger,
    leds?: LedSink,
    configFile?: RunningConfigFile,
    parts: ServiceParts = {},
  ) {
    this.#config = config;
    this.#configHash = configHash(config);
    this.#configFile = configFile?.file;
    this.#documentHash = configFile?.documentHash;
    this.#log = log;
    this.#parts = parts;
    // The controller lays the lamp test and identify over the panel the areas ask for.
    this.#leds = leds ? new LedController(leds, { lampTestMs: config.leds.lamp_test_ms }) : undefined;
    this.#who = { site: config.site, probe: config.probe, bootId: bootId(), version: VERSION };
    this.#clockWatch = new ClockWatch(parts.clock ?? systemClock, (step) => this.#onClockStep(step));
  }

  /** Opens the store, connects the uplink and starts probing. Throws only on a broken store. */
  start(): void {
    const c = this.#config;
    const store = new Store(
      c.store.path,
      {
        maxRows: c.store.max_rows,
        maxBytes: c.store.max_bytes,
        onQuarantine: (q) => this.#onQuarantine(q),
      },
      this.#log,
    );
    // Never throws for a full disk or a damaged file (store.ts falls back and says so in health).
    store.open();
    this.#store = store;

    const checks = scheduledChecks(c, this.#parts.kinds);
    this.#tracker = newTracker(c, checks);
    const missingCap = missingCapabilityLine(checks.map((ch) => ({ name: ch.name, kind: ch.kind.kind })));
    if (missingCap) this.#log.error({ capability: "CAP_NET_RAW" }, missingCap);
    const excessCap = excessCapabilityLine();
    if (excessCap) this.#log.warn({ least_privilege: false }, excessCap);
    if (!c.broker.reject_unauthorized)
      this.#log.warn(
        { setting: "broker.reject_unauthorized", value: false },
        "TLS: the broker's certificate is NOT verified; anyone on the path can impersonate headquarters",
      );

    this.#commands = new CommandProcessor({
      base: baseTopic(c.site, c.probe),
      site: c.site,
      probe: c.probe,
      log: this.#log.child({ part: "commands" }),
      rate: { perMinute: c.broker.commands_per_minute, burst: c.broker.commands_burst },
      target: this,
    });
    this.#startUplink(c, store);
    // An apply still inside its confirm window when the probe last stopped (ConfigFile.recover).
    this.#configFile?.arm(() => this.#confirmWindowPassed());

    this.#leds?.lampTest(); // power-on lamp test; the panel follows when it ends
    this.#storeReasonChanged(); // logs a degraded start (disk full, in memory, quarantined)
    this.#publishHealth();
    this.#startScheduler(checks);
    // Blink patterns depend on time (a failure blinks for 5 minutes), so the panel is refreshed.
    this.#ledTimer = setInterval(() => this.#showLeds(), 1000);
    this.#runtime = new RuntimeStats(this.#log);
    this.#runtime.start();
    this.#clockWatch.start();
    if (c.stamp_reflector.enabled) {
      // Its own failure (address not local, port taken) is logged; probing goes on without it.
      const reflector = new StampReflector(c.stamp_reflector, this.#log.child({ part: "stamp-reflector" }));
      this.#stampReflector = reflector;
      reflector
        .start()
        .catch((err: unknown) => this.#log.error({ err: String(err) }, "stamp reflector not started"));
    }
    this.#log.info(
      { checks: checks.length, site: c.site, probe: c.probe, version: VERSION },
      "netprobe started",
    );
  }

  /** Runs one enabled check now (`cmd/run`); undefined when there is no such check. */
  runCheck(name: string): string[] | undefined {
    return this.#config.checks.some((ch) => ch.name === name && ch.enabled) ? this.runNow(name) : undefined;
  }

  /** The running config with secrets redacted, and its hash (`cmd/config`). */
  effectiveConfig(): { config: Config; hash: string } {
    return { config: redactConfig(this.#config), hash: this.#configHash };
  }

  /** Runs every enabled check of an area now; returns the names started. */
  runArea(area: Area): string[] {
    return this.#config.checks
      .filter((ch) => ch.enabled && ch.area === area)
      .flatMap((ch) => this.#scheduler?.runNow(ch.name) ?? []);
  }

  /** Blinks every LED amber for `durationMs` (`cmd/identify`). */
  identify(durationMs: number): void {
    this.#log.info({ duration_ms: durationMs }, "identify requested");
    this.#leds?.identify(durationMs);
  }

  /** Lamp test: every LED red, green, then amber (start-up, long button press). */
  lampTest(): void {
    this.#leds?.lampTest();
  }

  /**
   * `cmd/reload`: re-reads the config file. Invalid, or changing what only a restart applies
   * (site, probe, store, leds): refused, the running config stays. Otherwise checks, areas and
   * defaults restart the scheduler; a broker change reconnects once the reply is out (`after`);
   * log_level applies at once. The outbox is untouched throughout.
   */
  reload(): Promise<ReloadOutcome> {
    return this.#serially(() => this.#reload());
  }

  /**
   * `cmd/apply_config` (hash already checked): validated as `netprobe config validate` would,
   * refused like a reload when invalid or restart-only (file and running config untouched);
   * otherwise written as the config file (ConfigFile.write: atomic, last-known-good kept), applied
   * by the reload path, and rolled back unless confirmed within `confirmMs`.
   */
  applyConfig(document: Record<string, unknown>, hash: string, confirmMs: number): Promise<ApplyOutcome> {
    return this.#serially(() => this.#apply(document, hash, confirmMs));
  }

  /** `cmd/confirm_config`: the pending document stays for good. False: nothing pending with that hash. */
  confirmConfig(hash: string): Promise<boolean> {
    return this.#serially(async () => {
      if (!this.#configFile?.confirm(hash)) return false;
      this.#log.info({ document_hash: hash }, "applied config confirmed by HQ");
      await this.#publishConfig();
      return true;
    });
  }

  /** `cmd/rollback_config`: back to the last-known-good file now. */
  rollbackConfig(): Promise<RollbackOutcome> {
    return this.#serially(() => this.#rollBack("command"));
  }

  /** Runs a check (or all) now; returns the names started. */
  runNow(name?: string): string[] {
    return this.#scheduler?.runNow(name) ?? [];
  }

  /** Closes the store at once, nothing awaited: the crash guard's last step before exiting. */
  closeStore(): void {
    this.#store?.close();
  }

  /** Stops probing, delivers what it can within the uplink's grace time, closes the store. */
  async stop(): Promise<void> {
    clearInterval(this.#ledTimer);
    // The pending state stays on disk: the next start waits out the rest of the window.
    this.#configFile?.disarm();
    this.#runtime?.stop();
    this.#clockWatch.stop();
    await this.#stampReflector?.stop();
    await this.#scheduler?.stop();
    sharedPcap.closeAll();
    await this.#uplink?.stop();
    this.#saveUplinkState(false);
    this.#leds?.stop();
    this.#store?.close();
    this.#log.info("netprobe stopped");
  }

  #startScheduler(checks: readonly ScheduledCheck[]): void {
    this.#scheduler = new Scheduler(checks, { log: this.#log }, (run) => this.#onRun(run), this.#log);
    this.#scheduler.start();
  }

  #startUplink(c: Config, store: Store): void {
    const b = c.broker;
    const uplink = this.#parts.uplink ?? mqttUplink;
    this.#uplink = uplink(
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
      // Where `state` goes (on connect, and as the will) is the uplink's: it needs the payload only.
      (state) => stateMessage(statePayload(state, this.#who, this.#startedAt)).payload,
      this.#log.child({ part: "uplink" }),
    );
    this.#saveUplinkState(false);
    this.#uplink.on("connected", () => {
      this.#saveUplinkState(true);
      // Before the outbox drains (the uplink pumps right after this event): NTP's step is often
      // what lets TLS connect at all, and the periodic sample may not have seen it yet.
      this.#clockWatch.sample();
      this.#showLeds();
      void this.#publishConfig();
    });
    this.#uplink.on("command", (cmd) => void this.#onCommand(cmd));
    this.#uplink.on("disconnected", () => {
      this.#saveUplinkState(false);
      this.#showLeds();
    });
    this.#uplink.start();
  }

  /** Reloads, applies and rollbacks one at a time, in the order asked. */
  #serially<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#reloading.then(fn);
    this.#reloading = next.catch(() => undefined);
    return next;
  }

  async #reload(): Promise<ReloadOutcome> {
    if (!this.#configFile)
      return { ok: false, code: "config_invalid", message: "no config file to re-read", problems: [] };
    const r = this.#configFile.read();
    if (!r.ok) {
      this.#log.warn({ problems: r.problems }, "reload refused: invalid config; the running config stays");
      return {
        ok: false,
        code: "config_invalid",
        message: `the config file has ${r.problems.length} problem${r.problems.length === 1 ? "" : "s"}; the running config stays`,
        problems: r.problems,
      };
    }
    const old = this.#config;
    const next = r.config;
    const refused = restartRequired(old, next);
    if (refused) return refused;
    const differs = (k: keyof Config) => canonicalJson(old[k]) !== canonicalJson(next[k]);
    const changed = (Object.keys(next) as (keyof Config)[]).filter(differs);
    this.#config = next;
    this.#configHash = configHash(next);
    this.#documentHash = r.documentHash;
    this.#configAt = new Date().toISOString();
    this.#commands?.setRate({
      perMinute: next.broker.commands_per_minute,
      burst: next.broker.commands_burst,
    });
    if (changed.includes("log_level")) this.#log.level = next.log_level;
    if (changed.some((k) => k === "checks" || k === "areas" || k === "defaults")) {
      await this.#scheduler?.stop();
      const checks = scheduledChecks(next, this.#parts.kinds);
      this.#tracker = newTracker(next, checks);
      this.#publishHealth();
      this.#startScheduler(checks);
      this.#showLeds();
    }
    this.#log.info({ changed, config_hash: configHash(next) }, "config reloaded");
    const store = this.#store;
    if (changed.includes("broker") && store) {
      // After the reply went out on the old connection; the outbox keeps everything meanwhile.
      const after = async () => {
        await this.#uplink?.stop();
        this.#startUplink(next, store);
      };
      return { ok: true, hash: configHash(next), changed, after };
    }
    await this.#publishConfig();
    return { ok: true, hash: configHash(next), changed };
  }

  async #apply(document: Record<string, unknown>, hash: string, confirmMs: number): Promise<ApplyOutcome> {
    const file = this.#configFile;
    if (!file || this.#documentHash === undefined)
      return {
        ok: false,
        code: "internal",
        message: "this probe runs without a config file to replace",
        problems: [],
      };
    const checked = file.check(document);
    if (!checked.ok) {
      this.#log.warn(
        { problems: checked.problems },
        "apply_config refused: invalid document; nothing was changed",
      );
      return {
        ok: false,
        code: "config_invalid",
        message: `the document has ${checked.problems.length} problem${checked.problems.length === 1 ? "" : "s"}; nothing was changed`,
        problems: checked.problems,
      };
    }
    const refused = restartRequired(this.#config, checked.config);
    if (refused)
      return {
        ...refused,
        message: "the document changes settings that only a restart applies; nothing was changed",
      };
    // The file is written as JSON and read back as YAML: make sure that reads back as this very document.
    const reread = parseConfigYaml(documentText(document), "document");
    if (!reread.ok || documentHash(reread.value ?? {}) !== hash)
      return {
        ok: false,
        code: "internal",
        message: "the document does not survive being written as a config file (a YAML merge key `<<`?)",
        problems: [],
      };
    let pending;
    try {
      pending = file.write(document, hash, this.#documentHash, Date.now() + confirmMs);
    } catch (err) {
      this.#log.error(
        { err: String(err), file: file.path },
        "apply_config: could not write the config file; nothing was changed",
      );
      return {
        ok: false,
        code: "internal",
        message: `could not write ${file.path}: ${String(err)}`,
        problems: [],
      };
    }
    const r = await this.#reload();
    if (!r.ok || this.#documentHash !== hash) {
      // Changed under us between the check and the read (a local edit): put the file back as it was.
      file.abandon();
      // What did load (if anything) must not keep running on a file that is gone.
      if (r.ok) {
        const back = await this.#reload();
        if (back.ok) await back.after?.();
      }
      this.#log.error(
        { file: file.path },
        "apply_config: the written file did not load as checked; the previous file is back",
      );
      return {
        ok: false,
        code: "internal",
        message: "the written config file did not load as checked; the previous file is back",
        problems: r.ok ? [] : r.problems,
      };
    }
    file.arm(() => this.#confirmWindowPassed());
    this.#log.info(
      {
        document_hash: hash,
        previous_document_hash: pending.previous_document_hash,
        confirm_by: pending.confirm_by,
        changed: r.changed,
      },
      "config applied from HQ; rolled back unless confirmed in time",
    );
    return {
      ok: true,
      hash: r.hash,
      changed: r.changed,
      confirmBy: pending.confirm_by,
      ...(r.after ? { after: r.after } : {}),
    };
  }

  /** The confirm window passed without `cmd/confirm_config`: back to last-known-good, and say so. */
  #confirmWindowPassed(): void {
    const pending = this.#configFile?.pending();
    this.#log.warn(
      { document_hash: pending?.document_hash, confirm_by: pending?.confirm_by },
      "applied config was not confirmed by HQ in time: rolling back to last-known-good",
    );
    void this.#serially(async () => {
      const r = await this.#rollBack("not_confirmed");
      // No reply to wait for: reconnect (a broker change) at once.
      if (r.ok) await r.after?.();
    }).catch((err: unknown) => this.#log.error({ err: String(err) }, "rollback failed"));
  }

  async #rollBack(reason: "not_confirmed" | "command"): Promise<RollbackOutcome> {
    const file = this.#configFile;
    const rolled = file?.rollBack(this.#documentHash ?? "", reason);
    if (!file || !rolled)
      return {
        ok: false,
        code: "no_previous",
        message: "there is no last-known-good config file to go back to",
      };
    const r = await this.#reload();
    if (!r.ok) {
      this.#log.error(
        { file: file.path, problems: r.problems },
        "rolled back the config file, but it does not load; the running config stays",
      );
      await this.#publishConfig();
      return {
        ok: false,
        code: "internal",
        message: `rolled back ${file.path}, but it does not load: ${r.message}`,
      };
    }
    this.#log.warn(
      { reason, given_up: rolled.document_hash, document_hash: this.#documentHash, config_hash: r.hash },
      "config rolled back to last-known-good",
    );
    return {
      ok: true,
      hash: r.hash,
      documentHash: this.#documentHash ?? "",
      ...(r.after ? { after: r.after } : {}),
    };
  }

  async #onCommand(cmd: IncomingCommand): Promise<void> {
    if (!this.#commands) return;
    const out = await this.#commands.handle(cmd);
    // Replies go out directly, not through the outbox: a command arrives only while connected,
    // and an answer queued behind a backlog of results would be stale when it arrived.
    for (const r of out.replies) {
      await this.#uplink?.publishNow(r.topic, r.payload, {
        ...REPLY_DELIVERY,
        correlationData: r.correlationData,
      });
    }
    await out
      .after?.()
      .catch((err: unknown) => this.#log.error({ err: String(err) }, "command follow-up failed"));
  }

  /** The retained `config`: connection-scoped like `state`, so published directly on every connect. */
  async #publishConfig(): Promise<void> {
    const file = this.#configFile;
    await this.#publishDirect(
      configMessage(
        configPayload(this.#config, this.#who, this.#configAt, {
          ...(this.#documentHash ? { document_hash: this.#documentHash } : {}),
          ...(file?.pending() ? { pending: file.pending() } : {}),
          ...(file?.rolledBack() ? { rolled_back: file.rolledBack() } : {}),
        }),
      ),
    );
  }

  /** One run: enveloped (clock corrected), kept, judged; events, health, LEDs follow. */
  #onRun(run: Run): void {
    if (!this.#tracker) return;
    const result = envelope(run, this.#who, this.#lastStep, this.#configHash);
    this.#keepResult(result);
    const transitions = this.#tracker.update(verdictOf(result));
    for (const t of transitions) this.#publishEvent(t);
    if (transitions.length > 0 || this.#storeReasonChanged()) this.#publishHealth();
    this.#uplink?.kick();
    this.#showLeds();
  }

  /** Store and outbox in one transaction; a result the store cannot keep goes out live (when connected). */
  #keepResult(result: Omit<ResultPayload, "seq">): void {
    let message: OutboxMessage | undefined;
    try {
      this.#store?.appendResult(result.check, (seq) => {
        message = resultMessage({ ...result, seq });
        return { message, summaryJson: message.payload };
      });
    } catch (err) {
      // Disk full or I/O error even after eviction: not kept, but HQ still gets it while connected.
      this.#log.error({ err: String(err), check: result.check }, "could not store result");
      if (message) this.#publishLive(message);
    }
  }

  /** The wall clock stepped (NTP, no RTC): results of this boot not yet delivered get corrected times. */
  #onClockStep(step: ClockStep): void {
    this.#lastStep = step;
    let corrected = 0;
    try {
      corrected =
        this.#store?.rewriteUnsent("results/", (p) => correctResult(p, this.#who.bootId, step)) ?? 0;
    } catch (err) {
      this.#log.error({ err: String(err) }, "could not correct stored results after a clock step");
    }
    this.#log.warn(
      { step_ms: Math.round(step.toOffsetMs - step.fromOffsetMs), corrected },
      "wall clock stepped: undelivered results of this boot corrected from boot_id + mono_ms",
    );
  }

  /** A damaged database was moved aside (store.ts): an event for HQ, and health says so. */
  #onQuarantine(q: Quarantine): void {
    this.#enqueue(eventMessage(quarantineEvent(q, this.#who)));
    this.#storeReasonChanged();
    this.#publishHealth();
    this.#showLeds();
  }

  /** Whether the store's condition reads differently than in the last health (and remembers it). */
  #storeReasonChanged(): boolean {
    const reason = this.#storeCondition()?.reason ?? null;
    if (reason === this.#storeReason) return false;
    this.#storeReason = reason;
    this.#log.warn({ reason: reason ?? "store: ok" }, "store condition changed");
    this.#showLeds();
    return true;
  }

  #storeCondition():
    { trouble: boolean; reason: string | null; notKept: number; quarantined: string | null } | undefined {
    const c = this.#store?.condition();
    if (!c) return undefined;
    return {
      trouble: storeInTrouble(c),
      reason: storeReason(c),
      notKept: c.notKept,
      quarantined: c.quarantine?.movedTo ?? null,
    };
  }

  /** A message the store could not keep goes out directly while connected (at most once, no replay). */
  #publishLive(m: OutboxMessage): void {
    if (this.#uplink?.connected) void this.#publishDirect(m);
  }

  /** Publishes past the outbox: connection-scoped messages, or what the store could not keep. */
  async #publishDirect(m: DirectMessage): Promise<void> {
    const topic = baseTopic(this.#config.site, this.#config.probe) + m.topic;
    await this.#uplink?.publishNow(topic, m.payload, { qos: m.qos, retain: m.retain });
  }

  #publishEvent(t: Transition): void {
    this.#log.info({ area: t.area, from: t.from, to: t.to, reason: t.reason }, "area changed");
    this.#enqueue(eventMessage(transitionEvent(t, this.#who)));
  }

  #health(): HealthPayload {
    const now = Date.now();
    const areas = this.#tracker?.snapshot();
    let stats: ReturnType<Store["stats"]> | undefined;
    try {
      stats = this.#store?.stats();
    } catch (err) {
      this.#log.warn({ err: String(err) }, "could not read outbox figures for health");
    }
    const store = this.#storeCondition();
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
            led: lookName(areaLook(s.state, s.since, now, this.#config.leds.recent_change_ms)),
            last_result_id: s.lastResultId,
            reason: s.reason,
          },
        ]),
      ),
      outbox: { rows: stats?.rows ?? 0, evicted: stats?.evicted ?? 0 },
      ...(store
        ? {
            store: {
              state: store.trouble ? ("degraded" as const) : ("ok" as const),
              reason: store.reason,
              not_kept: store.notKept,
              quarantined: store.quarantined,
            },
          }
        : {}),
      leds: {
        requested: this.#config.leds.backend,
        ...(this.#leds?.describe() ?? { backend: "none", problem: null }),
      },
    };
  }

  #publishHealth(): void {
    const health = this.#health();
    try {
      this.#store?.setState(HEALTH_STATE_KEY, health);
    } catch (err) {
      // Disk full or I/O error: `netprobe status` shows the previous health; HQ gets this one.
      this.#log.warn({ err: String(err) }, "could not save health for netprobe status");
    }
    this.#enqueue(healthMessage(health));
  }

  #saveUplinkState(connected: boolean): void {
    const state: UplinkState = { connected, since: new Date().toISOString() };
    try {
      this.#store?.setState(UPLINK_STATE_KEY, state);
    } catch (err) {
      this.#log.error({ err: String(err) }, "could not save the uplink state");
    }
  }

  /** Queues a message; one the store cannot keep is published live instead (when connected). */
  #enqueue(m: OutboxMessage): void {
    try {
      this.#store?.enqueue(m);
      this.#uplink?.kick();
    } catch (err) {
      this.#log.error({ err: String(err), topic: m.topic }, "could not queue message");
      this.#publishLive(m);
    }
  }

  #showLeds(): void {
    if (!this.#leds || !this.#tracker) return;
    const now = Date.now();
    const leds = Object.fromEntries(
      Object.entries(this.#tracker.snapshot()).map(([a, s]) => [
        a,
        areaLook(s.state, s.since, now, this.#config.leds.recent_change_ms),
      ]),
    ) as PanelLooks;
    leds.status = statusLook(this.#uplink?.connected ?? false, this.#storeCondition()?.trouble ?? false);
    this.#leds.show(leds);
  }
}

/** Top-level config sections a reload cannot change: they name the probe, its database and its LEDs. */
const RESTART_ONLY: readonly (keyof Config)[] = ["site", "probe", "store", "leds", "stamp_reflector"];

/** A restart_required refusal when `next` changes a restart-only section of `running`. */
function restartRequired(running: Config, next: Config): Extract<ReloadOutcome, { ok: false }> | undefined {
  const restartOnly = RESTART_ONLY.filter((k) => canonicalJson(running[k]) !== canonicalJson(next[k]));
  if (restartOnly.length === 0) return undefined;
  return {
    ok: false,
    code: "restart_required",
    message: "the new config changes settings that only a restart applies; the running config stays",
    problems: restartOnly.map((k) => `${k}: changed; restart the service to apply it`),
  };
}

const mqttUplink: UplinkFactory = (settings, base, outbox, state, log) =>
  new MqttUplink(settings, base, outbox, state, log);

function newTracker(c: Config, checks: readonly ScheduledCheck[]): AreaTracker {
  return new AreaTracker(checks, { failAfter: c.areas.fail_after, recoverAfter: c.areas.recover_after });
}
