// The CLI as a new user meets it: `config validate` and `run` on a file with three mistakes.
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";

const CLI = new URL("../../services/probe/bin/netprobe", import.meta.url).pathname;
const fixture = (name: string) => new URL(`../fixtures/config/${name}`, import.meta.url).pathname;

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

  it("check -o takes YAML values: booleans and lists reach the options schema typed", () => {
    // Each call fails validation on purpose (count 0), so nothing is sent; the other options
    // must pass: `mos=true` a boolean, `resolvers=[…]` a list.
    const icmp = netprobe("check", "icmp", "-t", "192.0.2.1", "-o", "mos=true", "-o", "count=0");
    expect(icmp.status).toBe(2);
    expect(icmp.stderr.trim()).toBe("options.count: must be ≥ 1");
    const dns = netprobe(
      "check",
      "dns",
      "-t",
      "www.example.net",
      "-o",
      "resolvers=[dhcp, 192.0.2.53]",
      "-o",
      "wait_ms=0",
    );
    expect(dns.status).toBe(2);
    expect(dns.stderr).not.toContain("resolvers");
    const bad = netprobe("check", "dns", "-t", "www.example.net", "-o", "resolvers=[dhcp");
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("--option resolvers=[dhcp: the value is not YAML");
  });
});
