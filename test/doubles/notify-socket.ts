// A stand-in for systemd's notify socket: an AF_UNIX datagram socket (Node cannot open one, so a
// small python3 program binds it) that records every sd_notify message with its arrival time, and
// closes the file descriptors that come with BARRIER=1, exactly as PID 1 does, so systemd-notify
// returns at once.
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";

const LISTENER = String.raw`
import array, json, os, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o777)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
print(json.dumps({"listening": True}), flush=True)
while True:
    msg, anc, _flags, _addr = s.recvmsg(4096, socket.CMSG_SPACE(12) + socket.CMSG_SPACE(64))
    pid = None
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(data[: len(data) - len(data) % 4])
            for fd in fds:
                os.close(fd)
        elif level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = int.from_bytes(data[0:4], sys.byteorder)
    print(json.dumps({"at": time.monotonic() * 1000, "msg": msg.decode(), "pid": pid}), flush=True)
`;

/** One datagram as the listener received it. */
export interface NotifyMessage {
  /** Arrival time, ms on the listener's monotonic clock (only differences matter). */
  at: number;
  /** The KEY=value lines. */
  lines: string[];
  /** Sender pid from SCM_CREDENTIALS. */
  pid: number | null;
}

/** A listening notify socket and what it received so far. */
export interface NotifySocket {
  path: string;
  messages: NotifyMessage[];
  /** Messages containing `line` (e.g. "WATCHDOG=1"). */
  with(line: string): NotifyMessage[];
  close(): void;
}

/** Binds a notify socket at `path` (which must not exist) and resolves once it listens. */
export async function listenNotify(path: string): Promise<NotifySocket> {
  const child: ChildProcess = spawn("python3", ["-c", LISTENER, path], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const messages: NotifyMessage[] = [];
  await new Promise<void>((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`notify listener exited ${code}`)));
    createInterface({ input: child.stdout! }).on("line", (line) => {
      const m = JSON.parse(line) as { listening?: boolean; at: number; msg?: string; pid: number | null };
      const lines = m.msg?.split("\n").filter(Boolean) ?? [];
      if (m.listening) resolve();
      // BARRIER=1 is systemd-notify's synchronisation with PID 1, not a state.
      else if (!(lines.length === 1 && lines[0] === "BARRIER=1"))
        messages.push({ at: m.at, lines, pid: m.pid });
    });
  });
  return {
    path,
    messages,
    with: (line) => messages.filter((m) => m.lines.includes(line)),
    close: () => {
      child.kill("SIGKILL");
    },
  };
}
