// TCP connect (wan area): time to establish a connection to host:port and, optionally, a line
// sent and an answer expected (a banner, an echo, "HTTP/1.1 200"). Name resolution is timed apart
// from the connect. Also the place for the host:port parsing tls.ts and ntp.ts use.

import { Socket } from "node:net";
import { isIP } from "node:net";
import { Type, type Static } from "@sinclair/typebox";
import type { CheckError, CheckKind, Measurement } from "./check.ts";
import { socketFailure } from "../net/socket-failure.ts";
import { addressFamilyOption, hostFailure, resolveHost } from "./common/resolve-host.ts";
import { round } from "./common/round.ts";

const options = Type.Object(
  {
    send: Type.String({
      default: "",
      description: 'sent once connected (YAML escapes work: "QUIT\\r\\n"); empty: send nothing',
    }),
    expect: Type.String({
      default: "",
      description:
        "regex the received text must match before the connection closes or wait_ms ends; empty: connect only",
    }),
    wait_ms: Type.Integer({
      minimum: 1,
      maximum: 60000,
      default: 3000,
      description: "how long to wait for the connection, and then for the expected answer",
    }),
    address_family: addressFamilyOption,
  },
  { additionalProperties: false },
);

/** Options of a tcp check, defaults filled in by the config loader. */
export type TcpOptions = Static<typeof options>;

/** A host and port parsed from a target. */
export interface HostPort {
  host: string;
  port: number;
}

/** "host:port", "192.0.2.1:80", "[2001:db8::1]:80"; a bare host takes `defaultPort` (undefined: required). */
export function parseHostPort(target: string, defaultPort?: number): HostPort | { problem: string } {
  const t = target.trim();
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(t);
  let host: string;
  let portText: string | undefined;
  if (bracketed) [, host = "", portText] = bracketed;
  else if (isIP(t) === 6) host = t;
  else {
    const m = /^([^:]+)(?::(\d+))?$/.exec(t);
    if (!m) return { problem: `"${target}" is not host:port` };
    [, host = "", portText] = m;
  }
  if (host === "") return { problem: `"${target}" has no host` };
  const port = portText === undefined ? defaultPort : Number(portText);
  if (port === undefined) return { problem: `"${target}" has no port (host:port)` };
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    return { problem: `"${target}": port must be 1-65535` };
  return { host, port };
}

/** Maps a socket error to a stable code; the peer comes from the error (Node sets address/port). */
export function socketErrorCode(err: unknown): CheckError {
  const { address, port } = err as { address?: unknown; port?: unknown };
  const host =
    typeof address === "string" ? (address.includes(":") ? `[${address}]` : address) : "the target";
  return socketFailure(err, typeof port === "number" ? `${host}:${port}` : host);
}

/** TCP connect check over real sockets. */
export const tcp: CheckKind<typeof options> = {
  kind: "tcp",
  defaultArea: "wan",
  options,
  run: (target, opts, _ctx, signal) => runTcp(target, opts, signal),
};

async function runTcp(target: string, opts: TcpOptions, signal: AbortSignal): Promise<Measurement> {
  const hp = parseHostPort(target);
  if ("problem" in hp)
    return { status: "error", metrics: {}, error: { code: "invalid_target", message: hp.problem } };
  let expect: RegExp | undefined;
  try {
    expect = opts.expect === "" ? undefined : new RegExp(opts.expect);
  } catch (err) {
    return {
      status: "error",
      metrics: {},
      error: { code: "invalid_option", message: `expect: ${String(err)}` },
    };
  }
  const resolved = await resolveHost(hp.host, opts.address_family, signal);
  if ("error" in resolved) return hostFailure(resolved.error);
  const metrics: Record<string, number> = {};
  if (isIP(hp.host) === 0) metrics.resolve_ms = round(resolved.resolveMs);
  const detail: Record<string, unknown> = { address: resolved.address, port: hp.port };

  return new Promise<Measurement>((resolve) => {
    const socket = new Socket();
    let received = "";
    let timer: NodeJS.Timeout | undefined;
    let connectedAt = 0;
    let done = false;
    const finish = (error?: CheckError): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      socket.destroy();
      if (expect !== undefined || opts.send !== "") detail.received = received.slice(0, 512);
      resolve(
        error === undefined ? { status: "ok", metrics, detail } : { status: "fail", metrics, detail, error },
      );
    };
    const onAbort = (): void =>
      finish({
        code: "timeout",
        message: connectedAt === 0 ? "aborted while connecting" : "aborted waiting for the answer",
      });
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    const startedAt = performance.now();
    timer = setTimeout(
      () =>
        finish({
          code: "timeout",
          message: `no connection to ${resolved.address}:${hp.port} within ${opts.wait_ms} ms`,
        }),
      opts.wait_ms,
    );
    socket.setEncoding("utf8");
    socket.on("error", (err) => finish(socketErrorCode(err)));
    socket.on("data", (d: string) => {
      if (received.length < 65536) received += d;
      if (expect?.test(received)) {
        metrics.expect_ms = round(performance.now() - connectedAt);
        finish();
      }
    });
    socket.on("close", () =>
      finish(
        expect === undefined
          ? undefined
          : {
              code: "expect_failed",
              message: `connection closed before /${opts.expect}/ matched (got ${JSON.stringify(received.slice(0, 80))})`,
            },
      ),
    );
    socket.connect({ host: resolved.address, port: hp.port }, () => {
      connectedAt = performance.now();
      metrics.connect_ms = round(connectedAt - startedAt);
      if (opts.send !== "") socket.write(opts.send);
      if (expect === undefined) return finish();
      clearTimeout(timer);
      timer = setTimeout(
        () =>
          finish({
            code: "expect_failed",
            message: `/${opts.expect}/ did not match within ${opts.wait_ms} ms (got ${JSON.stringify(received.slice(0, 80))})`,
          }),
        opts.wait_ms,
      );
    });
  });
}
