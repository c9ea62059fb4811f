/**
 * The generated parts of docs/config.md, rendered from the same definitions the loader uses (the
 * file schema, each check kind's options schema, the environment table), so the reference cannot
 * drift from the code. scripts/gen/schemas.ts writes them between the document's markers.
 */
import type { TSchema } from "@sinclair/typebox";
import { CHECK_KINDS } from "../../services/probe/src/checks/registry.ts";
import { ENV_OVERRIDES } from "../../services/probe/src/config/env.ts";
import { isMapping } from "../../services/probe/src/config/env.ts";
import { ConfigFileSchema, MESSAGES } from "../../services/probe/src/config/schema.ts";

interface Row {
  key: string;
  type: string;
  default: string;
  description: string;
}

const REQUIRED_PREFIX = "Required. ";

function code(text: string): string {
  return `\`${text}\``;
}

function cell(text: string): string {
  return text.replaceAll("|", "\\|").replaceAll("\n", " ");
}

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.map(cell).join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

function range(s: TSchema): string {
  const min = typeof s.minimum === "number" ? s.minimum : undefined;
  const max = typeof s.maximum === "number" ? s.maximum : undefined;
  if (min !== undefined && max !== undefined) return ` ${min}–${max}`;
  if (min !== undefined) return ` ≥ ${min}`;
  if (max !== undefined) return ` ≤ ${max}`;
  return "";
}

/** A schema's type in the words the docs use: duration, size, one of the literal values, … */
function typeOf(s: TSchema): string {
  if (s.errorMessage === MESSAGES.duration) return "duration";
  if (s.errorMessage === MESSAGES.byteSize) return "size";
  if (s.errorMessage === MESSAGES.percent) return "percentage";
  const values: unknown[] | undefined = Array.isArray(s.enum)
    ? (s.enum as unknown[])
    : Array.isArray(s.anyOf) && (s.anyOf as TSchema[]).every((a) => "const" in a)
      ? (s.anyOf as TSchema[]).map((a) => a.const as unknown)
      : undefined;
  if (values) return values.map((v) => code(String(v))).join(" | ");
  if (s.type === "array") return "list";
  if (s.type === "object") return isMapping(s.patternProperties) ? "mapping" : "section";
  if (s.type === "integer" || s.type === "number") return `${s.type}${range(s)}`;
  if (s.type === "string" && s.pattern === "\\S") return "string, not empty";
  return typeof s.type === "string" ? s.type : "any";
}

function defaultOf(s: TSchema, required: boolean): string {
  if (required) return "required";
  const d: unknown = s.default;
  if (d === undefined || (typeof d === "object" && d !== null)) return "";
  return code(d === "" ? '""' : typeof d === "string" ? d : JSON.stringify(d));
}

function collect(schema: TSchema, prefix: string, out: Row[]): void {
  const props = isMapping(schema.properties) ? (schema.properties as Record<string, TSchema>) : {};
  const required = Array.isArray(schema.required) ? (schema.required as string[]) : [];
  for (const [key, s] of Object.entries(props)) {
    const path = prefix === "" ? key : `${prefix}.${key}`;
    const description = typeof s.description === "string" ? s.description : "";
    // TypeBox lists defaulted properties as required (kinds' options do); the loader fills them.
    const isRequired =
      (required.includes(key) && s.default === undefined) || description.startsWith(REQUIRED_PREFIX);
    out.push({
      key: code(path),
      type: typeOf(s),
      default: defaultOf(s, isRequired),
      description: description.startsWith(REQUIRED_PREFIX)
        ? description.slice(REQUIRED_PREFIX.length)
        : description,
    });
    if (s.type === "object" && isMapping(s.properties)) collect(s, path, out);
    const items = s.items as TSchema | undefined;
    if (s.type === "array" && items?.type === "object") collect(items, `${path}[]`, out);
  }
}

/** Every key of the config file: type, default, meaning and limits. */
export function renderKeyTable(): string {
  const rows: Row[] = [];
  collect(ConfigFileSchema, "", rows);
  return table(
    ["Key", "Type", "Default", "Description"],
    rows.map((r) => [r.key, r.type, r.default, r.description]),
  );
}

/** One section per check kind: its default area and every option. */
export function renderKindTables(): string {
  return Object.values(CHECK_KINDS)
    .sort((a, b) => a.kind.localeCompare(b.kind))
    .map((k) => {
      const rows: Row[] = [];
      collect(k.options, "", rows);
      const options =
        rows.length === 0
          ? "No options."
          : table(
              ["Option", "Type", "Default", "Description"],
              rows.map((r) => [r.key, r.type, r.default, r.description]),
            );
      return `### \`${k.kind}\`\n\nDefault area: \`${k.defaultArea}\`.\n\n${options}`;
    })
    .join("\n\n");
}

/** The environment overrides. */
export function renderEnvTable(): string {
  return table(
    ["Variable", "Overrides", "Description"],
    ENV_OVERRIDES.map((o) => [code(o.name), code(o.path.join(".")), o.description]),
  );
}

/** The generated sections of docs/config.md by marker name. */
export const GENERATED_SECTIONS: Readonly<Record<string, () => string>> = {
  keys: renderKeyTable,
  kinds: renderKindTables,
  env: renderEnvTable,
};

/**
 * Replaces the text between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->` with the
 * rendered section; throws when a marker is missing, so a renamed heading cannot drop a table.
 */
export function fillGeneratedSections(doc: string): string {
  let out = doc;
  for (const [name, render] of Object.entries(GENERATED_SECTIONS)) {
    const start = `<!-- generated:${name} -->`;
    const end = `<!-- /generated:${name} -->`;
    const i = out.indexOf(start);
    const j = out.indexOf(end);
    if (i === -1 || j < i) throw new Error(`markers ${start} … ${end} not found`);
    out = `${out.slice(0, i + start.length)}\n\n${render()}\n\n${out.slice(j)}`;
  }
  return out;
}
