// The Raspberry Pi OS install, for real: firmware/install.sh runs in a clean Debian 12 root made by
// debootstrap (cached outside the repo, see debian-root.ts), in its no-start mode, with the
// release tarball `npm pack` makes. Then the installed command works from where it was installed:
// `netprobe config validate`, and `netprobe check icmp` inside the lab's probe namespace as the
// service user holding only the unit's two capabilities; the installed service notifies READY=1,
// WATCHDOG=1 and STOPPING=1 as the unit's watchdog expects; install again changes nothing it
// should not; uninstall keeps the database unless --purge.
import { execFileSync, type ChildProcess } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run, runOk } from "../../scripts/lab/run.ts";
import { listenNotify, type NotifySocket } from "../doubles/notify-socket.ts";
import { bindInto, ensureDebianRoot, scratchRoot, TEST_CACHE, type ScratchRoot } from "./debian-root.ts";
import { useLab } from "./lab-fixture.ts";
import { exited, waitFor } from "./probe-harness.ts";

const REPO = new URL("../../", import.meta.url).pathname;
const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/** The unit's privileges, applied the way systemd would (User=, AmbientCapabilities=, bounding set). */
const AS_SERVICE = [
  "setpriv",
  "--reuid=netprobe",
  "--regid=netprobe",
  "--init-groups",
  "--inh-caps=-all,+net_raw",
  "--ambient-caps=-all,+net_raw",
  "--bounding-set=-all,+net_raw",
];
const AS_SERVICE_NO_CAPS = [
  "setpriv",
  "--reuid=netprobe",
  "--regid=netprobe",
  "--init-groups",
  "--inh-caps=-all",
];

const NPM_OFFLINE = { npm_config_cache: "/var/cache/netprobe-npm", npm_config_offline: "true" };

const lab = useLab();
let root: ScratchRoot;
const unmounts: (() => Promise<void>)[] = [];
let tarball = "";

/** Runs argv inside the installed root (root namespace: only for the install, never for probing). */
function inRoot(argv: string[], timeoutMs = 60_000, env: Record<string, string> = {}) {
  const vars = Object.entries({ PATH, HOME: "/root", LANG: "C.UTF-8", ...env }).map(([k, v]) => `${k}=${v}`);
  // timeout(1) kills the whole process group (npm's children too) if the time is up.
  const secs = String(Math.ceil(timeoutMs / 1000));
  return run(["timeout", "-k", "5", secs, "chroot", root.dir, "env", "-i", ...vars, ...argv], {
    timeoutMs: timeoutMs + 10_000,
  });
}

/** Runs argv inside the installed root and the lab's probe namespace. */
function inProbe(argv: string[], timeoutMs = 30_000) {
  return lab().exec("probe", ["chroot", root.dir, "env", "-i", `PATH=${PATH}`, "HOME=/", ...argv], {
    timeoutMs,
  });
}

/** Node 22 as nodejs.org ships it (bin/node, include/, lib/node_modules/npm), cached. */
function nodeBundle(): string {
  // The Node running this test: scripts/setup.sh's Node 22 (in .tools/node, or the machine's own
  // when that is 22 already), never a guess that could be an older one on the same machine.
  const nodeHome = dirname(dirname(process.execPath));
  const version = execFileSync(join(nodeHome, "bin/node"), ["-v"], { encoding: "utf8" }).trim();
  const npmDir = "/usr/lib/node_modules/npm";
  const npmVersion = (JSON.parse(readFileSync(join(npmDir, "package.json"), "utf8")) as { version: string })
    .version;
  const dir = join(TEST_CACHE, `node-${version}-npm-${npmVersion}`);
  if (existsSync(join(dir, ".complete"))) return dir;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, "lib/node_modules"), { recursive: true });
  execFileSync("cp", ["-a", join(nodeHome, "bin"), join(nodeHome, "include"), dir]);
  execFileSync("cp", ["-a", npmDir, join(dir, "lib/node_modules/npm")]);
  execFileSync("ln", ["-sfn", "../lib/node_modules/npm/bin/npm-cli.js", join(dir, "bin/npm")]);
  writeFileSync(join(dir, ".complete"), "");
  return dir;
}

beforeAll(async () => {
  const packages = execFileSync(join(REPO, "firmware/install.sh"), ["--print-apt-packages"], {
    encoding: "utf8",
  })
    .trim()
    .split("\n");
  // Minutes the first time (debootstrap from the Debian mirror); cached afterwards.
  const base = await ensureDebianRoot({
    suite: "bookworm",
    mirror: "http://deb.debian.org/debian",
    variant: "minbase",
    packages,
  });
  const node = nodeBundle();
  mkdirSync(join(TEST_CACHE, "scratch"), { recursive: true });
  root = await scratchRoot(base, join(TEST_CACHE, "scratch"));

  // What a technician brings to the device: the release tarball and the install script.
  const out = join(root.dir, "tmp/install");
  mkdirSync(out, { recursive: true });
  const packed = await runOk(["npm", "pack", "--silent", "--pack-destination", out], { timeoutMs: 120_000 });
  tarball = `/tmp/install/${packed.trim().split("\n").at(-1)}`;
  for (const f of ["install.sh", "uninstall.sh"]) copyFileSync(join(REPO, "firmware", f), join(out, f));
  copyFileSync(join(REPO, "package-lock.json"), join(out, "package-lock.json"));
  unmounts.push(await bindInto(root, node, "/tmp/node"));
  // The install runs offline from this machine's npm cache (scripts/setup.sh's `npm ci` filled it
  // with exactly the lockfile's tarballs): no registry traffic, no dependence on its certificates.
  const npmCache = (await runOk(["npm", "config", "get", "cache"])).trim();
  unmounts.push(await bindInto(root, npmCache, "/var/cache/netprobe-npm"));
  copyFileSync("/etc/resolv.conf", join(root.dir, "etc/resolv.conf"));
  // A Raspberry Pi OS boot partition, so the overlay step has somewhere to go.
  mkdirSync(join(root.dir, "boot/firmware/overlays"), { recursive: true });
  writeFileSync(join(root.dir, "boot/firmware/config.txt"), "# Raspberry Pi OS\ndtparam=audio=on\n");
}, 1_200_000);

afterAll(async () => {
  for (const u of unmounts.reverse()) await u();
  await root?.remove();
});

const installed = (p: string) => join(root.dir, p);
const WANTS = "etc/systemd/system/multi-user.target.wants/netprobe.service";

describe("install.sh on a clean Debian 12 root", { timeout: 600_000 }, () => {
  it("runs to completion in no-start mode and installs every piece", async () => {
    const r = await inRoot(
      [
        "bash",
        "/tmp/install/install.sh",
        "--package",
        tarball,
        "--lockfile",
        "/tmp/install/package-lock.json",
        "--node",
        "/tmp/node",
        "--no-start",
      ],
      540_000,
      NPM_OFFLINE,
    );
    expect(r.code, r.stderr).toBe(0);
    for (const p of [
      "opt/netprobe/node/bin/node",
      "opt/netprobe/current/dist/probe/src/cli.js",
      "usr/local/bin/netprobe",
      "etc/netprobe/netprobe.yaml",
      "etc/systemd/system/netprobe.service",
      "etc/systemd/system.conf.d/netprobe-watchdog.conf",
      "boot/firmware/overlays/netprobe-leds.dtbo",
    ])
      expect(existsSync(installed(p)), p).toBe(true);
    // Enabled: an absolute link inside the root, so read the link rather than follow it.
    expect(readlinkSync(installed(WANTS))).toBe("/etc/systemd/system/netprobe.service");
    expect(readFileSync(installed("etc/passwd"), "utf8")).toMatch(
      /^netprobe:x:\d+:\d+:.*:\/usr\/sbin\/nologin$/m,
    );
    const config = readFileSync(installed("boot/firmware/config.txt"), "utf8");
    expect(config).toContain("dtparam=audio=on"); // the rest of config.txt is untouched
    expect(config).toContain("dtoverlay=netprobe-leds");
    expect(config).toContain("dtparam=watchdog=on");
    // Nothing was started: no process runs the installed service.
    const procs = await run(["pgrep", "-f", "/opt/netprobe/current/dist/probe/src/cli.js"]);
    expect(procs.stdout.trim()).toBe("");
  });

  it("systemd-analyze verify accepts the installed unit in the installed root", async () => {
    const r = await run(["systemd-analyze", "verify", `--root=${root.dir}`, "netprobe.service"]);
    expect(r.stderr + r.stdout).toBe("");
    expect(r.code).toBe(0);
  });

  it("`netprobe config validate` works from the installed location", async () => {
    const ok = await inRoot(["netprobe", "config", "validate", "/etc/netprobe/netprobe.yaml"]);
    expect(ok.stderr).toBe("");
    expect(ok.stdout).toMatch(/netprobe\.yaml: ok \(\d+ checks\)/);
    expect(ok.code).toBe(0);
    writeFileSync(
      installed("tmp/bad.yaml"),
      "site: s\nprobe: p\nbroker: { url: mqtt://h }\nchecks: [{ kind: icmp }]\n",
    );
    const bad = await inRoot(["netprobe", "config", "validate", "/tmp/bad.yaml"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("checks[0]");
  });

  it("`netprobe check icmp` reaches a lab address as the service user with only CAP_NET_RAW", async () => {
    // From here on the installed root uses the lab's resolver: nothing leaves the lab.
    writeFileSync(installed("etc/resolv.conf"), `nameserver ${lab().info.addr.gwLan4}\n`);
    const r = await inProbe([
      ...AS_SERVICE,
      "netprobe",
      "check",
      "icmp",
      "-t",
      lab().info.addr.gwLan4,
      "--json",
    ]);
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as { status: string; metrics: Record<string, number> };
    expect(result.status).toBe("ok");
    expect(result.metrics.received).toBeGreaterThan(0);

    // The capabilities are what make it work: without them the same user gets no raw socket.
    const denied = await inProbe([
      ...AS_SERVICE_NO_CAPS,
      "netprobe",
      "check",
      "icmp",
      "-t",
      lab().info.addr.gwLan4,
      "--json",
    ]);
    expect(denied.code).toBe(1);
    expect((JSON.parse(denied.stdout) as { error?: { code: string } }).error?.code).toBe("no_permission");

    const wan = await inProbe([...AS_SERVICE, "netprobe", "check", "icmp", "-t", lab().info.addr.wanTarget4]);
    expect(wan.code, wan.stdout + wan.stderr).toBe(0);
  });

  it("the installed service, run as the unit runs it, notifies READY=1, WATCHDOG=1 and STOPPING=1", async () => {
    copyFileSync(join(REPO, "scripts/lab/probe.lab.yaml"), installed("etc/netprobe/lab.yaml"));
    execFileSync("chroot", [root.dir, "chgrp", "netprobe", "/etc/netprobe/lab.yaml"]);
    rmSync(installed("run/notify.sock"), { force: true });
    const sock: NotifySocket = await listenNotify(installed("run/notify.sock"));
    let child: ChildProcess | undefined;
    try {
      const unit = readFileSync(installed("etc/systemd/system/netprobe.service"), "utf8");
      const execStart = /^ExecStart=(.*)$/m.exec(unit)![1]!.split(" ");
      child = lab().spawn(
        "probe",
        [
          "chroot",
          root.dir,
          ...AS_SERVICE,
          "env",
          "-i",
          `PATH=${PATH}`,
          "NOTIFY_SOCKET=/run/notify.sock",
          "WATCHDOG_USEC=2000000",
          "NETPROBE_CONFIG=/etc/netprobe/lab.yaml",
          ...execStart,
        ],
        { stdio: ["ignore", "ignore", "pipe"] },
      );
      let log = "";
      child.stderr!.on("data", (d: Buffer) => (log += d.toString()));
      await waitFor(
        "READY=1",
        20_000,
        () => sock.with("READY=1").length > 0 || (child!.exitCode !== null && log),
      );
      expect(sock.with("READY=1").length, log).toBe(1);
      await waitFor("3 watchdog pings", 10_000, () => sock.with("WATCHDOG=1").length >= 3);
      // The service user owns its state directory and the database is there.
      await waitFor("the database", 10_000, () => existsSync(installed("var/lib/netprobe/netprobe.db")));
      const db = statSync(installed("var/lib/netprobe/netprobe.db"));
      const uid = Number(/^netprobe:x:(\d+):/m.exec(readFileSync(installed("etc/passwd"), "utf8"))![1]);
      expect(db.uid).toBe(uid);
      child.kill("SIGTERM");
      const { code } = await exited(child);
      expect(code, log).toBe(0);
      expect(sock.with("STOPPING=1")).toHaveLength(1);
    } finally {
      child?.kill("SIGKILL");
      sock.close();
    }
  });

  it("install.sh again: succeeds, keeps the edited config, one config.txt block", async () => {
    const cfg = installed("etc/netprobe/netprobe.yaml");
    writeFileSync(cfg, `${readFileSync(cfg, "utf8")}# edited on site\n`);
    const r = await inRoot(
      [
        "bash",
        "/tmp/install/install.sh",
        "--package",
        tarball,
        "--lockfile",
        "/tmp/install/package-lock.json",
        "--node",
        "/tmp/node",
        "--no-start",
      ],
      120_000,
      NPM_OFFLINE,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(cfg, "utf8")).toContain("# edited on site");
    const config = readFileSync(installed("boot/firmware/config.txt"), "utf8");
    expect(config.match(/dtoverlay=netprobe-leds/g)).toHaveLength(1);
    expect(readdirSync(installed("opt/netprobe/releases"))).toHaveLength(1);
    expect((await inRoot(["netprobe", "--version"])).stdout.trim()).toBe(
      (JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { version: string }).version,
    );
  });

  it("uninstall.sh removes the service but keeps the database and config; --purge removes them too", async () => {
    const r = await inRoot(["bash", "/tmp/install/uninstall.sh"]);
    expect(r.code, r.stderr).toBe(0);
    expect(() => readlinkSync(installed(WANTS))).toThrow(); // disabled
    for (const gone of [
      "opt/netprobe",
      "usr/local/bin/netprobe",
      "etc/systemd/system/netprobe.service",
      "boot/firmware/overlays/netprobe-leds.dtbo",
    ])
      expect(existsSync(installed(gone)), gone).toBe(false);
    expect(readFileSync(installed("boot/firmware/config.txt"), "utf8")).toBe(
      "# Raspberry Pi OS\ndtparam=audio=on\n",
    );
    expect(existsSync(installed("var/lib/netprobe/netprobe.db"))).toBe(true);
    expect(existsSync(installed("etc/netprobe/netprobe.yaml"))).toBe(true);

    const purge = await inRoot(["bash", "/tmp/install/uninstall.sh", "--purge"]);
    expect(purge.code, purge.stderr).toBe(0);
    expect(existsSync(installed("var/lib/netprobe"))).toBe(false);
    expect(existsSync(installed("etc/netprobe"))).toBe(false);
    expect(readFileSync(installed("etc/passwd"), "utf8")).not.toMatch(/^netprobe:/m);
  });
});
