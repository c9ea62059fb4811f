// The CLI as a new user meets it: `config validate` and `run` on a file with three mistakes.
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";

const CLI = new URL("../../services/probe/bin/netprobe", import.meta.url).pathname;
const fixture = (name: string) => new URL(`fixtures/config/${name}`, import.meta.url).pathname;

function netprobe(...args: string[]) {
  // No NETPROBE_* variables from the caller's environment may leak into what is validated.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("NETPROBE_")));
  return spawnSync(CLI, args, { encoding: "utf8", env, timeout: 20_000 });
}

const THREE = [
  "broker.url: must be an mqtt://, mqtts://, ws:// or wss:// URL",
  "checks[0].options.count: must be ≥ 1",
  "checks[1].timeout: must be ≤ interval (5s)",
];

describe("netprobe config validate / run", () => {
  it("validate prints all three mistakes with their paths and exits 2", () => {
    const r = netprobe("config", "validate", fixture("three-mistakes.yaml"));
    expect(r.status).toBe(2);
    for (const p of THREE) expect(r.stderr).toContain(p);
  });

  it("run refuses to start with the same messages and exits 2", () => {
    const r = netprobe("run", "--config", fixture("three-mistakes.yaml"));
    expect(r.status).toBe(2);
    const listed = (out: string) =>
      out
        .split("\n")
        .filter((l) => l.startsWith("  "))
        .map((l) => l.trim());
    expect(listed(r.stderr)).toEqual(
      listed(netprobe("config", "validate", fixture("three-mistakes.yaml")).stderr),
    );
    expect(listed(r.stderr)).toEqual(THREE);
  });

  it("validate accepts the shipped example and the lab config", () => {
    const example = new URL("../../services/probe/netprobe.example.yaml", import.meta.url).pathname;
    const lab = new URL("../../scripts/lab/probe.lab.yaml", import.meta.url).pathname;
    for (const f of [example, lab]) {
      const r = netprobe("config", "validate", f);
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
    }
  });

  it("a missing file is named", () => {
    const r = netprobe("config", "validate", "/nonexistent/netprobe.yaml");
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("/nonexistent/netprobe.yaml");
  });
});
