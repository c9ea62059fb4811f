// Composition of a probe's document: levels in order, deep merge, checks by name, variables.
import { describe, expect, it } from "vitest";
import { documentHash } from "../../../../services/contract/src/config-document.ts";
import {
  compose,
  ComposeError,
  mergeConfig,
  templateProblems,
  templatesFor,
  type Template,
} from "../../../../services/hq/src/fleet-config/compose.ts";

const fleet: Template = {
  level: "fleet",
  name: "fleet",
  body: {
    vars: { gw: "192.0.2.1", count: 5, broker_host: "hq.example.net" },
    config: {
      broker: { url: "mqtts://${broker_host}:8883", keepalive: "30s" },
      leds: { backend: "none", blink: { slow: "1s", fast: "125ms" } },
      defaults: { interval: "60s" },
      checks: [
        {
          name: "gw-icmp",
          kind: "icmp",
          target: "${gw}",
          area: "lan",
          options: { count: "${count}", size: 56 },
        },
        { name: "wan-icmp", kind: "icmp", target: "203.0.113.10" },
      ],
    },
  },
};
const groupB: Template = {
  level: "group",
  name: "b-north",
  body: { sites: ["branch-7"], vars: { count: 3 } },
};
const groupA: Template = {
  level: "group",
  name: "a-south",
  body: { sites: ["branch-7", "branch-9"], config: { defaults: { interval: "30s" } }, vars: { count: 4 } },
};
const site: Template = {
  level: "site",
  name: "branch-7",
  body: {
    vars: { gw: "192.0.2.254" },
    config: {
      leds: { blink: { fast: "100ms" } },
      checks: [
        { name: "gw-icmp", options: { count: 2 } },
        { name: "dns-udp", kind: "dns", target: "192.0.2.53" },
        { name: "wan-icmp", remove: true },
      ],
    },
  },
};
const probe: Template = {
  level: "probe",
  name: "branch-7/pi-01",
  body: { config: { log_level: "debug", defaults: { interval: "10s" } } },
};
const ALL = [probe, site, groupB, fleet, groupA];

describe("compose", () => {
  it("applies fleet → groups (by name) → site → probe, and sets site and probe from the topic", () => {
    expect(templatesFor(ALL, "branch-7", "pi-01").map((t) => `${t.level}:${t.name}`)).toEqual([
      "fleet:fleet",
      "group:a-south",
      "group:b-north",
      "site:branch-7",
      "probe:branch-7/pi-01",
    ]);
    const c = compose(ALL, "branch-7", "pi-01");
    expect(c.document.site).toBe("branch-7");
    expect(c.document.probe).toBe("pi-01");
    expect(c.document.log_level).toBe("debug");
    expect(c.document.defaults).toEqual({ interval: "10s" }); // probe beats group beats fleet
    expect(c.hash).toBe(documentHash(c.document));
    expect(c.from).toHaveLength(5);
  });

  it("merges objects key by key; scalars and arrays replace", () => {
    const c = compose(ALL, "branch-7", "pi-01");
    expect(c.document.leds).toEqual({ backend: "none", blink: { slow: "1s", fast: "100ms" } });
    expect(c.document.broker).toEqual({ url: "mqtts://hq.example.net:8883", keepalive: "30s" });
    expect(mergeConfig({ a: [1, 2], b: { x: 1 } }, { a: [3], b: { y: 2 } })).toEqual({
      a: [3],
      b: { x: 1, y: 2 },
    });
    expect(
      mergeConfig({ stamp_reflector: { allow: ["192.0.2.0/24"] } }, { stamp_reflector: { allow: [] } }),
    ).toEqual({
      stamp_reflector: { allow: [] },
    });
  });

  it("merges checks by name: an override keeps the check's place, new ones append, remove drops one", () => {
    const c = compose(ALL, "branch-7", "pi-01");
    expect(c.document.checks).toEqual([
      // the site's gw override merged into the fleet's check: options merged, count replaced
      { name: "gw-icmp", kind: "icmp", target: "192.0.2.254", area: "lan", options: { count: 2, size: 56 } },
      { name: "dns-udp", kind: "dns", target: "192.0.2.53" },
    ]);
    // Another site of group a-south: the fleet's checks, the group's variables.
    const other = compose(ALL, "branch-9", "pi-01");
    expect(other.document.checks).toEqual([
      { name: "gw-icmp", kind: "icmp", target: "192.0.2.1", area: "lan", options: { count: 4, size: 56 } },
      { name: "wan-icmp", kind: "icmp", target: "203.0.113.10" },
    ]);
  });

  it("substitutes variables: a lone ${name} keeps its type, $${ is a literal, site/probe are set", () => {
    const t: Template[] = [
      {
        level: "fleet",
        name: "fleet",
        body: {
          vars: { n: 7, on: true },
          config: { a: "${n}", b: "x-${n}", c: "${on}", d: "$${n}", e: "${site}.${probe}" },
        },
      },
    ];
    const d = compose(t, "s1", "p1").document;
    expect(d).toMatchObject({ a: 7, b: "x-7", c: true, d: "${n}", e: "s1.p1" });
  });

  it("an unknown variable is an error naming it and where it is used", () => {
    const t: Template[] = [
      {
        level: "fleet",
        name: "fleet",
        body: { config: { checks: [{ name: "x", kind: "icmp", target: "${gateway}" }] } },
      },
    ];
    expect(() => compose(t, "s1", "p1")).toThrow(ComposeError);
    expect(() => compose(t, "s1", "p1")).toThrow("unknown variable ${gateway} at checks[0].target");
  });

  it("equal compositions hash equal whatever the key order of the templates", () => {
    const a = compose([fleet], "s", "p");
    const reordered: Template = {
      level: "fleet",
      name: "fleet",
      body: {
        config: Object.fromEntries(Object.entries(fleet.body.config!).reverse()),
        vars: fleet.body.vars!,
      },
    };
    expect(compose([reordered], "s", "p").hash).toBe(a.hash);
  });

  it("template shape problems are named", () => {
    expect(templateProblems({ level: "fleet", name: "fleet", body: fleet.body })).toEqual([]);
    expect(templateProblems({ level: "galaxy", name: "x", body: {} })).toEqual([
      expect.stringContaining("level:"),
    ]);
    expect(templateProblems({ level: "group", name: "g", body: {} })).toEqual([
      expect.stringContaining("sites:"),
    ]);
    expect(templateProblems({ level: "probe", name: "just-a-name", body: {} })).toEqual([
      expect.stringContaining("<site>/<probe>"),
    ]);
    expect(
      templateProblems({
        level: "site",
        name: "s1",
        body: {
          config: { site: "other", checks: [{ kind: "icmp" }] },
          vars: { "9x": 1, site: "y" },
          extra: 1,
        },
      }),
    ).toEqual([
      "extra: unknown key (vars, sites, config)",
      "vars.9x: a variable name is A-Z a-z 0-9 _, not starting with a digit",
      "vars.site: set by HQ from the probe's topic",
      "config: site and probe are set by HQ from the probe's topic",
      "config.checks[0]: a check in a template needs a name (checks merge by name)",
    ]);
    expect(templateProblems({ level: "fleet", name: "fleet", body: "nope" })).toEqual([
      expect.stringContaining("(template): must be an object"),
    ]);
  });
});
