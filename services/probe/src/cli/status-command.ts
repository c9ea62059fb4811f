import { existsSync } from "node:fs";
import type { Area } from "../checks/check.ts";
import type { HealthPayload, ResultPayload } from "../../../contract/src/payloads.ts";
import {
  areaLook,
  describeLook,
  PANEL,
  parseLookName,
  statusLook,
  type LedLook,
} from "../../../contract/src/led-table.ts";
import { renderPanel } from "../leds/terminal-panel.ts";
import { HEALTH_STATE_KEY, UPLINK_STATE_KEY, type UplinkState } from "../service.ts";
import { Store, StoreError } from "../store/store.ts";
import { terminalSafe } from "../../../contract/src/printable-text.ts";

/** What `netprobe status --json` prints. */
export interface StatusReport {
  db: string;
  health: HealthPayload | null;
  /** Whether the uplink was connected, as the service last saved it; null before it ever ran one. */
  uplink: UplinkState | null;
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
      uplink: store.getState<UplinkState>(UPLINK_STATE_KEY) ?? null,
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

/**
 * How old the oldest queued row may be while the uplink is healthy: a row normally leaves within its
 * PUBACK round trip plus the 20 ms acknowledgement batch (uplink/mqtt-link.ts), so a row this old
 * means delivery has stalled even if the connection looks up. Rows merely waiting for their PUBACK
 * are not "queuing" (they were, before: STATUS blinked amber on any row in the outbox).
 */
export const BACKLOG_NORMAL_DELAY_S = 10;

/** Whether STATUS shows "headquarters unreachable": uplink down, or the backlog older than normal. */
export function uplinkQueuing(r: Pick<StatusReport, "uplink" | "outbox">): boolean {
  return r.uplink?.connected === false || (r.outbox.oldest_age_s ?? 0) > BACKLOG_NORMAL_DELAY_S;
}

/** The panel as LED looks, from a health snapshot. */
export function ledsOf(
  health: HealthPayload | null,
  now: number,
  queuing: boolean,
): Partial<Record<Area | "status", LedLook>> {
  const leds: Partial<Record<Area | "status", LedLook>> = {};
  for (const [area, h] of Object.entries(health?.areas ?? {})) {
    // The service's own `led` honours its leds.recent_change; recomputed only for old snapshots.
    leds[area as Area] = parseLookName(h.led) ?? areaLook(h.state, Date.parse(h.since), now);
  }
  leds.status = statusLook(!queuing);
  return leds;
}

/** Human-readable status lines (also used by the lab's live view). */
export function formatStatus(r: StatusReport, now: number, colour: boolean): string[] {
  const leds = ledsOf(r.health, now, uplinkQueuing(r));
  const lines = [renderPanel(leds, colour)];
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
          (r.uplink === null
            ? ""
            : `headquarters ${r.uplink.connected ? "connected" : "unreachable"} since ${r.uplink.since}, `) +
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

/** One line for a database `netprobe status` cannot read: what is wrong with which file, what to do. */
function unreadableLine(err: StoreError): string {
  const f = err.file;
  switch (err.code) {
    case "STORE_CORRUPT":
      return `${f}: the database is damaged (${sqliteReason(err)}); the service moves it aside to ${f}.corrupt-<time> and starts a new buffer on its next start (systemctl restart netprobe)`;
    case "STORE_TOO_NEW":
    case "STORE_MIGRATION":
      return `${f}: ${err.message.replace(`store ${f}: `, "")}`;
    case "STORE_CLOSED":
    case "STORE_FULL":
    case "STORE_IO":
    case "STORE_READONLY":
      return `${f}: cannot read the database (${sqliteReason(err)}); check the file's permissions and the disk (df, dmesg)`;
  }
}

/** The SQLite part of a store error's message: `SQLITE_NOTADB: file is not a database`. */
function sqliteReason(err: StoreError): string {
  const m = /(SQLITE_\w+|quick_check): (.*?)(?: \(the service moves|$)/.exec(err.message);
  return m ? `${m[1]}: ${m[2]}` : err.code;
}

/** `netprobe status`: exit 0 when every configured area is ok, 1 otherwise, 2 when there is no readable database. */
export function statusCommand(db: string, json: boolean): number {
  if (!existsSync(db)) {
    console.error(`${db}: no database (has the probe run yet?)`);
    return 2;
  }
  let report: StatusReport;
  try {
    report = readStatus(db);
  } catch (err) {
    if (!(err instanceof StoreError)) throw err;
    console.error(unreadableLine(err));
    return 2;
  }
  if (json) console.log(JSON.stringify(report, null, 2));
  else console.log(terminalSafe(formatStatus(report, Date.now(), process.stdout.isTTY === true).join("\n")));
  const areas = Object.values(report.health?.areas ?? {});
  return areas.every((a) => a.state === "ok" || a.state === "off") ? 0 : 1;
}
