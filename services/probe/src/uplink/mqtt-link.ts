import { readFileSync } from "node:fs";
import { EventEmitter } from "node:events";
import mqtt, { type IClientOptions, type IClientPublishOptions, type MqttClient } from "mqtt";
import type { Logger } from "../../../contract/src/log.ts";
import { TOPICS } from "../../../contract/src/payloads.ts";
import type { IncomingCommand } from "./commands.ts";

/** The `state` topic as the contract declares it (online on connect, offline as the will). */
const STATE = TOPICS.state;

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
  /** Deletes the rows with firstId <= id <= lastId (delivered, or dropped for good). */
  ackRange(firstId: number, lastId: number): void;
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
// MQTT 5 lets the broker cap in-flight QoS 1 messages (Receive Maximum, §3.2.2.3.3); 3.1.1 brokers
// do not say, and their own cap (mosquitto's max_inflight_messages) only queues the excess.
const DEFAULT_WINDOW = 64;
/** Upper bound on the window whatever the broker allows: bounds the memory held by sent rows. */
const MAX_WINDOW = 1024;
/**
 * Delivered rows deleted together: one range DELETE per ACK_BATCH consecutive PUBACKs or
 * ACK_DELAY_MS. A crash in between re-sends at most that many; HQ drops the repeats by result id.
 */
const ACK_BATCH = 256;
const ACK_DELAY_MS = 20;
/**
 * Outbox rows read ahead per query (see #pump): each query costs ~70 µs of fixed overhead whatever
 * the rows, and 256 rows of ~600 B hold ~150 KiB.
 */
const READ_AHEAD = 256;
/**
 * Packet identifiers: the drain numbers its PUBLISHes from 1 up to DRAIN_IDS and wraps; MQTT.js
 * (the online state, command replies, SUBSCRIBE) gets the ids above it through SideIds, so a
 * PUBACK always names exactly one owner (MQTT 5 §2.2.1: ids are unique among in-flight packets).
 */
const DRAIN_IDS = 65_279;
/** A drain of at least this many messages logs its figures when the outbox is empty again. */
const BACKLOG_REPORT_MIN = 1000;

/** A PUBLISH the drain wrote and whose PUBACK it waits for. */
interface Sent {
  rowId: number;
  topic: string;
  /** PUBACK seen (or the row was dropped as permanently rejected). */
  done: boolean;
}

/** How full the window was while a backlog waited: the figure the drain's speed depends on. */
export interface DrainStats {
  /** PUBLISHes the drain wrote, and the socket writes that carried them. */
  published: number;
  writes: number;
  acked: number;
  /** Range DELETEs run (one per acked batch). */
  deletes: number;
  window: number;
  /** Mean messages in flight, weighted by time, over the time rows were waiting to be sent. */
  inflightAvg: number;
  /** Time rows were waiting for room in the window (ms). */
  backloggedMs: number;
}

/**
 * MQTT.js's packet ids, confined to DRAIN_IDS+1..65535 (it needs a handful at a time: the online
 * state, command replies, the command subscription).
 */
class SideIds implements NonNullable<IClientOptions["messageIdProvider"]> {
  #next = DRAIN_IDS + 1;
  #last: number | null = null;
  readonly #used = new Set<number>();
  allocate(): number | null {
    for (let i = DRAIN_IDS + 1; i <= 0xffff; i++) {
      const id = this.#next;
      this.#next = id === 0xffff ? DRAIN_IDS + 1 : id + 1;
      if (!this.#used.has(id)) {
        this.#used.add(id);
        this.#last = id;
        return id;
      }
    }
    return null;
  }
  getLastAllocated(): number | null {
    return this.#last;
  }
  register(id: number): boolean {
    if (this.#used.has(id)) return false;
    this.#used.add(id);
    return true;
  }
  deallocate(id: number): void {
    this.#used.delete(id);
  }
  clear(): void {
    this.#used.clear();
  }
}

/** Remaining Length (MQTT 5 §1.5.5 variable byte integer): bytes it takes. */
function varIntBytes(n: number): number {
  return n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4;
}

/**
 * Encodes one QoS 1 PUBLISH (MQTT 5 §3.3, 3.1.1 §3.3) into `buf` at `at`; returns the end. Written
 * here rather than through mqtt-packet's generate(): a batch goes into one Buffer and one socket
 * write, where generate() allocates and validates each packet (test/unit/uplink/mqtt-link.test.ts
 * checks the bytes against mqtt-packet's parser).
 */
function writePublish(
  buf: Buffer,
  at: number,
  v5: boolean,
  retain: boolean,
  packetId: number,
  base: Buffer,
  topic: string,
  topicBytes: number,
  payload: string,
  payloadBytes: number,
): number {
  const remaining = 2 + base.length + topicBytes + 2 + (v5 ? 1 : 0) + payloadBytes;
  buf[at++] = 0x32 | (retain ? 1 : 0); // PUBLISH, QoS 1, DUP 0 (a new session never re-sends)
  for (let n = remaining; ;) {
    const byte = n & 0x7f;
    n >>>= 7;
    buf[at++] = n > 0 ? byte | 0x80 : byte;
    if (n === 0) break;
  }
  const topicLength = base.length + topicBytes;
  buf[at++] = topicLength >> 8;
  buf[at++] = topicLength & 0xff;
  at += base.copy(buf, at);
  at += buf.write(topic, at, "utf8");
  buf[at++] = packetId >> 8;
  buf[at++] = packetId & 0xff;
  if (v5) buf[at++] = 0; // no properties
  at += buf.write(payload, at, "utf8");
  return at;
}

/** The MQTT.js entry point the uplink uses; tests pass a double. */
export type Connect = (url: string, opts: IClientOptions) => MqttClient;

/**
 * The MQTT uplink. The SQLite outbox is the source of truth: a row is deleted only on its PUBACK,
 * and after any disconnect draining restarts from the oldest undelivered row (at-least-once; the
 * result `id` lets headquarters drop duplicates). MQTT.js's own reconnect and in-memory store are
 * disabled so that nothing is resent from two places: each connection attempt is a fresh client.
 *
 * MQTT.js keeps the connection (CONNECT, keepalive, TLS, the command subscription, direct
 * publishes); the outbox drain writes its PUBLISHes straight to `client.stream`, a window's worth
 * in one write, and takes their PUBACKs from `packetreceive` (docs/uplink-performance.md: going
 * through client.publish() per row cost ~4× the CPU per message).
 */
export class MqttUplink extends EventEmitter<UplinkEvents> {
  readonly #s: UplinkSettings;
  readonly #base: string;
  readonly #baseBytes: Buffer;
  readonly #outbox: OutboxSource;
  readonly #log: Logger;
  readonly #statePayload: (state: "online" | "offline") => string;
  readonly #connectFn: Connect;
  #client: MqttClient | undefined;
  #connected = false;
  #stopped = false;
  #attempt = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  /** id of the last row read from the outbox on this connection */
  #cursor = 0;
  /** rows read ahead from the outbox, oldest first, not yet published on this connection */
  #readAhead: OutboxRow[] = [];
  #readIndex = 0;
  #window = DEFAULT_WINDOW;
  /** The broker's Maximum Packet Size (MQTT 5 CONNACK); a bigger row would cost the connection. */
  #maxPacket = Infinity;
  /** PUBLISHes written on this connection, oldest first, until their PUBACK and their delete. */
  #sent: Sent[] = [];
  #sentHead = 0;
  readonly #byPacketId = new Map<number, Sent>();
  /** Drain PUBLISHes waiting for a PUBACK, and MQTT.js's own (they share the Receive Maximum). */
  #inflight = 0;
  #sideInflight = 0;
  #nextPacketId = 1;
  /** Consecutive acknowledged rows not deleted yet: ids first..last of the outbox. */
  #ackFirst = 0;
  #ackLast = 0;
  #ackCount = 0;
  #ackFlush: NodeJS.Timeout | undefined;
  #pumpQueued = false;
  #dropped = 0;
  #stats = newStats();
  /** The window was full with rows left to send: time-weighted occupancy is being measured. */
  #backlogSince = -1;
  #occupancyLevel = 0;

  constructor(
    settings: UplinkSettings,
    baseTopic: string,
    outbox: OutboxSource,
    statePayload: (state: "online" | "offline") => string,
    log: Logger,
    connect: Connect = (url, opts) => mqtt.connect(url, opts),
  ) {
    super();
    this.#s = settings;
    this.#base = baseTopic;
    this.#baseBytes = Buffer.from(baseTopic, "utf8");
    this.#outbox = outbox;
    this.#statePayload = statePayload;
    this.#log = log;
    this.#connectFn = connect;
  }

  /** True while a broker session is up. */
  get connected(): boolean {
    return this.#connected;
  }

  /** Rows the broker rejected for good (not authorised, bad topic or payload) and that were dropped. */
  get dropped(): number {
    return this.#dropped;
  }

  /** What the drain did since start (or the last reset): writes, PUBACKs, deletes, window occupancy. */
  drainStats(reset = false): DrainStats {
    const s = this.#stats;
    const now = performance.now();
    const busy = s.busyMs + (this.#backlogSince >= 0 ? now - this.#backlogSince : 0);
    const area = s.areaMs + (this.#backlogSince >= 0 ? (now - this.#backlogSince) * this.#inflight : 0);
    const out: DrainStats = {
      published: s.published,
      writes: s.writes,
      acked: s.acked,
      deletes: s.deletes,
      window: this.#window,
      inflightAvg: busy > 0 ? Math.round((area / busy) * 100) / 100 : 0,
      backloggedMs: Math.round(busy),
    };
    if (reset) {
      this.#stats = newStats();
      if (this.#backlogSince >= 0) this.#backlogSince = now;
    }
    return out;
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
      this.#sidePublish(client, topic, payload, { qos: opts.qos, retain: opts.retain, properties }, (err) => {
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
        this.#sidePublish(
          client,
          this.#base + STATE.topic,
          this.#statePayload("offline"),
          { qos: STATE.qos, retain: STATE.retain },
          () => {
            clearTimeout(t);
            resolve();
          },
        );
      });
    }
    if (client) {
      // The drain's PUBACKs first (a DISCONNECT now would leave them unacknowledged), then MQTT.js's
      // own graceful end, which waits for its in-flight PUBACKs; a stalled broker may never send
      // either, and SIGTERM must still exit within 5 s. Unacknowledged rows stay in the outbox.
      const deadline = performance.now() + 1500;
      while (this.#inflight > 0 && client === this.#client && performance.now() < deadline) await sleep(10);
      let timer: NodeJS.Timeout | undefined;
      const gave = new Promise<void>(
        (resolve) => (timer = setTimeout(resolve, Math.max(0, deadline - performance.now()))),
      );
      await Promise.race([client.endAsync(false).catch(() => undefined), gave]);
      clearTimeout(timer);
      this.#flushAcks();
      client.end(true);
    }
    this.#teardown("stopped");
  }

  /** client.publish for MQTT.js's own messages, counted against the broker's Receive Maximum. */
  #sidePublish(
    client: MqttClient,
    topic: string,
    payload: string,
    opts: IClientPublishOptions,
    done: (err?: Error) => void,
  ): void {
    const counted = opts.qos === 1;
    if (counted) this.#sideInflight += 1;
    client.publish(topic, payload, opts, (err) => {
      if (counted && client === this.#client) {
        this.#sideInflight = Math.max(0, this.#sideInflight - 1);
        this.#queuePump(client);
      }
      done(err);
    });
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
        // MQTT.js re-arms its keepalive timer on every PUBACK (a clearTimeout + setTimeout per
        // message in a drain); a PINGREQ every keepalive interval instead costs nothing.
        reschedulePings: false,
        messageIdProvider: new SideIds(),
        queueQoSZero: false,
        // mqtt-packet's number cache holds 65,536 two-byte Buffers (~8 MB of heap) to save an
        // allocation per packet id: not worth it at a probe's message rate.
        writeCache: false,
        // MQTT.js traces every packet through `debug`; even disabled, that cost ~3 % of a drain.
        log: () => {},
        rejectUnauthorized: s.rejectUnauthorized,
        will: {
          topic: this.#base + STATE.topic,
          payload: Buffer.from(this.#statePayload("offline")),
          qos: STATE.qos,
          retain: STATE.retain,
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
      client = this.#connectFn(s.url, opts);
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
      this.#resetDrain();
      this.#window = Math.max(1, Math.min(MAX_WINDOW, connack.properties?.receiveMaximum ?? DEFAULT_WINDOW));
      this.#maxPacket = connack.properties?.maximumPacketSize ?? Infinity;
      // Small QoS 1 messages with a window in flight: Nagle's algorithm would hold each write back
      // until the previous one is acknowledged.
      (client.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
      this.#log.info({ url: s.url, window: this.#window }, "broker connected");
      // `online` on every (re)connect: the will may have set `offline` while we were away.
      this.#sidePublish(
        client,
        this.#base + STATE.topic,
        this.#statePayload("online"),
        { qos: STATE.qos, retain: STATE.retain },
        () => {},
      );
      this.#subscribeCommands(client);
      this.emit("connected");
      this.#pump();
    });
    client.on("packetreceive", (packet) => {
      if (packet.cmd === "puback" && client === this.#client) this.#onPuback(client, packet);
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
    this.#resetDrain();
    this.#client = undefined;
    if (this.#connected) {
      this.#connected = false;
      this.#log.warn({ reason }, "broker disconnected; results queue in the outbox");
      this.emit("disconnected", reason);
    }
  }

  /** Forgets what this connection sent: unacknowledged rows are read and sent again from the outbox. */
  #resetDrain(): void {
    this.#noteOccupancy(false);
    this.#cursor = 0;
    this.#readAhead = [];
    this.#readIndex = 0;
    this.#sent = [];
    this.#sentHead = 0;
    this.#byPacketId.clear();
    this.#inflight = 0;
    this.#sideInflight = 0;
    this.#ackCount = 0;
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

  /** The next row to send, refilling the read-ahead from the outbox; undefined when none is left. */
  #nextRow(): OutboxRow | undefined {
    if (this.#readIndex >= this.#readAhead.length) {
      // A row evicted from the outbox while it waits here is still sent (at-least-once), and its
      // ack deletes nothing.
      this.#readAhead = this.#outbox.peek(this.#cursor, READ_AHEAD);
      this.#readIndex = 0;
      const last = this.#readAhead.at(-1);
      if (last === undefined) return undefined;
      this.#cursor = last.id;
    }
    return this.#readAhead[this.#readIndex++];
  }

  /** Fills the window: every row that fits goes out in one PUBLISH batch, one socket write. */
  #pump(): void {
    const client = this.#client;
    if (!client || !this.#connected || this.#stopped) return;
    const v5 = this.#s.protocolVersion === 5;
    const base = this.#baseBytes;
    const room = this.#window - this.#inflight - this.#sideInflight;
    const batch: OutboxRow[] = [];
    const sizes: number[] = [];
    let total = 0;
    try {
      while (batch.length < room) {
        const row = this.#nextRow();
        if (row === undefined) break;
        const topicBytes = Buffer.byteLength(row.topic, "utf8");
        const payloadBytes = Buffer.byteLength(row.payload, "utf8");
        const remaining = 2 + base.length + topicBytes + 2 + (v5 ? 1 : 0) + payloadBytes;
        const size = 1 + varIntBytes(remaining) + remaining;
        if (size > this.#maxPacket) {
          // The broker would end the connection over it (MQTT 5 §3.2.2.3.6), on every retry.
          this.#dropped += 1;
          this.#log.error(
            { topic: row.topic, bytes: size, max_bytes: this.#maxPacket },
            "message larger than the broker accepts; dropped",
          );
          this.#outbox.ackRange(row.id, row.id);
          continue;
        }
        batch.push(row);
        sizes.push(topicBytes, payloadBytes);
        total += size;
      }
    } catch (err) {
      // An unreadable outbox (I/O error) stops this drain; the next connection tries again.
      this.#log.error({ err: String(err) }, "cannot read the outbox");
    }
    const more = this.#readIndex < this.#readAhead.length || this.#readAhead.length === READ_AHEAD;
    if (batch.length > 0) {
      const buf = Buffer.allocUnsafe(total);
      let at = 0;
      for (let i = 0; i < batch.length; i++) {
        const row = batch[i]!;
        const packetId = this.#nextPacketId;
        this.#nextPacketId = packetId === DRAIN_IDS ? 1 : packetId + 1;
        const sent: Sent = { rowId: row.id, topic: row.topic, done: false };
        this.#sent.push(sent);
        this.#byPacketId.set(packetId, sent);
        at = writePublish(
          buf,
          at,
          v5,
          row.retain,
          packetId,
          base,
          row.topic,
          sizes[2 * i]!,
          row.payload,
          sizes[2 * i + 1]!,
        );
      }
      this.#inflight += batch.length;
      this.#stats.published += batch.length;
      this.#stats.writes += 1;
      client.stream.write(buf);
    }
    this.#noteOccupancy(batch.length >= room && more);
    // A backlog drain is over: one line with how it went (the bench reads it), then a fresh count.
    if (batch.length === 0 && this.#inflight === 0 && this.#stats.published >= BACKLOG_REPORT_MIN)
      this.#log.info({ drain: this.drainStats(true) }, "outbox drained");
  }

  /** Time-weighted window occupancy, counted only while rows wait for room in the window. */
  #noteOccupancy(backlogged: boolean): void {
    const now = performance.now();
    if (this.#backlogSince >= 0) {
      this.#stats.busyMs += now - this.#backlogSince;
      this.#stats.areaMs += (now - this.#backlogSince) * this.#occupancyLevel;
    }
    this.#backlogSince = backlogged ? now : -1;
    this.#occupancyLevel = this.#inflight + this.#sideInflight;
  }

  #onPuback(client: MqttClient, packet: { messageId?: number; reasonCode?: number }): void {
    const sent = packet.messageId === undefined ? undefined : this.#byPacketId.get(packet.messageId);
    if (sent === undefined) return; // one of MQTT.js's own: it handles it
    this.#byPacketId.delete(packet.messageId!);
    const code = packet.reasonCode ?? 0;
    // 0 success, 0x10 "no matching subscribers" (still accepted), ≥ 0x80 refused (MQTT 5 §3.4.2.1).
    if (code >= 0x80) {
      if (!PERMANENT_REJECTIONS.has(code)) {
        this.#log.warn({ topic: sent.topic, code }, "publish refused; reconnecting");
        this.#drop(client, `PUBACK reason code ${code}`);
        return;
      }
      this.#dropped += 1;
      this.#log.error({ topic: sent.topic, code }, "broker rejected message for good; dropped");
    }
    sent.done = true;
    this.#inflight -= 1;
    this.#stats.acked += 1;
    // A broker acknowledges QoS 1 PUBLISHes in the order it received them ([MQTT-4.6.0-2]); rows
    // leave the outbox as the acknowledged prefix grows, so a PUBACK out of order only waits.
    while (this.#sentHead < this.#sent.length && this.#sent[this.#sentHead]!.done) {
      const id = this.#sent[this.#sentHead++]!.rowId;
      if (this.#ackCount === 0) this.#ackFirst = id;
      this.#ackLast = id;
      this.#ackCount += 1;
    }
    if (this.#sentHead > 4096) {
      this.#sent = this.#sent.slice(this.#sentHead);
      this.#sentHead = 0;
    }
    if (this.#ackCount >= ACK_BATCH) this.#flushAcks();
    else if (this.#ackCount > 0) this.#ackFlush ??= setTimeout(() => this.#flushAcks(), ACK_DELAY_MS).unref();
    this.#queuePump(client);
  }

  /**
   * One refill for all the PUBACKs of a TCP read: MQTT.js hands them over one per tick, and
   * setImmediate runs after those ticks, so the window refills in one write rather than one each.
   */
  #queuePump(client: MqttClient): void {
    if (this.#pumpQueued) return;
    this.#pumpQueued = true;
    setImmediate(() => {
      this.#pumpQueued = false;
      if (client === this.#client) this.#pump();
    });
  }

  #flushAcks(): void {
    if (this.#ackFlush) clearTimeout(this.#ackFlush);
    this.#ackFlush = undefined;
    if (this.#ackCount === 0) return;
    const first = this.#ackFirst;
    const last = this.#ackLast;
    this.#ackCount = 0;
    this.#stats.deletes += 1;
    try {
      // Outbox ids only grow (store.ts), so the rows between the first and the last of a run of
      // consecutive sends are exactly the rows sent (or evicted since): one range DELETE.
      this.#outbox.ackRange(first, last);
    } catch (err) {
      // The rows stay and are sent again: a duplicate, never a loss.
      this.#log.error({ err: String(err) }, "could not delete delivered rows");
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function newStats() {
  return { published: 0, writes: 0, acked: 0, deletes: 0, busyMs: 0, areaMs: 0 };
}
