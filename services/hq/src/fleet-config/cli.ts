// `netprobe hq config set|show|history|diff|apply|rollback|status`: talks to a running
// `netprobe hq serve` over its HTTP API (/api/config/…, http.ts) with a bearer token read from a
// file (never argv): the operator token `hq serve` generated (auth.token_file), or a viewer token
// for the reading subcommands.
import { readFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { Command } from "commander";
import { parse as parseYaml } from "yaml";
import { terminalSafe } from "../../../contract/src/printable-text.ts";
import { defaultTokenFile } from "../web-access.ts";

const EXIT_USAGE = 2;

interface ApiFlags {
  hq?: string;
  tokenFile?: string;
  ca?: string;
}

/** HQ's answer: status and parsed JSON body. */
interface ApiAnswer {
  status: number;
  body: Record<string, unknown>;
}

class UsageError extends Error {}

function api(flags: ApiFlags, env: NodeJS.ProcessEnv = process.env) {
  const base = flags.hq ?? env.NETPROBE_HQ_URL ?? "http://127.0.0.1:8080/";
  const tokenFile = flags.tokenFile ?? env.NETPROBE_HQ_TOKEN_FILE ?? defaultTokenFile(env);
  let token: string;
  try {
    token = readFileSync(tokenFile, "utf8").trim();
  } catch (err) {
    throw new UsageError(`cannot read the token file ${tokenFile}: ${(err as Error).message} (--token-file)`);
  }
  const ca = flags.ca ? readFileSync(flags.ca) : undefined;
  return (method: string, path: string, body?: unknown): Promise<ApiAnswer> =>
    new Promise((resolve, reject) => {
      let u: URL;
      try {
        u = new URL(path.replace(/^\//, ""), base.endsWith("/") ? base : `${base}/`);
      } catch {
        return reject(new UsageError(`--hq: ${base} is not a URL`));
      }
      const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const req = (u.protocol === "https:" ? httpsRequest : httpRequest)(
        u,
        {
          method,
          headers: {
            authorization: `Bearer ${token}`,
            accept: "application/json",
            ...(data ? { "content-type": "application/json", "content-length": str(data.length) } : {}),
          },
          ...(ca ? { ca } : {}),
          timeout: 60_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            try {
              resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> });
            } catch {
              resolve({ status: res.statusCode ?? 0, body: { error: text.slice(0, 300) } });
            }
          });
        },
      );
      req.on("timeout", () => req.destroy(new Error("HQ did not answer within 60 s")));
      req.on("error", (err) => reject(new Error(`cannot reach HQ at ${u.origin}: ${err.message}`)));
      req.end(data);
    });
}

function apiOptions(cmd: Command): Command {
  return cmd
    .option("--hq <url>", "HQ's web address (or $NETPROBE_HQ_URL; default http://127.0.0.1:8080/)")
    .option(
      "--token-file <file>",
      "file holding an HQ token (or $NETPROBE_HQ_TOKEN_FILE; default: hq serve's)",
    )
    .option("--ca <file>", "CA certificate of HQ's https (http.tls)");
}

const out = (s: string) => process.stdout.write(`${terminalSafe(s)}\n`);

/** Prints an error answer (with every problem) and sets the exit code. */
function failed(a: ApiAnswer): boolean {
  if (a.status < 400) return false;
  const b = a.body;
  console.error(terminalSafe(`HQ answered ${a.status}: ${str(b.error ?? "error")}`));
  const probes = Array.isArray(b.probes) ? (b.probes as Array<Record<string, unknown>>) : [];
  const problems = Array.isArray(b.problems) ? b.problems : [];
  for (const p of problems) console.error(terminalSafe(`  ${problemText(p)}`));
  for (const p of probes) {
    console.error(terminalSafe(`  ${str(p.key)}: ${str(p.error ?? "")}`));
    for (const q of Array.isArray(p.problems) ? p.problems : [])
      console.error(terminalSafe(`    ${problemText(q)}`));
  }
  process.exitCode = 1;
  return true;
}

function problemText(p: unknown): string {
  if (typeof p === "string") return p;
  const q = p as { path?: string; message?: string };
  return `${q.path || "(document)"}: ${q.message ?? ""}`;
}

/** `fleet`, `group/<name>`, `site/<id>`, `probe/<site>/<probe>` → level and name. */
export function parseTemplateRef(ref: string): { level: string; name: string } {
  const [level, ...rest] = ref.split("/");
  if (level === "fleet" && rest.length === 0) return { level, name: "fleet" };
  if ((level === "group" || level === "site" || level === "probe") && rest.length > 0)
    return { level, name: rest.join("/") };
  throw new UsageError(`${ref}: a template is fleet, group/<name>, site/<id> or probe/<site>/<probe>`);
}

/** A JSON value as text for a line (objects as JSON, never "[object Object]"). */
const str = (v: unknown): string =>
  typeof v === "string"
    ? v
    : typeof v === "number" || typeof v === "boolean"
      ? `${v}`
      : v === null || v === undefined
        ? ""
        : JSON.stringify(v);

const short = (h: unknown) => (typeof h === "string" ? h.slice(0, 12) : "-");

async function run(flags: ApiFlags, fn: (call: ReturnType<typeof api>) => Promise<void>): Promise<void> {
  try {
    await fn(api(flags));
  } catch (err) {
    console.error(err instanceof Error ? err.message : str(err));
    process.exitCode = err instanceof UsageError ? EXIT_USAGE : 1;
  }
}

/** The `config` subcommand of `netprobe hq`. */
export function configCommand(): Command {
  const c = new Command("config").description(
    "fleet config at HQ: templates, desired vs effective, staged rollouts (docs/fleet-config.md)",
  );

  apiOptions(c.command("set <template> <file>"))
    .description(
      "store a new version of a template (fleet, group/<name>, site/<id>, probe/<site>/<probe>) from a YAML or JSON file",
    )
    .option("-m, --comment <text>", "why (kept in the history)", "")
    .option("--force", "store it even when it makes a probe's document invalid")
    .option("--delete", "delete the template instead (<file> is ignored: give -)")
    .action(
      (ref: string, file: string, f: ApiFlags & { comment: string; force?: boolean; delete?: boolean }) =>
        run(f, async (call) => {
          const { level, name } = parseTemplateRef(ref);
          const path = `api/config/templates/${level}/${name.split("/").map(encodeURIComponent).join("/")}`;
          if (f.delete) {
            const a = await call("DELETE", path, { comment: f.comment });
            if (!failed(a)) out(`${ref}: deleted (version ${str(a.body.version)})`);
            return;
          }
          let template: unknown;
          try {
            template = parseYaml(readFileSync(file === "-" ? 0 : file, "utf8"));
          } catch (err) {
            throw new UsageError(`${file}: ${(err as Error).message}`);
          }
          const a = await call("PUT", path, { template, comment: f.comment, force: f.force === true });
          if (failed(a)) return;
          out(`${ref}: version ${str(a.body.version)}`);
          for (const p of (a.body.probes as Array<Record<string, unknown>>) ?? [])
            out(`  ${str(p.key)}: ${p.hash ? `desired ${short(p.hash)}` : `INVALID ${str(p.error)}`}`);
        }),
    );

  apiOptions(c.command("show <what>"))
    .description(
      "a probe's desired document (<site>/<probe>) or a template (fleet, group/…, site/…, probe/…)",
    )
    .action((what: string, f: ApiFlags) =>
      run(f, async (call) => {
        const isTemplate = /^(fleet|group\/|site\/|probe\/)/.test(what);
        if (isTemplate) {
          const { level, name } = parseTemplateRef(what);
          const a = await call("GET", `api/config/templates/${level}/${name}`);
          if (!failed(a)) out(JSON.stringify(a.body.body, null, 2));
          return;
        }
        const a = await call("GET", `api/config/probes/${what}`);
        if (failed(a)) return;
        const b = a.body;
        if (b.ok !== true) {
          console.error(terminalSafe(`${what}: ${str(b.message)}`));
          for (const p of (b.problems as unknown[]) ?? []) console.error(terminalSafe(`  ${problemText(p)}`));
          process.exitCode = 1;
          return;
        }
        out(`# ${what}: document ${str(b.hash)} from ${(b.from as string[]).join(" → ")}`);
        out(JSON.stringify(b.document, null, 2));
      }),
    );

  apiOptions(c.command("history [template]"))
    .description("template versions (of one template, or all with the audit trail and rollouts)")
    .option("--json", "print HQ's answer as JSON")
    .action((ref: string | undefined, f: ApiFlags & { json?: boolean }) =>
      run(f, async (call) => {
        const q = ref ? parseTemplateRef(ref) : undefined;
        const a = await call(
          "GET",
          `api/config/history${q ? `?level=${encodeURIComponent(q.level)}&name=${encodeURIComponent(q.name)}` : ""}`,
        );
        if (failed(a)) return;
        if (f.json) {
          out(JSON.stringify(a.body, null, 2));
          return;
        }
        const iso = (ms: unknown) => new Date(Number(ms)).toISOString();
        for (const v of a.body.versions as Array<Record<string, unknown>>)
          out(
            `${iso(v.at)}  ${str(v.level)}:${str(v.name)} v${str(v.version)}  ${str(v.author)}${v.body === null ? "  (deleted)" : ""}  ${str(v.comment)}`,
          );
        for (const r of (a.body.rollouts as Array<Record<string, unknown>>) ?? [])
          out(
            `${iso(r.started_at)}  rollout ${str(r.id)} ${str(r.scope)} [${str(r.stages)}] ${str(r.state)}  ${str(r.author)}${r.reason ? `  ${str(r.reason)}` : ""}`,
          );
        for (const e of (a.body.audit as Array<Record<string, unknown>>) ?? [])
          if (e.action === "rollback") out(`${iso(e.at)}  rollback ${str(e.subject)}  ${str(e.actor)}`);
      }),
    );

  apiOptions(c.command("diff <probe>"))
    .description("the probe's effective config (-) against its desired document (+), path by path")
    .action((key: string, f: ApiFlags) =>
      run(f, async (call) => {
        const a = await call("GET", `api/config/diff/${key}`);
        if (failed(a)) return;
        const b = a.body;
        out(
          `--- ${key} effective ${short(b.effective_hash)}${b.against === "redacted_config" ? " (the probe's redacted config: defaults filled in, durations in ms)" : ""}`,
        );
        out(
          `+++ ${key} desired   ${short(b.desired_hash)}${b.desired_error ? ` (${str(b.desired_error)})` : ""}`,
        );
        const lines = b.lines as string[];
        for (const l of lines) out(l);
        if (b.in_sync === true) out("(in sync: the probe runs the desired document)");
        else if (lines.length === 0) out("(no difference in values, but the hashes differ)");
        if (b.in_sync !== true) process.exitCode = 1;
      }),
    );

  apiOptions(c.command("apply"))
    .description("roll the desired documents out, stage by stage, stopping at the first failure")
    .option("--probe <site/probe>", "only this probe")
    .option("--site <id>", "only this site's probes")
    .option("--group <name>", "only this group's probes")
    .option("--stages <list>", "cumulative stages: counts and percentages", "1,10%,100%")
    .option("--confirm <seconds>", "the probe's confirm window before it rolls back by itself", "300")
    .option("--reply-timeout <seconds>", "longest wait for a probe's reply", "30")
    .option("--effective-timeout <seconds>", "longest wait for the probe to report the new document", "60")
    .option("--parallel <n>", "probes of a stage rolled at once (after a failure none starts)", "1")
    .option("-m, --comment <text>", "why (kept in the history)", "")
    .option("--no-wait", "start it and print its id; do not follow it")
    .action(
      (
        f: ApiFlags & {
          probe?: string;
          site?: string;
          group?: string;
          stages: string;
          confirm: string;
          replyTimeout: string;
          effectiveTimeout: string;
          parallel: string;
          comment: string;
          wait: boolean;
        },
      ) =>
        run(f, async (call) => {
          const scopes = [
            f.probe && `probe:${f.probe}`,
            f.site && `site:${f.site}`,
            f.group && `group:${f.group}`,
          ].filter(Boolean);
          if (scopes.length > 1) throw new UsageError("give at most one of --probe, --site, --group");
          const a = await call("POST", "api/config/rollouts", {
            scope: scopes[0] ?? "all",
            stages: f.stages,
            confirm_s: Number(f.confirm),
            reply_timeout_s: Number(f.replyTimeout),
            effective_timeout_s: Number(f.effectiveTimeout),
            parallel: Number(f.parallel),
            comment: f.comment,
          });
          if (failed(a)) return;
          const id = str(a.body.id);
          out(`rollout ${id}: ${str(a.body.probes)} probes`);
          if (!f.wait) return;
          const seen = new Set<string>();
          for (;;) {
            await new Promise((r) => setTimeout(r, 500));
            const s = await call("GET", `api/config/rollouts/${id}`);
            if (failed(s)) return;
            for (const p of s.body.probes as Array<Record<string, unknown>>) {
              const k = `${str(p.site)}/${str(p.probe)}`;
              if (seen.has(k)) continue;
              seen.add(k);
              out(
                `  stage ${str(p.stage)} ${k}: ${str(p.outcome)}${p.code ? ` ${str(p.code)}` : ""}${p.detail ? `: ${str(p.detail)}` : ""}`,
              );
            }
            if (s.body.state !== "running") {
              out(`rollout ${id}: ${str(s.body.state)}${s.body.reason ? ` — ${str(s.body.reason)}` : ""}`);
              if (s.body.state !== "done") process.exitCode = 1;
              return;
            }
          }
        }),
    );

  apiOptions(c.command("rollback <probe>"))
    .description("send cmd/rollback_config: the probe goes back to its last-known-good config now")
    .action((key: string, f: ApiFlags) =>
      run(f, async (call) => {
        const a = await call("POST", `api/config/rollback/${key}`, {});
        if (a.status >= 400 && a.body.ok === false) {
          const e = a.body.error as { code: string; message: string };
          console.error(terminalSafe(`${key} refused: ${e.code}: ${e.message}`));
          process.exitCode = 1;
          return;
        }
        if (failed(a)) return;
        const r = a.body.result as { document_hash?: string } | undefined;
        out(`${key}: rolled back to ${short(r?.document_hash)}`);
      }),
    );

  apiOptions(c.command("status"))
    .description("each probe's desired vs effective document hash, and drift")
    .option("--json", "print HQ's answer as JSON")
    .action((f: ApiFlags & { json?: boolean }) =>
      run(f, async (call) => {
        const a = await call("GET", "api/config/status");
        if (failed(a)) return;
        const rows = a.body.probes as Array<Record<string, unknown>>;
        if (f.json) {
          out(JSON.stringify(rows, null, 2));
          return;
        }
        out(
          `${"SITE/PROBE".padEnd(28)} ${"STATE".padEnd(7)} ${"DESIRED".padEnd(12)} ${"EFFECTIVE".padEnd(12)} DRIFT`,
        );
        for (const r of rows)
          out(
            `${str(r.key).padEnd(28)} ${(r.online ? "online" : "-").padEnd(7)} ${short(r.desired_hash).padEnd(12)} ${short(r.effective_hash).padEnd(12)} ${str(r.drift)}${r.detail ? `  ${str(r.detail)}` : ""}`,
          );
      }),
    );

  return c;
}
