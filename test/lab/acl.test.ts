// The broker's security against the real mosquitto of the lab, running deploy/mosquitto/'s
// config: mutual TLS, a password per probe, and the ACL confining each probe to its own prefix.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { otherCaFile } from "../../scripts/lab/broker-tls.ts";
import { baseTopic } from "../../services/contract/src/payloads.ts";
import { useLab } from "./lab-fixture.ts";
import { PROBE_BASE, startClient } from "./mqtt-driver.ts";
import { exited, startProbe, waitFor } from "./probe-harness.ts";

const OTHER_BASE = baseTopic("lab", "probe-2");
const NOT_AUTHORIZED = 0x87;

describe("broker ACL and TLS", () => {
  const lab = useLab();

  it("a probe's credentials publish only into its own prefix, and never commands", async () => {
    const hq = startClient(lab(), "hq", "hq");
    await hq.connected();
    await hq.subscribe("netprobe/#");
    const p2 = startClient(lab(), "probe", "probe-2");
    await p2.connected();

    expect(await p2.publish(`${OTHER_BASE}events`, "mine")).toMatchObject({ ok: true });
    for (const topic of [
      `${PROBE_BASE}events`,
      `${PROBE_BASE}state`,
      `${PROBE_BASE}cmd/run`,
      `${OTHER_BASE}cmd/run`,
      "netprobe/v1/x",
    ]) {
      expect(await p2.publish(topic, "forged"), topic).toMatchObject({ ok: false, code: NOT_AUTHORIZED });
    }
    await waitFor("the allowed message at HQ", 5000, () => hq.on(`${OTHER_BASE}events`).length === 1);
    await new Promise((r) => setTimeout(r, 500));
    expect(hq.messages.filter((m) => m.payload === "forged")).toEqual([]);
    await p2.stop();
    await hq.stop();
  });

  it("a probe's credentials subscribe only to its own cmd/#", async () => {
    const p2 = startClient(lab(), "probe", "probe-2");
    await p2.connected();
    expect(await p2.subscribe(`${OTHER_BASE}cmd/#`)).toEqual([1]);
    // mosquitto 2.0 may grant a subscription the ACL does not allow and then filter every message
    // at delivery (read access is checked per message), so what counts is what arrives, below.
    for (const topic of [`${PROBE_BASE}cmd/#`, `${PROBE_BASE}#`, "netprobe/#"])
      expect([1, NOT_AUTHORIZED], topic).toContain((await p2.subscribe(topic))[0]);
    const hq = startClient(lab(), "hq", "hq");
    await hq.connected();
    expect(
      await hq.publish(
        `${PROBE_BASE}cmd/run`,
        JSON.stringify({ schema: 1, request_id: "acl-1", check: "x" }),
      ),
    ).toMatchObject({ ok: true });
    expect(await hq.publish(`${OTHER_BASE}cmd/run`, "for probe-2")).toMatchObject({ ok: true });
    // (one copy per matching subscription: its own cmd/# and netprobe/# both match)
    await waitFor("probe-2's own command", 5000, () => p2.on(`${OTHER_BASE}cmd/`).length >= 1);
    await new Promise((r) => setTimeout(r, 500));
    expect(new Set(p2.messages.map((m) => m.topic))).toEqual(new Set([`${OTHER_BASE}cmd/run`]));
    // HQ may command probes, but not speak for them.
    expect(await hq.publish(`${PROBE_BASE}state`, "forged")).toMatchObject({
      ok: false,
      code: NOT_AUTHORIZED,
    });
    await p2.stop();
    await hq.stop();
  });

  it("a command without HQ's credentials never reaches the probe; HQ's does", async () => {
    const probe = startProbe(lab());
    const hq = startClient(lab(), "hq", "hq");
    await hq.connected();
    await hq.subscribe(`${PROBE_BASE}#`);
    await waitFor("probe online", 15_000, () =>
      hq.on(`${PROBE_BASE}state`).some((m) => m.payload.includes('"online"')),
    );
    const cmd = (id: string) => JSON.stringify({ schema: 1, request_id: id, check: "gateway-icmp" });

    // Another probe's credentials, over TLS: refused by the ACL.
    const p2 = startClient(lab(), "probe", "probe-2");
    await p2.connected();
    expect(await p2.publish(`${PROBE_BASE}cmd/run`, cmd("from-probe-2"))).toMatchObject({
      ok: false,
      code: NOT_AUTHORIZED,
    });
    await p2.stop();
    // Anonymous, on the plain listener: connects (lab smoke tests use it) but may not touch netprobe/.
    const anon = startClient(lab(), "probe", null);
    await anon.connected();
    expect(await anon.publish(`${PROBE_BASE}cmd/run`, cmd("from-anonymous"))).toMatchObject({
      ok: false,
      code: NOT_AUTHORIZED,
    });
    await anon.stop();

    // HQ's certificate with a wrong password, and the right password without any certificate: refused at connect.
    const tlsDir = join(lab().info.dir, "tls");
    const hqCreds = JSON.parse(readFileSync(join(tlsDir, "hq.json"), "utf8")) as Record<string, string>;
    const bad = [
      { ...hqCreds, password: "guess" },
      { ...hqCreds, cert_file: "", key_file: "" },
    ];
    for (const [i, creds] of bad.entries()) {
      const file = join(tlsDir, `bad-${i}.json`);
      writeFileSync(file, JSON.stringify(creds));
      const c = startClient(lab(), "hq", { file });
      await expect(c.connected(), `attempt ${i}`).rejects.toThrow(
        /not authori[sz]ed|certificate|closed|handshake|socket/i,
      );
      await c.stop();
    }

    await new Promise((r) => setTimeout(r, 1000));
    expect(hq.on(`${PROBE_BASE}reply/`)).toEqual([]);
    expect(probe.log.filter((l) => l.includes('"part":"commands"'))).toEqual([]);

    // The same command from HQ is carried out: the probe was listening all along.
    const reply = await hq.command("run", { request_id: "from-hq", check: "gateway-icmp" });
    expect(reply).toMatchObject({ ok: true, result: { started: ["gateway-icmp"] } });

    probe.kill("SIGTERM");
    await exited(probe);
    await hq.stop();
  });

  it("CA pinning: a probe that trusts another CA refuses the broker and says why", async () => {
    const hq = startClient(lab(), "hq", "hq");
    await hq.connected();
    await hq.subscribe(`${PROBE_BASE}state`);
    const before = hq.messages.length;
    const probe = startProbe(lab(), { NETPROBE_BROKER_CA_FILE: otherCaFile(lab().info.dir) });
    await waitFor("a TLS error in the probe's log", 10_000, () =>
      probe.log.find(
        (l) => l.includes("broker connection error") && /certificate|self.signed|issuer/i.test(l),
      ),
    );
    expect(hq.messages.slice(before).filter((m) => m.payload.includes('"online"') && !m.retain)).toEqual([]);
    probe.kill("SIGTERM");
    await exited(probe);
    await hq.stop();
  });
});
