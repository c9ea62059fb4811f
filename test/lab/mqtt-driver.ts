// Drives test/lab/mqtt-client.ts inside a lab namespace: publish, subscribe, and collect what
// arrives, for the command and ACL tests.
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { join } from "node:path";
import type { Lab, LabHost } from "../../scripts/lab/lab.ts";
import { credentialsFile, type LabBrokerUser } from "../../scripts/lab/broker-tls.ts";
import { baseTopic, type ReplyPayload } from "../../services/contract/src/payloads.ts";
import { exited, waitFor } from "./probe-harness.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** One message as the client received it. */
export interface ClientMessage {
  topic: string;
  payload: string;
  retain: boolean;
  correlation?: string;
  expiry?: number;
}

/** Options of one publish. */
export interface PublishOptions {
  qos?: 0 | 1;
  retain?: boolean;
  responseTopic?: string;
  correlation?: string;
}

/** The probe of the lab config. */
export const PROBE_BASE = baseTopic("lab", "probe-1");

/**
 * An MQTT client in `host`'s namespace, logged in as `user` over TLS (null: anonymous on the plain
 * 1883 listener; `{ file }`: a credentials file of the LabCredentials shape), MQTT 5 unless
 * `version` is 4.
 */
export function startClient(
  lab: Lab,
  host: LabHost,
  user: LabBrokerUser | null | { file: string },
  version: 4 | 5 = 5,
) {
  const dir = lab.info.dir;
  const file = user === null ? "-" : typeof user === "object" ? user.file : credentialsFile(dir, user);
  const url =
    user === null ? lab.info.brokerUrl : (JSON.parse(readFileSync(file, "utf8")) as { url: string }).url;
  const name = user === null ? "anonymous" : typeof user === "object" ? user.file : user;
  const child = lab.spawn(
    host,
    [process.execPath, join(ROOT, "test/lab/mqtt-client.ts"), url, file, String(version)],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  const messages: ClientMessage[] = [];
  const acks = new Map<number, { ok: boolean; code?: number }>();
  const subacks = new Map<string, number[]>();
  const events: Array<Record<string, unknown>> = [];
  createInterface({ input: child.stdout! }).on("line", (line) => {
    const e = JSON.parse(line) as Record<string, unknown>;
    if (e.event === "message") messages.push(e as unknown as ClientMessage);
    else if (e.event === "puback")
      acks.set(e.id as number, { ok: e.ok as boolean, code: e.code as number | undefined });
    else if (e.event === "suback") subacks.set(e.topic as string, (e.granted as number[] | undefined) ?? []);
    else events.push(e);
  });
  let nextId = 1;
  const send = (op: Record<string, unknown>) => child.stdin!.write(JSON.stringify(op) + "\n");
  const client = {
    child,
    messages,
    events,
    /** Resolves once connected; rejects with the broker's or TLS error otherwise. */
    connected: async () => {
      const e = await waitFor(`${name} connected`, 10_000, () =>
        events.find((x) => x.event === "connected" || x.event === "error" || x.event === "closed"),
      );
      if (e.event !== "connected") throw new Error(String(e.message ?? e.event));
      return e;
    },
    /** Subscribes; resolves with the granted QoS list (128 / 135: refused). */
    subscribe: async (topic: string) => {
      send({ op: "sub", topic });
      return waitFor(`SUBACK for ${topic}`, 5000, () => subacks.get(topic));
    },
    /** Publishes without waiting; returns the id whose PUBACK `acked` awaits. */
    publishAsync: (topic: string, payload: string | Buffer, o: PublishOptions = {}) => {
      const id = nextId++;
      send({
        op: "pub",
        id,
        topic,
        ...(Buffer.isBuffer(payload) ? { payload_b64: payload.toString("base64") } : { payload }),
        qos: o.qos ?? 1,
        retain: o.retain ?? false,
        ...(o.responseTopic ? { response_topic: o.responseTopic } : {}),
        ...(o.correlation ? { correlation: o.correlation } : {}),
      });
      return id;
    },
    acked: (id: number, timeoutMs = 5000) => waitFor(`PUBACK ${id}`, timeoutMs, () => acks.get(id)),
    ackCount: () => acks.size,
    /** Publishes and waits for the PUBACK: ok false with code 135 (0x87) when the ACL refuses it. */
    publish: async (topic: string, payload: string | Buffer, o: PublishOptions = {}) =>
      client.acked(client.publishAsync(topic, payload, o)),
    /** Sends `cmd/<name>` to probe-1 and waits for `reply/<request_id>`. */
    command: async (
      name: string,
      body: Record<string, unknown>,
      o: PublishOptions = {},
      timeoutMs = 10_000,
    ) => {
      await client.publish(`${PROBE_BASE}cmd/${name}`, JSON.stringify({ schema: 1, ...body }), o);
      const topic = `${PROBE_BASE}reply/${String(body.request_id)}`;
      const m = await waitFor(`reply on ${topic}`, timeoutMs, () =>
        [...messages].reverse().find((x) => x.topic === topic),
      );
      return JSON.parse(m.payload) as ReplyPayload;
    },
    on: (prefix: string) => messages.filter((m) => m.topic.startsWith(prefix)),
    stop: async () => {
      child.kill("SIGTERM");
      await exited(child);
    },
  };
  return client;
}
