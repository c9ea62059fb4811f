// The parts of the tcp, http and tls checks that need no network: target parsing and option
// mistakes, which must be `error` results with a code before anything is sent. Their network
// behaviour is tested against real servers in test/lab/wan-services.test.ts.
import { Value } from "@sinclair/typebox/value";
import { describe, expect, test } from "vitest";
import type { CheckKind } from "../../../services/probe/src/checks/check.ts";
import { http } from "../../../services/probe/src/checks/http.ts";
import { parseHostPort, tcp } from "../../../services/probe/src/checks/tcp.ts";
import { tls } from "../../../services/probe/src/checks/tls.ts";
import { silentLogger } from "../../../services/contract/src/log.ts";

function run(kind: CheckKind, target: string, options: Record<string, unknown> = {}) {
  const opts = Value.Default(kind.options, structuredClone(options)) as never;
  return kind.run(target, opts, { log: silentLogger() }, new AbortController().signal);
}

describe("host:port targets", () => {
  test.each([
    ["192.0.2.1:80", undefined, { host: "192.0.2.1", port: 80 }],
    ["www.example.net:443", undefined, { host: "www.example.net", port: 443 }],
    ["[2001:db8::1]:8443", undefined, { host: "2001:db8::1", port: 8443 }],
    ["2001:db8::1", 123, { host: "2001:db8::1", port: 123 }],
    ["ntp.example.net", 123, { host: "ntp.example.net", port: 123 }],
  ] as const)("%s (default port %s)", (target, port, expected) => {
    expect(parseHostPort(target, port)).toEqual(expected);
  });

  test.each(["www.example.net", "192.0.2.1:0", "192.0.2.1:65536", ":80", "a:b:c"])(
    "%s is rejected with a reason",
    (target) => {
      expect(parseHostPort(target)).toHaveProperty("problem");
    },
  );
});

describe("configuration mistakes are error results, nothing sent", () => {
  test.each([
    [tcp, "www.example.net", {}, "invalid_target"],
    [tcp, "192.0.2.1:80", { expect: "(" }, "invalid_option"],
    [tcp, "192.0.2.1:80", { address_family: "ipv6" }, "invalid_target"],
    [http, "ftp://www.example.net/", {}, "invalid_target"],
    [http, "not a url", {}, "invalid_target"],
    [http, "http://192.0.2.1/", { expect_body_regex: "[" }, "invalid_option"],
    [http, "https://192.0.2.1/", { ca_file: "/nonexistent/netprobe-ca.pem" }, "invalid_option"],
    [tls, "192.0.2.1:0", {}, "invalid_target"],
    [tls, "192.0.2.1", { ca_file: "/nonexistent/netprobe-ca.pem" }, "invalid_option"],
  ] as const)("%# %s %j → %s", async (kind, target, options, code) => {
    const m = await run(kind, target, options);
    expect(m.status).toBe("error");
    expect(m.error?.code).toBe(code);
  });

  test("defaults: tcp waits 3 s, http expects 2xx within 10 s, tls warns 14 days ahead", () => {
    expect(Value.Default(tcp.options, {})).toMatchObject({ send: "", expect: "", wait_ms: 3000 });
    expect(Value.Default(http.options, {})).toMatchObject({
      method: "GET",
      expect_status: [],
      wait_ms: 10000,
      insecure: false,
    });
    expect(Value.Default(tls.options, {})).toMatchObject({ warn_days: 14, ca_file: "", servername: "" });
  });
});
