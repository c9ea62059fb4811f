/**
 * Config problems: collected (every one, not just the first), named by a human path
 * (`checks[3].interval`), phrased plainly, and listed in the order they appear in the file.
 */
import { ValueErrorType, type ValueError } from "@sinclair/typebox/errors";
import { isMapping } from "./env.ts";

/** Path of a config key as segments: `["checks", "3", "interval"]`. */
export type KeyPath = readonly string[];

/** Splits a JSON pointer (TypeBox error paths) into path segments (RFC 6901 unescaping). */
export function pointerToPath(pointer: string): string[] {
  if (pointer === "") return [];
  return pointer
    .slice(1)
    .split("/")
    .map((s) => s.replaceAll("~1", "/").replaceAll("~0", "~"));
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * `checks[3].interval`: list indexes in brackets, plain keys dotted, odd keys quoted. The config
 * value decides whether a segment is a list index, so a mapping key "0" stays a key.
 */
export function formatPath(path: KeyPath, root: unknown): string {
  let out = "";
  let node: unknown = root;
  for (const seg of path) {
    const isIndex = Array.isArray(node) || (node === undefined && /^\d+$/.test(seg));
    if (isIndex) out += `[${seg}]`;
    else if (IDENTIFIER.test(seg)) out += out === "" ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
    node = Array.isArray(node) ? (node as unknown[])[Number(seg)] : isMapping(node) ? node[seg] : undefined;
  }
  return out === "" ? "(top level)" : out;
}

/** Where a key sits in the file, for sorting: its index in each enclosing mapping or list (-1: absent). */
function documentRank(path: KeyPath, root: unknown): number[] {
  const rank: number[] = [];
  let node: unknown = root;
  for (const seg of path) {
    if (Array.isArray(node)) {
      rank.push(Number(seg));
      node = (node as unknown[])[Number(seg)];
    } else if (isMapping(node)) {
      // A missing key (a "required" problem) sorts first within its mapping.
      rank.push(Object.keys(node).indexOf(seg));
      node = node[seg];
    } else {
      rank.push(0);
      node = undefined;
    }
  }
  return rank;
}

function compareRanks(a: number[], b: number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

function isPrefix(prefix: KeyPath, path: KeyPath): boolean {
  return prefix.length <= path.length && prefix.every((seg, i) => seg === path[i]);
}

/** An environment variable that set a key, so problems with that key name the variable. */
export interface EnvSource {
  name: string;
  path: KeyPath;
}

/** The problems found in one config, at most one per key (the first found is the most useful). */
export class ProblemList {
  readonly #items: { path: KeyPath; message: string }[] = [];

  /** Records a problem with the key at `path`, unless that key already has one. */
  add(path: KeyPath, message: string): void {
    if (this.#items.some((p) => p.path.length === path.length && isPrefix(p.path, path))) return;
    this.#items.push({ path: [...path], message });
  }

  /** Records a TypeBox validation error, rephrased; `base` prefixes its path (for nested schemas). */
  addSchemaError(error: ValueError, base: KeyPath = []): void {
    const path = [...base, ...pointerToPath(error.path)];
    this.add(path, describeSchemaError(error));
  }

  /** True when the key at `path` or one of its parents already has a problem. */
  has(path: KeyPath): boolean {
    return this.#items.some((p) => isPrefix(p.path, path));
  }

  /** How many problems were recorded. */
  get size(): number {
    return this.#items.length;
  }

  /**
   * `path: message` lines in file order. A key set by an environment variable is named by the
   * variable as well (`NETPROBE_BROKER_URL (broker.url): …`): that is where the fix goes.
   */
  format(root: unknown, env: readonly EnvSource[] = []): string[] {
    return this.#items
      .map((p) => ({ ...p, rank: documentRank(p.path, root) }))
      .sort((a, b) => compareRanks(a.rank, b.rank))
      .map((p) => {
        const where = formatPath(p.path, root);
        const source = env.find((e) => isPrefix(e.path, p.path));
        return `${source ? `${source.name} (${where})` : where}: ${p.message}`;
      });
  }
}

type Describe = (e: ValueError) => string;

const bound = (
  op: string,
  key: "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum",
): Describe => {
  return (e) => `must be ${op} ${String(e.schema[key])}`;
};

/** Plain replacements for TypeBox's messages ("Expected integer" → "must be a whole number"). */
const DESCRIBE: Partial<Record<ValueErrorType, Describe>> = {
  [ValueErrorType.ObjectRequiredProperty]: () => "required",
  [ValueErrorType.ObjectAdditionalProperties]: (e) => {
    const key = pointerToPath(e.path).at(-1) ?? "";
    // Records (thresholds) constrain their key names by pattern; plain objects have a fixed key set.
    if (isMapping(e.schema.patternProperties))
      return stringOr(e.schema.errorMessage, "is not an allowed key");
    const known = isMapping(e.schema.properties) ? Object.keys(e.schema.properties) : [];
    const guess = closest(key, known);
    return guess === undefined ? "unknown key" : `unknown key (did you mean "${guess}"?)`;
  },
  [ValueErrorType.String]: (e) =>
    typeof e.value === "number" || typeof e.value === "boolean"
      ? "must be a string (put the value in quotes)"
      : "must be a string",
  [ValueErrorType.Integer]: () => "must be a whole number",
  [ValueErrorType.Number]: () => "must be a number",
  [ValueErrorType.Boolean]: () => "must be true or false",
  [ValueErrorType.Object]: () => "must be a mapping (key: value pairs)",
  [ValueErrorType.Array]: () => "must be a list",
  [ValueErrorType.IntegerMinimum]: bound("≥", "minimum"),
  [ValueErrorType.NumberMinimum]: bound("≥", "minimum"),
  [ValueErrorType.IntegerMaximum]: bound("≤", "maximum"),
  [ValueErrorType.NumberMaximum]: bound("≤", "maximum"),
  [ValueErrorType.IntegerExclusiveMinimum]: bound(">", "exclusiveMinimum"),
  [ValueErrorType.NumberExclusiveMinimum]: bound(">", "exclusiveMinimum"),
  [ValueErrorType.IntegerExclusiveMaximum]: bound("<", "exclusiveMaximum"),
  [ValueErrorType.NumberExclusiveMaximum]: bound("<", "exclusiveMaximum"),
  [ValueErrorType.StringMinLength]: (e) =>
    e.schema.minLength === 1
      ? "must not be empty"
      : `must be at least ${String(e.schema.minLength)} characters`,
  [ValueErrorType.StringMaxLength]: (e) => `must be at most ${String(e.schema.maxLength)} characters`,
  [ValueErrorType.StringPattern]: (e) =>
    stringOr(e.schema.errorMessage, `must match ${String(e.schema.pattern)}`),
  [ValueErrorType.ObjectMinProperties]: (e) =>
    stringOr(e.schema.errorMessage, `must have at least ${String(e.schema.minProperties)} keys`),
  [ValueErrorType.ArrayMinItems]: (e) => `must have at least ${String(e.schema.minItems)} entries`,
  [ValueErrorType.ArrayMaxItems]: (e) => `must have at most ${String(e.schema.maxItems)} entries`,
  [ValueErrorType.Literal]: (e) => `must be ${JSON.stringify(e.schema.const)}`,
  [ValueErrorType.Union]: (e) => {
    if (typeof e.schema.errorMessage === "string") return e.schema.errorMessage;
    const alternatives = Array.isArray(e.schema.anyOf) ? (e.schema.anyOf as Record<string, unknown>[]) : [];
    const consts = alternatives.map((s) => s.const);
    if (consts.length > 0 && consts.every((c) => typeof c === "string" || typeof c === "number")) {
      return `must be one of ${consts.join(", ")}`;
    }
    return "is not a valid value";
  },
};

/** A TypeBox error as a plain message (without the path). */
export function describeSchemaError(e: ValueError): string {
  return DESCRIBE[e.type]?.(e) ?? e.message;
}

function stringOr(value: unknown, fallback: string): string {
  return typeof value === "string" ? value : fallback;
}

/** The known key a misspelt one was most likely meant to be (edit distance ≤ 2), if any. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const c of candidates) {
    const d = editDistance(word, c);
    if (d < bestDistance && d < Math.max(word.length, c.length)) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

/** Damerau-Levenshtein (optimal string alignment) distance: a swap of neighbours counts as one edit. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number): number => d[i]?.[j] ?? Infinity;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        v = Math.min(v, at(i - 2, j - 2) + 1);
      const row = d[i];
      if (row) row[j] = v;
    }
  }
  return at(a.length, b.length);
}
