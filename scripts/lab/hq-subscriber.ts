// Headquarters in a test: subscribes to every netprobe topic on the lab broker and prints one JSON
// line per message ({topic, retain, qos, payload}); runs inside the lab's hq namespace.
// A persistent session (clean=false, fixed client id) keeps QoS 1 messages queued at the broker
// while this subscriber or the broker itself is restarting. The optional 4th argument is a
// credentials file of the lab (scripts/lab/broker-tls.ts): TLS with client certificate + password.
import { readFileSync } from "node:fs";
import mqtt from "mqtt";

const [url = "mqtt://127.0.0.1:1883", clientId = `hq-${process.pid}`, persistent = "1", credentials] =
  process.argv.slice(2);
const tls = credentials
  ? (JSON.parse(readFileSync(credentials, "utf8")) as Record<
      "username" | "password" | "ca_file" | "cert_file" | "key_file",
      string
    >)
  : undefined;
const client = mqtt.connect(url, {
  clientId,
  ...(tls
    ? {
        username: tls.username,
        password: tls.password,
        ca: readFileSync(tls.ca_file),
        cert: readFileSync(tls.cert_file),
        key: readFileSync(tls.key_file),
      }
    : {}),
  clean: persistent !== "1",
  protocolVersion: 5,
  properties: persistent === "1" ? { sessionExpiryInterval: 3600 } : {},
  reconnectPeriod: 300,
});
client.on("connect", (ack) => {
  if (!ack.sessionPresent) client.subscribe("netprobe/#", { qos: 1 });
  process.stdout.write(JSON.stringify({ connected: true, session_present: ack.sessionPresent }) + "\n");
});
client.on("message", (topic, payload, packet) => {
  let body: unknown;
  try {
    body = JSON.parse(payload.toString("utf8"));
  } catch {
    body = payload.toString("utf8");
  }
  process.stdout.write(
    JSON.stringify({ topic, retain: packet.retain, qos: packet.qos, payload: body }) + "\n",
  );
});
// While the broker is down every reconnect attempt fails the same way: say it once per outage.
let lastError = "";
client.on("error", (err) => {
  if (err.message !== lastError) process.stderr.write(`subscriber: ${err.message}\n`);
  lastError = err.message;
});
client.on("connect", () => (lastError = ""));
process.on("SIGTERM", () => client.end(false, {}, () => process.exit(0)));
