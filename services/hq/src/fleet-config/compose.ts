// A probe's desired config document from templates (docs/fleet-config.md, "At headquarters").
// Four levels, applied in this order, each over the one before: the fleet template, the group
// templates whose `sites` list the probe's site (by group name), the site's template, the probe's.
// Merge rules: objects merge key by key; scalars and arrays replace — except `checks`, merged by
// check `name` (a lower level's entry is merged into the inherited one of that name and keeps its
// place; new names are appended; `remove: true` drops an inherited check). Then `${name}` in every
// string is replaced by a variable (`vars` at any level, the lower level winning; `site` and
// `probe` are always set); a string that is only `${name}` takes the variable's type (a number
// stays a number); `$${` is a literal `${`. An unknown variable is an error naming it and where.
import { documentHash } from "../../../contract/src/config-document.ts";

/** The template levels, most general first. */
export const LEVELS = ["fleet", "group", "site", "probe"] as const;
/** A template level. */
export type Level = (typeof LEVELS)[number];

/** A variable's value. */
export type VarValue = string | number | boolean;

/** One template: a config fragment, its variables, and (groups only) the sites it covers. */
export interface TemplateBody {
  vars?: Record<string, VarValue>;
  /** group templates: the sites of the group. */
  sites?: string[];
  config?: Record<string, unknown>;
}

/** A template as composition reads it. */
export interface Template {
  level: Level;
  /** fleet: "fleet"; group: its name; site: the site id; probe: `site/probe`. */
  name: string;
  body: TemplateBody;
}

/** What went wrong composing, with where (template and path in it). */
export class ComposeError extends Error {
  readonly path: string;
  constructor(message: string, path: string) {
    super(message);
    this.path = path;
  }
}

const NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
const VAR_REF = /\$\$\{|\$\{([^}]*)\}/g;

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

/**
 * Problems with a template's own shape (not its config's: that is the schema's job after
 * composition). Empty when it is fine.
 */
export function templateProblems(t: { level: string; name: string; body: unknown }): string[] {
  const p: string[] = [];
  if (!(LEVELS as readonly string[]).includes(t.level)) p.push(`level: one of ${LEVELS.join(", ")}`);
  if (t.level === "fleet" && t.name !== "fleet") p.push(`name: the fleet template is named "fleet"`);
  if ((t.level === "group" || t.level === "site") && !NAME.test(t.name))
    p.push("name: 1-64 characters from A-Z a-z 0-9 _ . -");
  if (t.level === "probe") {
    const [site, probe, ...more] = t.name.split("/");
    if (!site || !probe || more.length > 0 || !NAME.test(site) || !NAME.test(probe))
      p.push("name: <site>/<probe>, each 1-64 characters from A-Z a-z 0-9 _ . -");
  }
  const b = t.body;
  if (!isObject(b)) return [...p, "(template): must be an object with vars, config (and sites for a group)"];
  for (const k of Object.keys(b))
    if (!["vars", "sites", "config"].includes(k)) p.push(`${k}: unknown key (vars, sites, config)`);
  if (b.vars !== undefined) {
    if (!isObject(b.vars)) p.push("vars: must be an object of name: value");
    else
      for (const [k, v] of Object.entries(b.vars)) {
        if (!VAR_NAME.test(k))
          p.push(`vars.${k}: a variable name is A-Z a-z 0-9 _, not starting with a digit`);
        if (k === "site" || k === "probe") p.push(`vars.${k}: set by HQ from the probe's topic`);
        if (!["string", "number", "boolean"].includes(typeof v))
          p.push(`vars.${k}: must be a string, number or boolean`);
      }
  }
  if (t.level === "group") {
    if (!Array.isArray(b.sites) || b.sites.some((s) => typeof s !== "string" || !NAME.test(s)))
      p.push("sites: a group lists its sites (ids of 1-64 characters from A-Z a-z 0-9 _ . -)");
  } else if (b.sites !== undefined) p.push("sites: only a group template lists sites");
  if (b.config !== undefined) {
    if (!isObject(b.config)) p.push("config: must be an object (a config file's content)");
    else {
      if ("site" in b.config || "probe" in b.config)
        p.push("config: site and probe are set by HQ from the probe's topic");
      const checks = b.config.checks;
      if (checks !== undefined) {
        if (!Array.isArray(checks)) p.push("config.checks: must be a list");
        else
          checks.forEach((c, i) => {
            if (!isObject(c) || typeof c.name !== "string" || c.name === "")
              p.push(`config.checks[${i}]: a check in a template needs a name (checks merge by name)`);
            else if (c.remove !== undefined && c.remove !== true)
              p.push(`config.checks[${i}].remove: only true (drops the inherited check)`);
          });
      }
    }
  }
  return p;
}

/** Deep merge of `over` onto `base` (neither is changed). */
export function mergeConfig(base: unknown, over: unknown, path = ""): unknown {
  if (path === "checks" && Array.isArray(base) && Array.isArray(over)) return mergeChecks(base, over);
  if (isObject(base) && isObject(over)) {
    const out: Record<string, unknown> = { ...base };
    for (const [k, v] of Object.entries(over))
      out[k] = k in base ? mergeConfig(base[k], v, path === "" ? k : `${path}.${k}`) : structuredClone(v);
    return out;
  }
  return structuredClone(over);
}

function mergeChecks(base: unknown[], over: unknown[]): unknown[] {
  const out = base.map((c) => structuredClone(c));
  for (const c of over) {
    const name = isObject(c) ? c.name : undefined;
    const at = out.findIndex((b) => isObject(b) && b.name === name);
    if (isObject(c) && c.remove === true) {
      if (at >= 0) out.splice(at, 1);
      continue;
    }
    if (at >= 0) out[at] = mergeConfig(out[at], c, "checks[]");
    else out.push(structuredClone(c));
  }
  return out;
}

/** Replaces `${name}` in every string of `value`; throws ComposeError on an unknown variable. */
export function substitute(value: unknown, vars: Record<string, VarValue>, path = ""): unknown {
  if (typeof value === "string") {
    const whole = /^\$\{([^}]*)\}$/.exec(value);
    if (whole) {
      const v = vars[whole[1]!];
      if (v === undefined) throw unknownVar(whole[1]!, path);
      return v;
    }
    return value.replace(VAR_REF, (m, name: string | undefined) => {
      if (m === "$${") return "${";
      const v = vars[name!];
      if (v === undefined) throw unknownVar(name!, path);
      return String(v);
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => substitute(v, vars, `${path}[${i}]`));
  if (isObject(value))
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, substitute(v, vars, path === "" ? k : `${path}.${k}`)]),
    );
  return value;
}

function unknownVar(name: string, path: string): ComposeError {
  return new ComposeError(`unknown variable \${${name}} at ${path || "(document)"}`, path);
}

/** The templates that apply to `site/probe`, in the order they are applied. */
export function templatesFor(templates: readonly Template[], site: string, probe: string): Template[] {
  const of = (level: Level) => templates.filter((t) => t.level === level);
  return [
    ...of("fleet"),
    ...of("group")
      .filter((t) => t.body.sites?.includes(site))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
    ...of("site").filter((t) => t.name === site),
    ...of("probe").filter((t) => t.name === `${site}/${probe}`),
  ];
}

/** A composed document with its hash and the templates it came from. */
export interface Composed {
  document: Record<string, unknown>;
  hash: string;
  from: string[];
}

/** The config document of `site/probe`; throws ComposeError naming an unknown variable. */
export function compose(templates: readonly Template[], site: string, probe: string): Composed {
  const chain = templatesFor(templates, site, probe);
  let config: unknown = {};
  const vars: Record<string, VarValue> = {};
  for (const t of chain) {
    config = mergeConfig(config, t.body.config ?? {});
    Object.assign(vars, t.body.vars ?? {});
  }
  Object.assign(vars, { site, probe });
  const substituted = substitute(config, vars) as Record<string, unknown>;
  // The topic decides who a probe is: a template cannot move it to another site.
  const document: Record<string, unknown> = { ...substituted, site, probe };
  return { document, hash: documentHash(document), from: chain.map((t) => `${t.level}:${t.name}`) };
}
