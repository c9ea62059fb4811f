// The shipped Prometheus and Alertmanager files (deploy/prometheus, deploy/alertmanager) through
// Debian's own tools: `promtool check rules`, `promtool test rules` (the tests file beside the
// rules), `promtool check config` of the sample scrape config and `amtool check-config`.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const DEPLOY = new URL("../../../../deploy/", import.meta.url).pathname;

function run(cmd: string, args: string[], cwd: string) {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8" });
  if (r.error) throw r.error;
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe("shipped alert rules and Alertmanager config", () => {
  const prom = join(DEPLOY, "prometheus");
  it("promtool check rules", () => {
    const r = run("promtool", ["check", "rules", "netprobe.rules.yml"], prom);
    expect(r.out).toContain("SUCCESS: 3 rules found");
    expect(r.status).toBe(0);
  });
  it("promtool test rules", () => {
    const r = run("promtool", ["test", "rules", "netprobe.rules.test.yml"], prom);
    expect(r.out).toContain("SUCCESS");
    expect(r.status).toBe(0);
  });
  it("promtool check config of the sample scrape config (syntax: the token file is the site's)", () => {
    const r = run("promtool", ["check", "config", "--syntax-only", "prometheus.yml"], prom);
    expect(r.status, r.out).toBe(0);
  });
  it("amtool check-config: grouping by site and incident, six inhibition rules", () => {
    const r = run("amtool", ["check-config", "alertmanager.yml"], join(DEPLOY, "alertmanager"));
    expect(r.out).toContain("6 inhibit rules");
    expect(r.status).toBe(0);
  });
});
