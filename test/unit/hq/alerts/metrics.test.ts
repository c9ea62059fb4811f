// HQ's /metrics text (services/hq/src/alerts/metrics.ts) as Prometheus reads it: rendered from a
// Fleet fed the contract's examples, then `promtool check metrics` (Debian's prometheus package)
// must accept it, and the values must say what the probe sent.
import { execFileSync, spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { EXAMPLES } from "../../../../scripts/gen/mqtt-examples.ts";
import type { ResultPayload } from "../../../../services/contract/src/payloads.ts";
import { Fleet } from "../../../../services/hq/src/fleet.ts";
import { MemoryIncidentStore } from "../../../../services/hq/src/alerts/incident-store.ts";
import { IncidentEngine } from "../../../../services/hq/src/alerts/incidents.ts";
import { labelValue, renderMetrics } from "../../../../services/hq/src/alerts/metrics.ts";

// A site name with every character the text format escapes.
const SITE = 'br"an\\ch\n42';
const T = `netprobe/v1/${SITE}/pi-01/`;

function promtool(text: string): { status: number | null; out: string } {
  const r = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe("/metrics exposition", () => {
  it("promtool check metrics accepts it, and it carries the probe's state, areas, checks and incidents", () => {
    execFileSync("promtool", ["--version"]);
    const fleet = new Fleet();
    const now = Date.parse("2025-03-14T09:27:00Z");
    const result = { ...(EXAMPLES.result[0] as ResultPayload), site: SITE };
    fleet.ingest(`${T}state`, JSON.stringify(EXAMPLES.state[0]), now - 60_000);
    fleet.ingest(`${T}health`, JSON.stringify(EXAMPLES.health[0]), now - 10_000);
    fleet.ingest(`${T}results/${result.check}`, JSON.stringify(result), now - 5000);
    fleet.ingest("bad/topic", "{}", now);
    const engine = new IncidentEngine(new MemoryIncidentStore(), { settleMs: 0 });
    const key = `${SITE}/pi-01`;
    engine.observe(key, fleet.get(key, now), now);
    engine.tick(now);
    const text = renderMetrics({
      probes: [fleet.get(key, now)!],
      counters: fleet.counters,
      brokerConnected: true,
      incidents: engine.open(),
      maintenance: [{ id: "mw-1", site: SITE, from: now - 1, until: now + 1, reason: "", by: "op" }],
      deliveries: { sent: 2, retried: 1, failed: 0, deduplicated: 0, rate_limited: 0 },
      now,
    });
    const check = promtool(text);
    expect(check.out).toBe("");
    expect(check.status).toBe(0);
    const s = `site="${labelValue(SITE)}",probe="pi-01"`;
    expect(text).toContain(`netprobe_probe_online{${s}} 1`);
    expect(text).toContain(`netprobe_probe_last_seen_age_seconds{${s}} 5`);
    expect(text).toContain(`netprobe_probe_outbox_rows{${s}} 12`);
    // The example health: LAN failing.
    expect(text).toContain(`netprobe_area_state{${s},area="lan",state="failing"} 1`);
    expect(text).toContain(`netprobe_area_state{${s},area="lan",state="ok"} 0`);
    expect(text).toContain(
      `netprobe_check_status{${s},check="gateway-icmp",kind="icmp",area="lan",status="fail"} 1`,
    );
    expect(text).toMatch(/netprobe_check_duration_seconds\{[^}]*check="gateway-icmp"[^}]*\} 2\.00311/);
    expect(text).toMatch(
      /netprobe_incident_firing\{incident="inc-[^"]+",[^}]*kind="lan_down",area="lan"\} 1/,
    );
    expect(text).toContain('netprobe_incidents_open{kind="lan_down"} 1');
    expect(text).toContain(`netprobe_site_maintenance{site="${labelValue(SITE)}"} 1`);
    expect(text).toContain("netprobe_hq_results_total 1");
    expect(text).toContain('netprobe_hq_malformed_total{reason="bad_topic"} 1');
    expect(text).toContain('netprobe_hq_notifications_total{outcome="sent"} 2');
  });

  it("promtool rejects what a broken escaper would write (the check is not vacuous)", () => {
    expect(promtool('netprobe_probe_online{site="a"b"} 1\n').status).not.toBe(0);
  });
});
