// One fixture per config rule (blackbox_exporter style): each file under
// fixtures/config/invalid/ states why it is wrong, the environment it is loaded with
// (`# env: NAME=value`), and every problem it must produce, exactly and in order
// (`# expect: path: message`). `{file}` stands for the fixture's path, `{kinds}` for the known
// check kinds. Fixtures that are not even YAML end in `.bad-yaml`, so prettier leaves them alone.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CHECK_KINDS } from "../../../services/probe/src/checks/registry.ts";
import { validateConfigFile } from "../../../services/probe/src/config/load.ts";

const DIR = join(import.meta.dirname, "../../fixtures/config/invalid");

interface Fixture {
  file: string;
  path: string;
  why: string;
  env: Record<string, string>;
  expected: string[];
}

function readFixture(file: string): Fixture {
  const path = join(DIR, file);
  const text = readFileSync(path, "utf8");
  const header = (tag: string) =>
    [...text.matchAll(new RegExp(`^# ${tag}: (.*)$`, "gm"))].map((m) => m[1] ?? "");
  return {
    file,
    path,
    why: text.split("\n")[0]?.replace(/^# /, "") ?? "",
    env: Object.fromEntries(
      header("env").map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
    ),
    expected: header("expect").map((e) =>
      e.replaceAll("{file}", path).replaceAll("{kinds}", Object.keys(CHECK_KINDS).join(", ")),
    ),
  };
}

const fixtures = readdirSync(DIR)
  .filter((f) => f.endsWith(".yaml") || f.endsWith(".bad-yaml"))
  .sort()
  .map(readFixture);

describe("every invalid-config rule has a fixture with its exact message", () => {
  it("finds the fixtures, each with an expectation", () => {
    expect(fixtures.length).toBeGreaterThan(50);
    for (const f of fixtures) expect(f.expected, f.file).not.toEqual([]);
  });

  it.each(fixtures.map((f) => [f.file, f] as const))("%s", (_file, f) => {
    const result = validateConfigFile(f.path, f.env);
    expect(result.ok, f.why).toBe(false);
    if (!result.ok) expect(result.problems, f.why).toEqual(f.expected);
  });
});
