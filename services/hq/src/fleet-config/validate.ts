// HQ's check of a composed document before anything is sent: the probe's published config JSON
// Schema (schemas/config.schema.json, generated from the probe's own TypeBox schema by
// scripts/gen/schemas.ts), read at run time — HQ never imports the probe's code. The schema
// declares draft-07, which ajv 6 speaks (docs/fleet-config.md says why ajv is a runtime
// dependency). The probe still validates with its own code and is authoritative: rules the schema
// cannot say (cross-field ones) are the probe's to refuse, and HQ shows its `config_invalid`.
import { readFileSync } from "node:fs";
import Ajv from "ajv";

/** The published schema, beside the sources (shipped in the package: package.json `files`). */
export const CONFIG_SCHEMA_FILE = new URL("../../../../schemas/config.schema.json", import.meta.url);

/** One problem: where (`checks[0].options.count`, empty for the document) and what. */
export interface Problem {
  path: string;
  message: string;
}

/** A compiled validator of config documents. */
export type DocumentValidator = (document: unknown) => Problem[];

/** `.checks[0].options.count` (ajv 6's dataPath) → `checks[0].options.count`. */
function pathOf(dataPath: string, missing?: string): string {
  const p = dataPath.replace(/^\./, "").replace(/\['([^']*)'\]/g, ".$1");
  return missing === undefined ? p : p === "" ? missing : `${p}.${missing}`;
}

/** Compiles the schema in `file` (default: the published one). Throws when it cannot be read. */
export function documentValidator(file: URL | string = CONFIG_SCHEMA_FILE): DocumentValidator {
  const schema = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  // errorMessage (ajv-errors) is the probe's wording for its own checker: unknown to ajv, ignored.
  const ajv = new Ajv({ allErrors: true, verbose: true, unknownFormats: "ignore" });
  const validate = ajv.compile(schema);
  return (document) => {
    if (validate(document)) return [];
    const seen = new Set<string>();
    const out: Problem[] = [];
    const errors = validate.errors ?? [];
    // An enum is written as anyOf of consts: one problem listing the choices, not one per branch.
    const choices = new Set(errors.filter((e) => e.keyword === "anyOf").map((e) => e.dataPath));
    for (const e of errors) {
      // The if/then per check kind reports a bare "must match then schema" beside the real one.
      if (e.keyword === "if" || (e.keyword === "const" && choices.has(e.dataPath))) continue;
      const params = e.params as { missingProperty?: string; additionalProperty?: string };
      const path = pathOf(e.dataPath, params.missingProperty?.replace(/^\./, ""));
      const consts = Array.isArray(e.schema)
        ? (e.schema as Array<{ const?: unknown }>).map((b) => b.const)
        : [];
      const message =
        e.keyword === "anyOf" && consts.length > 0 && consts.every((c) => c !== undefined)
          ? `must be one of ${consts.map((c) => JSON.stringify(c)).join(", ")}`
          : e.keyword === "additionalProperties"
            ? `unknown key ${params.additionalProperty ?? ""}`.trim()
            : e.keyword === "required"
              ? "is required"
              : (e.message ?? "is invalid");
      const key = `${path}\0${message}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push({ path, message });
    }
    return out;
  };
}

/** `path: message` lines, as the CLI prints them. */
export function problemLines(problems: readonly Problem[]): string[] {
  return problems.map((p) => `${p.path || "(document)"}: ${p.message}`);
}
