/**
 * The words probe and headquarters share: the network areas, a run's verdict, a failure as data,
 * and what one check measures. The probe's check kinds produce them (services/probe/src/checks),
 * the result envelope carries them (payloads.ts), HQ reads them.
 */

/** Network areas a check reports into; each has one LED on the panel. */
export const AREAS = ["link", "lan", "dhcp", "dns", "wan", "phone", "uplink"] as const;
/** One network area (docs/architecture.md, "Result envelope"). */
export type Area = (typeof AREAS)[number];

/** Verdict of one run: `error` means the probe itself could not measure (e.g. no CAP_NET_RAW). */
export type Status = "ok" | "warn" | "fail" | "error";

/** A failure as data: a stable machine code plus a message for humans. */
export interface CheckError {
  code: string;
  message: string;
}

/** What a check returns; the runner wraps it into the result envelope and applies thresholds. */
export interface Measurement {
  /** The check's own verdict; thresholds can only make it worse, never better. */
  status: Status;
  /** snake_case names with units: `rtt_avg_ms`, `loss_pct`. */
  metrics: Record<string, number>;
  detail?: Record<string, unknown>;
  error?: CheckError;
}

/** Check names: lower case, they appear in MQTT topics (`results/<name>`) and store rows. */
export const CHECK_NAME_PATTERN = "^[a-z0-9_-]{1,64}$";
