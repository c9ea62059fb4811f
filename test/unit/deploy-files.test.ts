// The files that put netprobe onto a device, checked by the tools that will consume them: dtc and
// fdtoverlay for the LED overlay, systemd-analyze for the unit, JSON Schemas of the documented
// balena.yml and docker-compose.yml fields, bash for the scripts, the config validator for the
// shipped configs. (Docker is not available here: the Dockerfile is checked statically.)
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import Ajv from "ajv";
import { afterAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { PANEL } from "../../services/contract/src/led-table.ts";
import { ENV_OVERRIDES } from "../../services/probe/src/config/env.ts";
import { validateConfigFile } from "../../services/probe/src/config/load.ts";

const REPO = new URL("../../", import.meta.url).pathname;
const FW = join(REPO, "firmware");
const tmp = mkdtempSync(join(tmpdir(), "netprobe-deploy-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function sh(cmd: string, args: string[], opts: { cwd?: string } = {}) {
  const r = spawnSync(cmd, args, { encoding: "utf8", ...opts });
  if (r.error) throw new Error(`${cmd} cannot run (${r.error.message}); scripts/setup.sh installs it`);
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}
const text = (rel: string) => readFileSync(join(REPO, rel), "utf8");
const yamlOf = (rel: string) => parse(text(rel)) as Record<string, unknown>;
const schemaOf = (rel: string) => JSON.parse(text(rel)) as object;

describe("LED board device-tree overlay", () => {
  const dtbo = join(tmp, "netprobe-leds.dtbo");

  it("compiles with dtc without a single warning", () => {
    const r = sh("dtc", ["-@", "-I", "dts", "-O", "dtb", "-o", dtbo, join(FW, "overlays/netprobe-leds.dts")]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
  });

  it("applies to a Raspberry Pi base tree: a red and a green kernel LED per panel position, none on the button", () => {
    // The firmware resolves `&gpio` against the board's tree; fdtoverlay does the same here.
    const base = join(tmp, "base.dts");
    writeFileSync(
      base,
      `/dts-v1/;
/ {
	compatible = "raspberrypi,4-model-b", "brcm,bcm2711";
	#address-cells = <1>;
	#size-cells = <1>;
	gpio: gpio@7e200000 {
		compatible = "brcm,bcm2711-gpio";
		reg = <0x7e200000 0xb4>;
		gpio-controller;
		#gpio-cells = <2>;
	};
};
`,
    );
    expect(sh("dtc", ["-q", "-@", "-I", "dts", "-O", "dtb", "-o", `${base}.dtb`, base]).code).toBe(0);
    const merged = join(tmp, "merged.dtb");
    const applied = sh("fdtoverlay", ["-i", `${base}.dtb`, "-o", merged, dtbo]);
    expect(applied.err).toBe("");
    expect(applied.code).toBe(0);

    const nodes = sh("fdtget", ["-l", merged, "/netprobe-leds"]).out.trim().split("\n");
    expect(sh("fdtget", [merged, "/netprobe-leds", "compatible"]).out.trim()).toBe("gpio-leds");
    const labels = nodes.map((n) => sh("fdtget", [merged, `/netprobe-leds/${n}`, "label"]).out.trim());
    const want = PANEL.flatMap((area) => [`netprobe:red:${area}`, `netprobe:green:${area}`]);
    expect(labels.sort()).toEqual(want.sort());
    // Every LED on its own pin, none on the button's.
    const pins = nodes.map(
      (n) =>
        sh("fdtget", [merged, `/netprobe-leds/${n}`, "gpios"])
          .out.trim()
          .split(" ")[1],
    );
    expect(new Set(pins).size).toBe(nodes.length);
    expect(pins).not.toContain("26"); // the push button (hw/pin-maps.md)
  });

  it("config.txt fragment loads that overlay and turns the hardware watchdog on, for every board", () => {
    const lines = text("firmware/config.txt.fragment")
      .split("\n")
      .filter((l) => l && !l.startsWith("#"));
    expect(lines).toEqual(["[all]", "dtoverlay=netprobe-leds", "gpio=26=ip,pu", "dtparam=watchdog=on"]);
    // install.sh compiles the overlay to the name the fragment loads.
    expect(text("firmware/install.sh")).toContain("overlays/netprobe-leds.dtbo");
  });
});

describe("systemd unit", () => {
  const unit = text("firmware/netprobe.service");
  const keys = new Map<string, string[]>();
  for (const line of unit.split("\n")) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (m) keys.set(m[1]!, [...(keys.get(m[1]!) ?? []), m[2]!]);
  }
  const key = (k: string) => keys.get(k)?.join(" ");

  it("systemd-analyze verify accepts it, without a warning", () => {
    // A root with systemd's own units and the ExecStart binary, as install.sh leaves the device.
    const root = join(tmp, "root");
    mkdirSync(join(root, "etc/systemd/system"), { recursive: true });
    mkdirSync(join(root, "usr/lib/systemd"), { recursive: true });
    const launcher = "opt/netprobe/current/services/probe/bin/netprobe";
    mkdirSync(join(root, dirname(launcher)), { recursive: true });
    cpSync("/usr/lib/systemd/system", join(root, "usr/lib/systemd/system"), { recursive: true });
    writeFileSync(join(root, launcher), "#!/bin/sh\n");
    chmodSync(join(root, launcher), 0o755);
    cpSync(join(FW, "netprobe.service"), join(root, "etc/systemd/system/netprobe.service"));
    const r = sh("systemd-analyze", ["verify", `--root=${root}`, "netprobe.service"]);
    expect(r.err + r.out).toBe("");
    expect(r.code).toBe(0);
  });

  it("runs as a dedicated user with CAP_NET_RAW alone", () => {
    expect(key("User")).toBe("netprobe");
    expect(key("AmbientCapabilities")).toBe("CAP_NET_RAW");
    expect(key("CapabilityBoundingSet")).toBe("CAP_NET_RAW");
    expect(key("NoNewPrivileges")).toBe("yes");
    expect(key("StateDirectory")).toBe("netprobe");
  });

  it("is restarted by the watchdog when it stops notifying", () => {
    expect(key("Type")).toBe("notify");
    expect(key("NotifyAccess")).toBe("all"); // the sender is the systemd-notify helper
    expect(key("WatchdogSec")).toMatch(/^\d+s$/);
    expect(key("Restart")).toBe("on-failure");
  });

  it("leaves raw sockets, packet capture and GPIO usable under its hardening", () => {
    const families = key("RestrictAddressFamilies")!.split(" ");
    for (const f of ["AF_INET", "AF_INET6", "AF_PACKET", "AF_NETLINK", "AF_UNIX"])
      expect(families).toContain(f);
    // Each of these would make /sys read-only or hide /dev/gpiochip*.
    for (const k of [
      "ProtectKernelTunables",
      "PrivateDevices",
      "DevicePolicy",
      "ProtectClock",
      "MemoryDenyWriteExecute",
    ])
      expect(keys.has(k), k).toBe(false);
    expect(key("ProtectSystem")).toBe("strict");
  });

  it("systemd-analyze security rates its exposure at most 3.0", () => {
    const r = sh("systemd-analyze", ["security", "--offline=yes", join(FW, "netprobe.service")]);
    const m = /Overall exposure level for netprobe\.service: (\d+\.\d)/.exec(r.out + r.err);
    expect(m, r.out + r.err).not.toBeNull();
    console.log(`systemd-analyze security --offline=yes firmware/netprobe.service: ${m![1]}`);
    expect(Number(m![1])).toBeLessThanOrEqual(3.0);
    for (const k of ["ProtectHome", "PrivateTmp", "NoNewPrivileges", "ProtectProc", "PrivateMounts"])
      expect(keys.has(k), k).toBe(true);
  });
});

describe("balena", () => {
  const ajv = new Ajv({ allErrors: true });

  it("balena.yml has the documented fields and nothing else", () => {
    const validate = ajv.compile(schemaOf("firmware/schemas/balena.yml.schema.json"));
    const doc = yamlOf("balena.yml");
    validate(doc);
    expect(validate.errors ?? []).toEqual([]);
  });

  it("balena.yml supports Pi 3/4/5 and CM4 64-bit, defaults to one of them, and carries the package version", () => {
    const doc = yamlOf("balena.yml") as {
      version: string;
      data: { defaultDeviceType: string; supportedDeviceTypes: string[] };
    };
    expect(doc.data.supportedDeviceTypes.sort()).toEqual(
      ["raspberrypi3-64", "raspberrypi4-64", "raspberrypi5", "raspberrypicm4-ioboard"].sort(),
    );
    expect(doc.data.supportedDeviceTypes).toContain(doc.data.defaultDeviceType);
    expect(doc.version).toBe((JSON.parse(text("package.json")) as { version: string }).version);
  });

  it("every fleet variable is a config override the service reads, and the secrets are among them", () => {
    const doc = yamlOf("balena.yml") as {
      data: { applicationEnvironmentVariables: Record<string, string>[] };
    };
    const names = doc.data.applicationEnvironmentVariables.flatMap((v) => Object.keys(v));
    const known = ENV_OVERRIDES.map((o) => o.name);
    for (const n of names) expect(known).toContain(n);
    for (const n of ["NETPROBE_SITE", "NETPROBE_PROBE", "NETPROBE_BROKER_URL", "NETPROBE_BROKER_PASSWORD"])
      expect(names).toContain(n);
  });

  it("a schema violation is caught (the schema is not a rubber stamp)", () => {
    const validate = ajv.compile(schemaOf("firmware/schemas/balena.yml.schema.json"));
    const doc = { ...yamlOf("balena.yml"), type: "sw.block", joinabel: true };
    expect(validate(doc)).toBe(false);
    const compose = ajv.compile(schemaOf("firmware/schemas/docker-compose.schema.json"));
    expect(compose({ version: "2.4", services: { probe: { build: ".", cap_add: ["NET_RAWW"] } } })).toBe(
      false,
    );
  });

  it("docker-compose.yml has only fields balena supports", () => {
    const validate = ajv.compile(schemaOf("firmware/schemas/docker-compose.schema.json"));
    validate(yamlOf("docker-compose.yml"));
    expect(validate.errors ?? []).toEqual([]);
  });

  it("the probe container: host network, no privileged mode, no NET_ADMIN, no-new-privileges, read-only root", () => {
    const compose = yamlOf("docker-compose.yml") as { services: Record<string, Record<string, unknown>> };
    for (const svc of Object.values(compose.services)) expect(svc.privileged).not.toBe(true);
    const probe = compose.services.probe!;
    expect(probe.network_mode).toBe("host");
    expect(probe.cap_drop).toEqual(["ALL"]);
    // NET_RAW for the service; the rest only for the entry point, which drops them (below).
    expect((probe.cap_add as string[]).sort()).toEqual(["CHOWN", "NET_RAW", "SETGID", "SETPCAP", "SETUID"]);
    expect(probe.security_opt).toContain("no-new-privileges:true");
    expect(probe.read_only).toBe(true);
    expect(probe.tmpfs).toContain("/run/netprobe");
    expect(probe.user).toBeUndefined(); // the entry point drops to `netprobe` itself
    expect((probe.labels as Record<string, string>)["io.balena.features.sysfs"]).toBe("1");
  });

  it("the entry point execs the service as netprobe with CAP_NET_RAW alone in every set, and no_new_privs", () => {
    // Run its setpriv line for real (as nobody: no netprobe user on this machine), with the same
    // flags, and read what the exec'd process holds.
    const entry = text("firmware/balena/entrypoint.sh");
    const flags = /exec setpriv ([^\n]*\\\n[^\n]*\\\n[^\n]*) -- "\$@"/.exec(entry);
    expect(flags, "setpriv line").not.toBeNull();
    const args = flags![1]!
      .replaceAll("\\\n", " ")
      .split(/\s+/)
      .filter(Boolean)
      .map((a) => a.replace("=netprobe", a.startsWith("--regid") ? "=nogroup" : "=nobody"));
    const r = sh("setpriv", [...args, "--", "cat", "/proc/self/status"]);
    expect(r.code, r.err).toBe(0);
    const field = (k: string) => new RegExp(`^${k}:\\s*(\\S+)`, "m").exec(r.out)?.[1];
    for (const k of ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"])
      expect(field(k), k).toBe("0000000000002000");
    expect(field("NoNewPrivs")).toBe("1");
    expect(field("Uid")).not.toBe("0");
    const dockerfile = text("services/probe/Dockerfile.template");
    expect(dockerfile).toContain('ENTRYPOINT ["/usr/local/bin/netprobe-entrypoint"]');
    expect(dockerfile).toMatch(/useradd --system .*netprobe/);
  });

  it("the database lives on a named volume and the healthcheck reads the heartbeat the service writes", () => {
    const compose = yamlOf("docker-compose.yml") as {
      volumes: Record<string, unknown>;
      services: {
        probe: { volumes: string[]; environment: Record<string, string>; healthcheck: { test: string[] } };
      };
    };
    const probe = compose.services.probe;
    const data = probe.volumes.find((v) => v.endsWith(":/data"));
    expect(data).toBeDefined();
    expect(Object.keys(compose.volumes)).toContain(data!.split(":")[0]);
    expect(probe.environment.NETPROBE_STORE_PATH).toMatch(/^\/data\//);
    expect(probe.healthcheck.test.join(" ")).toContain(probe.environment.NETPROBE_HEARTBEAT_FILE);
  });

  it("the healthcheck command passes on a fresh heartbeat and fails on a stale or missing one", () => {
    const compose = yamlOf("docker-compose.yml") as {
      services: { probe: { environment: Record<string, string>; healthcheck: { test: string[] } } };
    };
    const { test } = compose.services.probe.healthcheck;
    expect(test[0]).toBe("CMD-SHELL");
    const file = join(tmp, "heartbeat");
    // Compose unescapes $$ to $; the command then runs in the container's /bin/sh.
    const cmd = test[1]!
      .replaceAll("$$", "$")
      .replaceAll(compose.services.probe.environment.NETPROBE_HEARTBEAT_FILE!, file);
    expect(sh("sh", ["-c", cmd]).code).not.toBe(0); // missing
    writeFileSync(file, "1\n");
    expect(sh("sh", ["-c", cmd]).code).toBe(0); // fresh
    expect(sh("touch", ["-d", "-2 minutes", file]).code).toBe(0);
    expect(sh("sh", ["-c", cmd]).code).not.toBe(0); // stale: the event loop stopped writing it
  });

  it("Dockerfile.template: multi-stage on the official Node 22 slim image, every COPY source present", () => {
    const compose = yamlOf("docker-compose.yml") as {
      services: {
        probe: { build: { context: string; dockerfile: string }; environment: Record<string, string> };
      };
    };
    const { context, dockerfile } = compose.services.probe.build;
    const lines = text(dockerfile)
      .replace(/\\\n/g, " ")
      .split("\n")
      .filter((l) => l.trim() && !l.trim().startsWith("#"));
    const from = lines.filter((l) => l.startsWith("FROM "));
    expect(from.length).toBeGreaterThanOrEqual(2);
    for (const f of from) expect(f).toMatch(/^FROM node:22-bookworm-slim( AS \w+)?$/);
    expect(lines.join("\n")).not.toMatch(/balenalib/); // deprecated base images
    for (const l of lines.filter((x) => x.startsWith("COPY ") && !x.includes("--from="))) {
      const srcs = l.split(/\s+/).slice(1, -1);
      for (const s of srcs) expect(existsSync(join(REPO, context, s)), `${l}: ${s}`).toBe(true);
    }
    expect(lines.some((l) => l.startsWith("HEALTHCHECK "))).toBe(true);
    // The bundled service (scripts/build.ts: services/probe/src → dist/), built in the build stage.
    expect(lines.find((l) => l.startsWith("CMD "))).toContain("services/probe/bin/netprobe");
    expect(lines.some((l) => /^RUN npm run build\b/.test(l))).toBe(true);
    // The runtime stage has no compiler.
    const runtime = lines.slice(lines.lastIndexOf(from.at(-1)!));
    expect(runtime.join("\n")).not.toMatch(/\b(g\+\+|make|libpcap-dev)\b/);
  });

  it("the config baked into the image is valid", () => {
    const r = validateConfigFile(join(FW, "balena/netprobe.yaml"), {});
    expect(r.ok ? [] : r.problems).toEqual([]);
  });
});

describe("install scripts and docs", () => {
  it("install.sh and uninstall.sh parse", () => {
    for (const s of ["install.sh", "uninstall.sh"]) expect(sh("bash", ["-n", join(FW, s)]).err).toBe("");
  });

  it("install.sh installs dtc (for the overlay) and systemd-notify (for the watchdog) on the device", () => {
    const pkgs = sh(join(FW, "install.sh"), ["--print-apt-packages"]).out.trim().split("\n");
    expect(pkgs).toContain("device-tree-compiler");
    expect(pkgs).toContain("systemd");
    expect(pkgs).toContain("libpcap0.8");
  });

  it("README's Deploying section lists every device variable the service reads", () => {
    const readme = text("README.md");
    const at = readme.indexOf("## Deploying");
    expect(at).toBeGreaterThan(-1);
    const section = readme.slice(at, readme.indexOf("\n## ", at + 1));
    for (const o of ENV_OVERRIDES) expect(section).toContain(`\`${o.name}\``);
  });
});
