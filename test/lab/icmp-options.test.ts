// No check corrupts another's state: icmp checks with different per-packet options (TTL, DSCP,
// DF, size) share one raw socket per family and run at the same time against the lab's targets.
// Before the fix one `ttl: 1` or `ttl: 32` run left its TTL on the socket (raw-socket refuses the
// reset value -1), and every later run with other options failed with a socket error.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { useLab } from "./lab-fixture.ts";

const CHILD = join(import.meta.dirname, "icmp-options-child.ts");
const ROUNDS = 5;

const series = { count: 5, interval_ms: 10, wait_ms: 500 };
const v4 = "203.0.113.10";
const v6 = "2001:db8:3::10";
/** name → target, options, and what a correct probe reports (the lab path's MTU is 1500). */
const CHECKS = {
  plain: { target: v4, options: {}, expect: "ok" },
  ttl32: { target: v4, options: { ttl: 32 }, expect: "ok" },
  // TTL 1 dies at the gateway: time exceeded, a true red.
  ttl1: { target: v4, options: { ttl: 1 }, expect: "unreachable" },
  voice_ef: { target: v4, options: { dscp: 46 }, expect: "ok" },
  df_1400: { target: v4, options: { dont_fragment: true, size: 1400 }, expect: "ok" },
  // 2000 bytes with DF cannot leave a 1500-byte link: a true red too.
  df_2000: { target: v4, options: { dont_fragment: true, size: 2000 }, expect: "unreachable" },
  fragmented_2000: { target: v4, options: { size: 2000 }, expect: "ok" },
  v6_plain: { target: v6, options: {}, expect: "ok" },
  v6_hop1: { target: v6, options: { ttl: 1 }, expect: "unreachable" },
  v6_ef: { target: v6, options: { dscp: 46 }, expect: "ok" },
  v6_df_1400: { target: v6, options: { dont_fragment: true, size: 1400 }, expect: "ok" },
} as const;

describe("icmp checks with different packet options at the same time", () => {
  const lab = useLab();

  it(`${Object.keys(CHECKS).length} concurrent checks × ${ROUNDS} rounds: each gets its own verdict, none falsely red`, async () => {
    const checks = Object.entries(CHECKS).map(([name, c]) => ({
      name,
      kind: "icmp",
      target: c.target,
      options: { ...series, ...c.options },
    }));
    const r = await lab().exec("probe", [process.execPath, CHILD, JSON.stringify(checks), String(ROUNDS)], {
      timeoutMs: 60_000,
    });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const rounds = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, { status: string; code?: string; received?: number }>);
    expect(rounds).toHaveLength(ROUNDS);
    for (const [i, round] of rounds.entries()) {
      const verdicts = Object.fromEntries(
        Object.entries(round).map(([name, m]) => [name, m.status === "ok" ? "ok" : (m.code ?? m.status)]),
      );
      const wanted = Object.fromEntries(Object.entries(CHECKS).map(([name, c]) => [name, c.expect]));
      expect(verdicts, `round ${i + 1}`).toEqual(wanted);
      // Every echo of an ok check came back: no packet went out with another check's TTL or DF.
      for (const [name, c] of Object.entries(CHECKS))
        if (c.expect === "ok") expect(round[name]?.received, `${name}, round ${i + 1}`).toBe(series.count);
    }
  });
});
