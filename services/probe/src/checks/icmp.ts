import { Type } from "@sinclair/typebox";
import type { CheckKind } from "./check.ts";

const options = Type.Object(
  {
    count: Type.Integer({ minimum: 1, maximum: 10000, default: 5, description: "echo requests per run" }),
    interval_ms: Type.Integer({ minimum: 1, maximum: 60000, default: 200, description: "gap between requests" }),
    size: Type.Integer({ minimum: 16, maximum: 65000, default: 56, description: "ICMP payload bytes" }),
    wait_ms: Type.Integer({
      minimum: 1,
      maximum: 60000,
      default: 1000,
      description: "how long to wait for replies after the last request",
    }),
  },
  { additionalProperties: false },
);

/** ICMP/ICMPv6 echo series (placeholder: being implemented). */
export const icmp: CheckKind<typeof options> = {
  kind: "icmp",
  defaultArea: "wan",
  options,
  run() {
    return Promise.resolve({ status: "error", metrics: {}, error: { code: "not_implemented", message: "icmp" } });
  },
};
