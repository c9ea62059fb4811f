// `hq config diff`: two config documents as `path: value` lines, checks keyed by name, so a
// changed option reads `checks[gw-icmp].options.count: 5` → `3` instead of a shifted list.
// Lines start with `-` (what the probe runs), `+` (what HQ wants) or, with `all`, ` ` (equal).
// A secret the probe redacted ("***") cannot be compared and is not shown as a difference.

const REDACTED = "***";

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

/** Leaf paths of a document and their values as JSON text, sorted by path. */
export function flatten(doc: unknown, path = "", out = new Map<string, string>()): Map<string, string> {
  if (isObject(doc)) {
    const keys = Object.keys(doc).sort();
    if (keys.length === 0 && path !== "") out.set(path, "{}");
    for (const k of keys) flatten(doc[k], path === "" ? k : `${path}.${k}`, out);
  } else if (Array.isArray(doc)) {
    if (doc.length === 0) out.set(path, "[]");
    const byName = path === "checks" && doc.every((c) => isObject(c) && typeof c.name === "string");
    doc.forEach((v, i) =>
      flatten(v, byName ? `${path}[${String((v as { name: string }).name)}]` : `${path}[${i}]`, out),
    );
  } else out.set(path, JSON.stringify(doc));
  return out;
}

/** The lines that differ between `effective` and `desired` (all lines with `all`). */
export function documentDiff(effective: unknown, desired: unknown, all = false): string[] {
  const a = flatten(effective);
  const b = flatten(desired);
  const paths = [...new Set([...a.keys(), ...b.keys()])].sort();
  const lines: string[] = [];
  for (const p of paths) {
    const x = a.get(p);
    const y = b.get(p);
    if (x === y || x === JSON.stringify(REDACTED)) {
      if (all) lines.push(`  ${p}: ${y ?? x}`);
      continue;
    }
    if (x !== undefined) lines.push(`- ${p}: ${x}`);
    if (y !== undefined) lines.push(`+ ${p}: ${y}`);
  }
  return lines;
}
