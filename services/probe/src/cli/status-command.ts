import { existsSync } from "node:fs";
import type { Area } from "../checks/check.ts";
import type { HealthPayload, ResultPayload } from "../contract/payloads.ts";
import { areaLook, describeLook, PANEL, parseLookName, type LedLook } from "../leds/led-table.ts";
import { renderPanel } from "../leds/terminal-panel.ts";
import { HEALTH_STATE_KEY } from "../service.ts";
import { Store } from "../store/store.ts";
import { terminalSafe } from "../contract/printable-text.ts";

/** What `netprobe status --json` prints. */
export interface StatusReport {
  db: string;
  health: HealthPayload | null;
  outbox: { rows: number; bytes: number; oldest_age_s: number | null; evicted: number };
  checks: Array<
    Pick<
      ResultPayload,
      "check" | "seq" | "kind" | "area" | "target" | "status" | "started_at" | "metrics" | "error"
    >
  >;
}

/** Reads the probe's database (running or stopped) into a status report. */
export function readStatus(db: string): StatusReport {
  const store = new Store(db, {
    maxRows: Number.MAX_SAFE_INTEGER,
    maxBytes: Number.MAX_SAFE_INTEGER,
    readOnly: true,
  });
  store.open();
  try {
    const s = store.stats();
    return {
      db,
      health: store.getState<HealthPayload>(HEALTH_STATE_KEY) ?? null,
      outbox: {
        rows: s.rows,
        bytes: s.bytes,
        oldest_age_s: s.oldestAt === null ? null : Math.round((Date.now() - s.oldestAt) / 1000),
        evicted: s.evicted,
      },
      checks: store.latestResults().map(({ summary }) => {
        const r = summary as ResultPayload;
        return {
          check: r.check,
          seq: r.seq,
          kind: r.kind,
          area: r.area,
          target: r.target,
          status: r.status,
          started_at: r.started_at,
          metrics: r.metrics,
          ...(r.error ? { error: r.error } : {}),
        };
      }),
    };
  } finally {
    store.close();
  }
}

/** The panel as LED looks, from a health snapshot. */
export function ledsOf(
  health: HealthPayload | null,
  now: number,
  uplinkQueued: boolean,
): Partial<Record<Area | "status", LedLook>> {
  const leds: Partial<Record<Area | "status", LedLook>> = {};
  for (const [area, h] of Object.entries(health?.areas ?? {})) {
    // The service's own `led` honours its leds.recent_change; recomputed only for old snapshots.
    leds[area as Area] = parseLookName(h.led) ?? areaLook(h.state, Date.parse(h.since), now);
  }
  leds.status = uplinkQueued
    ? { colour: "amber", pattern: "fast-blink" }
    : { colour: "green", pattern: "heartbeat" };
  return leds;
}

/** Human-readable status lines (also used by the lab's live view). */
export function formatStatus(r: StatusReport, now: number, colour: boolean): string[] {
  const leds = ledsOf(r.health, now, r.outbox.rows > 0);
  const lines = [renderPanel(leds, now, colour)];
  const driver = r.health?.leds;
  if (driver) {
    lines.push(
      `  LEDs driven by ${driver.backend}` +
        (driver.backend === driver.requested ? "" : ` (configured: ${driver.requested})`) +
        (driver.problem ? ` — ${driver.problem}` : ""),
    );
  }
  // Behind each LED: its look, the area's state and why, then the last result of each of its checks.
  for (const led of PANEL) {
    const look = leds[led];
    const checks = r.checks.filter((c) =>
      led === "status" ? !PANEL.includes(c.area as never) : c.area === led,
    );
    if (led === "status") {
      lines.push(
        `  ${"STATUS".padEnd(6)} ${look ? describeLook(look) : "off"}: ` +
          `${r.outbox.rows} queued (${r.outbox.bytes} B)` +
          (r.outbox.oldest_age_s === null ? "" : `, oldest ${r.outbox.oldest_age_s}s`) +
          `, ${r.outbox.evicted} evicted`,
      );
    } else {
      const h = r.health?.areas[led];
      if (!h || h.state === "off") continue;
      const why = h.reason ? ` — ${h.reason}` : "";
      lines.push(
        `  ${led.toUpperCase().padEnd(6)} ${look ? describeLook(look) : "off"}: ${h.state} since ${h.since}${why}`,
      );
    }
    for (const c of checks) {
      const m = Object.entries(c.metrics)
        .filter(([k]) => /rtt_avg|loss|jitter|_ms$/.test(k))
        .slice(0, 4)
        .map(([k, v]) => `${k}=${Math.round(v * 1000) / 1000}`)
        .join(" ");
      const err = c.error ? `  ${c.error.code}: ${c.error.message}` : "";
      lines.push(`      ${c.check.padEnd(16)} ${c.status.padEnd(5)} ${c.started_at}  ${m}${err}`);
    }
  }
  return lines;
}

/** `netprobe status`: exit 0 when every configured area is ok, 1 otherwise, 2 when there is no database. */
export function statusCommand(db: string, json: boolean): number {
  if (!existsSync(db)) {
    console.error(`${db}: no database (has the probe run yet?)`);
    return 2;
  }
  const report = readStatus(db);
  if (json) console.log(JSON.stringify(report, null, 2));
  else console.log(terminalSafe(formatStatus(report, Date.now(), process.stdout.isTTY).join("\n")));
  const areas = Object.values(report.health?.areas ?? {});
  return areas.every((a) => a.state === "ok" || a.state === "off") ? 0 : 1;
}
