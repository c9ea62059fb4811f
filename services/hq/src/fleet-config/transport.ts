// The rollout's transport over HQ's one MQTT connection (fleet-link.ts): commands are published to
// `netprobe/v1/<site>/<probe>/cmd/<name>` (QoS 1, not retained), replies come back on
// `reply/<request_id>` through the fleet subscription and Fleet's `reply` event; the probe's
// config state is Fleet's view of its retained `config` and `state`.
import { randomUUID } from "node:crypto";
import type { MqttClient } from "mqtt";
import { SCHEMA_VERSION, type ReplyPayload } from "../../../contract/src/payloads.ts";
import { TOPIC_ROOT, type Fleet, type FleetChange } from "../fleet.ts";
import type { ProbeConfigState, RolloutTransport } from "./rollout.ts";

/** What the rollout reads of a probe in Fleet. */
export function configStateOf(fleet: Fleet, key: string): ProbeConfigState | undefined {
  const v = fleet.view(key);
  if (!v) return undefined;
  return {
    online: v.state === "online",
    document_hash: v.document_hash,
    pending: v.config_pending ?? null,
    rolled_back: v.config_rolled_back ?? null,
  };
}

/** The MQTT transport; `client` is the fleet link's connected client. */
export function mqttTransport(fleet: Fleet, client: () => MqttClient | undefined): RolloutTransport {
  const waiting = new Map<string, (r: ReplyPayload) => void>();
  fleet.on("reply", (_key, reply) => {
    if (reply.request_id === null) return;
    const w = waiting.get(reply.request_id);
    if (w) {
      waiting.delete(reply.request_id);
      w(reply);
    }
  });
  return {
    command: (key, name, payload, timeoutMs) =>
      new Promise((resolve) => {
        const c = client();
        const requestId = `hq-${randomUUID()}`;
        const timer = setTimeout(() => {
          waiting.delete(requestId);
          resolve("timeout");
        }, timeoutMs);
        waiting.set(requestId, (r) => {
          clearTimeout(timer);
          resolve(r);
        });
        if (!c) return; // not connected: the timeout says so
        c.publish(
          `${TOPIC_ROOT}${key}/cmd/${name}`,
          JSON.stringify({ schema: SCHEMA_VERSION, request_id: requestId, ...payload }),
          { qos: 1, retain: false },
          () => undefined, // an error leaves the reply missing: reply_timeout
        );
      }),
    state: (key) => configStateOf(fleet, key),
    waitFor: (key, until, timeoutMs) =>
      new Promise((resolve) => {
        const now = configStateOf(fleet, key);
        if (now && until(now)) return resolve(true);
        const onChange = (c: FleetChange) => {
          if (c.key !== key || (c.part !== "config" && c.part !== "state")) return;
          const s = configStateOf(fleet, key);
          if (s && until(s)) done(true);
        };
        const timer = setTimeout(() => done(false), timeoutMs);
        const done = (v: boolean) => {
          clearTimeout(timer);
          fleet.off("change", onChange);
          resolve(v);
        };
        fleet.on("change", onChange);
      }),
  };
}
