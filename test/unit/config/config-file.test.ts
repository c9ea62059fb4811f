// config/config-file.ts on real files in a temp dir, with a clock and timers the test drives:
// atomic write with last-known-good and pending state, confirm, rollback, and recovery at start.
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { documentHash } from "../../../services/contract/src/config-document.ts";
import { ConfigFile, type ConfigFileTimers } from "../../../services/probe/src/config/config-file.ts";

const YAML = [
  "# the site's own file, comments and all",
  "site: lab",
  "probe: probe-1",
  "broker:",
  "  url: mqtts://203.0.113.50:8883",
  "checks:",
  "  - { name: gateway-icmp, kind: icmp, target: 192.0.2.1, area: lan }",
  "",
].join("\n");
const YAML_DOC = {
  site: "lab",
  probe: "probe-1",
  broker: { url: "mqtts://203.0.113.50:8883" },
  checks: [{ name: "gateway-icmp", kind: "icmp", target: "192.0.2.1", area: "lan" }],
};
const NEW_DOC = { ...YAML_DOC, checks: [{ ...YAML_DOC.checks[0], interval: "10s" }] };
const T0 = Date.parse("2025-03-14T09:00:00Z");

/** A clock and a timer queue the test advances by hand. */
function manualTimers() {
  let now = T0;
  const timers: Array<{ at: number; fn: () => void; id: number }> = [];
  let nextId = 1;
  const t: ConfigFileTimers = {
    now: () => now,
    setTimeout: (fn, ms) => {
      const id = nextId++;
      timers.push({ at: now + ms, fn, id });
      return id;
    },
    clearTimeout: (id) => {
      const i = timers.findIndex((x) => x.id === id);
      if (i >= 0) timers.splice(i, 1);
    },
  };
  const advance = (ms: number) => {
    now += ms;
    for (const due of timers.filter((x) => x.at <= now)) {
      timers.splice(timers.indexOf(due), 1);
      due.fn();
    }
  };
  return { t, advance, pendingTimers: () => timers.length, now: () => now };
}

let dir: string;
let path: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "np-config-file-"));
  path = join(dir, "netprobe.yaml");
  writeFileSync(path, YAML);
  chmodSync(path, 0o640);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("ConfigFile: read", () => {
  it("reads the file like `netprobe config validate`, with the hash of its document before defaults and environment", () => {
    const f = new ConfigFile(path, { NETPROBE_BROKER_URL: "mqtts://198.51.100.7:8883" });
    const r = f.read();
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.config.broker.url).toBe("mqtts://198.51.100.7:8883"); // the override applies…
    expect(r.documentHash).toBe(documentHash(YAML_DOC)); // …but the document is the file's
  });

  it("an invalid file names every problem with its path", () => {
    writeFileSync(path, YAML.replace("area: lan", "area: moon") + "leds: { color: red }\n");
    const r = new ConfigFile(path, {}).read();
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^checks\[0\]\.area: /),
        expect.stringMatching(/^leds\.color: /),
      ]),
    );
  });
});

describe("ConfigFile: write, confirm, roll back", () => {
  it("write keeps the old file byte for byte as last-good, records pending, and writes JSON that reads back as the document", () => {
    const m = manualTimers();
    const f = new ConfigFile(path, {}, m.t);
    const pending = f.write(NEW_DOC, documentHash(NEW_DOC), documentHash(YAML_DOC), T0 + 60_000);
    expect(pending).toEqual({
      document_hash: documentHash(NEW_DOC),
      previous_document_hash: documentHash(YAML_DOC),
      confirm_by: "2025-03-14T09:01:00.000Z",
    });
    expect(readFileSync(f.lastGoodPath, "utf8")).toBe(YAML);
    expect(statSync(f.lastGoodPath).mode & 0o777).toBe(0o640);
    expect(statSync(path).mode & 0o777).toBe(0o640); // the original mode, not the umask's
    expect(JSON.parse(readFileSync(f.pendingPath, "utf8"))).toEqual(pending);
    const r = f.read();
    expect(r.ok && r.documentHash).toBe(documentHash(NEW_DOC));
    // No temp file left behind.
    expect(readdirSync(dir).sort()).toEqual([
      "netprobe.yaml",
      "netprobe.yaml.last-good",
      "netprobe.yaml.pending.json",
    ]);
  });

  it("the confirm window runs out: arm calls back at confirm_by, not before", () => {
    const m = manualTimers();
    const f = new ConfigFile(path, {}, m.t);
    f.write(NEW_DOC, documentHash(NEW_DOC), documentHash(YAML_DOC), T0 + 60_000);
    let expired = 0;
    f.arm(() => (expired += 1));
    m.advance(59_999);
    expect(expired).toBe(0);
    m.advance(1);
    expect(expired).toBe(1);
  });

  it("rollBack puts last-good back byte for byte, drops pending, and reports what was given up", () => {
    const m = manualTimers();
    const f = new ConfigFile(path, {}, m.t);
    f.write(NEW_DOC, documentHash(NEW_DOC), documentHash(YAML_DOC), T0 + 60_000);
    f.arm(() => undefined);
    m.advance(5000);
    const rolled = f.rollBack(documentHash(NEW_DOC), "not_confirmed");
    expect(rolled).toEqual({
      document_hash: documentHash(NEW_DOC),
      at: "2025-03-14T09:00:05.000Z",
      reason: "not_confirmed",
    });
    expect(readFileSync(path, "utf8")).toBe(YAML);
    expect(statSync(path).mode & 0o777).toBe(0o640);
    expect(existsSync(f.pendingPath)).toBe(false);
    expect(f.pending()).toBeUndefined();
    expect(f.rolledBack()).toEqual(rolled);
    expect(m.pendingTimers()).toBe(0); // the window's timer is gone with it
    expect(f.rollBack("x", "command")).toBeUndefined(); // nothing left to go back to
  });

  it("confirm of the pending hash keeps the new file and ends the window; another hash confirms nothing", () => {
    const m = manualTimers();
    const f = new ConfigFile(path, {}, m.t);
    f.write(NEW_DOC, documentHash(NEW_DOC), documentHash(YAML_DOC), T0 + 60_000);
    let expired = 0;
    f.arm(() => (expired += 1));
    expect(f.confirm(documentHash(YAML_DOC))).toBe(false);
    expect(f.pending()).toBeDefined();
    expect(f.confirm(documentHash(NEW_DOC))).toBe(true);
    expect(existsSync(f.pendingPath)).toBe(false);
    m.advance(120_000);
    expect(expired).toBe(0);
    expect(f.read().ok && (f.read() as { documentHash: string }).documentHash).toBe(documentHash(NEW_DOC));
    expect(f.confirm(documentHash(NEW_DOC))).toBe(false); // nothing pending any more
  });

  it("a second apply while one is pending keeps the confirmed file as last-good, not the unconfirmed one", () => {
    const f = new ConfigFile(path, {}, manualTimers().t);
    f.write(NEW_DOC, documentHash(NEW_DOC), documentHash(YAML_DOC), T0 + 60_000);
    const third = { ...NEW_DOC, probe: "probe-1", log_level: "debug" };
    const p = f.write(third, documentHash(third), documentHash(NEW_DOC), T0 + 90_000);
    expect(p.previous_document_hash).toBe(documentHash(YAML_DOC));
    expect(readFileSync(f.lastGoodPath, "utf8")).toBe(YAML);
    f.rollBack(documentHash(third), "command");
    expect(readFileSync(path, "utf8")).toBe(YAML);
  });

  it("a write that fails leaves the config file as it was and no pending state", () => {
    const f = new ConfigFile(path, {}, manualTimers().t);
    // JSON.stringify throws on a BigInt: the failure comes after last-good and the pending state were written.
    const unwritable = { ...NEW_DOC, big: 1n } as unknown as Record<string, unknown>;
    expect(() => f.write(unwritable, "a".repeat(64), documentHash(YAML_DOC), T0 + 60_000)).toThrow();
    expect(readFileSync(path, "utf8")).toBe(YAML);
    expect(existsSync(f.pendingPath)).toBe(false);
    expect(f.pending()).toBeUndefined();
    expect(readdirSync(dir).filter((n) => n.endsWith(".tmp"))).toEqual([]);
  });
});

describe("ConfigFile: recovery at start (a crash, kill -9 or reboot inside the window)", () => {
  function applyThenCrash(confirmBy: number) {
    const f = new ConfigFile(path, {}, manualTimers().t);
    f.write(NEW_DOC, documentHash(NEW_DOC), documentHash(YAML_DOC), confirmBy);
    // The process dies here: nothing in memory survives, only the files.
  }

  it("nothing pending: nothing to do", () => {
    expect(new ConfigFile(path, {}).recover()).toEqual({ kind: "none" });
  });

  it("the window passed while the probe was down: rolled back now, before the config is read", () => {
    applyThenCrash(T0 + 60_000);
    const m = manualTimers();
    m.advance(61_000);
    const f = new ConfigFile(path, {}, m.t);
    const r = f.recover();
    expect(r).toEqual({
      kind: "rolled_back",
      rolledBack: {
        document_hash: documentHash(NEW_DOC),
        at: "2025-03-14T09:01:01.000Z",
        reason: "not_confirmed",
      },
    });
    expect(readFileSync(path, "utf8")).toBe(YAML);
    expect(existsSync(f.pendingPath)).toBe(false);
    expect(f.rolledBack()?.reason).toBe("not_confirmed");
  });

  it("still inside the window: stays pending, and arm waits only for what is left", () => {
    applyThenCrash(T0 + 60_000);
    const m = manualTimers();
    m.advance(45_000);
    const f = new ConfigFile(path, {}, m.t);
    const r = f.recover();
    expect(r).toMatchObject({ kind: "waiting", remainingMs: 15_000 });
    expect(f.pending()?.document_hash).toBe(documentHash(NEW_DOC));
    let expired = 0;
    f.arm(() => (expired += 1));
    m.advance(14_999);
    expect(expired).toBe(0);
    m.advance(1);
    expect(expired).toBe(1);
  });

  it("a crash halfway through a rollback (file back, pending state not yet removed): just the pending state goes", () => {
    applyThenCrash(T0 + 60_000);
    const f0 = new ConfigFile(path, {});
    // What the rename in rollBack does, without the rest.
    writeFileSync(path, readFileSync(f0.lastGoodPath));
    rmSync(f0.lastGoodPath);
    const m = manualTimers();
    m.advance(120_000);
    const f = new ConfigFile(path, {}, m.t);
    expect(f.recover()).toEqual({ kind: "none" });
    expect(existsSync(f.pendingPath)).toBe(false);
    expect(readFileSync(path, "utf8")).toBe(YAML);
  });

  it("the same crash inside the window: no pending state is resumed that no timer could act on", () => {
    applyThenCrash(T0 + 60_000);
    const f0 = new ConfigFile(path, {});
    writeFileSync(path, readFileSync(f0.lastGoodPath));
    rmSync(f0.lastGoodPath);
    const f = new ConfigFile(path, {}, manualTimers().t);
    expect(f.recover()).toEqual({ kind: "none" });
    expect(f.pending()).toBeUndefined();
    expect(existsSync(f.pendingPath)).toBe(false);
  });

  it("an unreadable pending state goes back to last-known-good: the safe side", () => {
    applyThenCrash(T0 + 600_000);
    const f = new ConfigFile(path, {}, manualTimers().t);
    writeFileSync(f.pendingPath, "{ torn wri");
    const r = f.recover();
    expect(r.kind).toBe("rolled_back");
    expect(readFileSync(path, "utf8")).toBe(YAML);
    expect(existsSync(f.pendingPath)).toBe(false);
  });
});
