// Central configuration from HQ, probe side, end to end: HQ (hq namespace, TLS, HQ's credentials)
// sends cmd/apply_config through the real mosquitto to the real probe (`netprobe run`), which
// writes its config file, reports the document hash in the retained `config`, and rolls back by
// itself when HQ does not confirm — also when the new config cut it off, and across a kill -9.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { labCredentials } from "../../scripts/lab/broker-tls.ts";
import { newLabName } from "../../scripts/lab/lab.ts";
import { documentHash } from "../../services/contract/src/config-document.ts";
import type { ConfigPayload, ResultPayload } from "../../services/contract/src/payloads.ts";
import { useLab } from "./lab-fixture.ts";
import { PROBE_BASE, startClient } from "./mqtt-driver.ts";
import { exited, startProbe, waitFor } from "./probe-harness.ts";

type Client = Awaited<ReturnType<typeof startClient>>;

describe("apply_config, confirm_config and rollback through the real broker", () => {
  const lab = useLab({ name: newLabName("cfgp") });
  let probe: ReturnType<typeof startProbe>;
  let hq: Client;
  let configFile: string;
  let original: string;
  let originalHash: string;

  /** The document the probe starts from: the broker settings in the file itself, so a document can change them. */
  const baseDocument = (): Record<string, unknown> => {
    const c = labCredentials(lab().info.dir, "probe-1");
    return {
      site: "lab",
      probe: "probe-1",
      broker: {
        url: c.url,
        username: c.username,
        password: c.password,
        ca_file: c.ca_file,
        cert_file: c.cert_file,
        key_file: c.key_file,
        keepalive: "3s",
        reconnect_min: "300ms",
        reconnect_max: "1s",
      },
      areas: { fail_after: 2, recover_after: 2 },
      leds: { backend: "none" },
      defaults: { interval: "1s", timeout: "1s" },
      checks: [
        {
          name: "gateway-icmp",
          kind: "icmp",
          target: "192.0.2.1",
          area: "lan",
          options: { count: 2, interval_ms: 20, wait_ms: 300 },
        },
      ],
    };
  };
  /** No NETPROBE_BROKER_* from the harness: the file's own broker settings count (empty = unset). */
  const fileOnly = {
    NETPROBE_BROKER_URL: "",
    NETPROBE_BROKER_USERNAME: "",
    NETPROBE_BROKER_PASSWORD: "",
    NETPROBE_BROKER_CA_FILE: "",
    NETPROBE_BROKER_CERT_FILE: "",
    NETPROBE_BROKER_KEY_FILE: "",
  };

  const configs = () => hq.on(`${PROBE_BASE}config`).map((m) => JSON.parse(m.payload) as ConfigPayload);
  const results = () =>
    hq.on(`${PROBE_BASE}results/gateway-icmp`).map((m) => JSON.parse(m.payload) as ResultPayload);
  let n = 0;
  const apply = (document: Record<string, unknown>, confirmS?: number) =>
    hq.command("apply_config", {
      request_id: `apply-${++n}`,
      document,
      document_hash: documentHash(document),
      ...(confirmS ? { confirm_s: confirmS } : {}),
    });

  it("the probe reports the document hash of its config file in the retained config", async () => {
    configFile = join(lab().info.dir, "config-apply-probe.yaml");
    // A hand-written YAML file: comments and layout must come back byte for byte after a rollback.
    const doc = baseDocument();
    original = `# the site's own file\n${stringify(doc)}`;
    writeFileSync(configFile, original, { mode: 0o640 });
    originalHash = documentHash(doc);
    hq = startClient(lab(), "hq", "hq");
    await hq.connected();
    expect(await hq.subscribe(`${PROBE_BASE}#`)).toEqual([1]);
    probe = startProbe(lab(), fileOnly, configFile);
    const first = await waitFor("retained config", 15_000, () => configs()[0]);
    expect(first.document_hash).toBe(originalHash);
    expect(first.pending).toBeUndefined();
    await waitFor("a result with the config's hash", 10_000, () =>
      results().some((r) => r.config_hash === first.config_hash),
    );
  });

  it("(a) a valid changed document: applied, pending in the retained config; confirmed, results carry its hash", async () => {
    const before = configs().at(-1)!;
    const next = { ...baseDocument(), defaults: { interval: "2s", timeout: "1s" } };
    const seen = configs().length;
    const reply = await apply(next, 60);
    expect(reply).toMatchObject({
      ok: true,
      // defaults reach the checks: both sections changed.
      result: { document_hash: documentHash(next), changed: ["defaults", "checks"] },
    });
    const result = reply.result as { config_hash: string; confirm_by: string };
    expect(result.config_hash).not.toBe(before.config_hash);
    const pending = await waitFor("the pending retained config", 5000, () =>
      configs()
        .slice(seen)
        .find((c) => c.pending),
    );
    expect(pending).toMatchObject({
      config_hash: result.config_hash,
      document_hash: documentHash(next),
      pending: {
        document_hash: documentHash(next),
        previous_document_hash: originalHash,
        confirm_by: result.confirm_by,
      },
    });
    expect(JSON.parse(readFileSync(configFile, "utf8"))).toEqual(next);

    const confirmed = await hq.command("confirm_config", {
      request_id: "confirm-a",
      document_hash: documentHash(next),
    });
    expect(confirmed).toMatchObject({
      ok: true,
      result: { document_hash: documentHash(next), confirmed: true },
    });
    const settled = await waitFor("the retained config without pending", 5000, () => {
      const c = configs().at(-1)!;
      return c.pending === undefined && c.document_hash === documentHash(next) ? c : undefined;
    });
    expect(settled.config_hash).toBe(result.config_hash);
    await waitFor("results under the new config_hash", 10_000, () =>
      results().some((r) => r.config_hash === result.config_hash),
    );
    // Confirming again: nothing is pending any more.
    const again = await hq.command("confirm_config", {
      request_id: "confirm-a2",
      document_hash: documentHash(next),
    });
    expect(again.error?.code).toBe("not_pending");
    // Back to the site's own file for the rest, so that rollbacks must restore its very bytes.
    writeFileSync(configFile, original);
    const reload = await hq.command("reload", { request_id: "reload-a" });
    expect(reload.ok).toBe(true);
  });

  it("(b) an invalid document: config_invalid naming each path; file byte-identical, the old config runs on", async () => {
    const running = configs().at(-1)!;
    const bad = {
      ...baseDocument(),
      defaults: { interval: "0s", timeout: "1s" },
      leds: { backend: "none", color: "red" },
    };
    const reply = await apply(bad);
    expect(reply).toMatchObject({ ok: false, error: { code: "config_invalid" } });
    expect(reply.error?.problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^defaults\.interval: /),
        expect.stringMatching(/^leds\.color: /),
      ]),
    );
    expect(readFileSync(configFile, "utf8")).toBe(original);
    const config = await hq.command("config", { request_id: "config-b" });
    expect((config.result as { config_hash: string }).config_hash).toBe(running.config_hash);
    const count = results().length;
    await waitFor("results still flowing", 6000, () => results().length >= count + 2);
    expect(results().at(-1)!.config_hash).toBe(running.config_hash);
  });

  it("(c) a document that cuts the probe off (wrong broker port): not confirmed, it rolls back by itself and reconnects", async () => {
    const running = configs().at(-1)!;
    const doc = baseDocument();
    const broker = doc.broker as Record<string, unknown>;
    const cutOff = { ...doc, broker: { ...broker, url: String(broker.url).replace(/:\d+$/, ":8884") } };
    const seen = configs().length;
    const t0 = Date.now();
    const reply = await apply(cutOff, 10);
    expect(reply).toMatchObject({ ok: true, result: { changed: ["broker"] } });
    // Really cut off: nothing reaches HQ while the probe tries the wrong port.
    const online = () => hq.on(`${PROBE_BASE}state`).filter((m) => m.payload.includes('"online"')).length;
    const onlineBefore = online();
    await new Promise((r) => setTimeout(r, 3000));
    const during = results().length;
    await new Promise((r) => setTimeout(r, 3000));
    expect(results().length).toBe(during);
    expect(online()).toBe(onlineBefore);
    const rolled = await waitFor("the retained config after the rollback", 25_000, () =>
      configs()
        .slice(seen)
        .find((c) => c.rolled_back),
    );
    const ms = Date.now() - t0;
    expect(rolled).toMatchObject({
      document_hash: originalHash,
      config_hash: running.config_hash,
      rolled_back: { document_hash: documentHash(cutOff), reason: "not_confirmed" },
    });
    expect(rolled.pending).toBeUndefined();
    expect(ms).toBeGreaterThanOrEqual(9_000);
    expect(readFileSync(configFile, "utf8")).toBe(original);
    expect(probe.log.some((l) => l.includes("not confirmed by HQ in time"))).toBe(true);
    expect(online()).toBe(onlineBefore + 1); // reconnected with the old settings
    // What was measured while cut off waited in the outbox: no seq is missing.
    await waitFor("results flowing again", 10_000, () => results().length > during + 3);
    const seqs = [...new Set(results().map((r) => r.seq))].sort((a, b) => a - b);
    expect(seqs.at(-1)! - seqs[0]! + 1).toBe(seqs.length);
    console.log(`netprobe lab: cut-off config rolled back and reconnected after ${ms} ms (confirm_s 10)`);
  });

  it("(d) kill -9 inside the window: the restarted probe still has it pending and rolls back when the window ends", async () => {
    const next = { ...baseDocument(), defaults: { interval: "3s", timeout: "1s" } };
    const reply = await apply(next, 10);
    expect(reply.ok).toBe(true);
    const confirmBy = (reply.result as { confirm_by: string }).confirm_by;
    probe.kill("SIGKILL");
    await exited(probe);
    expect(JSON.parse(readFileSync(configFile, "utf8"))).toEqual(next);
    const seen = configs().length;
    probe = startProbe(lab(), fileOnly, configFile);
    const resumed = await waitFor("the restarted probe's retained config", 15_000, () => configs()[seen]);
    expect(resumed).toMatchObject({ document_hash: documentHash(next), pending: { confirm_by: confirmBy } });
    const rolled = await waitFor("the rollback after the restart", 20_000, () =>
      configs()
        .slice(seen)
        .find((c) => c.rolled_back),
    );
    expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(confirmBy));
    expect(rolled).toMatchObject({
      document_hash: originalHash,
      rolled_back: { document_hash: documentHash(next), reason: "not_confirmed" },
    });
    expect(readFileSync(configFile, "utf8")).toBe(original);
  });

  it("(e) kill -9, and the window ends while the probe is down: it rolls back at start, before reading the file", async () => {
    const next = { ...baseDocument(), defaults: { interval: "4s", timeout: "1s" } };
    const reply = await apply(next, 10);
    expect(reply.ok).toBe(true);
    const confirmBy = Date.parse((reply.result as { confirm_by: string }).confirm_by);
    probe.kill("SIGKILL");
    await exited(probe);
    await waitFor("the window to end", 15_000, () => Date.now() > confirmBy + 200);
    const seen = configs().length;
    probe = startProbe(lab(), fileOnly, configFile);
    const first = await waitFor("the restarted probe's retained config", 15_000, () => configs()[seen]);
    // Its very first config already runs the old file and says why.
    expect(first).toMatchObject({
      document_hash: originalHash,
      rolled_back: { document_hash: documentHash(next), reason: "not_confirmed" },
    });
    expect(first.pending).toBeUndefined();
    expect(readFileSync(configFile, "utf8")).toBe(original);
    expect(probe.log.some((l) => l.includes("was not confirmed before the probe stopped"))).toBe(true);
    probe.kill("SIGTERM");
    expect((await exited(probe)).code).toBe(0);
    await hq.stop();
  });
});
