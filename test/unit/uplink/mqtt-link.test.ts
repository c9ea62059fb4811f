// The uplink's outbox drain against a double of the MQTT.js client: the bytes it writes are parsed
// with mqtt-packet's own parser, PUBACKs are fed back as MQTT.js emits them (`packetreceive`), and
// the outbox is the real Store (in memory), so "acked → deleted" is what SQLite holds.
import { EventEmitter } from "node:events";
import mqttPacket from "mqtt-packet";
import type { IClientOptions, MqttClient } from "mqtt";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../../services/contract/src/log.ts";
import { Store } from "../../../services/probe/src/store/store.ts";
import { MqttUplink, type UplinkSettings } from "../../../services/probe/src/uplink/mqtt-link.ts";

const BASE = "netprobe/v1/lab/probe-1/";

/** What the broker would see: every PUBLISH the uplink wrote, and how many socket writes carried them. */
class FakeClient extends EventEmitter {
  readonly writes: Buffer[] = [];
  readonly published: Array<{ id: number; topic: string; payload: string; retain: boolean }> = [];
  readonly side: Array<{ topic: string; qos: number }> = [];
  ended = false;
  readonly stream = {
    write: (buf: Buffer) => {
      this.writes.push(Buffer.from(buf));
      this.parser.parse(buf);
      return true;
    },
    setNoDelay: () => undefined,
  };
  readonly parser: mqttPacket.Parser;
  readonly options: IClientOptions;
  constructor(options: IClientOptions) {
    super();
    this.options = options;
    this.parser = mqttPacket.parser({ protocolVersion: options.protocolVersion ?? 4 });
    this.parser.on("packet", (p) => {
      if (p.cmd !== "publish") throw new Error(`unexpected ${p.cmd}`);
      expect(p.qos).toBe(1);
      this.published.push({
        id: p.messageId!,
        topic: p.topic,
        payload: p.payload.toString(),
        retain: p.retain,
      });
    });
    this.parser.on("error", (e) => {
      throw e;
    });
  }
  publish(topic: string, _payload: string, opts: { qos: number }, cb?: (err?: Error) => void): void {
    this.side.push({ topic, qos: opts.qos });
    setImmediate(() => cb?.());
  }
  subscribe(topic: string, _opts: unknown, cb: (err: Error | null, granted: unknown[]) => void): void {
    setImmediate(() => cb(null, [{ topic, qos: 1 }]));
  }
  end(): void {
    this.ended = true;
  }
  endAsync(): Promise<void> {
    this.ended = true;
    return Promise.resolve();
  }
  /** The broker's CONNACK. */
  accept(receiveMaximum?: number): void {
    this.emit("connect", { cmd: "connack", properties: receiveMaximum ? { receiveMaximum } : undefined });
  }
  /** PUBACKs as MQTT.js hands them over: one packet per tick. */
  async ack(ids: number[], reasonCode = 0): Promise<void> {
    for (const messageId of ids) {
      this.emit("packetreceive", { cmd: "puback", messageId, reasonCode });
      await new Promise((r) => process.nextTick(r));
    }
    await tick();
  }
}

function tick(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

function settings(protocolVersion: 4 | 5 = 5): UplinkSettings {
  return {
    url: "mqtts://203.0.113.50:8883",
    protocolVersion,
    clientId: "probe-1",
    rejectUnauthorized: true,
    keepaliveMs: 30_000,
    reconnectMinMs: 5,
    reconnectMaxMs: 10,
  };
}

const stores: Store[] = [];
const uplinks: Array<{ uplink: MqttUplink; clients: FakeClient[] }> = [];
afterEach(async () => {
  // The broker goes away first, so stop() does not wait out PUBACKs that will never come.
  for (const { uplink, clients } of uplinks.splice(0)) {
    clients.at(-1)?.emit("close");
    await uplink.stop();
  }
  for (const s of stores.splice(0)) s.close();
});

function setup(rows: number, protocolVersion: 4 | 5 = 5) {
  const store = new Store(":memory:", { maxRows: 10_000, maxBytes: 10_000_000, syncIntervalMs: 0 });
  store.open();
  stores.push(store);
  for (let i = 1; i <= rows; i++)
    store.enqueue({
      topic: `results/c${i}`,
      payload: `{"n":${i},"é":"ü"}`,
      qos: 1,
      retain: i === 1,
      priority: 0,
    });
  const clients: FakeClient[] = [];
  const uplink = new MqttUplink(
    settings(protocolVersion),
    BASE,
    store,
    (s) => `{"state":"${s}"}`,
    silentLogger(),
    (_url, opts) => {
      const c = new FakeClient(opts);
      clients.push(c);
      return c as unknown as MqttClient;
    },
  );
  uplinks.push({ uplink, clients });
  uplink.start();
  return { store, uplink, clients, last: () => clients.at(-1)! };
}

/** Waits until the uplink's 20 ms acknowledgement batch has been deleted. */
const afterAckDelay = () => new Promise((r) => setTimeout(r, 40));

describe("MqttUplink outbox drain", () => {
  it("fills the broker's Receive Maximum in one socket write, oldest first, and refills as PUBACKs come", async () => {
    const { clients } = setup(10);
    const c = clients[0]!;
    // The online state is MQTT.js's own publish and shares the window: 4 − 1 for the drain.
    c.accept(4);
    expect(c.side).toEqual([{ topic: `${BASE}state`, qos: 1 }]);
    expect(c.writes).toHaveLength(1);
    expect(c.published.map((p) => p.topic)).toEqual([1, 2, 3].map((i) => `${BASE}results/c${i}`));
    expect(c.published[0]).toMatchObject({ retain: true, payload: '{"n":1,"é":"ü"}' });
    expect(c.published[1]!.retain).toBe(false);
    await tick(); // the online state's PUBACK frees its slot
    c.emit("packetreceive", { cmd: "puback", messageId: 65_280 }); // MQTT.js's: not the drain's
    await c.ack([1, 2]);
    // Three slots free (the state's and two PUBACKs): refilled together, in one write.
    expect(c.writes).toHaveLength(2);
    expect(c.published.map((p) => p.id)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(c.published.map((p) => p.payload)).toEqual([1, 2, 3, 4, 5, 6].map((i) => `{"n":${i},"é":"ü"}`));
  });

  it("deletes a row only once it and every row sent before it are acknowledged", async () => {
    const { store, clients } = setup(6);
    const c = clients[0]!;
    c.accept(10);
    await tick();
    expect(c.published).toHaveLength(6);
    await c.ack([2, 3]); // 1 still outstanding: nothing may go
    await afterAckDelay();
    expect(store.stats().rows).toBe(6);
    await c.ack([1]);
    await afterAckDelay();
    expect(store.peek(0, 10).map((r) => r.id)).toEqual([4, 5, 6]);
    await c.ack([4, 5, 6]);
    await afterAckDelay();
    expect(store.stats()).toMatchObject({ rows: 0, bytes: 0 });
  });

  it("after a reconnect re-sends every unacknowledged row, from the oldest, and loses none", async () => {
    const { store, uplink, clients } = setup(8);
    const first = clients[0]!;
    first.accept(5);
    await tick();
    await first.ack([1, 2]);
    await afterAckDelay();
    first.emit("close");
    expect(uplink.connected).toBe(false);
    await new Promise((r) => setTimeout(r, 30)); // backoff: 5–10 ms
    const second = clients[1]!;
    expect(second).toBeDefined();
    second.accept(20);
    await tick();
    // Rows 3.. were in flight or unsent when the link dropped: all sent again, in order.
    expect(second.published.map((p) => p.payload)).toEqual(
      [3, 4, 5, 6, 7, 8].map((i) => `{"n":${i},"é":"ü"}`),
    );
    // A late PUBACK of the dead connection deletes nothing it should not.
    first.emit("packetreceive", { cmd: "puback", messageId: 1 });
    await second.ack(second.published.map((p) => p.id));
    await afterAckDelay();
    expect(store.stats().rows).toBe(0);
  });

  it("a permanently refused row is dropped and counted; any other refusal reconnects and keeps the row", async () => {
    const { store, uplink, clients } = setup(3);
    const c = clients[0]!;
    c.accept(10);
    await tick();
    await c.ack([1], 0x87); // not authorised: never succeeds
    await c.ack([2]);
    await afterAckDelay();
    expect(uplink.dropped).toBe(1);
    expect(store.peek(0, 10).map((r) => r.id)).toEqual([3]);
    await c.ack([3], 0x80); // unspecified error: worth a retry
    expect(uplink.connected).toBe(false);
    await afterAckDelay();
    expect(store.peek(0, 10).map((r) => r.id)).toEqual([3]);
  });

  it("encodes MQTT 3.1.1 PUBLISHes (no properties) and uses a window of 64 when the broker states none", () => {
    const { clients } = setup(100, 4);
    const c = clients[0]!;
    c.accept();
    expect(c.writes).toHaveLength(1);
    expect(c.published).toHaveLength(63); // 64 minus the online state
    expect(c.published.at(-1)).toMatchObject({ id: 63, topic: `${BASE}results/c63` });
  });

  it("reports how full the window was while a backlog waited", async () => {
    const { uplink, clients } = setup(50);
    const c = clients[0]!;
    c.accept(5);
    await tick();
    const acked = new Set<number>();
    for (let round = 0; round < 8; round++) {
      const ids = c.published.map((p) => p.id).filter((id) => !acked.has(id));
      for (const id of ids) acked.add(id);
      await c.ack(ids);
    }
    const s = uplink.drainStats();
    expect(s.window).toBe(5);
    expect(s.published).toBeGreaterThanOrEqual(25);
    expect(s.acked).toBe(acked.size);
    expect(s.inflightAvg).toBeGreaterThan(3);
    expect(s.inflightAvg).toBeLessThanOrEqual(5);
  });

  it("stop waits for in-flight PUBACKs, deletes what was acknowledged, and keeps the rest", async () => {
    const { store, uplink, clients } = setup(4);
    const c = clients[0]!;
    c.accept(10);
    await tick();
    const stopped = uplink.stop();
    await c.ack([1, 2, 3]);
    await stopped;
    expect(c.side.map((s) => s.topic)).toEqual([`${BASE}state`, `${BASE}state`]);
    expect(c.ended).toBe(true);
    expect(store.peek(0, 10).map((r) => r.id)).toEqual([4]);
  });
});
