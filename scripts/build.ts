// `npm run build`: the appliance as one JavaScript file, dist/probe/src/cli.js, which
// services/probe/bin/netprobe runs (systemd, the container, the installer, the benchmarks).
//
// Why one bundled, minified file instead of tsc's tree of modules: V8 keeps the source text of
// every loaded module resident (lazy compilation and Function.prototype.toString need it), and a
// module that holds one character outside Latin-1 — this code's comments are full of "—", "→",
// "≤" — is stored two bytes per character. The service loaded ~2.7 MB of source from ~300 files;
// the bundle is ~1.0 MB of ASCII (esbuild escapes the rest) in one module. Steady RSS in the lab,
// every check at the default schedule: tsc's tree 81.7–82.0 MB, bundled 79.5–80.0, minified
// 77.9 (docs/benchmarks.md, footprint). Function and class names are kept (keepNames), so stack
// traces and logged errors still name what failed; dist/probe/src/cli.js.map maps them back to
// the sources (`node --enable-source-maps`; never loaded otherwise).
//
// Native addons (and `dhcp`, reached through createRequire) stay in node_modules. The bundle sits
// at the depth of services/probe/src, so `new URL("../../../…", import.meta.url)` in cli.ts and
// version.ts reaches the repository root from both; `lab` and `hq` are imported by computed URL
// and keep loading from the TypeScript sources. Type checking is `npm run check`'s job.
import { build } from "esbuild";
import { rmSync, writeFileSync } from "node:fs";

const ROOT = new URL("../", import.meta.url).pathname;
// A fresh tree: nothing left over from an older layout reaches `npm pack` or the device.
rmSync(`${ROOT}dist`, { recursive: true, force: true });

await build({
  absWorkingDir: ROOT,
  entryPoints: ["services/probe/src/cli.ts"],
  outfile: "dist/probe/src/cli.js",
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node22",
  external: ["better-sqlite3", "pcap", "raw-socket", "onoff", "epoll", "dhcp"],
  minify: true,
  keepNames: true,
  sourcemap: "linked",
  charset: "ascii",
  legalComments: "none",
  // Bundled CommonJS packages (mqtt, pino, commander…) call require() for Node's built-ins.
  banner: {
    js: 'import { createRequire as __netprobeRequire } from "node:module"; const require = __netprobeRequire(import.meta.url);',
  },
  logLevel: "warning",
});
writeFileSync(`${ROOT}dist/.built`, "");
