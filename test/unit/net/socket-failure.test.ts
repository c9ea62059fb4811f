import { EventEmitter } from "node:events";
import type { Socket as UdpSocket } from "node:dgram";
import { describe, expect, test } from "vitest";
import { connectDatagram, errnoOf, socketFailure } from "../../../services/probe/src/net/socket-failure.ts";

/** A Node error as libuv reports it: errno name in `code`, syscall and peer in the message. */
function nodeError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

describe("errno → code and message", () => {
  test.each([
    [
      "ENETUNREACH",
      "no_route",
      "no route to 192.0.2.53:53: the probe has no address or default route for it",
    ],
    ["EHOSTUNREACH", "unreachable", "192.0.2.53:53 is unreachable: nothing answers for it on the local link"],
    ["EADDRNOTAVAIL", "no_address", "cannot talk to 192.0.2.53:53: the probe's source address is gone"],
    ["ENODEV", "interface_missing", "cannot talk to 192.0.2.53:53: the network interface is gone"],
    ["ENXIO", "interface_missing", "the network interface is gone"],
    ["ENETDOWN", "interface_down", "the network interface is down"],
    ["ECONNREFUSED", "connection_refused", "192.0.2.53:53 refused the connection"],
    ["ECONNRESET", "connection_closed", "192.0.2.53:53 closed the connection"],
    ["EPIPE", "connection_closed", "closed the connection"],
    ["ETIMEDOUT", "timeout", "192.0.2.53:53 did not answer in time"],
    ["EPERM", "no_permission", "a local firewall rule or a missing capability (CAP_NET_RAW)"],
    ["EACCES", "no_permission", "not allowed to talk to 192.0.2.53:53"],
  ])("Node %s → %s", (errno, code, text) => {
    const failure = socketFailure(nodeError(errno, `connect ${errno} 192.0.2.53:53`), "192.0.2.53:53");
    expect(failure.code).toBe(code);
    expect(failure.message).toContain(text);
    // The system's own words stay in the message for whoever reads the logs.
    expect(failure.message).toContain(`(connect ${errno} 192.0.2.53:53)`);
  });

  test("an errno nobody mapped is socket_error with the system message", () => {
    expect(socketFailure(nodeError("EMFILE", "too many open files"), "192.0.2.1")).toEqual({
      code: "socket_error",
      message: "socket error with 192.0.2.1: too many open files",
    });
  });

  test("raw-socket's strerror text (no `code`) is recognised", () => {
    expect(errnoOf(new Error("Network is unreachable"))).toBe("ENETUNREACH");
    expect(errnoOf(new Error("No route to host"))).toBe("EHOSTUNREACH");
    expect(errnoOf(new Error("No such device"))).toBe("ENODEV");
    expect(errnoOf(new Error("No such device or address"))).toBe("ENXIO");
    expect(errnoOf(new Error("Cannot assign requested address"))).toBe("EADDRNOTAVAIL");
    expect(errnoOf("Operation not permitted")).toBe("EPERM");
    expect(socketFailure("Network is unreachable", "2001:db8::1")).toEqual({
      code: "no_route",
      message:
        "no route to 2001:db8::1: the probe has no address or default route for it (Network is unreachable)",
    });
  });

  test("Node's code wins over the text", () => {
    expect(errnoOf(nodeError("ECONNREFUSED", "Network is unreachable"))).toBe("ECONNREFUSED");
  });
});

/** Enough of a dgram socket to play Node's doConnect: the callback gets the error, nothing is emitted. */
class FakeDatagram extends EventEmitter {
  readonly outcome: Error | "throw" | undefined;
  constructor(outcome: Error | "throw" | undefined) {
    super();
    this.outcome = outcome;
  }
  connect(_port: number, _address: string, callback: (error?: Error) => void): void {
    if (this.outcome === "throw") throw nodeError("ERR_SOCKET_DGRAM_IS_CONNECTED", "Already connected");
    const outcome = this.outcome;
    process.nextTick(() => (outcome === undefined ? callback() : callback(outcome)));
  }
}

function connect(outcome: Error | "throw" | undefined): Promise<Error | undefined> {
  return new Promise((resolve) =>
    connectDatagram(new FakeDatagram(outcome) as unknown as UdpSocket, 53, "192.0.2.53", resolve),
  );
}

describe("connectDatagram", () => {
  test("hands the connect callback's error to the caller (the no-route case)", async () => {
    const error = await connect(nodeError("ENETUNREACH", "connect ENETUNREACH 192.0.2.53:53"));
    expect(error?.message).toBe("connect ENETUNREACH 192.0.2.53:53");
  });

  test("undefined when connected", async () => {
    expect(await connect(undefined)).toBeUndefined();
  });

  test("a synchronous throw of connect() comes back as the error, asynchronously", async () => {
    expect((await connect("throw"))?.message).toBe("Already connected");
  });
});
