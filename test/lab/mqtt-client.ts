// A scriptable MQTT client for lab tests, run inside a lab namespace: headquarters sending
// commands, or a probe's credentials trying what the ACL forbids. Reads one JSON op per stdin line
// and prints one JSON event per stdout line.
//
//   node mqtt-client.ts URL [CREDENTIALS_FILE|-] [PROTOCOL_VERSION]
//   in:  {"op":"sub","topic":"…"}
//        {"op":"pub","id":7,"topic":"…","payload":"…"|"payload_b64":"…","qos":1,"retain":false,
//         "response_topic":"…","correlation":"…"}
//   out: {"event":"connected"} | {"event":"error","message":"…"} | {"event":"suback","topic":"…","granted":[n]}
//        {"event":"puback","id":7,"ok":true|false,"code":n} | {"event":"message","topic":"…","payload":"…",
//         "retain":bool,"correlation":"…","expiry":n}
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import mqtt from "mqtt";

interface Op {
  op: "sub" | "pub";
  id?: number;
  topic: string;
  payload?: string;
  payload_b64?: string;
  qos?: 0 | 1;
  retain?: boolean;
  response_topic?: string;
  correlation?: string;
}

const [url = "", credentials = "-", version = "5"] = process.argv.slice(2);
const creds =
  credentials === "-"
    ? undefined
    : (JSON.parse(readFileSync(credentials, "utf8")) as Record<
        "username" | "password" | "ca_file" | "cert_file" | "key_file",
        string
      >);
const out = (e: Record<string, unknown>) => process.stdout.write(JSON.stringify(e) + "\n");

const client = mqtt.connect(url, {
  protocolVersion: version === "4" ? 4 : 5,
  clean: true,
  reconnectPeriod: 0,
  connectTimeout: 5000,
  ...(creds
    ? {
        username: creds.username,
        password: creds.password,
        ca: readFileSync(creds.ca_file),
        ...(creds.cert_file
          ? { cert: readFileSync(creds.cert_file), key: readFileSync(creds.key_file) }
          : {}),
      }
    : {}),
});
client.on("connect", () => out({ event: "connected" }));
client.on("error", (err) => out({ event: "error", message: err.message }));
client.on("close", () => out({ event: "closed" }));
client.on("message", (topic, payload, packet) => {
  out({
    event: "message",
    topic,
    payload: payload.toString("utf8"),
    retain: packet.retain,
    correlation: packet.properties?.correlationData?.toString("utf8"),
    expiry: packet.properties?.messageExpiryInterval,
  });
});

createInterface({ input: process.stdin }).on("line", (line) => {
  const op = JSON.parse(line) as Op;
  if (op.op === "sub") {
    client.subscribe(op.topic, { qos: 1 }, (err, granted) =>
      out({ event: "suback", topic: op.topic, err: err?.message, granted: granted?.map((g) => g.qos) }),
    );
    return;
  }
  const payload = op.payload_b64 !== undefined ? Buffer.from(op.payload_b64, "base64") : (op.payload ?? "");
  const properties = {
    ...(op.response_topic ? { responseTopic: op.response_topic } : {}),
    ...(op.correlation ? { correlationData: Buffer.from(op.correlation) } : {}),
  };
  client.publish(op.topic, payload, { qos: op.qos ?? 1, retain: op.retain ?? false, properties }, (err) => {
    const code = (err as { code?: number } | undefined)?.code;
    out({ event: "puback", id: op.id, ok: !err, code, message: err?.message });
  });
});
process.on("SIGTERM", () => client.end(true, {}, () => process.exit(0)));
