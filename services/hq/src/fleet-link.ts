// HQ's MQTT side: one client subscribed to the whole fleet (or its share of it), feeding Fleet.
// Persistent session with a fixed client id when one is configured, so QoS 1 results queue at the
// broker while HQ restarts; a malformed message is counted in Fleet and logged (rate-limited).
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import type { Logger } from "../../contract/src/log.ts";
import { FLEET_FILTER, TOPIC_ROOT, type Fleet } from "./fleet.ts";
import type { HqConfig } from "./hq-config.ts";
import type { HistoryIngest } from "./history/ingest.ts";

/**
 * The subscriptions of one HQ instance. Alone: the whole fleet. In a shared group: results — the
 * load — are split (`$share/<group>/…`), while state, health, config, events and replies (a few
 * messages per probe per hour, retained ones among them) go to every instance, so each one's page
 * shows the whole fleet. A shared subscription gets no retained messages, so it could not carry
 * the retained state anyway.
 */
export function fleetSubscriptions(group: string | undefined): string[] {
  if (!group) return [FLEET_FILTER];
  const b = FLEET_FILTER.slice(0, -1); // netprobe/v1/+/+/
  return [
    `$share/${group}/${b}results/#`,
    `${b}state`,
    `${b}health`,
    `${b}config`,
    `${b}events`,
    `${b}reply/#`,
  ];
}

/** Connection state for the page's header. */
export interface LinkStatus {
  connected: boolean;
  url: string;
  subscription: string;
  subscriptions: string[];
  client_id: string;
  since: number;
  last_error: string | null;
}

/** Connects, subscribes and feeds every message to `fleet`; returns a handle to stop it. */
export function connectFleet(
  cfg: HqConfig,
  fleet: Fleet,
  log: Logger,
  onSubscribed?: () => void,
  history?: HistoryIngest,
) {
  const b = cfg.broker;
  const clientId = b.client_id ?? `hq-${hostname()}-${process.pid}`;
  const subscriptions = fleetSubscriptions(b.shared_group);
  const subscription = subscriptions.join(" ");
  const status: LinkStatus = {
    connected: false,
    url: b.url,
    subscription,
    subscriptions,
    client_id: clientId,
    since: Date.now(),
    last_error: null,
  };
  const persistent = b.client_id !== undefined;
  const opts: IClientOptions = {
    clientId,
    protocolVersion: b.protocol_version,
    clean: !persistent,
    ...(persistent && b.protocol_version === 5 ? { properties: { sessionExpiryInterval: 3600 } } : {}),
    reconnectPeriod: 1000,
    connectTimeout: 10_000,
    ...(b.username !== undefined ? { username: b.username } : {}),
    ...(b.password !== undefined ? { password: b.password } : {}),
    ...(b.ca_file ? { ca: readFileSync(b.ca_file) } : {}),
    ...(b.cert_file ? { cert: readFileSync(b.cert_file) } : {}),
    ...(b.key_file ? { key: readFileSync(b.key_file) } : {}),
  };
  const client: MqttClient = mqtt.connect(b.url, opts);
  const gate = history ? holdPubacks(client) : undefined;
  let logged = 0;
  let windowStart = Date.now();
  // A broker that sends no retained messages to wildcard subscriptions (RabbitMQ's MQTT plugin,
  // rabbitmq-server#8824) leaves HQ hearing of a probe first from a live result, with no state.
  // Then ask for its retained state, health and config by exact topic, once per probe. mosquitto
  // delivers the retained state right after the SUBACK, before any live message: never needed there.
  const heardOf = new Set<string>();
  const catchUp = (key: string): void => {
    if (heardOf.has(key)) return;
    heardOf.add(key);
    if (fleet.get(key)?.state !== "unknown") return;
    const topics = ["state", "health", "config"].map((t) => `${TOPIC_ROOT}${key}/${t}`);
    client.subscribe(topics, { qos: 1 }, (err) => {
      if (err) log.warn({ key, err: err.message }, "retained catch-up subscription failed");
    });
  };
  client.on("connect", (ack) => {
    status.connected = true;
    status.since = Date.now();
    status.last_error = null;
    log.info(
      { url: b.url, subscription, session_present: ack.sessionPresent },
      "connected to the fleet broker",
    );
    if (!ack.sessionPresent || !persistent)
      client.subscribe(subscriptions, { qos: 1 }, (err, granted) => {
        const refused = (granted ?? []).filter((g) => g.qos >= 0x80).map((g) => g.topic);
        if (err || refused.length > 0) log.error({ err: err?.message, refused }, "subscription refused");
        else onSubscribed?.();
      });
  });
  client.on("close", () => {
    if (status.connected) log.warn("fleet broker connection lost");
    status.connected = false;
    status.since = Date.now();
  });
  client.on("error", (err) => {
    status.last_error = err.message;
    log.warn({ err: err.message }, "fleet broker error");
  });
  client.on("message", (topic, payload, packet) => {
    const out =
      gate && packet.qos === 1 && packet.messageId !== undefined
        ? history!.take(() => fleet.ingest(topic, payload), gate(packet.messageId))
        : fleet.ingest(topic, payload);
    if (out.ok) return catchUp(out.key);
    const now = Date.now();
    if (now - windowStart > 10_000) {
      windowStart = now;
      if (logged > 20) log.warn({ suppressed: logged - 20 }, "malformed messages not logged");
      logged = 0;
    }
    if (++logged <= 20)
      log.warn(
        { topic: out.topic, reason: out.reason, detail: out.detail.slice(0, 300) },
        "malformed message dropped",
      );
  });
  return {
    client,
    status,
    stop: () => new Promise<void>((resolve) => client.end(false, {}, () => resolve())),
  };
}

/**
 * PUBACK after commit. MQTT.js handles one incoming packet at a time and sends the PUBACK as soon
 * as the `message` handlers return; holding its handleMessage callback instead would stall the
 * connection to one database commit per message. So the PUBACK it sends is taken aside here and
 * sent when `release` (returned per message id) is called after the batch committed. A PUBACK
 * held across a reconnect is dropped: the broker redelivers the message and the store keeps one.
 */
function holdPubacks(client: MqttClient): (messageId: number) => () => void {
  type Send = (packet: { cmd: string; messageId?: number }, cb?: () => void, ...rest: unknown[]) => void;
  const c = client as unknown as { _sendPacket: Send };
  const send = c._sendPacket.bind(client);
  let generation = 0;
  const gates = new Map<number, { committed: boolean; send?: () => void }>();
  client.on("close", () => {
    generation++;
    gates.clear();
  });
  c._sendPacket = (packet, cb, ...rest) => {
    const g =
      packet.cmd === "puback" && packet.messageId !== undefined ? gates.get(packet.messageId) : undefined;
    if (!g) return send(packet, cb, ...rest);
    gates.delete(packet.messageId!);
    if (g.committed) return send(packet, cb, ...rest);
    const gen = generation;
    g.send = () => {
      if (gen === generation && client.connected) send(packet);
    };
    cb?.();
  };
  return (messageId) => {
    const g: { committed: boolean; send?: () => void } = { committed: false };
    gates.set(messageId, g);
    return () => {
      if (g.send) g.send();
      else g.committed = true;
    };
  };
}
