// Ethernet link (link area): carrier, speed, duplex, MTU, error/drop counter deltas and carrier
// flaps since the last run, all from sysfs (/sys/class/net/<iface>). A lost link must reach the
// LED within 1 s (docs/architecture.md, "Quality bars"), so the kind also watches the carrier between runs and asks the
// scheduler for an immediate run on every change; it goes red on one failing run (failAfter 1).
//
// Carrier changes have no inotify event in sysfs and Node has no netlink socket, so the watch
// polls two tiny in-kernel files (carrier, carrier_changes) every watch_interval_ms; the kernel's
// carrier_changes counter catches flaps shorter than the poll period.

import { Type, type Static } from "@sinclair/typebox";
import type { CheckKind, Measurement, Status } from "./check.ts";
import { isInterfaceName, readSysfs } from "../net/interfaces.ts";

const options = Type.Object(
  {
    min_speed_mbps: Type.Integer({
      minimum: 0,
      default: 0,
      description:
        "warn when the negotiated speed is below this (e.g. 1000 on a gigabit port); 0 = not checked",
    }),
    expect_duplex: Type.Union([Type.Literal("any"), Type.Literal("full")], {
      default: "full",
      description: "full: half duplex (a duplex mismatch or a bad cable) warns; any: not checked",
    }),
    expect_mtu: Type.Integer({
      minimum: 0,
      maximum: 65535,
      default: 0,
      description: "warn when the interface MTU differs; 0 = not checked",
    }),
    max_flaps: Type.Integer({
      minimum: 0,
      default: 0,
      description: "warn when the carrier changed more than this many times since the last run",
    }),
    watch_interval_ms: Type.Integer({
      minimum: 50,
      maximum: 5000,
      default: 200,
      description: "how often the carrier is polled between runs; a change triggers a run at once",
    }),
  },
  { additionalProperties: false },
);

/** Options of a link check, defaults filled in by the config loader. */
export type LinkOptions = Static<typeof options>;

/** Reads one sysfs attribute of an interface (undefined when missing); tests pass a fake sysfs. */
export type SysfsReader = (iface: string, attr: string) => string | undefined;

/** The I/O a link check uses. */
export interface LinkDependencies {
  read: SysfsReader;
}

const COUNTERS = [
  "rx_errors",
  "tx_errors",
  "rx_dropped",
  "tx_dropped",
  "rx_crc_errors",
  "rx_frame_errors",
  "collisions",
] as const;
type Counter = (typeof COUNTERS)[number];

interface Previous {
  counters: Partial<Record<Counter, number>>;
  carrierChanges: number | undefined;
  carrier: boolean;
}

/** Builds the link check over the given sysfs reader. */
export function createLinkCheck(deps: LinkDependencies): CheckKind<typeof options> {
  // Counter values of the previous run, per interface, for the deltas.
  const previous = new Map<string, Previous>();
  return {
    kind: "link",
    defaultArea: "link",
    options,
    failAfter: 1,
    run: (target, opts) => Promise.resolve(measureLink(deps.read, target.trim(), opts, previous)),
    watch: (target, opts, _ctx, signal, onChange) => {
      const iface = target.trim();
      if (!isInterfaceName(iface)) return;
      const sample = (): string =>
        `${deps.read(iface, "carrier") ?? "-"}/${deps.read(iface, "carrier_changes") ?? "-"}/${deps.read(iface, "operstate") ?? "-"}`;
      let last = sample();
      const timer = setInterval(() => {
        const now = sample();
        if (now !== last) {
          last = now;
          onChange();
        }
      }, opts.watch_interval_ms);
      timer.unref();
      signal.addEventListener("abort", () => clearInterval(timer), { once: true });
    },
  };
}

/** Link state from the kernel's sysfs. */
export const link: CheckKind<typeof options> = createLinkCheck({ read: readSysfs });

function int(read: SysfsReader, iface: string, attr: string): number | undefined {
  const text = read(iface, attr);
  if (text === undefined || !/^-?\d+$/.test(text)) return undefined;
  return Number(text);
}

function measureLink(
  read: SysfsReader,
  iface: string,
  opts: LinkOptions,
  previous: Map<string, Previous>,
): Measurement {
  if (!isInterfaceName(iface)) {
    return {
      status: "error",
      metrics: {},
      error: {
        code: "invalid_target",
        message: `target must be an interface name such as eth0, got "${iface}"`,
      },
    };
  }
  const flagsText = read(iface, "flags");
  if (flagsText === undefined) {
    previous.delete(iface);
    return {
      status: "fail",
      metrics: { carrier: 0 },
      detail: { interface: iface },
      error: {
        code: "interface_missing",
        message: `interface ${iface} does not exist (network adapter missing, renamed, or its driver failed)`,
      },
    };
  }
  const adminUp = (Number.parseInt(flagsText, 16) & 0x1) === 1;
  // Reading `carrier` of an administratively down interface fails with EINVAL: no link then.
  const carrier = adminUp ? int(read, iface, "carrier") === 1 : false;
  const operstate = read(iface, "operstate") ?? "unknown";
  const speed = int(read, iface, "speed");
  const duplex = read(iface, "duplex");
  const mtu = int(read, iface, "mtu");
  const carrierChanges = int(read, iface, "carrier_changes");

  const prev = previous.get(iface);
  const counters: Partial<Record<Counter, number>> = {};
  for (const c of COUNTERS) {
    const v = int(read, iface, `statistics/${c}`);
    if (v !== undefined) counters[c] = v;
  }
  previous.set(iface, { counters, carrierChanges, carrier });

  const metrics: Record<string, number> = { carrier: carrier ? 1 : 0 };
  // The kernel reports -1 (or nothing) for speed/duplex while there is no link.
  if (carrier && speed !== undefined && speed > 0) metrics.speed_mbps = speed;
  if (mtu !== undefined) metrics.mtu = mtu;
  if (carrierChanges !== undefined) metrics.carrier_changes = carrierChanges;
  // The first run only sets the baseline: deltas against nothing would be whole-uptime totals.
  const changes =
    prev?.carrierChanges !== undefined && carrierChanges !== undefined
      ? Math.max(0, carrierChanges - prev.carrierChanges)
      : 0;
  // A change the runs saw (down at the last run, up now) is not a flap; a flap is a down+up pair
  // that happened between two runs.
  const flaps = Math.ceil(
    Math.max(0, changes - (prev !== undefined && prev.carrier !== carrier ? 1 : 0)) / 2,
  );
  metrics.carrier_changes_delta = changes;
  metrics.flaps = flaps;
  if (prev !== undefined) {
    for (const c of COUNTERS) {
      const now = counters[c];
      const before = prev.counters[c];
      // A counter that went backwards was reset (driver reload): count from zero.
      if (now !== undefined && before !== undefined)
        metrics[`${c}_delta`] = now >= before ? now - before : now;
    }
  }
  const detail: Record<string, unknown> = {
    interface: iface,
    admin_up: adminUp,
    operstate,
    duplex: carrier ? (duplex ?? "unknown") : null,
    mac: read(iface, "address") ?? null,
    // Autonegotiation is only exposed through ethtool (ioctl/genetlink), not sysfs.
    autoneg: null,
    counters,
  };

  let status: Status = "ok";
  let error: { code: string; message: string } | undefined;
  const warn = (code: string, message: string): void => {
    if (status === "ok") {
      status = "warn";
      error = { code, message };
    }
  };
  if (!adminUp) {
    return {
      status: "fail",
      metrics,
      detail,
      error: {
        code: "interface_down",
        message: `interface ${iface} is administratively down on the probe (ip link set ${iface} up)`,
      },
    };
  }
  if (!carrier) {
    return {
      status: "fail",
      metrics,
      detail,
      error: {
        code: "no_carrier",
        message: `no link on ${iface}: cable unplugged or broken, or the switch port is down/disabled`,
      },
    };
  }
  if (opts.min_speed_mbps > 0 && (speed === undefined || speed < opts.min_speed_mbps)) {
    warn(
      "low_speed",
      `link on ${iface} negotiated ${speed ?? "an unknown speed"} Mb/s, expected at least ${opts.min_speed_mbps} (bad cable pair or port setting)`,
    );
  }
  if (opts.expect_duplex === "full" && duplex === "half") {
    warn("half_duplex", `link on ${iface} is half duplex: duplex mismatch with the switch or a bad cable`);
  }
  if (opts.expect_mtu > 0 && mtu !== undefined && mtu !== opts.expect_mtu) {
    warn("mtu_mismatch", `MTU of ${iface} is ${mtu}, expected ${opts.expect_mtu}`);
  }
  if (flaps > opts.max_flaps) {
    warn(
      "carrier_flaps",
      `link on ${iface} went down and up ${flaps} time${flaps === 1 ? "" : "s"} since the last check: loose cable or failing port`,
    );
  }
  return error === undefined ? { status, metrics, detail } : { status, metrics, detail, error };
}
