// A clean Debian root made by debootstrap, for the install test. Building one takes minutes and
// fetches from the Debian mirror, so it is cached outside the repository, keyed by everything that
// goes into it (suite, variant, mirror, architecture, package list): a changed package list builds
// a new root, an unchanged one is reused. Tests never write into the cached root: they mount an
// overlay on top of it and throw the overlay away.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { run, runOk } from "../../scripts/lab/run.ts";

/** Where cached roots, the Node bundle and the npm cache live (outside the repo, survives runs). */
export const TEST_CACHE = process.env.NETPROBE_TEST_CACHE ?? "/var/cache/netprobe-test";

/** What a root is built from; every field is part of the cache key. */
export interface DebianRootSpec {
  suite: string;
  mirror: string;
  variant: string;
  packages: readonly string[];
}

/** The cache key of a root: a short hash of its spec and the machine's architecture. */
export async function rootKey(spec: DebianRootSpec): Promise<string> {
  const arch = (await runOk(["dpkg", "--print-architecture"])).trim();
  const text = JSON.stringify({ ...spec, arch, packages: [...spec.packages].sort() });
  return `${spec.suite}-${arch}-${createHash("sha256").update(text).digest("hex").slice(0, 16)}`;
}

/**
 * Returns the path of a debootstrapped root for `spec`, building it first when it is not cached.
 * Concurrent callers serialise on a lock file; a build cut off halfway leaves only a `.partial`
 * directory, which the next build removes.
 */
export async function ensureDebianRoot(spec: DebianRootSpec, timeoutMs = 900_000): Promise<string> {
  const key = await rootKey(spec);
  const roots = join(TEST_CACHE, "roots");
  const root = join(roots, key);
  if (existsSync(join(root, ".netprobe-root-complete"))) return root;
  mkdirSync(roots, { recursive: true });
  const partial = `${root}.partial`;
  // flock serialises two test runs building the same root; the second finds it complete.
  const script = [
    "set -e",
    `[ -e '${root}/.netprobe-root-complete' ] && exit 0`,
    // An interrupted debootstrap can leave /proc, /sys or a /dev bind mounted inside: unmount
    // before deleting, and never delete across a file system boundary.
    `findmnt -rn -o TARGET | grep -F '${partial}/' | sort -r | while read -r m; do umount -l "$m"; done`,
    `rm -rf --one-file-system '${partial}'`,
    `debootstrap --variant='${spec.variant}' --include='${spec.packages.join(",")}' '${spec.suite}' '${partial}' '${spec.mirror}'`,
    // The package lists and downloaded .debs are not needed by the tests; keep the cache small.
    `rm -rf '${partial}'/var/cache/apt/archives/*.deb '${partial}'/var/lib/apt/lists/*_Packages`,
  ].join("\n");
  const r = await run(
    ["flock", "-w", String(Math.ceil(timeoutMs / 1000)), join(roots, ".lock"), "sh", "-c", script],
    {
      timeoutMs,
    },
  );
  if (r.code !== 0) {
    throw new Error(`debootstrap of ${spec.suite} failed (exit ${r.code}): ${r.stderr.trim().slice(-2000)}`);
  }
  if (!existsSync(join(root, ".netprobe-root-complete"))) {
    rmSync(root, { recursive: true, force: true });
    renameSync(partial, root);
    writeFileSync(join(root, ".netprobe-root-complete"), `${JSON.stringify(spec)}\n`);
  }
  return root;
}

/** A writable view of a cached root: an overlay mount plus /proc, /dev and /sys inside it. */
export interface ScratchRoot {
  /** The merged directory to chroot into. */
  dir: string;
  /** Unmounts everything and removes the overlay's upper layer. */
  remove(): Promise<void>;
}

/**
 * Mounts a throwaway overlay over `lower` at a new directory under `parent`. Everything written
 * (the install) lands in the upper layer; the cached root stays clean for the next run.
 */
export async function scratchRoot(lower: string, parent: string): Promise<ScratchRoot> {
  const base = join(parent, `root-${process.pid}-${Date.now().toString(36)}`);
  const upper = join(base, "upper");
  const work = join(base, "work");
  const dir = join(base, "merged");
  for (const d of [upper, work, dir]) mkdirSync(d, { recursive: true });
  const mounts: string[] = [];
  const remove = async (): Promise<void> => {
    // Reverse order; lazy unmount so a process left in the chroot cannot keep the overlay busy.
    for (const m of mounts.reverse()) await run(["umount", "-l", m]);
    mounts.length = 0;
    rmSync(base, { recursive: true, force: true });
  };
  try {
    await runOk([
      "mount",
      "-t",
      "overlay",
      "overlay",
      "-o",
      `lowerdir=${lower},upperdir=${upper},workdir=${work}`,
      dir,
    ]);
    mounts.push(dir);
    await runOk(["mount", "-t", "proc", "proc", join(dir, "proc")]);
    mounts.push(join(dir, "proc"));
    await runOk(["mount", "--bind", "/dev", join(dir, "dev")]);
    mounts.push(join(dir, "dev"));
    await runOk(["mount", "-t", "sysfs", "sysfs", join(dir, "sys")]);
    mounts.push(join(dir, "sys"));
  } catch (err) {
    await remove();
    throw err;
  }
  return { dir, remove };
}

/** Bind-mounts `source` at `target` inside a scratch root (created if missing); returns an unmount. */
export async function bindInto(
  root: ScratchRoot,
  source: string,
  target: string,
): Promise<() => Promise<void>> {
  const at = join(root.dir, target);
  mkdirSync(at, { recursive: true });
  await runOk(["mount", "--bind", source, at]);
  return async () => {
    await run(["umount", "-l", at]);
  };
}
