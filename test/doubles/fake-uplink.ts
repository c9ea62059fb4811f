// The service's uplink without a broker: it drains the real outbox as MqttUplink does (peek, then
// ack, as if every PUBACK came back) while "connected", and records every publish with its flags.
import { EventEmitter } from "node:events";
import type { Logger } from "../../services/contract/src/log.ts";
import type { Uplink, UplinkFactory } from "../../services/probe/src/service.ts";
import type {
  DirectPublish,
  OutboxSource,
  UplinkEvents,
  UplinkSettings,
} from "../../services/probe/src/uplink/mqtt-link.ts";

/** One message as the broker would have received it. */
export interface Published {
  topic: string;
  payload: string;
  qos: 0 | 1;
  retain: boolean;
  /** outbox: drained from the store; direct: publishNow (config, replies, live fallback). */
  via: "outbox" | "direct";
  expirySeconds?: number | undefined;
}

export class FakeUplink extends EventEmitter<UplinkEvents> implements Uplink {
  readonly published: Published[] = [];
  #connected = false;
  readonly #base: string;
  readonly #outbox: OutboxSource;
  readonly #state: (s: "online" | "offline") => string;

  constructor(base: string, outbox: OutboxSource, state: (s: "online" | "offline") => string) {
    super();
    this.#base = base;
    this.#outbox = outbox;
    this.#state = state;
  }

  get connected(): boolean {
    return this.#connected;
  }

  start(): void {}

  stop(): Promise<void> {
    this.#connected = false;
    return Promise.resolve();
  }

  /** The broker accepted the connection: `state` online, then the outbox drains. */
  connect(): void {
    this.#connected = true;
    this.#record(this.#base + "state", this.#state("online"), { qos: 1, retain: true }, "direct");
    this.emit("connected");
    this.kick();
  }

  disconnect(): void {
    this.#connected = false;
    this.emit("disconnected", "test");
  }

  kick(): void {
    if (!this.#connected) return;
    for (;;) {
      const rows = this.#outbox.peek(0, 64);
      if (rows.length === 0) return;
      for (const r of rows) this.#record(this.#base + r.topic, r.payload, r, "outbox");
      this.#outbox.ackRange(rows[0]!.id, rows.at(-1)!.id);
    }
  }

  publishNow(topic: string, payload: string, opts: DirectPublish): Promise<boolean> {
    if (!this.#connected) return Promise.resolve(false);
    this.#record(topic, payload, opts, "direct");
    return Promise.resolve(true);
  }

  /** Payloads published on a topic relative to the base, parsed. */
  payloadsOn(topic: string): unknown[] {
    return this.published
      .filter((p) => p.topic === this.#base + topic)
      .map((p) => JSON.parse(p.payload) as unknown);
  }

  #record(topic: string, payload: string, o: Omit<DirectPublish, "correlationData">, via: Published["via"]) {
    this.published.push({
      topic,
      payload,
      qos: o.qos,
      retain: o.retain,
      via,
      expirySeconds: o.expirySeconds,
    });
  }
}

/** A factory for ProbeService that hands out FakeUplinks and keeps the latest for the test. */
export function fakeUplinks(): { factory: UplinkFactory; latest: () => FakeUplink } {
  let last: FakeUplink | undefined;
  const factory = (
    _s: UplinkSettings,
    base: string,
    outbox: OutboxSource,
    state: (s: "online" | "offline") => string,
    _log: Logger,
  ) => (last = new FakeUplink(base, outbox, state));
  return {
    factory,
    latest: () => {
      if (!last) throw new Error("the service made no uplink yet");
      return last;
    },
  };
}
