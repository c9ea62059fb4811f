// The sip-call check against a SIP stack that is not kamailio: SIPp as the far end, in the lab
// PBX's namespace behind the office NAT, refusing the call with 486, 404, 503 and 603, and ringing
// without ever answering. Each case must give its verdict, and SIPp — which retransmits its final
// response until the ACK comes and fails the call when none does — must count the call as
// successful, with nothing in its error log: every final response ACKed, the ringing call
// CANCELled and its 487 ACKed (RFC 3261 §17.1.1.3, §9.1). Scenarios: test/lab/fixtures/sipp/.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { PBX } from "../../scripts/lab/pbx.ts";
import { useLab } from "./lab-fixture.ts";
import { exited } from "./probe-harness.ts";
import { runCheckIn } from "./run-check.ts";

const FIXTURES = new URL("./fixtures/sipp/", import.meta.url).pathname;
/** Beside kamailio's 5060 on the same host. */
const SIPP_PORT = 5080;

const lab = useLab();

/** Runs one SIPp UAS call (`-m 1`) while the probe calls it; returns the verdict and SIPp's account. */
async function callSipp(scenario: string, options: Record<string, unknown>) {
  const dir = lab().info.dir;
  const errors = join(dir, `sipp-${scenario.replace(/\W/g, "_")}-errors.log`);
  const screen = join(dir, `sipp-${scenario.replace(/\W/g, "_")}-screen.log`);
  const sipp = lab().spawn(
    "pbx",
    [
      "sipp",
      ...["-sf", join(dir, scenario), "-i", PBX.address4, "-p", String(SIPP_PORT), "-m", "1"],
      ...["-nostdin", "-timeout", "20s", "-trace_err", "-error_file", errors],
      ...["-trace_screen", "-screen_file", screen],
    ],
    { stdio: "ignore" },
  );
  const gone = exited(sipp);
  // SIPp binds its socket after parsing the scenario: call only once it listens.
  for (let i = 0; ; i++) {
    const r = await lab().exec("pbx", ["ss", "-Hnul", `sport = :${SIPP_PORT}`]);
    if (r.stdout.includes(`:${SIPP_PORT}`)) break;
    if (i > 50 || sipp.exitCode !== null) throw new Error(`SIPp did not start listening on :${SIPP_PORT}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const m = await runCheckIn(lab(), "sip-call", PBX.address4, { port: SIPP_PORT, t1_ms: 100, ...options });
  const { code } = await gone;
  const log = existsSync(errors) ? readFileSync(errors, "utf8") : "";
  const stats = existsSync(screen) ? readFileSync(screen, "utf8") : "";
  const count = (row: string) =>
    Number(new RegExp(`${row}\\s*\\|\\s*\\d+\\s*\\|\\s*(\\d+)`).exec(stats)?.[1]);
  return {
    m,
    sippExit: code,
    errorLog: log.trim(),
    successful: count("Successful call"),
    failed: count("Failed call"),
  };
}

describe("sip-call against SIPp", () => {
  for (const [status, reason, code] of [
    [486, "Busy Here", "busy"],
    [404, "Not Found", "rejected"],
    [503, "Service Unavailable", "server_error"],
    [603, "Decline", "rejected"],
  ] as const) {
    it(`${status} ${reason} → ${code}, and SIPp got its ACK`, async () => {
      const scenario = `uas-${status}.xml`;
      const template = readFileSync(join(FIXTURES, "uas-final.xml"), "utf8");
      writeFileSync(
        join(lab().info.dir, scenario),
        template.replaceAll("@STATUS@", String(status)).replaceAll("@REASON@", reason),
      );
      const r = await callSipp(scenario, {});
      expect(r.m).toMatchObject({ status: "fail", error: { code }, metrics: { status_code: status } });
      expect(r.m.error?.message).toContain(`${status} ${reason}`);
      expect(r.errorLog, "SIPp's error log").toBe("");
      expect({ exit: r.sippExit, successful: r.successful, failed: r.failed }).toEqual({
        exit: 0,
        successful: 1,
        failed: 0,
      });
    });
  }

  it("180 and then nothing → no_answer: CANCEL answered 200, the 487 ACKed, SIPp satisfied", async () => {
    writeFileSync(
      join(lab().info.dir, "uas-ring-no-answer.xml"),
      readFileSync(join(FIXTURES, "uas-ring-no-answer.xml"), "utf8"),
    );
    const r = await callSipp("uas-ring-no-answer.xml", { answer_timeout_ms: 1000 });
    expect(r.m).toMatchObject({ status: "fail", error: { code: "no_answer" }, detail: { cancel: "200 OK" } });
    expect(r.m.error?.message).toContain("487 Request Terminated");
    expect(r.errorLog, "SIPp's error log").toBe("");
    expect({ exit: r.sippExit, successful: r.successful, failed: r.failed }).toEqual({
      exit: 0,
      successful: 1,
      failed: 0,
    });
  });
});
