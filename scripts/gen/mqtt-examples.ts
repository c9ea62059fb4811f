/**
 * One or more example payloads per topic of the contract, rendered into docs/mqtt.md by
 * scripts/gen/schemas.ts and checked against the generated JSON Schemas by a unit test, so the
 * documentation cannot show a payload the probe would not send (or refuse).
 */
import { configHash, redactConfig } from "../../services/probe/src/config/redact.ts";
import { documentHash } from "../../services/contract/src/config-document.ts";
import { validateConfig } from "../../services/probe/src/config/validate.ts";
import type { Config } from "../../services/probe/src/config/schema.ts";
import {
  SCHEMA_VERSION,
  type ConfigPayload,
  type EventPayload,
  type HealthPayload,
  type ReplyPayload,
  type ResultPayload,
  type StatePayload,
  type TopicKey,
} from "../../services/contract/src/payloads.ts";

const SITE = "branch-042";
const PROBE = "pi-01";
const BOOT_ID = "5f1c2d9e-8a47-4b1e-9d2a-0c3f6e7a8b90";
const AT = "2025-03-14T09:26:53.589Z";

/** The config file the examples show: a small file as a site would write it. */
const exampleDocument = {
  site: SITE,
  probe: PROBE,
  broker: {
    url: "mqtts://hq.example.com:8883",
    username: `${SITE}.${PROBE}`,
    password: "example-password",
    ca_file: "/etc/netprobe/hq-ca.pem",
    cert_file: "/etc/netprobe/probe.pem",
    key_file: "/etc/netprobe/probe.key",
  },
  checks: [
    {
      name: "gateway-icmp",
      kind: "icmp",
      target: "192.0.2.1",
      area: "lan",
      thresholds: { loss_pct: { warn: 5, fail: 50 } },
    },
  ],
};

/** The example file loaded like the service does. */
function exampleConfig(): Config {
  const r = validateConfig(exampleDocument);
  if (!r.ok) throw new Error(`the example config is invalid: ${r.problems.join("; ")}`);
  return r.config;
}

const config = exampleConfig();
const hash = configHash(config);

const state: StatePayload = {
  schema: SCHEMA_VERSION,
  state: "online",
  version: "0.1.0",
  boot_id: BOOT_ID,
  started_at: "2025-03-14T08:00:02.114Z",
};

const health: HealthPayload = {
  schema: SCHEMA_VERSION,
  at: AT,
  boot_id: BOOT_ID,
  mono_ms: 5_211_903.4,
  areas: {
    lan: {
      state: "failing",
      since: "2025-03-14T09:26:51.402Z",
      led: "red-blink",
      last_result_id: "01JPA3Q4Z8W2M5N7R9T1V3X5Z7",
      reason: "gateway-icmp: fail (timeout: no reply from 192.0.2.1)",
    },
    wan: {
      state: "ok",
      since: "2025-03-14T08:00:05.020Z",
      led: "green",
      last_result_id: "01JPA3Q3Y6V0K3M5P7R9T1V3X5",
      reason: "wan-icmp: ok",
    },
    phone: {
      state: "off",
      since: "2025-03-14T08:00:02.114Z",
      led: "off",
      last_result_id: null,
      reason: "not configured",
    },
  },
  outbox: { rows: 12, evicted: 0 },
  store: { state: "ok", reason: null, not_kept: 0, quarantined: null },
};

const result: ResultPayload = {
  schema: SCHEMA_VERSION,
  id: "01JPA3Q4Z8W2M5N7R9T1V3X5Z7",
  seq: 48211,
  site: SITE,
  probe: PROBE,
  check: "gateway-icmp",
  kind: "icmp",
  area: "lan",
  target: "192.0.2.1",
  started_at: "2025-03-14T09:26:49.401Z",
  boot_id: BOOT_ID,
  mono_ms: 5_209_715.2,
  duration_ms: 2003.118,
  status: "fail",
  metrics: { sent: 5, received: 0, loss_pct: 100 },
  detail: { address: "192.0.2.1", family: 4 },
  error: { code: "timeout", message: "no reply from 192.0.2.1" },
  version: "0.1.0",
};

const event: EventPayload = {
  schema: SCHEMA_VERSION,
  type: "area_transition",
  at: AT,
  boot_id: BOOT_ID,
  mono_ms: 5_211_903.4,
  area: "lan",
  from: "ok",
  to: "failing",
  reason: "gateway-icmp: fail (timeout: no reply from 192.0.2.1)",
  result_id: "01JPA3Q4Z8W2M5N7R9T1V3X5Z7",
};

const storeEvent: EventPayload = {
  schema: SCHEMA_VERSION,
  type: "store_quarantined",
  at: AT,
  boot_id: BOOT_ID,
  mono_ms: 31_204.9,
  reason:
    "damaged database moved to /var/lib/netprobe/netprobe.db.corrupt-20250314T092649Z; a new buffer started at seq 48212",
  file: "/var/lib/netprobe/netprobe.db",
  moved_to: "/var/lib/netprobe/netprobe.db.corrupt-20250314T092649Z",
  problem:
    "store /var/lib/netprobe/netprobe.db is damaged: quick_check: Tree 2 page 811 cell 0: invalid page number 4145906731",
  undelivered_rows: 312,
  next_seq: 48212,
  seq_from: "damaged file",
};

const docHash = documentHash(exampleDocument);
const previousDocHash = "4b1f0c8a2e6d9f3a7c5b1e8d0a2f4c6e8b0d2f4a6c8e0b2d4f6a8c0e2b4d6f8a";

const configPayload: ConfigPayload = {
  schema: SCHEMA_VERSION,
  at: "2025-03-14T08:00:02.114Z",
  boot_id: BOOT_ID,
  config_hash: hash,
  document_hash: docHash,
  config: redactConfig(config),
};

/** The retained config while an applied document waits for HQ's confirmation. */
const pendingConfigPayload: ConfigPayload = {
  ...configPayload,
  at: AT,
  pending: {
    document_hash: docHash,
    confirm_by: "2025-03-14T09:31:53.589Z",
    previous_document_hash: previousDocHash,
  },
};

const reply = (r: Omit<ReplyPayload, "schema" | "at" | "site" | "probe">): ReplyPayload => ({
  schema: SCHEMA_VERSION,
  at: AT,
  site: SITE,
  probe: PROBE,
  ...r,
});

/** Example payloads per topic; the first of each is the one the topic table links to. */
export const EXAMPLES: Readonly<Record<TopicKey, readonly unknown[]>> = {
  state: [state, { ...state, state: "offline" }],
  health: [health],
  result: [result],
  event: [event, storeEvent],
  config: [configPayload, pendingConfigPayload],
  cmd_run: [
    { schema: SCHEMA_VERSION, request_id: "01JPA40B8D3G5J7K9M1P3R5T7V", check: "gateway-icmp" },
    { schema: SCHEMA_VERSION, request_id: "01JPA40C1F3H5K7M9P1R3T5V7X", area: "wan" },
  ],
  cmd_identify: [{ schema: SCHEMA_VERSION, request_id: "01JPA41D2G4J6L8N0Q2S4U6W8Y", duration_s: 60 }],
  cmd_reload: [{ schema: SCHEMA_VERSION, request_id: "01JPA42E3H5K7M9P1R3T5V7X9Z" }],
  cmd_config: [{ schema: SCHEMA_VERSION, request_id: "01JPA43F4J6L8N0Q2S4U6W8Y0A" }],
  cmd_apply_config: [
    {
      schema: SCHEMA_VERSION,
      request_id: "01JPA45H6L8N0Q2S4U6W8Y0A2C",
      document: exampleDocument,
      document_hash: docHash,
      confirm_s: 300,
    },
  ],
  cmd_confirm_config: [
    { schema: SCHEMA_VERSION, request_id: "01JPA46J7M9P1R3T5V7X9Z1B3D", document_hash: docHash },
  ],
  cmd_rollback_config: [{ schema: SCHEMA_VERSION, request_id: "01JPA47K8N0Q2S4U6W8Y0A2C4E" }],
  reply: [
    reply({
      request_id: "01JPA40B8D3G5J7K9M1P3R5T7V",
      command: "run",
      ok: true,
      result: { started: ["gateway-icmp"] },
    }),
    reply({
      request_id: "01JPA42E3H5K7M9P1R3T5V7X9Z",
      command: "reload",
      ok: false,
      error: {
        code: "config_invalid",
        message: "the config file has 1 problem; the running config stays",
        problems: ["checks[0].interval: must be ≥ 1s"],
      },
    }),
    reply({
      request_id: "01JPA45H6L8N0Q2S4U6W8Y0A2C",
      command: "apply_config",
      ok: true,
      result: {
        config_hash: hash,
        document_hash: docHash,
        changed: ["checks"],
        confirm_by: "2025-03-14T09:31:53.589Z",
      },
    }),
    reply({
      request_id: "01JPA44G5K7M9P1R3T5V7X9Z1B",
      command: "run",
      ok: false,
      error: {
        code: "invalid_command",
        message: "invalid run command: 1 problem",
        problems: ["(payload): set exactly one of check, area"],
      },
    }),
  ],
};
