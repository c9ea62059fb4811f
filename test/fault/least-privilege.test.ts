// Least privilege: the real service started without CAP_NET_RAW (dropped from the bounding set
// with setpriv, so even root does not get it) says so in one line naming the affected checks,
// and the checks that need no raw socket keep running. And with CAP_NET_RAW alone (every other
// capability gone from every set, as the unit and the container run it), every check kind works.
import { readFileSync, writeFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { probeBrokerEnv } from "../../scripts/lab/broker-tls.ts";
import { wanFiles, WAN } from "../../scripts/lab/wan-servers.ts";
import { CHECK_KINDS } from "../../services/probe/src/checks/registry.ts";
import { LAB_PROBE_CONFIG } from "../../scripts/lab/lab-command.ts";
import { useLab } from "../lab/lab-fixture.ts";
import { exited, waitFor } from "../lab/probe-harness.ts";
import { statusOf } from "./fault-harness.ts";

const CLI = new URL("../../services/probe/src/cli.ts", import.meta.url).pathname;

const CONFIG = [
  "site: lab",
  "probe: probe-1",
  "broker: { url: mqtts://203.0.113.50:8883, keepalive: 5s }",
  "leds: { backend: none }",
  "defaults: { interval: 1s, timeout: 1s, jitter: 0 }",
  "checks:",
  "  - { name: gateway-icmp, kind: icmp, target: 192.0.2.1, area: lan, options: { count: 2, interval_ms: 20, wait_ms: 400 } }",
  "  - { name: wan-trace, kind: traceroute, target: 203.0.113.200, area: wan, interval: 5s, timeout: 5s }",
  "  - { name: web-tcp, kind: tcp, target: 203.0.113.80:80, area: wan }",
  "  - { name: dns-tcp, kind: tcp, target: 192.0.2.1:53, area: lan }",
  "",
].join("\n");

describe("least privilege", () => {
  const lab = useLab();

  it("without CAP_NET_RAW: one clear line names the capability and the affected checks; the others run", async () => {
    const file = join(lab().info.dir, "noraw.yaml");
    const db = join(lab().info.dir, "noraw.db");
    writeFileSync(file, CONFIG);
    const child = lab().spawn(
      "probe",
      [
        "setpriv",
        "--bounding-set=-net_raw",
        "--inh-caps=-net_raw",
        "--",
        process.execPath,
        CLI,
        "run",
        "--config",
        file,
      ],
      {
        env: { ...process.env, ...probeBrokerEnv(lab().info.dir), NETPROBE_STORE_PATH: db },
        stdio: ["ignore", "ignore", "pipe"],
      },
    );
    const log: string[] = [];
    createInterface({ input: child.stderr! }).on("line", (l) => log.push(l));
    try {
      await waitFor("the tcp checks ok and the icmp check reported", 20_000, () => {
        const checks = statusOf(db)?.checks ?? [];
        const by = (n: string) => checks.find((c) => c.check === n);
        return by("web-tcp")?.status === "ok" && by("dns-tcp")?.status === "ok" && by("gateway-icmp");
      });
      const lines = log.filter((l) => l.includes("CAP_NET_RAW"));
      const startup = lines.filter((l) => l.includes("missing capability"));
      console.log(`start-up line without CAP_NET_RAW: ${startup[0] ?? "(none)"}`);
      expect(startup).toHaveLength(1);
      const msg = (JSON.parse(startup[0]!) as { msg: string }).msg;
      expect(msg).toMatch(/^missing capability CAP_NET_RAW: /);
      expect(msg).toContain("gateway-icmp (icmp)");
      expect(msg).toContain("wan-trace (traceroute)");
      expect(msg).not.toContain("web-tcp");
      const checks = statusOf(db)!.checks;
      expect(checks.find((c) => c.check === "gateway-icmp")?.status).toBe("error");
      // Still running and still producing tcp results a few seconds later.
      const seq = Math.max(...checks.map((c) => c.seq));
      await waitFor("more results", 10_000, () =>
        (statusOf(db)?.checks ?? []).some((c) => c.check === "web-tcp" && c.seq > seq),
      );
      expect(child.exitCode).toBeNull();
    } finally {
      child.kill("SIGTERM");
      await exited(child);
    }
  });

  it("with CAP_NET_RAW alone, every check kind runs against the lab (none reports error)", async () => {
    // The lab's own config (link, lldp, gateway, arp, dhcp, icmp, dns, http, sip-*, traceroute)
    // plus the kinds it leaves out.
    const base = parse(readFileSync(LAB_PROBE_CONFIG, "utf8")) as { checks: Record<string, unknown>[] };
    const extra = [
      { name: "web-tcp", kind: "tcp", target: `${WAN.web4}:80`, area: "wan" },
      {
        name: "web-tls",
        kind: "tls",
        target: WAN.webName,
        area: "wan",
        options: { ca_file: wanFiles(lab().info.dir).ca.cert },
      },
      { name: "ntp", kind: "ntp", target: WAN.ntp4, area: "wan" },
      { name: "wan-pmtu", kind: "path-mtu", target: WAN.web4, area: "wan", interval: "10s", timeout: "5s" },
      { name: "wan-stamp", kind: "stamp", target: "203.0.113.200", area: "wan" },
      {
        name: "wan-throughput",
        kind: "throughput",
        target: "203.0.113.50",
        area: "wan",
        interval: "60s",
        timeout: "30s",
        options: { windows: ["00:00-23:59"], duration_s: 2, skip_above_pct: 100 },
      },
    ];
    const config = { ...base, checks: [...base.checks, ...extra] };
    const kinds = new Set(config.checks.map((c) => String(c.kind)));
    expect([...kinds].sort()).toEqual(Object.keys(CHECK_KINDS).sort()); // every kind, no exception
    const file = join(lab().info.dir, "rawonly.yaml");
    const db = join(lab().info.dir, "rawonly.db");
    writeFileSync(file, stringify(config));
    const child = lab().spawn(
      "probe",
      [
        "setpriv",
        "--inh-caps=-all,+net_raw",
        "--ambient-caps=-all,+net_raw",
        "--bounding-set=-all,+net_raw",
        "--no-new-privs",
        "--",
        "sh",
        "-c",
        'grep -E "^Cap(Eff|Bnd)" /proc/self/status >&2; exec "$@"',
        "sh",
        process.execPath,
        CLI,
        "run",
        "--config",
        file,
      ],
      {
        env: { ...process.env, ...probeBrokerEnv(lab().info.dir), NETPROBE_STORE_PATH: db },
        stdio: ["ignore", "ignore", "pipe"],
      },
    );
    const log: string[] = [];
    createInterface({ input: child.stderr! }).on("line", (l) => log.push(l));
    try {
      const names = config.checks.map((c) => String(c.name));
      await waitFor(
        () => `a result of every check (have ${(statusOf(db)?.checks ?? []).map((c) => c.check).join(", ")})`,
        60_000,
        () => names.every((n) => (statusOf(db)?.checks ?? []).some((c) => c.check === n)),
      );
      // Capabilities of the process the service runs in: CAP_NET_RAW (bit 13) and nothing else.
      expect(log.filter((l) => l.startsWith("Cap"))).toEqual([
        "CapEff:\t0000000000002000",
        "CapBnd:\t0000000000002000",
      ]);
      const checks = statusOf(db)!.checks;
      const table = checks.map((c) => `${c.kind}:${c.status}${c.error ? `(${c.error.code})` : ""}`).sort();
      console.log(`every kind with CAP_NET_RAW alone: ${table.join(" ")}`);
      expect(
        checks
          .filter((c) => c.status === "error")
          .map((c) => `${c.check}: ${c.error?.code} ${c.error?.message}`),
      ).toEqual([]);
      expect(log.some((l) => l.includes("missing capability"))).toBe(false);
      expect(log.some((l) => l.includes("which no check needs"))).toBe(false);
    } finally {
      child.kill("SIGTERM");
      await exited(child);
    }
  });
});
