// The phone line end to end: the real probe in the office, the lab PBX (kamailio + the project's
// RTP echo) on the WAN side behind the office NAT. Each PBX fault must turn the PHONE area to the
// right state with the right code, and back when it is switched off.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { afterAll, describe, expect, it } from "vitest";
import type { Lab } from "../../scripts/lab/lab.ts";
import { PBX } from "../../scripts/lab/pbx.ts";
import { useLab } from "./lab-fixture.ts";
import { exited, probeDb, probeStatus, waitFor } from "./probe-harness.ts";

const CLI = new URL("../../services/probe/src/cli.ts", import.meta.url).pathname;

// Short intervals so five faults fit in the file's time budget: red after 2 bad runs, green after 2 good.
const CONFIG = `
site: lab
probe: phone-1
log_level: info
store: { path: /var/lib/netprobe/netprobe.db }
broker: { url: "mqtt://203.0.113.50:1883", keepalive: 5s, reconnect_min: 500ms, reconnect_max: 3s }
areas: { fail_after: 2, recover_after: 2 }
leds: { backend: none }
checks:
  - name: pbx-options
    kind: sip-options
    target: ${PBX.address4}
    interval: 1s
    timeout: 1s
  - name: pbx-register
    kind: sip-register
    target: ${PBX.address4}
    interval: 1s
    timeout: 1s
    options: { domain: ${PBX.domain}, username: ${PBX.username}, password_env: LAB_SIP_PASSWORD }
  - name: pbx-call
    kind: sip-call
    target: ${PBX.address4}
    interval: 3s
    timeout: 3s
    options:
      domain: ${PBX.domain}
      username: ${PBX.username}
      password_env: LAB_SIP_PASSWORD
      duration_s: 1
      drain_ms: 300
    thresholds:
      loss_pct: { warn: 1, fail: 5 }
      jitter_ms: { warn: 15, fail: 60 }
      mos: { warn_below: 4, fail_below: 3.6 }
`;

type CheckName = "pbx-options" | "pbx-register" | "pbx-call";

function phone(lab: Lab) {
  const s = probeStatus(lab);
  const last = (name: CheckName) => s.checks.find((c) => c.check === name);
  return { state: s.health?.areas.phone?.state, reason: s.health?.areas.phone?.reason, last };
}

describe("phone line to the lab PBX", () => {
  const lab = useLab();
  let probe: (ChildProcess & { log: string[] }) | undefined;

  function start(): void {
    const config = join(lab().info.dir, "phone.yaml");
    writeFileSync(config, CONFIG);
    probe = lab().spawn("probe", [process.execPath, CLI, "run", "--config", config], {
      env: { ...process.env, NETPROBE_STORE_PATH: probeDb(lab()), LAB_SIP_PASSWORD: PBX.password },
      stdio: ["ignore", "ignore", "pipe"],
    }) as ChildProcess & { log: string[] };
    probe.log = [];
    createInterface({ input: probe.stderr! }).on("line", (l) => probe!.log.push(l));
  }

  async function green(what: string): Promise<void> {
    await waitFor(`PHONE green ${what}`, 30_000, () => phone(lab()).state === "ok");
  }

  afterAll(async () => {
    if (probe && probe.exitCode === null) {
      probe.kill("SIGTERM");
      await exited(probe);
    }
  });

  it("healthy PBX: PHONE is green; OPTIONS answered, the account registers, and a test call has clean audio", async () => {
    start();
    await green("at start");
    const p = phone(lab());
    expect(p.last("pbx-options")).toMatchObject({ status: "ok", metrics: { status_code: 200 } });
    expect(p.last("pbx-register")).toMatchObject({ status: "ok", metrics: { status_code: 200 } });
    const call = p.last("pbx-call");
    expect(call).toMatchObject({ status: "ok", metrics: { loss_pct: 0 } });
    expect(call?.metrics.mos).toBeGreaterThan(4.2);
    expect(call?.metrics.sent).toBe(50);
  });

  it("pbx-down → PHONE red, code unreachable; back to green when kamailio is back", async () => {
    await lab().fault("pbx-down", true);
    await waitFor("PHONE red", 15_000, () => phone(lab()).state === "failing");
    expect(phone(lab()).last("pbx-options")?.error?.code).toBe("unreachable");
    await lab().fault("pbx-down", false);
    await green("after pbx-down");
  });

  it("sip-auth-fail → PHONE red, REGISTER code auth_failed; green once the password matches again", async () => {
    await lab().fault("sip-auth-fail", true);
    await waitFor("PHONE red with auth_failed", 15_000, () => {
      const p = phone(lab());
      return p.state === "failing" && p.last("pbx-register")?.error?.code === "auth_failed";
    });
    // OPTIONS needs no credentials: the PBX itself is still up.
    expect(phone(lab()).last("pbx-options")?.status).toBe("ok");
    await lab().fault("sip-auth-fail", false);
    await green("after sip-auth-fail");
  });

  it("rtp-loss 20 → PHONE red on the call's loss, measured near 20 %; green after", async () => {
    await lab().fault("rtp-loss", true, 20);
    await waitFor("PHONE red with a lossy call", 20_000, () => {
      const p = phone(lab());
      return p.state === "failing" && p.last("pbx-call")?.error?.code === "threshold";
    });
    const call = phone(lab()).last("pbx-call");
    // 50 packets at 20 %: a binomial spread of about ±6 points (2 σ).
    expect(call?.metrics.loss_pct).toBeGreaterThan(6);
    expect(call?.metrics.loss_pct).toBeLessThan(36);
    expect(call?.metrics.mos).toBeLessThan(3.6);
    await lab().fault("rtp-loss", false);
    await green("after rtp-loss");
  });

  it("rtp-jitter 25 → PHONE amber (degraded) on jitter, no loss; green after", async () => {
    await lab().fault("rtp-jitter", true, 25);
    await waitFor("PHONE degraded", 20_000, () => phone(lab()).state === "degraded");
    const call = phone(lab()).last("pbx-call");
    expect(call?.status).toBe("warn");
    expect(call?.metrics.loss_pct).toBe(0);
    expect(call?.metrics.jitter_ms).toBeGreaterThan(15);
    await lab().fault("rtp-jitter", false);
    await green("after rtp-jitter");
  });

  it("one-way-audio → PHONE red, code one_way_audio; green after", async () => {
    await lab().fault("one-way-audio", true);
    await waitFor("PHONE red with one_way_audio", 20_000, () => {
      const p = phone(lab());
      return p.state === "failing" && p.last("pbx-call")?.error?.code === "one_way_audio";
    });
    await lab().fault("one-way-audio", false);
    await green("after one-way-audio");
  });

  it("the SIP password never appears in the probe's log or its database (results, outbox)", () => {
    const db = probeDb(lab());
    const stored = [db, `${db}-wal`]
      .map((f) => (existsSync(f) ? readFileSync(f).toString("latin1") : ""))
      .join("");
    expect(stored).toContain("sip:office100@pbx.lab.example");
    expect(stored).not.toContain(PBX.password);
    expect(probe?.log.length).toBeGreaterThan(0);
    expect(probe?.log.join("\n")).not.toContain(PBX.password);
  });
});
