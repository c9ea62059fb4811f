/**
 * Writes the files generated from the TypeBox definitions (docs/architecture.md, "Conventions": types and JSON Schemas
 * from one definition): the JSON Schemas under schemas/ (the config file, and every MQTT payload
 * under schemas/mqtt/) and the generated sections of docs/config.md and docs/mqtt.md.
 *
 *   node scripts/gen/schemas.ts            rewrite every stale file
 *   node scripts/gen/schemas.ts --check    write nothing; exit 1 naming each stale file
 *   --root DIR                             read and write under DIR instead of the repository
 *
 * Output goes through prettier with the repository's settings, so `prettier --check` agrees.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import * as prettier from "prettier";
import { fillGeneratedSections } from "./config-reference.ts";
import { configJsonSchema } from "../../services/probe/src/config/schema.ts";
import { fillMqttSections, mqttSchemaFiles } from "./mqtt-reference.ts";

const REPO = resolve(import.meta.dirname, "../..");

/** One generated file: its path from the repository root and how to render it from its current text. */
interface Generated {
  file: string;
  render(current: string | undefined): string;
}

const GENERATED: Generated[] = [
  { file: "schemas/config.schema.json", render: () => JSON.stringify(configJsonSchema(), null, 2) },
  {
    // Hand-written prose around generated tables: the current text is required.
    file: "docs/config.md",
    render: (current) => {
      if (current === undefined)
        throw new Error("docs/config.md is missing (it holds the prose around the tables)");
      return fillGeneratedSections(current);
    },
  },
  ...Object.entries(mqttSchemaFiles()).map(([file, schema]) => ({
    file,
    render: () => JSON.stringify(schema, null, 2),
  })),
  {
    file: "docs/mqtt.md",
    render: (current) => {
      if (current === undefined)
        throw new Error("docs/mqtt.md is missing (it holds the prose around the tables)");
      return fillMqttSections(current);
    },
  },
];

function read(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { check: { type: "boolean", default: false }, root: { type: "string", default: REPO } },
  });
  const root = resolve(values.root);
  const stale: string[] = [];
  for (const g of GENERATED) {
    const path = join(root, g.file);
    const current = read(path);
    // Prettier settings come from the repository even with --root, so a copy checks the same.
    const settings = (await prettier.resolveConfig(join(REPO, g.file))) ?? {};
    const wanted = await prettier.format(g.render(current), { ...settings, filepath: path });
    if (wanted === current) continue;
    stale.push(g.file);
    if (!values.check) {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, wanted);
      console.log(`wrote ${g.file}`);
    }
  }
  // A schema of a topic that no longer exists must not stay published as if it were current.
  const mqttDir = join(root, "schemas/mqtt");
  const wanted = new Set(GENERATED.map((g) => g.file));
  for (const name of existsSync(mqttDir) ? readdirSync(mqttDir) : []) {
    const file = `schemas/mqtt/${name}`;
    if (wanted.has(file)) continue;
    stale.push(file);
    if (!values.check) {
      rmSync(join(root, file));
      console.log(`removed ${file}`);
    }
  }
  if (values.check && stale.length > 0) {
    for (const f of stale) console.error(`${f} is stale: run node scripts/gen/schemas.ts`);
    return 1;
  }
  return 0;
}

process.exitCode = await main();
