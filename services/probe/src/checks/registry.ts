import type { CheckKind } from "./check.ts";
import { icmp } from "./icmp.ts";

/** Every check kind by its config `kind` name; one literal map, no registration side effects. */
export const CHECK_KINDS: Readonly<Record<string, CheckKind>> = {
  icmp,
};

/** Looks up a kind, or undefined when the name is not known. */
export function checkKind(kind: string): CheckKind | undefined {
  return Object.hasOwn(CHECK_KINDS, kind) ? CHECK_KINDS[kind] : undefined;
}
