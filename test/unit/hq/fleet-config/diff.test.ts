// `hq config diff`: path by path, checks keyed by name, redacted secrets not compared.
import { describe, expect, it } from "vitest";
import { documentDiff } from "../../../../services/hq/src/fleet-config/diff.ts";

describe("documentDiff", () => {
  it("names a changed check option by the check's name, whatever its position", () => {
    const running = {
      broker: { url: "mqtts://198.51.100.1:8883", password: "***" },
      checks: [
        { name: "dns", kind: "dns", target: "www.example.net" },
        { name: "gw", kind: "icmp", target: "192.0.2.1", options: { count: 3 } },
      ],
    };
    const wanted = {
      broker: { url: "mqtts://198.51.100.1:8883", password: "s3cret" },
      checks: [
        { name: "gw", kind: "icmp", target: "192.0.2.1", options: { count: 7 } },
        { name: "web", kind: "http", target: "http://www.example.net/" },
      ],
    };
    expect(documentDiff(running, wanted)).toEqual([
      '- checks[dns].kind: "dns"',
      '- checks[dns].name: "dns"',
      '- checks[dns].target: "www.example.net"',
      "- checks[gw].options.count: 3",
      "+ checks[gw].options.count: 7",
      '+ checks[web].kind: "http"',
      '+ checks[web].name: "web"',
      '+ checks[web].target: "http://www.example.net/"',
    ]);
    expect(documentDiff(running, running)).toEqual([]);
    expect(documentDiff({ a: [] }, { a: [1] })).toEqual(["- a: []", "+ a[0]: 1"]);
  });
});
