import { afterAll, beforeAll } from "vitest";
import { labDown, labDownAll, labDownSync, labUp, newLabName } from "../../scripts/lab/lab.ts";
import type { Lab, LabUpOptions } from "../../scripts/lab/lab.ts";

// One lab per test file, removed by afterAll; also by the worker's exit and signal hooks when a run
// is interrupted before afterAll. Those hooks alone are not enough: on Ctrl-C vitest's watchdog
// SIGKILLs the workers as soon as the main process is gone, cutting a teardown off halfway. So the
// lab is `ephemeral`: a detached guardian (scripts/lab/guardian.ts) removes it once this worker is
// gone, however it went. Labs whose guardian was killed too are removed by the next run's
// beforeAll (labDownAll orphanedOnly: only labs whose owning process is gone, never a live run's).

/** Options of {@link useLab}: those of labUp, except that the lab always belongs to this process. */
export type UseLabOptions = Omit<LabUpOptions, "ephemeral">;

/**
 * Registers beforeAll/afterAll hooks that bring a lab up for the calling test file and tear it
 * down; returns an accessor for use inside tests (`const lab = useLab(); ... lab().exec(...)`).
 * If the lab cannot be built (not root, a missing binary) every test of the file fails with the
 * reason: lab tests never skip, in CI or anywhere else.
 */
export function useLab(opts: UseLabOptions = {}): () => Lab {
  // The name is chosen up front so the exit hooks can remove a lab that is still being built.
  const name = opts.name ?? newLabName();
  let lab: Lab | undefined;
  let failure: string | undefined;

  const teardown = (): void => {
    try {
      labDownSync(name);
    } catch (err) {
      console.error(
        `netprobe lab ${name}: teardown failed: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  };
  const onExit = (): void => teardown();
  const onSignal = (sig: NodeJS.Signals): void => {
    teardown();
    process.exit(sig === "SIGINT" ? 130 : sig === "SIGHUP" ? 129 : 143);
  };
  const signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
  const removeHooks = (): void => {
    process.off("exit", onExit);
    for (const s of signals) process.off(s, onSignal);
  };

  beforeAll(async () => {
    process.on("exit", onExit);
    for (const s of signals) process.on(s, onSignal);
    try {
      await labDownAll({ orphanedOnly: true });
      lab = await labUp({ ...opts, name, ephemeral: true });
    } catch (err) {
      const ci = process.env.CI === "true" ? " (CI: lab tests must run, never skip)" : "";
      failure = `the lab could not be built${ci}: ${err instanceof Error ? err.message : String(err)}`;
      throw new Error(failure, { cause: err });
    }
  });

  afterAll(async () => {
    try {
      // Also after a failed build: labUp cleans up after itself, but an interrupted one may not.
      await (lab ? lab.down() : labDown(name));
    } finally {
      removeHooks();
    }
  });

  return () => {
    if (lab) return lab;
    throw new Error(failure ?? "the lab is not up yet: call lab() inside a test, not at collection time");
  };
}
