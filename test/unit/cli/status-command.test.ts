// What a technician reads in `netprobe status` and in the lab demo: STATUS blinks amber ("headquarters
// unreachable") only when the uplink is down or delivery has stalled — not while a row waits for its
// PUBACK; a blinking LED is drawn as its pattern, never as the phase it is in; and the demo keeps
// headquarters' events, state and health apart from the stream of results.
import { describe, expect, test } from "vitest";
import {
  BACKLOG_NORMAL_DELAY_S,
  formatStatus,
  uplinkQueuing,
  type StatusReport,
} from "../../../services/probe/src/cli/status-command.ts";
import { hqFeedEntry } from "../../../scripts/lab/lab-command.ts";
import { renderLed, renderPanel } from "../../../services/probe/src/leds/terminal-panel.ts";

const NOW = Date.parse("2026-12-03T12:00:00Z");

function report(over: Partial<StatusReport> = {}): StatusReport {
  return {
    db: "/run/netprobe-lab/nplab/probe.db",
    health: {
      schema: 1,
      at: "2026-12-03T11:59:59Z",
      boot_id: "b",
      mono_ms: 1,
      areas: {
        dns: {
          state: "failing",
          since: "2026-12-03T11:59:00Z",
          led: "red-blink",
          last_result_id: null,
          reason: "x",
        },
        wan: { state: "ok", since: "2026-12-03T11:00:00Z", led: "green", last_result_id: null, reason: "" },
      },
      outbox: { rows: 1, evicted: 0 },
    },
    uplink: { connected: true, since: "2026-12-03T11:00:00Z" },
    outbox: { rows: 1, bytes: 400, oldest_age_s: 0, evicted: 0 },
    checks: [],
    ...over,
  };
}

const statusLine = (r: StatusReport) => formatStatus(r, NOW, false).find((l) => l.includes("STATUS "));

describe("STATUS in netprobe status", () => {
  test("one row waiting for its PUBACK on a connected uplink: green heartbeat, not amber", () => {
    const r = report();
    expect(uplinkQueuing(r)).toBe(false);
    expect(statusLine(r)).toContain("STATUS green, heartbeat: headquarters connected since");
    expect(formatStatus(r, NOW, false)[0]).toContain("♥ STATUS(green heartbeat)");
  });

  test("uplink disconnected: amber fast blink, even with nothing queued", () => {
    const r = report({
      uplink: { connected: false, since: "2026-12-03T11:58:00Z" },
      outbox: { rows: 0, bytes: 0, oldest_age_s: null, evicted: 0 },
    });
    expect(uplinkQueuing(r)).toBe(true);
    expect(statusLine(r)).toContain(
      "STATUS amber, fast blink: headquarters unreachable since 2026-12-03T11:58:00Z",
    );
  });

  test("connected but the backlog is older than the uplink's normal delay: amber (delivery stalled)", () => {
    const stalled = report({
      outbox: { rows: 500, bytes: 1, oldest_age_s: BACKLOG_NORMAL_DELAY_S + 1, evicted: 0 },
    });
    expect(uplinkQueuing(stalled)).toBe(true);
    const fresh = report({
      outbox: { rows: 500, bytes: 1, oldest_age_s: BACKLOG_NORMAL_DELAY_S, evicted: 0 },
    });
    expect(uplinkQueuing(fresh)).toBe(false);
  });

  test("a database from before the uplink state was saved: judged by the backlog's age alone", () => {
    expect(uplinkQueuing(report({ uplink: null }))).toBe(false);
    expect(statusLine(report({ uplink: null }))).toContain("STATUS green, heartbeat: 1 queued");
  });
});

describe("the terminal panel draws patterns, not phases", () => {
  test("a red blinking LED looks the same at every moment: never drawn as off", () => {
    // The panel takes no time at all any more; what it draws is the look.
    const line = renderPanel({ dns: { colour: "red", pattern: "blink" } }, false);
    expect(line).toContain("◐ DNS(red blinking)");
    const coloured = renderLed("dns", { colour: "red", pattern: "blink" });
    expect(coloured).toContain("\x1b[31m◐ DNS");
    expect(coloured).toContain("blinking");
    expect(coloured).not.toContain("○");
  });

  test("each pattern has its own label; solid and off are plain", () => {
    expect(renderLed("wan", { colour: "green", pattern: "solid" }, false)).toBe("● WAN(green)");
    expect(renderLed("wan", { colour: "off", pattern: "solid" }, false)).toBe("○ WAN(off)");
    expect(renderLed("status", { colour: "amber", pattern: "fast-blink" }, false)).toBe(
      "◐ STATUS(amber fast blink)",
    );
    expect(renderLed("dhcp", { colour: "green", pattern: "slow-blink" }, false)).toBe(
      "◐ DHCP(green slow blink)",
    );
  });
});

describe("the demo's headquarters feed", () => {
  const at = new Date("2026-12-03T12:34:56Z");
  const msg = (topic: string, payload: unknown, retain = false) =>
    JSON.stringify({ topic: `netprobe/v1/lab/probe-1/${topic}`, retain, payload });

  test("results go to their own feed; events, state and health to the other", () => {
    expect(hqFeedEntry(msg("results/dns", { status: "fail", seq: 7 }), at)).toEqual({
      stream: "results",
      text: "12:34:56 results/dns fail seq=7",
    });
    expect(
      hqFeedEntry(
        msg("events", { area: "dns", from: "ok", to: "failing", reason: "resolver 192.0.2.1: timeout" }),
        at,
      ),
    ).toEqual({ stream: "control", text: "12:34:56 events dns ok→failing: resolver 192.0.2.1: timeout" });
    expect(hqFeedEntry(msg("state", { state: "online" }, true), at)).toEqual({
      stream: "control",
      text: "12:34:56 state (retained) online",
    });
  });

  test("health names the areas that are not ok", () => {
    const health = { areas: { dns: { state: "failing" }, wan: { state: "ok" }, phone: { state: "off" } } };
    expect(hqFeedEntry(msg("health", health, true), at)?.text).toBe("12:34:56 health (retained) dns failing");
    expect(hqFeedEntry(msg("health", { areas: { wan: { state: "ok" } } }), at)?.text).toBe(
      "12:34:56 health every area ok",
    );
  });

  test("a partial or foreign line is skipped", () => {
    expect(hqFeedEntry('{"topic": "netpro', at)).toBeUndefined();
    expect(hqFeedEntry("null", at)).toBeUndefined();
    expect(hqFeedEntry('{"payload": {}}', at)).toBeUndefined();
  });
});
