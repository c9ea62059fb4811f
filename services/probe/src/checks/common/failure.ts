import type { Measurement } from "../check.ts";

/**
 * A failed measurement with a stable code: `fail` when the network let the probe down, `error`
 * when the probe could not measure (bad target, no permission, a broken socket).
 */
export function failure(
  code: string,
  message: string,
  metrics: Record<string, number> = {},
  detail: Record<string, unknown> = {},
  status: "fail" | "error" = "fail",
): Measurement {
  return { status, metrics, detail, error: { code, message } };
}

/** The text of anything thrown: an Error's message, else its string form. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
