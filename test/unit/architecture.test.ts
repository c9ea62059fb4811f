// The layering of the tree (docs/architecture.md), checked on the import graph: product code
// (services/*/src) never imports tools or tests; HQ reaches nothing of the probe but the contract
// package; the contract imports nothing of either; no import circle in services/. Every import
// counts, `import type` too: a type-only import still ties one file's meaning to another.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, normalize } from "node:path";
import ts from "typescript";
import { afterAll, describe, expect, it } from "vitest";

const REPO = join(import.meta.dirname, "../..");

/** One relative import: repository paths of both ends. */
interface Edge {
  from: string;
  to: string;
}

function tsFiles(root: string, dir: string): string[] {
  const out: string[] = [];
  let names: string[];
  try {
    names = readdirSync(join(root, dir));
  } catch {
    return out;
  }
  for (const name of names) {
    if (name === "node_modules") continue;
    const path = join(dir, name);
    if (statSync(join(root, path)).isDirectory()) out.push(...tsFiles(root, path));
    else if (name.endsWith(".ts")) out.push(path);
  }
  return out;
}

/** The relative imports of one file: static, re-exports and `import("…")` with a literal. */
function importsOf(root: string, file: string): Edge[] {
  const text = readFileSync(join(root, file), "utf8");
  const info = ts.preProcessFile(text, true, true);
  return info.importedFiles
    .filter((f) => f.fileName.startsWith("./") || f.fileName.startsWith("../"))
    .map((f) => ({ from: file, to: normalize(join(dirname(file), f.fileName)) }));
}

/** Every file reachable from `start`, following relative imports; edges keyed by importing file. */
function graph(root: string, start: string[]): Map<string, Edge[]> {
  const edges = new Map<string, Edge[]>();
  const todo = [...start];
  for (let file = todo.pop(); file !== undefined; file = todo.pop()) {
    if (edges.has(file)) continue;
    const out = file.endsWith(".ts") ? importsOf(root, file) : [];
    edges.set(file, out);
    for (const e of out) if (!edges.has(e.to)) todo.push(e.to);
  }
  return edges;
}

/** The source folders of every service: services/<name>/src. */
function serviceSources(root: string): string[] {
  return readdirSync(join(root, "services"))
    .map((name) => `services/${name}/src`)
    .filter((dir) => {
      try {
        return statSync(join(root, dir)).isDirectory();
      } catch {
        return false;
      }
    });
}

const under = (file: string, dir: string) => file.startsWith(`${dir}/`);
const show = (e: Edge) => `${e.from} → ${e.to}`;

/** Imports from product code into scripts/ or test/. */
function productImportsOfTools(root: string): string[] {
  const files = serviceSources(root).flatMap((dir) => tsFiles(root, dir));
  return files
    .flatMap((f) => importsOf(root, f))
    .filter((e) => under(e.to, "scripts") || under(e.to, "test"))
    .map(show);
}

/** Files HQ loads, directly or not, that are neither HQ's nor the contract's. */
function hqReachBeyondContract(root: string): string[] {
  const reached = graph(root, tsFiles(root, "services/hq/src"));
  return [...reached.keys()]
    .filter((f) => !under(f, "services/hq/src") && !under(f, "services/contract/src"))
    .sort();
}

/** Imports from the contract package to anything outside it. */
function contractImportsOutside(root: string): string[] {
  return tsFiles(root, "services/contract/src")
    .flatMap((f) => importsOf(root, f))
    .filter((e) => !under(e.to, "services/contract/src"))
    .map(show);
}

/** Import circles among the files of services/ (Tarjan's strongly connected components). */
function importCircles(root: string): string[] {
  const files = tsFiles(root, "services");
  const next = new Map(
    files.map((f) => [
      f,
      importsOf(root, f)
        .map((e) => e.to)
        .filter((t) => under(t, "services")),
    ]),
  );
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const circles: string[] = [];
  let counter = 0;
  const visit = (v: string): void => {
    index.set(v, counter);
    low.set(v, counter);
    counter++;
    stack.push(v);
    onStack.add(v);
    for (const w of next.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1 || (next.get(v) ?? []).includes(v)) circles.push(component.sort().join(" ↔ "));
  };
  for (const f of files) if (!index.has(f)) visit(f);
  return circles.sort();
}

// Circles known and being removed elsewhere; each entry must still exist (else delete it), so the
// list can only shrink. led-controller needs service.ts only for the LedSink type: issue 16 moves it.
const KNOWN_CIRCLES = ["services/probe/src/leds/led-controller.ts ↔ services/probe/src/service.ts"];

describe("the layering of the tree", () => {
  it("no file under services/*/src imports from scripts/ or test/", () => {
    expect(productImportsOfTools(REPO)).toEqual([]);
  });

  it("HQ reaches nothing of the probe but the contract package", () => {
    expect(hqReachBeyondContract(REPO)).toEqual([]);
  });

  it("the contract package imports nothing of the probe or HQ", () => {
    expect(contractImportsOutside(REPO)).toEqual([]);
  });

  it("no import circle in services/", () => {
    const circles = importCircles(REPO);
    expect(circles.filter((c) => !KNOWN_CIRCLES.includes(c))).toEqual([]);
    for (const known of KNOWN_CIRCLES)
      expect(circles, `${known} is gone: delete it from KNOWN_CIRCLES`).toContain(known);
  });
});

describe("the layering rules catch what they forbid", () => {
  // A small tree that breaks every rule once, so a rule that stopped seeing imports fails here.
  const root = mkdtempSync(join(tmpdir(), "netprobe-architecture-"));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const write = (file: string, text: string) => {
    mkdirSync(dirname(join(root, file)), { recursive: true });
    writeFileSync(join(root, file), text);
  };
  write("scripts/lab/tool.ts", "export const tool = 1;\n");
  write("test/doubles/fake.ts", "export const fake = 1;\n");
  write("services/contract/src/payloads.ts", 'import type { Config } from "../../probe/src/config.ts";\n');
  write("services/probe/src/config.ts", 'export { tool } from "../../../scripts/lab/tool.ts";\n');
  write("services/probe/src/a.ts", 'import { b } from "./b.ts";\nexport const a = b;\n');
  write("services/probe/src/b.ts", 'export const b = 1;\nexport const later = () => import("./a.ts");\n');
  write(
    "services/hq/src/fleet.ts",
    'import "../../contract/src/payloads.ts";\nimport { fake } from "../../../test/doubles/fake.ts";\n',
  );

  it("finds product imports of tools and tests, re-exports included", () => {
    expect(productImportsOfTools(root).sort()).toEqual([
      "services/hq/src/fleet.ts → test/doubles/fake.ts",
      "services/probe/src/config.ts → scripts/lab/tool.ts",
    ]);
  });

  it("follows HQ through the contract to the probe file behind it", () => {
    expect(hqReachBeyondContract(root)).toEqual([
      "scripts/lab/tool.ts",
      "services/probe/src/config.ts",
      "test/doubles/fake.ts",
    ]);
  });

  it("finds a type-only import out of the contract, and a circle through a dynamic import", () => {
    expect(contractImportsOutside(root)).toEqual([
      "services/contract/src/payloads.ts → services/probe/src/config.ts",
    ]);
    expect(importCircles(root)).toEqual(["services/probe/src/a.ts ↔ services/probe/src/b.ts"]);
  });
});
