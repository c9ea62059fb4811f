// A service in miniature for crash-guard.test.ts: a real store, the real scheduler, the crash guard
// as `netprobe run` installs it, and one check whose socket callback throws long after its run
// started (the shape of the dgram connect bug). argv: database path, "exception" | "rejection".
import { Type } from "@sinclair/typebox";
import type { CheckKind } from "../../services/probe/src/checks/check.ts";
import { installCrashGuard } from "../../services/probe/src/crash-guard.ts";
import { createLogger, silentLogger } from "../../services/contract/src/log.ts";
import { Scheduler } from "../../services/probe/src/runner/scheduler.ts";
import { Store } from "../../services/probe/src/store/store.ts";

const [dbPath = "", how = "exception"] = process.argv.slice(2);
const store = new Store(dbPath, { maxRows: 1000, maxBytes: 10_000_000, reserveBytes: 0 });
store.open();
store.setState("before-crash", { ok: true });
installCrashGuard({
  log: createLogger("info"),
  close: () => {
    store.close();
    process.stdout.write("store closed\n");
  },
});

const buggy: CheckKind = {
  kind: "buggy",
  defaultArea: "wan",
  options: Type.Object({}),
  run: () =>
    new Promise(() => {
      // A callback two hops away from the run: a timer, then a tick, as socket callbacks come.
      setTimeout(() =>
        process.nextTick(() => {
          if (how === "rejection") void Promise.reject(new Error("a promise nobody awaited"));
          else throw new RangeError("Port should be > 0 and < 65536. Received function .");
        }),
      );
    }),
};
const quiet: CheckKind = {
  ...buggy,
  kind: "quiet",
  run: () => Promise.resolve({ status: "ok", metrics: {} }),
};
const scheduled = (name: string, kind: CheckKind) => ({
  name,
  kind,
  target: "192.0.2.53",
  area: "wan" as const,
  intervalMs: 60_000,
  timeoutMs: 5_000,
  jitter: 0,
  options: {},
});
new Scheduler(
  [scheduled("quiet-dns", quiet), scheduled("office-ntp", buggy)],
  { log: silentLogger() },
  () => undefined,
  silentLogger(),
).start();
setTimeout(() => process.stdout.write("still alive\n"), 3000);
