// Peer strings made printable at the source (the decoders and checks that take them off the wire)
// and again at the sink (`netprobe status`): a hostile server's reply that tries to retitle the
// terminal (OSC 0) or clear it (CSI 2 J) never reaches stdout raw.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import dnsPacket from "dns-packet";
import { afterAll, describe, expect, it } from "vitest";
import { printable, terminalSafe } from "../../../services/contract/src/printable-text.ts";
import { parseResponse } from "../../../services/probe/src/net/dns-message.ts";
import { parseSipMessage } from "../../../services/probe/src/sip/message.ts";
import { serverHeader } from "../../../services/probe/src/sip/common.ts";
import { Store } from "../../../services/probe/src/store/store.ts";

const TITLE = "\x1b]0;pwned\x07";
const CLEAR = "\x1b[2J";
const BIDI = "\u202e";
const C1_CSI = "\u009b2J";
const HOSTILE = `Busy Here${TITLE}${CLEAR}${BIDI}${C1_CSI}\x7f`;

/** No escape (but colour), C1, DEL or bidi control left. */
function clean(text: string): boolean {
  // eslint-disable-next-line no-control-regex -- controls are what this looks for
  const withoutColours = text.replace(/\x1b\[[0-9;]*m/g, "");
  // eslint-disable-next-line no-control-regex -- controls are what this looks for
  return !/[\x1b\x07\x7f\u0080-\u009f\u202a-\u202e\u2066-\u2069]/.test(withoutColours);
}

describe("peer text at the source", () => {
  it("printable replaces C0, ESC, DEL, C1 and bidi controls and keeps the rest", () => {
    expect(printable(HOSTILE)).toBe("Busy Here?]0;pwned??[2J??2J?");
    expect(printable("Ünïcödé 😀 OK")).toBe("Ünïcödé 😀 OK");
  });

  it("a SIP reason phrase and Server header from a hostile PBX arrive printable", () => {
    const raw = Buffer.from(
      `SIP/2.0 486 ${HOSTILE}\r\nVia: SIP/2.0/UDP 192.0.2.2\r\nServer: evil${TITLE}\r\nContent-Length: 0\r\n\r\n`,
    );
    const m = parseSipMessage(raw);
    if (!("kind" in m) || m.kind !== "response") throw new Error("not parsed as a response");
    expect(clean(m.reason)).toBe(true);
    expect(m.reason).toContain("Busy Here");
    expect(clean(serverHeader(m) ?? "")).toBe(true);
  });

  it("a DNS TXT answer with escapes arrives printable", () => {
    const reply = dnsPacket.encode({
      type: "response",
      id: 7,
      flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
      questions: [{ type: "TXT", name: "example.test" }],
      answers: [{ type: "TXT", name: "example.test", ttl: 60, data: [Buffer.from(`v=1 ${TITLE}${CLEAR}`)] }],
    });
    const r = parseResponse(reply);
    if (!r.ok) throw new Error(r.reason);
    expect(r.response.answers[0]?.data).toBe('"v=1 ?]0;pwned??[2J"');
  });
});

describe("peer text at the sink", () => {
  it("terminalSafe keeps newlines, tabs and colours, and nothing else", () => {
    expect(terminalSafe(`\x1b[31mred\x1b[0m\tx\n${TITLE}${CLEAR}`)).toBe(
      "\x1b[31mred\x1b[0m\tx\n?]0;pwned??[2J",
    );
  });

  const dir = mkdtempSync(join(tmpdir(), "printable-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("netprobe status prints a stored hostile message without its escapes", () => {
    // A row as an older probe (before the source was sanitized) would have stored it.
    const db = join(dir, "probe.db");
    const store = new Store(db, { maxRows: 1000, maxBytes: 10_000_000, syncIntervalMs: 0 });
    store.open();
    const result = {
      check: "pbx-call",
      seq: 1,
      kind: "sip-call",
      area: "phone",
      target: "192.0.2.5",
      status: "fail",
      started_at: new Date().toISOString(),
      metrics: {},
      error: { code: "call_refused", message: `calling 100: 486 ${HOSTILE}` },
    };
    store.appendResult("pbx-call", () => ({
      message: {
        topic: "results/pbx-call",
        payload: JSON.stringify(result),
        qos: 1,
        retain: false,
        priority: 0,
      },
      summary: result,
    }));
    store.setState("health", {
      schema: 1,
      at: result.started_at,
      boot_id: "b",
      mono_ms: 0,
      areas: {
        phone: { state: "fail", since: result.started_at, led: "red", last_result_id: null, reason: HOSTILE },
      },
      outbox: { rows: 1, evicted: 0 },
    });
    store.close();
    const cli = join(import.meta.dirname, "../../../services/probe/src/cli.ts");
    let out = "";
    try {
      out = execFileSync(process.execPath, [cli, "status", "--db", db], { encoding: "utf8" });
    } catch (err) {
      out = String((err as { stdout?: string }).stdout ?? ""); // exit 1: an area is not ok
    }
    expect(out).toContain("Busy Here");
    expect(out).not.toContain(TITLE);
    expect(out).not.toContain(CLEAR);
    expect(clean(out)).toBe(true);
  });
});
