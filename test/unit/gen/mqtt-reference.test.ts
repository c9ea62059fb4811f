// The published MQTT contract: every topic has a generated JSON Schema with a `schema` version
// field, and every example in docs/mqtt.md validates against it with an independent validator
// (ajv), not only with the TypeBox definitions the files were generated from.
import { readFileSync } from "node:fs";
import Ajv from "ajv";
import { Value } from "@sinclair/typebox/value";
import { describe, expect, it } from "vitest";
import { EXAMPLES } from "../../../scripts/gen/mqtt-examples.ts";
import { mqttSchemaFile } from "../../../scripts/gen/mqtt-reference.ts";
import { COMMANDS, TOPICS, type TopicKey } from "../../../services/contract/src/payloads.ts";

const ROOT = new URL("../../../", import.meta.url).pathname;
const KEYS = Object.keys(TOPICS) as TopicKey[];
// The JSON code blocks of docs/mqtt.md as published (after prettier), parsed.
const DOC_BLOCKS = [...readFileSync(ROOT + "docs/mqtt.md", "utf8").matchAll(/```json\n([\s\S]*?)```/g)].map(
  (m) => JSON.parse(m[1]!) as unknown,
);

function schemaFile(key: TopicKey): Record<string, unknown> {
  return JSON.parse(readFileSync(ROOT + mqttSchemaFile(key), "utf8")) as Record<string, unknown>;
}

describe("MQTT contract", () => {
  it("covers state, health, results, events, config, every command and reply", () => {
    expect(KEYS.map((k) => TOPICS[k].topic)).toEqual([
      "state",
      "health",
      "results/<check>",
      "events",
      "config",
      "cmd/run",
      "cmd/identify",
      "cmd/reload",
      "cmd/config",
      "cmd/apply_config",
      "cmd/confirm_config",
      "cmd/rollback_config",
      "reply/<request_id>",
    ]);
    for (const name of Object.keys(COMMANDS))
      expect(KEYS.map((k) => TOPICS[k].topic)).toContain(`cmd/${name}`);
  });

  it.each(KEYS)("%s: the schema file requires a `schema` version field and is QoS 1", (key) => {
    const file = schemaFile(key);
    // `events` is a union (area transitions, store events): every branch carries the version.
    for (const s of (file.anyOf as Record<string, unknown>[] | undefined) ?? [file]) {
      expect(s.required).toContain("schema");
      expect((s.properties as Record<string, unknown>).schema).toMatchObject({ const: 1 });
    }
    expect(TOPICS[key].qos).toBe(1);
  });

  it.each(KEYS)(
    "%s: every example in docs/mqtt.md validates against schemas/mqtt (ajv and TypeBox)",
    (key) => {
      const ajv = new Ajv({ allErrors: true });
      const validate = ajv.compile(schemaFile(key));
      expect(EXAMPLES[key].length).toBeGreaterThan(0);
      for (const example of EXAMPLES[key]) {
        expect(validate(example), ajv.errorsText(validate.errors)).toBe(true);
        expect([...Value.Errors(TOPICS[key].schema, example)]).toEqual([]);
        expect(DOC_BLOCKS).toContainEqual(example);
      }
    },
  );

  it("the schema files reject what the probe refuses: both check and area, an unknown key, a topic wildcard in request_id", () => {
    const ajv = new Ajv({ allErrors: true });
    const run = ajv.compile(schemaFile("cmd_run"));
    expect(run({ schema: 1, request_id: "a1", check: "gw", area: "lan" })).toBe(false);
    expect(run({ schema: 1, request_id: "a1" })).toBe(false);
    expect(run({ schema: 1, request_id: "a1", check: "gw", extra: 1 })).toBe(false);
    expect(run({ schema: 1, request_id: "a/#", check: "gw" })).toBe(false);
    expect(run({ schema: 2, request_id: "a1", check: "gw" })).toBe(false);
    expect(run({ schema: 1, request_id: "a1", area: "lan" })).toBe(true);
  });

  it("the config example shows no secret", () => {
    const text = JSON.stringify(EXAMPLES.config);
    expect(text).not.toContain("example-password");
    expect(text).toContain('"password":"***"');
  });
});
