// Runs icmp checks with different per-packet options concurrently through the runner, round after
// round, in the lab's probe namespace (icmp-options.test.ts). They all share the process's raw
// socket of their family, as the service's checks do. Prints one JSON line per round: check → status, code.
import { validateConfig } from "../../services/probe/src/config/validate.ts";
import { checkKind } from "../../services/probe/src/checks/registry.ts";
import { silentLogger } from "../../services/contract/src/log.ts";
import { measure } from "../../services/probe/src/runner/scheduler.ts";

const [checksJson = "[]", roundsText = "5"] = process.argv.slice(2);
const checked = validateConfig({
  site: "t",
  probe: "t",
  broker: { url: "mqtt://localhost" },
  checks: JSON.parse(checksJson) as unknown[],
});
if (!checked.ok) throw new Error(checked.problems.join("\n"));
const checks = checked.config.checks.map((c) => ({
  name: c.name,
  kind: checkKind(c.kind)!,
  target: c.target,
  options: c.options,
  timeoutMs: c.timeout_ms,
}));
for (let round = 0; round < Number(roundsText); round++) {
  const results = await Promise.all(
    checks.map((c) => measure(c, { log: silentLogger() }, AbortSignal.timeout(c.timeoutMs), silentLogger())),
  );
  const line: Record<string, { status: string; code?: string; received?: number }> = {};
  checks.forEach((c, i) => {
    const m = results[i]!;
    line[c.name] = { status: m.status, code: m.error?.code, received: m.metrics.received };
  });
  process.stdout.write(JSON.stringify(line) + "\n");
}
// The icmp check's wire-stamp pcap session stays open for the process's life (pcap-session.ts).
process.exit(0);
