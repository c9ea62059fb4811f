// The WAN services of the lab (scripts/lab/wan-servers.ts) against the probe's dns, tcp, http, tls
// and ntp checks: the DNS faults seen through the running probe (area state and error code, and
// back), the other checks run once in the probe's namespace the way `netprobe check` runs them.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { PBX } from "../../scripts/lab/pbx.ts";
import { setWanServers, WAN, wanFiles } from "../../scripts/lab/wan-servers.ts";
import type { FaultName } from "../../scripts/lab/lab.ts";
import { LAB_PROBE_CONFIG } from "../../scripts/lab/lab-command.ts";
import type { Measurement } from "../../services/probe/src/checks/check.ts";
import { useLab } from "./lab-fixture.ts";
import { runCheckIn } from "./run-check.ts";
import { exited, probeStatus, startProbe, waitFor } from "./probe-harness.ts";

const lab = useLab();

/** Runs one check once inside the probe's namespace, options as in a config file (JSON). */
const check = (kind: string, target: string, options: Record<string, unknown> = {}): Promise<Measurement> =>
  runCheckIn(lab(), kind, target, options);

describe("DNS faults through the running probe", () => {
  // The lab config's DNS check alone (gateway forwarder + provider resolver side by side), every 1 s,
  // red/amber after 2 runs: short enough to walk through every fault in one probe run.
  const INTERVAL_MS = 1000;
  const FAIL_AFTER = 2;

  it("every DNS fault turns the DNS area red or amber with its own code, and back to green", async () => {
    const base = parse(readFileSync(LAB_PROBE_CONFIG, "utf8")) as Record<string, unknown> & {
      checks: { name: string }[];
    };
    const dnsCheck = base.checks.find((c) => c.name === "dns");
    expect(dnsCheck, "scripts/lab/probe.lab.yaml has a check named dns").toBeDefined();
    const config = {
      ...base,
      areas: { fail_after: FAIL_AFTER, recover_after: 1 },
      defaults: { interval: "1s", timeout: "1s" },
      checks: [dnsCheck],
    };
    const configFile = join(lab().info.dir, "probe-dns.yaml");
    writeFileSync(configFile, stringify(config));
    const probe = startProbe(lab(), {}, configFile);
    const dnsArea = () => probeStatus(lab()).health?.areas.dns?.state;
    const lastDns = () => probeStatus(lab()).checks.find((c) => c.check === "dns");
    try {
      await waitFor("DNS green", 15_000, () => dnsArea() === "ok");
      const cases: Array<[FaultName, "failing" | "degraded", string]> = [
        ["dns-down", "failing", "timeout"],
        ["dns-servfail", "failing", "servfail"],
        ["dns-hijack", "failing", "hijack"],
        ["dns-spoof", "failing", "wrong_answer"],
        ["dns-slow", "degraded", "slow"],
      ];
      const seen: Record<string, unknown> = {};
      for (const [fault, state, code] of cases) {
        await lab().fault(fault, true);
        const budget = (FAIL_AFTER + 2) * INTERVAL_MS + 3000;
        await waitFor(
          `DNS ${state} with ${code} after ${fault}`,
          budget,
          () => dnsArea() === state && lastDns()?.error?.code === code,
        );
        seen[fault] = { state: dnsArea(), code: lastDns()?.error?.code, message: lastDns()?.error?.message };
        await lab().fault(fault, false);
        await waitFor(`DNS green after ${fault} off`, budget, () => dnsArea() === "ok");
      }
      // The reason names the resolver(s) concerned: dns-down is the gateway's alone.
      expect(String((seen["dns-down"] as { message: string }).message)).toMatch(/^192\.0\.2\.1: timeout/);
      expect(String((seen["dns-hijack"] as { message: string }).message)).toContain(WAN.hijack4);
    } finally {
      probe.kill("SIGTERM");
      await exited(probe);
    }
  });
});

describe("dns check against the lab's resolvers", () => {
  it("answers side by side from the gateway (resolv.conf) and the provider, over IPv4 and IPv6", async () => {
    const m = await check("dns", WAN.webName, {
      resolvers: ["dhcp", WAN.dnsResolver4, WAN.dnsResolver6],
      expect_addresses: [WAN.web4],
    });
    expect(m.status, JSON.stringify(m.error)).toBe("ok");
    const resolvers = m.detail?.resolvers as {
      resolver: string;
      source: string;
      answers: string[];
      hijack_probe: { verdict: string };
    }[];
    expect(resolvers.map((r) => [r.resolver, r.source, r.answers, r.hijack_probe.verdict])).toEqual([
      ["192.0.2.1", "dhcp", [WAN.web4], "nxdomain"],
      [WAN.dnsResolver4, "config", [WAN.web4], "nxdomain"],
      [WAN.dnsResolver6, "config", [WAN.web4], "nxdomain"],
    ]);
  });

  it("a big answer is truncated over UDP and fetched over TCP; without fallback it fails truncated", async () => {
    const opts = {
      resolvers: [WAN.dnsAuth4],
      type: "TXT",
      recursion: false,
      hijack_check: false,
      expect_regex: "record 23",
    };
    const m = await check("dns", WAN.bigName, opts);
    expect(m.status, JSON.stringify(m.error)).toBe("ok");
    expect((m.detail?.resolvers as { transport: string; answer_count: number }[])[0]).toMatchObject({
      transport: "udp+tcp",
      answer_count: 24,
    });
    expect((await check("dns", WAN.bigName, { ...opts, tcp_fallback: false })).error?.code).toBe("truncated");
  });

  it("the authoritative server says NXDOMAIN and REFUSED where it should; dnssec sees the resolver's AD bit", async () => {
    const nx = await check("dns", "nothing.example.net", {
      resolvers: [WAN.dnsAuth4],
      recursion: false,
      hijack_check: false,
    });
    expect(nx.error?.code).toBe("nxdomain");
    const refused = await check("dns", "www.example.org", {
      resolvers: [WAN.dnsAuth4],
      recursion: false,
      hijack_check: false,
    });
    expect(refused.error?.code).toBe("refused");
    expect((await check("dns", WAN.webName, { resolvers: [WAN.dnsResolver4], dnssec: true })).status).toBe(
      "ok",
    );
    const unvalidated = await check("dns", WAN.webName, {
      resolvers: ["192.0.2.1"],
      dnssec: true,
      hijack_check: false,
    });
    expect(unvalidated.error?.code).toBe("dnssec_unvalidated"); // dnsmasq does not validate here
  });
});

describe("tcp, http, tls and ntp against the lab's servers", () => {
  it("tcp: connect time, send/expect on the echo port; a closed port is connection_refused", async () => {
    const echo = await check("tcp", `${WAN.web4}:7`, { send: "netprobe\n", expect: "^netprobe" });
    expect(echo.status).toBe("ok");
    expect(echo.metrics.connect_ms).toBeGreaterThan(0);
    expect(echo.metrics.expect_ms).toBeGreaterThanOrEqual(0);
    const http = await check("tcp", `[${WAN.web6}]:80`, {
      send: "HEAD / HTTP/1.0\r\n\r\n",
      expect: "^HTTP/1\\.1 200",
    });
    expect(http.status, JSON.stringify(http.error)).toBe("ok");
    expect((await check("tcp", `${WAN.web4}:81`)).error?.code).toBe("connection_refused");
    expect(
      (await check("tcp", `${WAN.web4}:7`, { send: "x\n", expect: "never", wait_ms: 300 })).error?.code,
    ).toBe("expect_failed");
  });

  it("http: phases and status by name; wrong status and body are failures with their codes", async () => {
    const m = await check("http", `http://${WAN.webName}/`, { expect_body_regex: "netprobe lab" });
    expect(m.status, JSON.stringify(m.error)).toBe("ok");
    expect(m.metrics).toMatchObject({ status_code: 200 });
    const { dns_ms = 0, connect_ms = 0, first_byte_ms = 0, total_ms = 0 } = m.metrics;
    expect(dns_ms).toBeGreaterThan(0);
    expect(dns_ms + connect_ms).toBeLessThanOrEqual(first_byte_ms);
    expect(first_byte_ms).toBeLessThanOrEqual(total_ms);
    expect((await check("http", `http://${WAN.web4}/status/503`)).error?.code).toBe("http_status");
    expect((await check("http", `http://${WAN.web4}/status/503`, { expect_status: [503] })).status).toBe(
      "ok",
    );
    expect((await check("http", `http://${WAN.web4}/`, { expect_body_regex: "^nope" })).error?.code).toBe(
      "body_mismatch",
    );
  });

  it("redirects: a 3xx names its Location; follow_redirects walks the chain, and stops at loops and too many hops", async () => {
    const base = `http://${WAN.web4}`;
    const unfollowed = await check("http", `${base}/redirect/2`);
    expect(unfollowed).toMatchObject({
      status: "fail",
      error: { code: "http_status" },
      metrics: { status_code: 301 },
    });
    expect(unfollowed.detail).toMatchObject({ location: `${base}/redirect/1` });
    expect(unfollowed.error?.message).toContain(`→ ${base}/redirect/1`);
    const followed = await check("http", `${base}/redirect/2`, {
      follow_redirects: 5,
      expect_body_regex: "netprobe lab",
    });
    expect(followed.status, JSON.stringify(followed.error)).toBe("ok");
    expect(followed.metrics).toMatchObject({ status_code: 200, redirects: 2 });
    expect(followed.detail).toMatchObject({
      final_url: `${base}/`,
      redirects: [
        { status_code: 301, url: `${base}/redirect/2` },
        { status_code: 301, url: `${base}/redirect/1` },
      ],
    });
    const loop = await check("http", `${base}/loop/a`, { follow_redirects: 10 });
    expect(loop.error?.code).toBe("redirect_loop");
    expect(loop.error?.message).toContain(`302 ${base}/loop/b → ${base}/loop/a again`);
    const tooMany = await check("http", `${base}/redirect/3`, { follow_redirects: 2 });
    expect(tooMany.error?.code).toBe("too_many_redirects");
    expect(tooMany.metrics.redirects).toBe(2);
  });

  it("https and tls: trusted with the lab CA, cert_untrusted without it, hostname_mismatch for another name", async () => {
    const ca_file = wanFiles(lab().info.dir).ca.cert;
    const https = await check("http", `https://${WAN.webName}/`, { ca_file });
    expect(https.status, JSON.stringify(https.error)).toBe("ok");
    expect(https.metrics.tls_ms).toBeGreaterThan(0);
    const t = await check("tls", WAN.webName, { ca_file });
    expect(t.status, JSON.stringify(t.error)).toBe("ok");
    expect(t.metrics.expiry_days).toBeGreaterThan(360);
    expect(String(t.detail?.issuer)).toContain("netprobe lab CA");
    expect(t.detail).toMatchObject({
      chain_valid: true,
      hostname_match: true,
    });
    expect((await check("tls", WAN.webName)).error?.code).toBe("cert_untrusted");
    expect((await check("http", `https://${WAN.webName}/`)).error?.code).toBe("cert_untrusted");
    expect(
      (await check("tls", `${WAN.web4}:443`, { ca_file, servername: "other.example.net" })).error?.code,
    ).toBe("hostname_mismatch");
  });

  it("cert-expiring: tls and https warn cert_expiring with the days left; off restores ok", async () => {
    const ca_file = wanFiles(lab().info.dir).ca.cert;
    await lab().fault("cert-expiring", true);
    try {
      const t = await check("tls", WAN.webName, { ca_file });
      expect(t.status).toBe("warn");
      expect(t.error?.code).toBe("cert_expiring");
      expect(t.metrics.expiry_days).toBeGreaterThan(4);
      expect(t.metrics.expiry_days).toBeLessThanOrEqual(5);
      expect((await check("http", `https://${WAN.webName}/`, { ca_file })).error?.code).toBe("cert_expiring");
    } finally {
      await lab().fault("cert-expiring", false);
    }
    expect((await check("tls", WAN.webName, { ca_file })).status).toBe("ok");
  });

  it("ntp: offset near 0 against the lab server; a server 500 ms ahead warns, 3 s fails", async () => {
    const m = await check("ntp", "ntp.example.net");
    expect(m.status, JSON.stringify(m.error)).toBe("ok");
    // Same clock on both sides: the offset is 0 within SNTP's own error bound, half the true round
    // trip (RFC 5905 §8). The server stamps in whole milliseconds: the offset read is off by < 1 ms
    // and the round trip read is short by < 2 ms, so |offset| < delay_read / 2 + 2 ms.
    const bound = (x: Measurement) => (x.metrics.delay_ms ?? NaN) / 2 + 2;
    expect(Math.abs(m.metrics.offset_ms ?? NaN)).toBeLessThanOrEqual(bound(m));
    expect(m.metrics).toMatchObject({ stratum: 2 });
    try {
      await setWanServers(lab().info.dir, { ntpOffsetMs: 500 });
      const ahead = await check("ntp", `[${WAN.ntp6}]:123`);
      expect(ahead.status).toBe("warn");
      expect(ahead.error?.code).toBe("clock_offset");
      expect(Math.abs((ahead.metrics.offset_ms ?? NaN) - 500)).toBeLessThanOrEqual(bound(ahead));
      await setWanServers(lab().info.dir, { ntpOffsetMs: 3000 });
      expect((await check("ntp", WAN.ntp4)).status).toBe("fail");
    } finally {
      await setWanServers(lab().info.dir, { ntpOffsetMs: 0 });
    }
    expect((await check("ntp", `${WAN.web4}:123`, { wait_ms: 300 })).error?.code).toBe("connection_refused");
  });

  it("a real chronyd that has not synchronised yet is unsynchronized, not a kiss-o'-death", async () => {
    // chronyd serving with no sources: leap 3, stratum 0, an empty reference id until it syncs.
    const conf = join(lab().info.dir, "chrony.conf");
    writeFileSync(
      conf,
      `allow\nport 123\ncmdport 0\nbindaddress ${PBX.address4}\npidfile ${join(lab().info.dir, "chronyd.pid")}\n`,
    );
    const chronyd = lab().spawn("pbx", ["chronyd", "-x", "-d", "-u", "root", "-f", conf], {
      stdio: "ignore",
    });
    try {
      for (let i = 0; ; i++) {
        const r = await lab().exec("pbx", ["ss", "-Hnul", "sport = :123"]);
        if (r.stdout.includes(":123")) break;
        if (i > 50 || chronyd.exitCode !== null) throw new Error("chronyd did not start listening on :123");
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const m = await check("ntp", PBX.address4);
      expect(m).toMatchObject({ status: "fail", error: { code: "unsynchronized" } });
      expect(m.detail).toMatchObject({ leap: 3, stratum: 0, reference_id: "" });
    } finally {
      chronyd.kill("SIGTERM");
      await exited(chronyd);
    }
  });
});
