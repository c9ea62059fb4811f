// Attack tools for test/security/hq-attacks.test.ts, run inside a lab namespace (lab.spawn):
//
//   node hq-tools.ts stall URL HEADER_FILE N
//       N clients open GET /events with the Authorization line of HEADER_FILE and never read a
//       byte (the socket is paused: the kernel buffers fill, then HQ's). Prints {"open":N} once all
//       got their response header; runs until SIGTERM.
//   node hq-tools.ts publish BROKER_URL CREDENTIALS_FILE PLAN_FILE
//       One MQTT client with a probe's credentials publishing the plan's steps in order (QoS 1,
//       at most 200 unacknowledged); PLAN_FILE holds {"steps":[{"topic","payload","count","retain"?,"per_s"?}]}
//       where `{i}` in topic and payload is replaced by the message's index. Payloads are the
//       contract's examples, so they validate. Prints {"published":n,"refused":m} at the end.
import { readFileSync } from "node:fs";
import { connect as tcp } from "node:net";
import mqtt from "mqtt";

const out = (m: unknown): void => void process.stdout.write(`${JSON.stringify(m)}\n`);
const [mode, a1 = "", a2 = "", a3 = ""] = process.argv.slice(2);

if (mode === "stall") {
  const url = new URL(a1);
  const auth = readFileSync(a2, "utf8").trim();
  const n = Number(a3);
  let open = 0;
  for (let i = 0; i < n; i++) {
    const s = tcp(Number(url.port), url.hostname);
    s.write(`GET /events HTTP/1.1\r\nHost: ${url.host}\r\n${auth}\r\nAccept: text/event-stream\r\n\r\n`);
    // Read the status line, then stop reading for good.
    s.once("data", (d: Buffer) => {
      s.pause();
      if (!d.toString("latin1").startsWith("HTTP/1.1 200"))
        out({ error: d.toString("latin1").split("\r\n")[0] });
      if (++open === n) out({ open });
    });
    s.on("error", () => undefined);
  }
  // Paused sockets with nothing to write do not keep Node's event loop alive: this timer does
  // (without it the process exits and the kernel resets every connection).
  setInterval(() => undefined, 60_000);
  process.on("SIGTERM", () => process.exit(0));
} else if (mode === "publish") {
  interface Step {
    topic: string;
    payload: string;
    count: number;
    retain?: boolean;
    per_s?: number;
  }
  const creds = JSON.parse(readFileSync(a2, "utf8")) as Record<string, string>;
  const plan = JSON.parse(readFileSync(a3, "utf8")) as { steps: Step[] };
  const client = mqtt.connect(a1, {
    protocolVersion: 5,
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    username: creds.username!,
    password: creds.password!,
    ca: readFileSync(creds.ca_file!),
    cert: readFileSync(creds.cert_file!),
    key: readFileSync(creds.key_file!),
  });
  client.on("error", (err) => out({ error: err.message }));
  client.once("connect", () => {
    void (async () => {
      let published = 0;
      let refused = 0;
      let inflight = 0;
      const t0 = Date.now();
      let sent = 0;
      for (const step of plan.steps) {
        for (let i = 0; i < step.count; i++) {
          while (inflight >= 200) await new Promise((r) => setTimeout(r, 2));
          if (step.per_s) {
            const due = t0 + (sent / step.per_s) * 1000;
            if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
          }
          const fill = (s: string) => s.replaceAll("{i}", String(i));
          inflight++;
          sent++;
          client.publish(
            fill(step.topic),
            fill(step.payload),
            { qos: 1, retain: step.retain ?? false },
            (err) => {
              inflight--;
              if (err) refused++;
              else published++;
            },
          );
        }
      }
      while (inflight > 0 && client.connected) await new Promise((r) => setTimeout(r, 10));
      out({ published, refused, connected: client.connected, ms: Date.now() - t0 });
      client.end(false, {}, () => process.exit(0));
    })();
  });
} else {
  console.error("usage: hq-tools.ts stall|publish …");
  process.exit(2);
}
