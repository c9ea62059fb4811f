// HQ's validation against the published schemas/config.schema.json: every problem with its path.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { documentValidator, problemLines } from "../../../../services/hq/src/fleet-config/validate.ts";

const validate = documentValidator();

describe("documentValidator", () => {
  it("accepts the probe's example file", () => {
    const example = parse(
      readFileSync(new URL("../../../../services/probe/netprobe.example.yaml", import.meta.url), "utf8"),
    ) as unknown;
    expect(validate(example)).toEqual([]);
  });

  it("names every problem with its path, check options by kind included", () => {
    const problems = validate({
      site: "branch 7",
      probe: "pi-01",
      leds: { backend: "neon" },
      checks: [
        { name: "gw", kind: "icmp", target: "192.0.2.1", options: { count: 0, colour: "red" } },
        { name: "ok", kind: "icmp", target: "192.0.2.2", options: { count: 3 } },
      ],
      surprise: 1,
    });
    expect(problems).toEqual(
      expect.arrayContaining([
        { path: "site", message: expect.stringContaining("should match pattern") as string },
        { path: "leds.backend", message: 'must be one of "none", "terminal", "gpio", "kernel"' },
        { path: "checks[0].options.count", message: "should be >= 1" },
        { path: "checks[0].options", message: "unknown key colour" },
        { path: "", message: "unknown key surprise" },
      ]),
    );
    expect(problems).toHaveLength(5);
    expect(problems.some((p) => p.path.startsWith("checks[1]"))).toBe(false);
    expect(problemLines(problems)).toContain("(document): unknown key surprise");
  });

  it("reads the schema file at run time: a missing file is an error naming it", () => {
    expect(() => documentValidator("/nonexistent/config.schema.json")).toThrow(
      "/nonexistent/config.schema.json",
    );
  });
});
