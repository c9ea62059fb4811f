import { readFileSync } from "node:fs";
import { randomUUID } from "node:crypto";

/** Kernel boot id: with `monoMs()` it orders results of one boot even when the wall clock is wrong. */
export function bootId(): string {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch {
    return randomUUID();
  }
}

/** CLOCK_MONOTONIC in ms (libuv's hrtime is CLOCK_MONOTONIC on Linux, so it is comparable across processes). */
export function monoMs(): number {
  return Number(process.hrtime.bigint() / 1000n) / 1000;
}
