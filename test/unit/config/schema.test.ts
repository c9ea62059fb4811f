// The generated artefacts (schemas/config.schema.json, the tables in docs/config.md) and the
// example file must agree with the schema the loader uses.
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TSchema } from "@sinclair/typebox";
import Ajv from "ajv";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { ENV_OVERRIDES } from "../../../services/probe/src/config/env.ts";
import { ConfigFileSchema, configJsonSchema } from "../../../services/probe/src/config/schema.ts";

const REPO = join(import.meta.dirname, "../../..");
const EXAMPLE = join(REPO, "services/probe/netprobe.example.yaml");
const GEN = join(REPO, "scripts/gen/schemas.ts");

function gen(...args: string[]) {
  return spawnSync(process.execPath, [GEN, ...args], { cwd: REPO, encoding: "utf8" });
}

function example(): Record<string, unknown> {
  return parse(readFileSync(EXAMPLE, "utf8")) as Record<string, unknown>;
}

describe("generated files", () => {
  it("schemas/config.schema.json and docs/config.md are up to date (gen-schemas --check)", () => {
    const run = gen("--check");
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
  });

  it("--check fails, naming the file, when a generated file is stale", () => {
    const root = mkdtempSync(join(tmpdir(), "netprobe-gen-"));
    mkdirSync(join(root, "schemas"));
    cpSync(join(REPO, "docs"), join(root, "docs"), { recursive: true });
    writeFileSync(join(root, "schemas/config.schema.json"), "{}\n");
    const run = gen("--check", "--root", root);
    expect(run.status).toBe(1);
    expect(run.stderr).toContain("schemas/config.schema.json is stale");
    expect(run.stderr).not.toContain("docs/config.md");
    expect(readFileSync(join(root, "schemas/config.schema.json"), "utf8")).toBe("{}\n");
  });

  it("the committed JSON Schema is the one the code generates", () => {
    const committed = JSON.parse(readFileSync(join(REPO, "schemas/config.schema.json"), "utf8")) as unknown;
    expect(committed).toEqual(configJsonSchema());
  });

  it("docs/config.md lists every environment variable", () => {
    const docs = readFileSync(join(REPO, "docs/config.md"), "utf8");
    for (const o of ENV_OVERRIDES) expect(docs).toContain(`\`${o.name}\``);
  });
});

describe("the JSON Schema (what editors check against)", () => {
  // ajv 6 speaks draft-07, the dialect the schema declares.
  const validate = new Ajv({ allErrors: true }).compile(configJsonSchema());

  it("accepts the example file", () => {
    const ok = validate(example());
    expect(validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
  });

  it("checks each kind's options and rejects unknown keys, as the loader does", () => {
    const bad = { site: "s", checks: [{ kind: "icmp", target: "x", options: { count: 0 } }], nmae: 1 };
    expect(validate(bad)).toBe(false);
    const where = (validate.errors ?? []).map((e) => `${e.dataPath} ${e.message ?? ""}`);
    expect(where).toContain(".checks[0].options.count should be >= 1");
    expect(where).toContain(" should NOT have additional properties");
  });
});

/** Every key the file schema defines, as `broker.url` / `checks[].name`, with its default. */
function schemaKeys(schema: TSchema, prefix = ""): [string, unknown][] {
  const props = (schema.properties ?? {}) as Record<string, TSchema>;
  return Object.entries(props).flatMap(([key, s]) => {
    const path = prefix === "" ? key : `${prefix}.${key}`;
    const own: [string, unknown][] = [[path, s.default]];
    if (s.type === "object" && s.properties) return [...own, ...schemaKeys(s, path)];
    const items = s.items as TSchema | undefined;
    if (s.type === "array" && items?.type === "object") return [...own, ...schemaKeys(items, `${path}[]`)];
    return own;
  });
}

/** The values at a schema key in the example (every list entry for `[]`). */
function valuesAt(root: unknown, path: string): unknown[] {
  let nodes: unknown[] = [root];
  for (const part of path.split(".")) {
    const list = part.endsWith("[]");
    const key = list ? part.slice(0, -2) : part;
    nodes = nodes.flatMap((n) => {
      const v =
        typeof n === "object" && n !== null && key in n ? (n as Record<string, unknown>)[key] : undefined;
      if (v === undefined) return [];
      return list && Array.isArray(v) ? (v as unknown[]) : [v];
    });
  }
  return nodes;
}

describe("the example file", () => {
  it("shows every key of the schema", () => {
    const missing = schemaKeys(ConfigFileSchema)
      .map(([path]) => path)
      .filter((path) => valuesAt(example(), path).length === 0);
    expect(missing).toEqual([]);
  });

  it("shows each setting outside `checks` with its default value", () => {
    const differs = schemaKeys(ConfigFileSchema)
      .filter(([path, d]) => !path.startsWith("checks") && d !== undefined && typeof d !== "object")
      .filter(([path, d]) => valuesAt(example(), path)[0] !== d)
      .map(([path]) => path);
    expect(differs).toEqual([]);
  });
});
