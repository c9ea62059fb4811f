// Fleet → HistoryIngest → SQLite: a message's ack is released only after its batch committed, a
// redelivery after a crash is stored once, and what Fleet drops is acked at once (nothing to keep).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { EXAMPLES } from "../../../../scripts/gen/mqtt-examples.ts";
import type { ResultPayload } from "../../../../services/contract/src/payloads.ts";
import { silentLogger } from "../../../../services/contract/src/log.ts";
import { Fleet } from "../../../../services/hq/src/fleet.ts";
import { HistoryIngest } from "../../../../services/hq/src/history/ingest.ts";
import { sqliteHistoryStore } from "../../../../services/hq/src/history/sqlite-store.ts";

const tmp = mkdtempSync(join(tmpdir(), "netprobe-ingest-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const RET = { raw_days: 30, rollup_days: 366, event_days: 366 };
const base = EXAMPLES.result[0] as ResultPayload;
const T = `netprobe/v1/${base.site}/${base.probe}/results/${base.check}`;
const msg = (i: number) =>
  JSON.stringify({
    ...base,
    id: `01ING${String(i).padStart(8, "0")}`,
    seq: i + 1,
    started_at: new Date().toISOString(),
  });

describe("history ingest", () => {
  it("acks after commit; a redelivery (HQ restarted before the ack) is stored once", async () => {
    const file = join(tmp, "a.db");
    const fleet = new Fleet();
    const ingest = new HistoryIngest(sqliteHistoryStore(file, RET), fleet, silentLogger(), { flushMs: 20 });
    await ingest.start();
    const acked: number[] = [];
    for (let i = 0; i < 50; i++)
      ingest.take(
        () => fleet.ingest(T, msg(i)),
        () => acked.push(i),
      );
    expect(acked).toEqual([]); // nothing committed yet
    await new Promise((r) => setTimeout(r, 200));
    expect(acked).toHaveLength(50);
    // Malformed: Fleet keeps nothing, the ack goes at once.
    let bad = false;
    ingest.take(
      () => fleet.ingest(T, "{"),
      () => (bad = true),
    );
    expect(bad).toBe(true);
    await ingest.stop();

    // A new HQ (new Fleet, so no in-memory dedup) gets the first 20 again plus 10 new ones.
    const fleet2 = new Fleet();
    const store2 = sqliteHistoryStore(file, RET);
    const again = new HistoryIngest(store2, fleet2, silentLogger(), { flushMs: 20 });
    await again.start();
    for (let i = 0; i < 60; i++)
      if (i < 20 || i >= 50)
        again.take(
          () => fleet2.ingest(T, msg(i)),
          () => undefined,
        );
    await new Promise((r) => setTimeout(r, 200));
    expect(again.counters).toMatchObject({ written: 10, duplicates: 20 });
    const s = await store2.stats();
    expect(s.results).toBe(60);
    await again.stop();
  });
});
