// HQ's webhook sender (services/hq/src/alerts/webhook.ts) against a real HTTP server on port 0:
// the signature a receiver recomputes, retries with backoff after 5xx, dedup by incident id, the
// per-site budget, no retry after a 4xx.
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../../../services/contract/src/log.ts";
import type { Incident, IncidentNotice } from "../../../../services/hq/src/alerts/incidents.ts";
import {
  DELIVERY_HEADER,
  signature,
  SIGNATURE_HEADER,
  TIMESTAMP_HEADER,
  WebhookSender,
  type WebhookBody,
} from "../../../../services/hq/src/alerts/webhook.ts";

const SECRET = "0123456789abcdef-test";
let answers: number[] = [];
const got: { headers: IncomingMessage["headers"]; body: string }[] = [];
const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    got.push({ headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
    res.writeHead(answers.shift() ?? 200).end();
  });
});
let url = "";
beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

function incident(id: string, site = "lab"): Incident {
  return {
    id,
    kind: "link_down",
    title: `${site}: link down (pi) — also LAN`,
    root_area: "link",
    site,
    probe: "pi",
    sites: [site],
    probes: [`${site}/pi`],
    targets: [],
    members: [],
    evidence: [],
    last_health: null,
    opened_at: 0,
    reopened_at: 0,
    reopened: 0,
    notified_at: 1,
    acknowledged_at: null,
    acknowledged_by: null,
    resolving_since: null,
    resolved_at: null,
    in_maintenance: false,
    updated_at: 1,
  };
}

function sender(perSiteHour = 100) {
  const sleeps: number[] = [];
  const s = new WebhookSender(
    [{ name: "test", url, secret: SECRET, timeoutMs: 2000, maxAttempts: 3, backoffMs: 1000 }],
    perSiteHour,
    silentLogger(),
    {
      fetch: (...a) => fetch(...a),
      sleep: (ms) => {
        sleeps.push(ms);
        return Promise.resolve();
      },
      now: () => Date.now(),
    },
  );
  return { s, sleeps };
}

describe("webhook sender", () => {
  it("signs the body, retries 5xx with doubling backoff, delivers once per status", async () => {
    got.length = 0;
    answers = [503, 500, 200];
    const { s, sleeps } = sender();
    const n: IncidentNotice = { status: "firing", incident: incident("inc-a") };
    s.notify(n);
    s.notify(n); // the same notice again: deduplicated
    await s.idle();
    expect(got).toHaveLength(3);
    expect(sleeps).toEqual([1000, 2000]);
    const last = got[2]!;
    const ts = String(last.headers[TIMESTAMP_HEADER]);
    expect(last.headers[SIGNATURE_HEADER]).toBe(signature(SECRET, ts, last.body));
    expect(last.headers[SIGNATURE_HEADER]).not.toBe(signature("another secret!!", ts, last.body));
    expect(last.headers[DELIVERY_HEADER]).toBe("inc-a:firing:0");
    const body = JSON.parse(last.body) as WebhookBody;
    expect(body).toMatchObject({
      status: "firing",
      dedup_key: "inc-a",
      summary: "FIRING: lab: link down (pi) — also LAN",
    });
    expect(s.counters).toMatchObject({ sent: 1, retried: 2, deduplicated: 1, failed: 0 });
    s.notify({ status: "resolved", incident: { ...incident("inc-a"), resolved_at: 5 } });
    await s.idle();
    expect(JSON.parse(got[3]!.body)).toMatchObject({ status: "resolved", dedup_key: "inc-a" });
  });

  it("a 4xx is not retried; the per-site budget holds back further firing notices and their resolves", async () => {
    got.length = 0;
    answers = [400];
    const { s } = sender(1);
    s.notify({ status: "firing", incident: incident("inc-b") });
    s.notify({ status: "firing", incident: incident("inc-c") });
    s.notify({ status: "resolved", incident: incident("inc-c") });
    s.notify({ status: "firing", incident: incident("inc-d", "other-site") });
    await s.idle();
    expect(got.map((g) => g.headers[DELIVERY_HEADER])).toEqual(["inc-b:firing:0", "inc-d:firing:0"]);
    expect(s.counters).toMatchObject({ failed: 1, rate_limited: 2, sent: 1 });
  });
});
