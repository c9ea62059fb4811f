// Alerts end to end with the real servers (docs/alerting.md): the real probe in the lab's probe
// namespace, `netprobe hq serve` in the hq namespace with its own webhook, and Debian's prometheus
// (the shipped rules, scraping HQ's /metrics with a bearer token) and prometheus-alertmanager (the
// shipped config, its timings shortened and its receiver pointed at the lab) beside it. One webhook
// receiver in the hq namespace takes both paths (/hq and /am) and timestamps every POST. What an
// on-call person would check, counted exactly on both paths:
//   pull the probe's cable → one "link down" naming the site with the dependent areas inside, plug
//   it back → one resolved; broker down → one "probe unreachable" after the configured delay, not
//   area alerts; a DNS-only fault → one DNS notification, one resolved.
// The probe's only path to HQ is that cable: HQ learns of the link failure from the outbox replayed
// once it is back (docs/alerting.md, "What HQ can know"), so the notification follows the plug-in.
import type { ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  HQ_ADDR,
  LAB_AREAS,
  LAB_PROBE,
  startAlertRig,
  waitForAsync,
  type AlertRig,
} from "../../scripts/bench/alert-latency.ts";
import type { FaultName } from "../../scripts/lab/lab.ts";
import { useLab } from "./lab-fixture.ts";
import { exited, startProbe, waitFor } from "./probe-harness.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
/** HQ's delay before a probe it cannot hear is an incident (alerts.unreachable_after_s). */
const UNREACHABLE_AFTER_S = 25;

interface HqHit {
  status: string;
  incident: {
    kind: string;
    title: string;
    site: string;
    dependent_areas: string[];
    evidence: { code: string | null }[];
  };
}
interface AmAlert {
  status: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

describe("alerts through Prometheus + Alertmanager and through HQ's webhook", () => {
  const lab = useLab();
  const children: ChildProcess[] = [];
  let rig: AlertRig | undefined;
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGTERM");
    await Promise.all(children.map((c) => exited(c)));
    await rig?.stop();
  });

  it("cable, broker and DNS faults: one notification per incident and one resolve, on both paths", async () => {
    rig = await startAlertRig(lab(), {
      unreachableAfterS: UNREACHABLE_AFTER_S,
      settleS: 2,
      resolveAfterS: 3,
    });
    const { hits, curl, metric } = rig;
    // /metrics needs a token: none, 401 (Prometheus scrapes with its viewer token: the rig waited for up == 1).
    expect(await curl(`http://${HQ_ADDR}/metrics`, false)).toContain("authentication required");

    // The probe, until every area is ok at HQ.
    const probe = startProbe(lab());
    children.push(probe);
    const site = LAB_PROBE;
    for (const area of LAB_AREAS)
      await waitForAsync(`${area} ok at HQ`, 90_000, () =>
        metric(`netprobe_area_state{${site},area="${area}",state="ok"} 1`),
      );
    expect(hits, "no notification before any fault").toEqual([]);

    const hq = (from: number) =>
      hits.filter((h) => h.path === "/hq" && h.at >= from).map((h) => h.body as unknown as HqHit);
    const am = (from: number) =>
      hits
        .filter((h) => h.path === "/am" && h.at >= from)
        .map((h) => ({ at: h.at, ...(h.body as { status: string; alerts: AmAlert[] }) }));
    const settled = async (from: number, what: string) => {
      await waitFor(
        `${what}: resolved on both paths`,
        90_000,
        () => hq(from).some((n) => n.status === "resolved") && am(from).some((n) => n.status === "resolved"),
      );
      // Anything late (a repeat, a second alert) would arrive within a few group intervals.
      await new Promise((r) => setTimeout(r, 5000));
    };
    const fault = (name: FaultName, on: boolean) => lab().fault(name, on);

    // 1. The cable, out for 15 s (dependants fail meanwhile; shorter than the unreachable delay).
    let t0 = Date.now();
    await fault("link-down", true);
    await new Promise((r) => setTimeout(r, 15_000));
    await fault("link-down", false);
    await settled(t0, "link down");
    let h = hq(t0);
    expect(h.map((n) => `${n.incident.kind}:${n.status}`)).toEqual([
      "link_down:firing",
      "link_down:resolved",
    ]);
    expect(h[0]!.incident.site).toBe("lab");
    expect(h[0]!.incident.title).toContain("lab: link down");
    expect(h[0]!.incident.dependent_areas).toEqual(expect.arrayContaining(["lan", "dhcp", "dns", "wan"]));
    let a = am(t0);
    expect(a.map((n) => n.status)).toEqual(["firing", "resolved"]);
    expect(a[0]!.alerts).toHaveLength(1);
    expect(a[0]!.alerts[0]!.labels).toMatchObject({ site: "lab", kind: "link_down", area: "link" });
    expect(a[0]!.alerts[0]!.annotations.summary).toBe("lab: link down (probe-1)");
    for (const dep of ["lan", "dhcp", "dns", "wan"])
      expect(a[0]!.alerts[0]!.annotations.dependent_areas).toContain(dep);
    for (const area of LAB_AREAS)
      await waitForAsync(`${area} ok again`, 60_000, () =>
        metric(`netprobe_area_state{${site},area="${area}",state="ok"} 1`),
      );

    // 2. The broker down: "probe unreachable" after the delay, and nothing about areas.
    t0 = Date.now();
    await fault("broker-down", true);
    await waitFor("probe unreachable at the webhook", (UNREACHABLE_AFTER_S + 20) * 1000, () =>
      hq(t0).some((n) => n.status === "firing"),
    );
    const unreachableAt = hits.find((x) => x.path === "/hq" && x.at >= t0)!.at;
    expect(unreachableAt - t0).toBeGreaterThanOrEqual(UNREACHABLE_AFTER_S * 1000);
    await waitFor("probe unreachable through Alertmanager", 30_000, () => am(t0).length > 0);
    await fault("broker-down", false);
    await settled(t0, "probe unreachable");
    h = hq(t0);
    expect(h.map((n) => `${n.incident.kind}:${n.status}`)).toEqual([
      "probe_unreachable:firing",
      "probe_unreachable:resolved",
    ]);
    expect(h[0]!.incident.title).toBe("lab: probe unreachable (probe-1)");
    a = am(t0);
    expect(a.map((n) => `${n.alerts.map((x) => x.labels.kind).join()}:${n.status}`)).toEqual([
      "probe_unreachable:firing",
      "probe_unreachable:resolved",
    ]);

    // 3. DNS only: one DNS incident (a WAN check that resolves names may be inside it).
    await waitForAsync("dns ok before the DNS fault", 60_000, () =>
      metric(`netprobe_area_state{${site},area="dns",state="ok"} 1`),
    );
    t0 = Date.now();
    await fault("dns-down", true);
    await waitFor("DNS notification on both paths", 60_000, () => hq(t0).length > 0 && am(t0).length > 0);
    const latency = { hq: hits.find((x) => x.path === "/hq" && x.at >= t0)!.at - t0, am: am(t0)[0]!.at - t0 };
    await new Promise((r) => setTimeout(r, 3000));
    await fault("dns-down", false);
    await settled(t0, "DNS");
    h = hq(t0);
    expect(h.map((n) => `${n.incident.kind}:${n.status}`)).toEqual([
      "dns_failing:firing",
      "dns_failing:resolved",
    ]);
    expect(h[0]!.incident.evidence[0]!.code).not.toBeNull();
    a = am(t0);
    expect(a.map((n) => `${n.alerts.map((x) => x.labels.kind).join()}:${n.status}`)).toEqual([
      "dns_failing:firing",
      "dns_failing:resolved",
    ]);
    console.log(
      `alert latency dns-down → webhook: HQ ${latency.hq} ms, Prometheus+Alertmanager ${latency.am} ms`,
    );
    mkdirSync(join(ROOT, "test-artifacts"), { recursive: true });
    writeFileSync(join(ROOT, "test-artifacts/alert-latency.json"), `${JSON.stringify(latency)}\n`);
  }, 600_000);
});
