// Least privilege: the service runs as a non-root user with only CAP_NET_RAW (raw ICMP sockets,
// packet capture and injection, SO_BINDTODEVICE); no check kind needs CAP_NET_ADMIN
// (test/fault/least-privilege.test.ts runs every kind with CAP_NET_RAW alone). At start-up it
// reads its effective capabilities and, if CAP_NET_RAW is missing, says so in ONE line naming the
// checks that cannot work; those checks then report `error` with their own no-permission code,
// the others run. It also names any capability it holds that no configured check needs.
import { readFileSync } from "node:fs";
import { checkKind } from "./checks/registry.ts";

/** Capability numbers from linux/capability.h. */
const CAP_BITS = { CAP_NET_ADMIN: 12, CAP_NET_RAW: 13 } as const;
export type CapabilityName = keyof typeof CAP_BITS;

/** Whether checks of `kind` open raw sockets or capture frames, and so need CAP_NET_RAW. */
function needsNetRaw(kind: string): boolean {
  return checkKind(kind)?.needs?.includes("net_raw") === true;
}

/** The effective capability mask of this process (from /proc/self/status), or null if unreadable. */
export function effectiveCapabilities(status?: string): bigint | null {
  let text = status;
  if (text === undefined) {
    try {
      text = readFileSync("/proc/self/status", "utf8");
    } catch {
      return null;
    }
  }
  const m = /^CapEff:\s*([0-9a-f]+)$/im.exec(text);
  return m ? BigInt(`0x${m[1]!}`) : null;
}

/** Whether the mask holds a capability. */
export function hasCapability(mask: bigint, cap: CapabilityName): boolean {
  return ((mask >> BigInt(CAP_BITS[cap])) & 1n) === 1n;
}

/**
 * The one start-up line about a missing CAP_NET_RAW, or null when nothing is missing (or the
 * mask is unknown, or no configured check needs it). `checks` are the enabled checks.
 */
export function missingCapabilityLine(
  checks: ReadonlyArray<{ name: string; kind: string }>,
  mask: bigint | null = effectiveCapabilities(),
): string | null {
  if (mask === null || hasCapability(mask, "CAP_NET_RAW")) return null;
  const affected = checks.filter((c) => needsNetRaw(c.kind));
  if (affected.length === 0) return null;
  const others = checks.length - affected.length;
  return (
    `missing capability CAP_NET_RAW: checks ${affected.map((c) => `${c.name} (${c.kind})`).join(", ")} ` +
    `cannot run and will report errors; the other ${others} check${others === 1 ? "" : "s"} run. ` +
    "Grant it with systemd AmbientCapabilities=CAP_NET_RAW (or cap_add: NET_RAW in compose)."
  );
}

/** Capabilities beyond CAP_NET_RAW that a netprobe process should never hold (linux/capability.h). */
const NEEDLESS = { CAP_NET_ADMIN: 12, CAP_SYS_ADMIN: 21, CAP_DAC_OVERRIDE: 1, CAP_SETUID: 7 } as const;

/**
 * The start-up line naming capabilities held that no configured check needs (none needs more than
 * CAP_NET_RAW), or null. Running as root, or with CAP_NET_ADMIN left in a unit, shows up here.
 */
export function excessCapabilityLine(mask: bigint | null = effectiveCapabilities()): string | null {
  if (mask === null) return null;
  const held = Object.entries(NEEDLESS)
    .filter(([, bit]) => ((mask >> BigInt(bit)) & 1n) === 1n)
    .map(([name]) => name);
  if (held.length === 0) return null;
  return `holding ${held.join(", ")}, which no check needs (CAP_NET_RAW is enough): drop ${held.length === 1 ? "it" : "them"} from the unit or container`;
}
