/**
 * What scripts/gen/schemas.ts generates from the MQTT contract: one JSON Schema file per topic
 * under schemas/mqtt/, and the generated sections of docs/mqtt.md (topic table, examples, error
 * codes), all from TOPICS, so the published contract is the one the code validates against.
 */
import { EXAMPLES } from "./mqtt-examples.ts";
import type { TSchema } from "@sinclair/typebox";
import {
  COMMAND_ERRORS,
  configPayloadSchema,
  REPLY_EXPIRY_S,
  replyPayloadSchema,
  SCHEMA_VERSION,
  TOPICS,
  type TopicKey,
} from "../../services/contract/src/payloads.ts";
import { ConfigSchema } from "../../services/probe/src/config/schema.ts";

/**
 * The payload schema published for each topic: the contract's, except that `config` and `reply`
 * carry the probe's full config schema where the contract promises only what HQ reads.
 */
function publishedSchema(key: TopicKey): TSchema {
  if (key === "config") return configPayloadSchema(ConfigSchema);
  if (key === "reply") return replyPayloadSchema(ConfigSchema);
  return TOPICS[key].schema;
}

/** Repository path of the JSON Schema of one topic's payload. */
export function mqttSchemaFile(key: TopicKey): string {
  return `schemas/mqtt/${key.replaceAll("_", "-")}.schema.json`;
}

/** The JSON Schema of one topic's payload, as written to schemas/mqtt/. */
export function mqttJsonSchema(key: TopicKey): Record<string, unknown> {
  const spec = TOPICS[key];
  // JSON round trip drops TypeBox's symbol-keyed bookkeeping and leaves plain JSON Schema.
  const body = JSON.parse(JSON.stringify(publishedSchema(key))) as Record<string, unknown>;
  return {
    $schema: "http://json-schema.org/draft-07/schema#",
    title: `netprobe/v1/<site>/<probe>/${spec.topic}`,
    description:
      `${spec.description}. Published by ${spec.from === "probe" ? "the probe" : "headquarters"}, ` +
      `QoS ${spec.qos}, ${spec.retain ? "retained" : "not retained"}; payload schema ${SCHEMA_VERSION}. ` +
      "Generated from services/contract/src/payloads.ts by scripts/gen/schemas.ts; do not edit.",
    ...body,
  };
}

/** Every generated schema file: path → content. */
export function mqttSchemaFiles(): Record<string, Record<string, unknown>> {
  return Object.fromEntries(
    (Object.keys(TOPICS) as TopicKey[]).map((k) => [mqttSchemaFile(k), mqttJsonSchema(k)]),
  );
}

function cell(text: string): string {
  return text.replaceAll("|", "\\|").replaceAll("\n", " ");
}

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.map(cell).join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

function anchor(key: TopicKey): string {
  return `example-${key.replaceAll("_", "-")}`;
}

/** The topic table: every topic, who publishes it, QoS, retain, schema file. */
export function renderTopicTable(): string {
  return table(
    ["Topic", "From", "QoS", "Retained", "Schema", "Content"],
    (Object.keys(TOPICS) as TopicKey[]).map((k) => {
      const t = TOPICS[k];
      return [
        `\`${t.topic}\``,
        t.from === "probe" ? "probe" : "HQ",
        String(t.qos),
        t.retain ? "yes" : "no",
        `[${mqttSchemaFile(k).split("/").pop()}](../${mqttSchemaFile(k)})`,
        `${t.description} ([example](#${anchor(k)}))`,
      ];
    }),
  );
}

/** One section per topic with its example payloads. */
export function renderExamples(): string {
  return (Object.keys(TOPICS) as TopicKey[])
    .map((k) => {
      const t = TOPICS[k];
      const blocks = EXAMPLES[k].map((e) => `\`\`\`json\n${JSON.stringify(e, null, 2)}\n\`\`\``).join("\n\n");
      return `### \`${t.topic}\` <a id="${anchor(k)}"></a>\n\n${blocks}`;
    })
    .join("\n\n");
}

/** The reply error codes. */
export function renderErrorTable(): string {
  return table(
    ["`error.code`", "Meaning"],
    Object.entries(COMMAND_ERRORS).map(([code, meaning]) => [`\`${code}\``, meaning]),
  );
}

const SECTIONS: Readonly<Record<string, () => string>> = {
  topics: renderTopicTable,
  examples: renderExamples,
  errors: renderErrorTable,
  "reply-expiry": () => `Replies expire after **${REPLY_EXPIRY_S} s** (MQTT 5 Message Expiry Interval).`,
};

/**
 * Replaces the text between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->` in
 * docs/mqtt.md; throws when a marker is missing, so a renamed heading cannot drop a section.
 */
export function fillMqttSections(doc: string): string {
  let out = doc;
  for (const [name, render] of Object.entries(SECTIONS)) {
    const start = `<!-- generated:${name} -->`;
    const end = `<!-- /generated:${name} -->`;
    const i = out.indexOf(start);
    const j = out.indexOf(end);
    if (i === -1 || j < i) throw new Error(`docs/mqtt.md: markers ${start} … ${end} not found`);
    out = `${out.slice(0, i + start.length)}\n\n${render()}\n\n${out.slice(j)}`;
  }
  return out;
}
