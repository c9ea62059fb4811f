// The shipped broker config (deploy/mosquitto/netprobe.conf, which the lab broker runs) bounds
// message size: a compromised HQ client's 32 MiB publish is no longer accepted and fanned out to
// a probe, while the largest legitimate payloads (well under 1 MiB) still pass.
import { describe, expect, it } from "vitest";
import { useLab } from "./lab-fixture.ts";
import { PROBE_BASE, startClient } from "./mqtt-driver.ts";
import { waitFor } from "./probe-harness.ts";

describe("broker message size limit", () => {
  const lab = useLab();

  it("an oversize publish is refused and never delivered; a 900 KiB one is", async () => {
    const probe = startClient(lab(), "probe", "probe-1");
    await probe.connected();
    expect(await probe.subscribe(`${PROBE_BASE}cmd/#`)).toEqual([1]);

    const hq = startClient(lab(), "hq", "hq");
    await hq.connected();
    const fits = Buffer.alloc(900 * 1024, 0x61);
    expect(await hq.publish(`${PROBE_BASE}cmd/fits`, fits)).toMatchObject({ ok: true });
    await waitFor("the 900 KiB command at the probe", 10_000, () => probe.on(`${PROBE_BASE}cmd/fits`)[0]);

    for (const [name, size] of [
      ["over-limit", 1024 * 1024 + 100], // over message_size_limit, under max_packet_size
      ["huge", 32 * 1024 * 1024], // the adversarial review's 32 MiB
    ] as const) {
      const sender = startClient(lab(), "hq", "hq");
      await sender.connected();
      const id = sender.publishAsync(`${PROBE_BASE}cmd/${name}`, Buffer.alloc(size, 0x62));
      const outcome = await waitFor(`the broker's answer to ${size} bytes`, 60_000, () => {
        const ack = sender.ackCount() > 0;
        const closed = sender.events.find((e) => e.event === "closed" || e.event === "error");
        return closed ? `closed (${String(closed.event)})` : ack ? "acked" : undefined;
      });
      const ack = outcome === "acked" ? await sender.acked(id) : undefined;
      console.log(`${name} (${size} bytes): ${ack ? `PUBACK ok=${ack.ok} code=${ack.code}` : outcome}`);
      if (ack) expect(ack.ok).toBe(false);
      await new Promise((r) => setTimeout(r, 1000));
      expect(probe.on(`${PROBE_BASE}cmd/${name}`)).toEqual([]);
      await sender.stop();
    }
    await hq.stop();
    await probe.stop();
  });
});
