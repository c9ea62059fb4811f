// The HQ fleet page in a real browser: `netprobe hq serve` runs in the lab's hq namespace on its lab
// address, headless Chromium (Debian's, driven by playwright-core) runs in the same namespace
// (test/lab/hq-browser-driver.ts), the real probe runs in the probe namespace. What an operator
// at the wall screen would check: the probe's tile appears when it comes online, its WAN LED turns
// red after a WAN outage within 3 s of the health message reaching HQ, and the tile shows offline
// (from the MQTT will) once the probe is killed. HQ is hostile by default (docs/hq.md, "Access"):
// the browser first gets the login form and logs in with HQ's access token, as an operator would.
// Screenshots go to test-artifacts/.
import type { ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, describe, expect, it } from "vitest";
import { labCredentials } from "../../scripts/lab/broker-tls.ts";
import { ADDR } from "../../scripts/lab/lab.ts";
import { startBrowser } from "./hq-browser.ts";
import { useLab } from "./lab-fixture.ts";
import { exited, probeStatus, startHq, startProbe, waitFor } from "./probe-harness.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const CLI = join(ROOT, "services/probe/src/cli.ts");
const ARTIFACTS = join(ROOT, "test-artifacts");
const PORT = 8080;
const TILE = '.tile[data-probe="lab/probe-1"]';
const WAN = (colour: string) => `${TILE} .led[data-led="wan"][data-colour="${colour}"]`;

describe("HQ fleet page in headless Chromium", () => {
  const lab = useLab();
  const children: ChildProcess[] = [];
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGTERM");
    await Promise.all(children.map((c) => exited(c)));
  });

  it("tile appears online, WAN LED red within 3 s of the health message, offline from the will", async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    const c = labCredentials(lab().info.dir, "hq");
    const hqLog: string[] = [];
    // Secrets in a config file, not on the command line (`--password` is refused: it shows in ps).
    const tokenFile = join(lab().info.dir, "hq-token");
    const config = join(lab().info.dir, "hq-web.yaml");
    writeFileSync(
      config,
      JSON.stringify({
        broker: { url: c.url, username: c.username, password: c.password, ca_file: c.ca_file },
        auth: { token_file: tokenFile },
      }),
      { mode: 0o600 },
    );
    const brokerArgs = ["--config", config, "--cert", c.cert_file, "--key", c.key_file];
    const hq = lab().spawn(
      "hq",
      [process.execPath, CLI, "hq", "serve", ...brokerArgs, ...["--host", ADDR.hq4, "--port", String(PORT)]],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    children.push(hq);
    createInterface({ input: hq.stderr! }).on("line", (l) => hqLog.push(l));
    await waitFor(
      "HQ serving its page and connected",
      15_000,
      () =>
        hqLog.some((l) => l.includes("serving the fleet page")) &&
        hqLog.some((l) => l.includes("connected to the fleet broker")),
    );

    // A second HQ-side subscriber timestamps every message as it reaches HQ (same machine clock).
    const t0 = Date.now();
    const timer = startHq(lab(), "hq-web-timer", false);
    children.push(timer.child);
    await waitFor("timing subscriber connected", 10_000, () => timer.connected());

    const browser = startBrowser(lab(), (name) => join(ARTIFACTS, `hq-web-${name}.png`));
    children.push(browser.child);
    const ready = await browser.ready;
    expect(ready, `Chromium did not start: ${ready.error}`).toMatchObject({ ready: true });
    await browser.goto(`http://${ADDR.hq4}:${PORT}/`);
    // No session yet: the login form. The token HQ generated (mode 0600) logs in, user left empty.
    await browser.wait("form#login", 5000);
    await browser.fill("#password", readFileSync(tokenFile, "utf8").trim());
    await browser.click("#submit");
    await browser.wait("#no-probes:not([hidden])", 5000);
    expect(await browser.text("#who")).toBe("operator (operator)");

    // 1. The probe comes online → its tile appears, online; the areas get their verdicts.
    const probe = startProbe(lab());
    children.push(probe);
    await browser.wait(`${TILE}[data-state="online"]`, 30_000);
    await browser.wait(WAN("green"), 40_000);
    expect(await browser.text(`${TILE} [data-role="state"]`)).toBe("online");
    await browser.shot("1-online");
    // The terminal view sees the same fleet.
    const watch = await lab().exec(
      "hq",
      [process.execPath, CLI, "hq", "watch", ...brokerArgs, "--once", "2", "--json"],
      {
        timeoutMs: 20_000,
      },
    );
    expect(watch.code, watch.stderr).toBe(0);
    const watched = JSON.parse(watch.stdout) as Array<{
      key: string;
      state: string;
      leds: Array<{ led: string; look: string }>;
    }>;
    expect(watched.find((p) => p.key === "lab/probe-1")).toMatchObject({ state: "online" });

    // 2. WAN outage. HQ is behind the WAN in the lab, so the probe's health (WAN failing) is queued
    //    in its outbox and reaches HQ when the WAN is back; the page must show it within 3 s.
    await lab().fault("wan-down", true);
    await waitFor(
      "the probe's own WAN verdict: failing",
      60_000,
      () => probeStatus(lab()).health?.areas.wan?.state === "failing",
    );
    await lab().fault("wan-down", false);
    const redAt = await browser.wait(WAN("red"), 60_000);
    const health = timer
      .on("health")
      .find((m) => (m.payload.areas as Record<string, { state: string }>).wan?.state === "failing");
    expect(health, "HQ received no health message with WAN failing").toBeDefined();
    const healthAt = t0 + health!.at;
    const ms = redAt - healthAt;
    console.log(`WAN LED red on the page ${ms} ms after the health message reached HQ`);
    expect(ms).toBeLessThan(3000);
    await browser.shot("2-wan-red");

    // Drill-down: recent results with the latency/loss chart.
    await browser.click(TILE);
    await browser.wait(
      '#detail[data-probe="lab/probe-1"] .check[data-check="gateway-icmp"] svg.chart path',
      10_000,
    );
    await browser.shot("3-drilldown");

    // 3. The probe is killed: no clean offline, the broker publishes the will after 1.5 × keepalive (5 s).
    await browser.wait(`${TILE}[data-state="online"]`, 30_000);
    probe.kill("SIGKILL");
    const killedAt = Date.now();
    const offlineAt = await browser.wait(`${TILE}[data-state="offline"]`, 20_000);
    console.log(`tile offline ${offlineAt - killedAt} ms after SIGKILL (keepalive 5 s)`);
    expect(await browser.text(`${TILE} [data-role="state"]`)).toBe("offline");
    await browser.click("#detail a");
    await browser.shot("4-offline");

    // The page and HQ never crashed, and the service's counters made it to the page.
    expect(hq.exitCode).toBeNull();
    expect(await browser.text("#counters")).toMatch(/\d+ results · \d+ duplicates · 0 malformed · 0 dropped/);
  });
});
