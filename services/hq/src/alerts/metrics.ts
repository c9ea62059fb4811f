// HQ's Prometheus exposition (`GET /metrics`, text format 0.0.4, written by hand: a dozen families
// do not need a client library). Validated by `promtool check metrics` in
// test/unit/hq/alerts/metrics.test.ts; the shipped rules (deploy/prometheus/netprobe.rules.yml)
// alert on netprobe_incident_firing, which HQ sets once an incident settled (docs/alerting.md).
import { PANEL } from "../../../contract/src/led-table.ts";
import type { FleetCounters, ProbeDetail } from "../fleet.ts";
import type { Incident, MaintenanceWindow } from "./incidents.ts";
import type { DeliveryCounters } from "./webhook.ts";

/** The one number per check kind a dashboard plots, first present wins. */
const MAIN_METRICS = [
  "rtt_avg_ms",
  "total_ms",
  "response_ms",
  "resolve_ms",
  "register_ms",
  "setup_ms",
  "reply_time_ms",
  "reply_time_avg_ms",
  "offset_ms",
  "mos",
  "lease_s",
  "speed_mbps",
  "sent_bits_per_s",
  "expires_s",
];

const AREA_STATES = ["unknown", "ok", "degraded", "failing", "off"] as const;
const STATUSES = ["ok", "warn", "fail", "error"] as const;

/** What /metrics is rendered from. */
export interface MetricsSource {
  probes: readonly ProbeDetail[];
  counters: FleetCounters;
  brokerConnected: boolean;
  incidents: readonly Incident[];
  maintenance: readonly MaintenanceWindow[];
  deliveries: DeliveryCounters;
  now: number;
}

/** A label value escaped per the text format: backslash, double quote and line feed. */
export function labelValue(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function labels(l: Record<string, string>): string {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${labelValue(v)}"`);
  return parts.length > 0 ? `{${parts.join(",")}}` : "";
}

function num(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

/** Renders the exposition. */
export function renderMetrics(src: MetricsSource): string {
  const out: string[] = [];
  const family = (
    name: string,
    type: "gauge" | "counter",
    help: string,
    rows: [Record<string, string>, number][],
  ) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [l, v] of rows) out.push(`${name}${labels(l)} ${num(v)}`);
  };
  const id = (p: ProbeDetail) => ({ site: p.site, probe: p.probe });

  family(
    "netprobe_probe_online",
    "gauge",
    "1 while the probe's retained state is online (the MQTT will makes it 0)",
    src.probes.map((p) => [id(p), p.state === "online" ? 1 : 0]),
  );
  family(
    "netprobe_probe_last_seen_age_seconds",
    "gauge",
    "seconds since HQ received any message from the probe",
    src.probes.map((p) => [id(p), Math.max(0, (src.now - p.last_seen) / 1000)]),
  );
  family(
    "netprobe_probe_outbox_rows",
    "gauge",
    "messages waiting in the probe's outbox, as its last health said",
    src.probes.filter((p) => p.health).map((p) => [id(p), p.health!.outbox.rows]),
  );
  const areaRows: [Record<string, string>, number][] = [];
  for (const p of src.probes)
    for (const area of PANEL) {
      const a = p.health?.areas[area];
      if (area === "status" || !a) continue;
      for (const s of AREA_STATES) areaRows.push([{ ...id(p), area, state: s }, a.state === s ? 1 : 0]);
    }
  family(
    "netprobe_area_state",
    "gauge",
    "1 for the area's current state, as the probe's health said",
    areaRows,
  );

  const statusRows: [Record<string, string>, number][] = [];
  const durationRows: [Record<string, string>, number][] = [];
  const mainRows: [Record<string, string>, number][] = [];
  for (const p of src.probes)
    for (const h of p.checks) {
      const last = h.results.at(-1);
      if (!last) continue;
      const l = { ...id(p), check: h.check, kind: h.kind, area: h.area };
      for (const s of STATUSES) statusRows.push([{ ...l, status: s }, last.status === s ? 1 : 0]);
      durationRows.push([l, last.duration_ms / 1000]);
      const main = MAIN_METRICS.find((m) => m in last.metrics);
      if (main !== undefined) mainRows.push([{ ...l, metric: main }, last.metrics[main]!]);
    }
  family("netprobe_check_status", "gauge", "1 for the status of the check's last result", statusRows);
  family("netprobe_check_duration_seconds", "gauge", "duration of the check's last run", durationRows);
  family(
    "netprobe_check_main_metric",
    "gauge",
    "the check's main measurement of its last result (unit in the metric label's suffix)",
    mainRows,
  );

  const announced = src.incidents.filter((i) => i.resolved_at === null && i.notified_at !== null);
  const byKind = new Map<string, number>();
  for (const i of src.incidents.filter((x) => x.resolved_at === null))
    byKind.set(i.kind, (byKind.get(i.kind) ?? 0) + 1);
  family(
    "netprobe_incidents_open",
    "gauge",
    "open incidents by kind (settling and in maintenance included)",
    [...byKind].map(([kind, n]) => [{ kind }, n]),
  );
  family(
    "netprobe_incident_firing",
    "gauge",
    "1 per open, settled incident outside maintenance: what the shipped rules alert on",
    announced
      .filter((i) => !i.in_maintenance)
      .map((i) => [
        // No title here: it grows as dependents join, and a changed label is a new alert.
        { incident: i.id, site: i.site, probe: i.probe, kind: i.kind, area: i.root_area },
        1,
      ]),
  );
  family(
    "netprobe_incident_member",
    "gauge",
    "1 per area inside an open incident (the root included); 0 once it recovered",
    announced.flatMap((i) =>
      i.members.map((m): [Record<string, string>, number] => [
        { incident: i.id, site: m.site, probe: m.probe, area: m.area },
        m.recovered_at === null ? 1 : 0,
      ]),
    ),
  );
  const sitesInMaintenance = new Set(
    src.maintenance.filter((w) => w.from <= src.now && src.now < w.until).map((w) => w.site),
  );
  family(
    "netprobe_site_maintenance",
    "gauge",
    "1 while the site is in a maintenance window",
    [...sitesInMaintenance].sort().map((site) => [{ site }, 1]),
  );

  const c = src.counters;
  family("netprobe_hq_broker_connected", "gauge", "1 while HQ is connected to the fleet broker", [
    [{}, src.brokerConnected ? 1 : 0],
  ]);
  family("netprobe_hq_probes", "gauge", "probes HQ knows", [[{}, src.probes.length]]);
  family("netprobe_hq_messages_total", "counter", "MQTT messages HQ received", [[{}, c.messages]]);
  family("netprobe_hq_results_total", "counter", "results HQ took in", [[{}, c.results]]);
  family("netprobe_hq_duplicates_total", "counter", "duplicate results dropped by id", [[{}, c.duplicates]]);
  family(
    "netprobe_hq_malformed_total",
    "counter",
    "messages refused as malformed, by reason",
    Object.entries(c.malformed_by_reason).map(([reason, n]) => [{ reason }, n]),
  );
  family(
    "netprobe_hq_dropped_total",
    "counter",
    "well-formed messages dropped by a bound, by reason",
    Object.entries(c.dropped_by_reason).map(([reason, n]) => [{ reason }, n]),
  );
  family("netprobe_hq_replies_total", "counter", "command replies HQ received", [[{}, c.replies]]);
  family(
    "netprobe_hq_notifications_total",
    "counter",
    "HQ's own webhook notifications, by outcome",
    (Object.entries(src.deliveries) as [string, number][]).map(([outcome, n]) => [{ outcome }, n]),
  );
  return `${out.join("\n")}\n`;
}
