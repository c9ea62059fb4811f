import { readFileSync } from "node:fs";
import { EventEmitter } from "node:events";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import type { Logger } from "../../../contract/src/log.ts";
import type { IncomingCommand } from "./commands.ts";

/** A message waiting in the durable outbox; `topic` is relative to the probe's base topic. */
export interface OutboxRow {
  id: number;
  topic: string;
  payload: string;
  qos: 0 | 1;
  retain: boolean;
}

/** The part of the store the uplink drains: the outbox is the only copy until PUBACK. */
export interface OutboxSource {
  peek(afterId: number, limit: number): OutboxRow[];
  ack(ids: number[]): void;
}

/** Broker settings the uplink needs (from the config's `broker` section, durations in ms). */
export interface UplinkSettings {
  url: string;
  protocolVersion: 4 | 5;
  clientId: string;
  username?: string;
  password?: string;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  rejectUnauthorized: boolean;
  keepaliveMs: number;
  reconnectMinMs: number;
  reconnectMaxMs: number;
}

/** Events: `connected` / `disconnected` (reason) whenever the link changes; `command` per `cmd/<name>` message. */
export interface UplinkEvents {
  connected: [];
  disconnected: [reason: string];
  command: [command: IncomingCommand];
}

/** How a message published directly (not through the outbox) goes out. */
export interface DirectPublish {
  qos: 0 | 1;
  retain: boolean;
  /** MQTT 5 Message Expiry Interval: the broker discards it if undelivered by then. */
  expirySeconds?: number | undefined;
  /** MQTT 5 Correlation Data (the request's, on a reply). */
  correlationData?: Buffer | undefined;
}

// PUBACK reason codes that will never succeed on a retry (MQTT 5 §3.4.2.1): the row is dropped and
// logged instead of blocking everything queued behind it.
const PERMANENT_REJECTIONS = new Set([0x87, 0x90, 0x99]);
// MQTT 5 lets the broker cap in-flight QoS 1 messages (Receive Maximum); 3.1.1 brokers do not say.
const DEFAULT_WINDOW = 64;
/** Delivered rows deleted from the outbox together (see #pump). */
const ACK_BATCH = 64;
const ACK_DELAY_MS = 20;
/**
 * Outbox rows read ahead per query (see #pump). One query per PUBACK was a fifth of a backlog
 * drain's CPU: each costs ~70 µs of fixed overhead whatever the rows.
 */
const READ_AHEAD = 64;

/**
 * The MQTT uplink. The SQLite outbox is the source of truth: a row is deleted only on its PUBACK,
 * and after any disconnect draining restarts from the oldest undelivered row (at-least-once; the
 * result `id` lets headquarters drop duplicates). MQTT.js's own reconnect and in-memory store are
 * disabled so that nothing is resent from two places: each connection attempt is a fresh client.
 */
export class MqttUplink extends EventEmitter<UplinkEvents> {
  readonly #s: UplinkSettings;
  readonly #base: string;
  readonly #outbox: OutboxSource;
  readonly #log: Logger;
  readonly #statePayload: (state: "online" | "offline") => string;
  #client: MqttClient | undefined;
  #connected = false;
  #stopped = false;
  #attempt = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  /** id of the last row read from the outbox on this connection */
  #cursor = 0;
  /** rows read ahead from the outbox, oldest first, not yet published on this connection */
  #readAhead: OutboxRow[] = [];
  #window = DEFAULT_WINDOW;
  readonly #inflight = new Set<number>();
  #acked: number[] = [];
  #ackFlush: NodeJS.Timeout | undefined;
  #dropped = 0;

  constructor(
    settings: UplinkSettings,
    baseTopic: string,
    outbox: OutboxSource,
    statePayload: (state: "online" | "offline") => string,
    log: Logger,
  ) {
    super();
    this.#s = settings;
    this.#base = baseTopic;
    this.#outbox = outbox;
    this.#statePayload = statePayload;
    this.#log = log;
  }

  /** True while a broker session is up. */
  get connected(): boolean {
    return this.#connected;
  }

  /** Rows the broker rejected for good (not authorised, bad topic or payload) and that were dropped. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Starts connecting; never throws for an unreachable broker (it retries with backoff). */
  start(): void {
    this.#stopped = false;
    this.#connect();
  }

  /**
   * Publishes one connection-scoped message now, bypassing the outbox (retained `config`, command
   * replies): true on PUBACK, false when not connected or refused. MQTT 5 properties are left out
   * on 3.1.1.
   */
  publishNow(topic: string, payload: string, opts: DirectPublish): Promise<boolean> {
    const client = this.#client;
    if (!client || !this.#connected) return Promise.resolve(false);
    const v5 = this.#s.protocolVersion === 5;
    const properties = {
      ...(v5 && opts.expirySeconds !== undefined ? { messageExpiryInterval: opts.expirySeconds } : {}),
      ...(v5 && opts.correlationData !== undefined ? { correlationData: opts.correlationData } : {}),
    };
    return new Promise((resolve) => {
      client.publish(topic, payload, { qos: opts.qos, retain: opts.retain, properties }, (err) => {
        if (err) this.#log.warn({ topic, err: err.message }, "direct publish failed");
        resolve(!err);
      });
    });
  }

  /** Tells the uplink new rows are waiting. */
  kick(): void {
    if (this.#connected) this.#pump();
  }

  /** Publishes `offline` (a clean stop does not fire the will), flushes acks and disconnects. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    const client = this.#client;
    if (client && this.#connected) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 1000);
        client.publish(this.#base + "state", this.#statePayload("offline"), { qos: 1, retain: true }, () => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    this.#flushAcks();
    if (client) {
      // A graceful end waits for every in-flight PUBACK, which a stalled broker may never send;
      // SIGTERM must still exit within 5 s. Unacknowledged rows stay in the outbox: sent again later.
      let timer: NodeJS.Timeout | undefined;
      const gave = new Promise<void>((resolve) => (timer = setTimeout(resolve, 1500)));
      await Promise.race([client.endAsync(false).catch(() => undefined), gave]);
      clearTimeout(timer);
      this.#flushAcks();
      client.end(true);
    }
    this.#teardown("stopped");
  }

  #connect(): void {
    if (this.#stopped) return;
    const s = this.#s;
    let opts: IClientOptions;
    try {
      opts = {
        clientId: s.clientId,
        protocolVersion: s.protocolVersion,
        clean: true,
        reconnectPeriod: 0,
        connectTimeout: 10_000,
        keepalive: Math.round(s.keepaliveMs / 1000),
        queueQoSZero: false,
        // mqtt-packet's number cache holds 65,536 two-byte Buffers (~8 MB of heap) to save an
        // allocation per packet id: not worth it at a probe's message rate.
        writeCache: false,
        // MQTT.js traces every packet through `debug`; even disabled, that cost ~3 % of a drain.
        log: () => {},
        rejectUnauthorized: s.rejectUnauthorized,
        will: {
          topic: this.#base + "state",
          payload: Buffer.from(this.#statePayload("offline")),
          qos: 1,
          retain: true,
        },
        ...(s.username ? { username: s.username } : {}),
        ...(s.password ? { password: s.password } : {}),
        ...(s.caFile ? { ca: readFileSync(s.caFile) } : {}),
        ...(s.certFile ? { cert: readFileSync(s.certFile) } : {}),
        ...(s.keyFile ? { key: readFileSync(s.keyFile) } : {}),
      };
    } catch (err) {
      this.#log.error({ err: String(err) }, "cannot read broker TLS files; retrying later");
      this.#scheduleRetry();
      return;
    }
    let client: MqttClient;
    try {
      client = mqtt.connect(s.url, opts);
    } catch (err) {
      // MQTT.js throws synchronously for a URL or option it cannot use: retry, never crash.
      this.#log.error({ err: String(err) }, "cannot start a broker connection; retrying later");
      this.#scheduleRetry();
      return;
    }
    this.#client = client;
    client.on("connect", (connack) => {
      if (client !== this.#client) return;
      this.#attempt = 0;
      this.#connected = true;
      // Rows the last connection delivered are deleted before the outbox is read from its start.
      this.#flushAcks();
      this.#cursor = 0;
      this.#readAhead = [];
      this.#window = Math.max(
        1,
        Math.min(DEFAULT_WINDOW, connack.properties?.receiveMaximum ?? DEFAULT_WINDOW),
      );
      // Small QoS 1 messages with a window of ~20 in flight: Nagle's algorithm would hold each
      // write back until the previous one is acknowledged.
      (client.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
      this.#log.info({ url: s.url, window: this.#window }, "broker connected");
      // `online` on every (re)connect: the will may have set `offline` while we were away.
      client.publish(this.#base + "state", this.#statePayload("online"), { qos: 1, retain: true });
      this.#subscribeCommands(client);
      this.emit("connected");
      this.#pump();
    });
    client.on("message", (topic, payload, packet) => {
      if (client !== this.#client || !topic.startsWith(this.#base + "cmd/")) return;
      try {
        this.emit("command", {
          name: topic.slice(this.#base.length + 4),
          payload,
          responseTopic: packet.properties?.responseTopic,
          correlationData: packet.properties?.correlationData,
          retain: packet.retain,
        });
      } catch (err) {
        // A throwing handler would escape through MQTT.js's parser into the process.
        this.#log.error({ topic, err: String(err) }, "command handler failed");
      }
    });
    client.on("error", (err) => {
      if (client !== this.#client) return;
      this.#log.warn({ err: err.message }, "broker connection error");
      this.#drop(client, err.message);
    });
    client.on("close", () => {
      if (client !== this.#client) return;
      this.#drop(client, "connection closed");
    });
  }

  /** `cmd/#` on every connection (the session is clean, so the broker forgets it on disconnect). */
  #subscribeCommands(client: MqttClient): void {
    const topic = this.#base + "cmd/#";
    // MQTT 5 Retain Handling 2: no retained commands at subscribe time (they would replay old orders).
    const opts = this.#s.protocolVersion === 5 ? { qos: 1 as const, rh: 2 } : { qos: 1 as const };
    client.subscribe(topic, opts, (err, granted) => {
      if (client !== this.#client) return;
      const refused = granted?.some((g) => g.qos === 128 || g.qos > 2);
      if (err || refused)
        this.#log.error(
          { topic, err: err?.message ?? "refused by the broker (ACL?)" },
          "cannot subscribe to commands",
        );
    });
  }

  #drop(client: MqttClient, reason: string): void {
    if (client !== this.#client) return; // already dropped
    this.#teardown(reason); // forgets the client first: its late callbacks are ignored from here on
    this.#scheduleRetry();
    client.removeAllListeners();
    client.on("error", () => undefined);
    // Never end a client from inside one of its own callbacks: MQTT.js's _flush iterates its
    // outgoing map while calling publish callbacks, and a re-entrant end() deletes entries under
    // it ("Cannot read properties of undefined (reading 'cb')" on keepalive timeout).
    setImmediate(() => client.end(true));
  }

  #teardown(reason: string): void {
    this.#flushAcks();
    this.#inflight.clear();
    this.#cursor = 0;
    this.#readAhead = [];
    this.#client = undefined;
    if (this.#connected) {
      this.#connected = false;
      this.#log.warn({ reason }, "broker disconnected; results queue in the outbox");
      this.emit("disconnected", reason);
    }
  }

  #scheduleRetry(): void {
    if (this.#stopped) return;
    clearTimeout(this.#retryTimer);
    const { reconnectMinMs: min, reconnectMaxMs: max } = this.#s;
    // Exponential backoff with full jitter, so a fleet that lost HQ together does not return together.
    const cap = Math.min(max, min * 2 ** Math.min(this.#attempt, 16));
    const delay = Math.max(min, Math.random() * cap);
    this.#attempt += 1;
    this.#retryTimer = setTimeout(() => this.#connect(), delay);
  }

  #pump(): void {
    const client = this.#client;
    if (!client || !this.#connected) return;
    // Rows are published from a read-ahead of READ_AHEAD, refilled when empty; a row evicted from
    // the outbox while it waits here is still sent (at-least-once), and its ack deletes nothing.
    for (let room = this.#window - this.#inflight.size; room > 0; room--) {
      if (client !== this.#client) return; // a publish below failed and dropped the connection
      if (this.#readAhead.length === 0) {
        try {
          this.#readAhead = this.#outbox.peek(this.#cursor, READ_AHEAD);
        } catch (err) {
          // An unreadable outbox (I/O error) stops this drain; the next connection tries again.
          this.#log.error({ err: String(err) }, "cannot read the outbox");
          return;
        }
        const last = this.#readAhead.at(-1);
        if (last === undefined) return;
        this.#cursor = last.id;
      }
      const row = this.#readAhead.shift()!;
      this.#inflight.add(row.id);
      client.publish(this.#base + row.topic, row.payload, { qos: row.qos, retain: row.retain }, (err) => {
        if (client !== this.#client) return; // a previous connection's late callback
        this.#inflight.delete(row.id);
        if (err) {
          const code = (err as { code?: number }).code;
          if (code !== undefined && PERMANENT_REJECTIONS.has(code)) {
            this.#dropped += 1;
            this.#log.error(
              { topic: row.topic, code, err: err.message },
              "broker rejected message for good; dropped",
            );
          } else {
            this.#log.warn({ topic: row.topic, err: err.message }, "publish failed; reconnecting");
            this.#drop(client, err.message);
            return;
          }
        }
        // Delivered rows leave the outbox in batches: one transaction per ACK_BATCH PUBACKs or
        // ACK_DELAY_MS, not one per PUBACK (that was a fifth of a backlog drain's CPU). A crash in
        // between re-sends at most that batch; HQ drops the repeats by result id.
        this.#acked.push(row.id);
        if (this.#acked.length >= ACK_BATCH) this.#flushAcks();
        else this.#ackFlush ??= setTimeout(() => this.#flushAcks(), ACK_DELAY_MS).unref();
        this.#pump();
      });
    }
  }

  #flushAcks(): void {
    if (this.#ackFlush) clearTimeout(this.#ackFlush);
    this.#ackFlush = undefined;
    if (this.#acked.length === 0) return;
    const ids = this.#acked;
    this.#acked = [];
    try {
      this.#outbox.ack(ids);
    } catch (err) {
      // The rows stay and are sent again: a duplicate, never a loss.
      this.#log.error({ err: String(err) }, "could not delete delivered rows");
    }
  }
}
