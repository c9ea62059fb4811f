// A real, private PostgreSQL server for tests: initdb into a temp directory, `postgres` listening
// only on a unix socket in that directory (listen_addresses = ''), no TCP port, no host config.
// PostgreSQL refuses to run as root: as root the server runs as the `postgres` system user (the
// Debian package creates it). stop() kills the server and removes the directory, always.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A running server. */
export interface PostgresServer {
  /** postgresql:// URL of database `netprobe` on the socket. */
  url: string;
  /** The socket directory. */
  dir: string;
  /** Creates another database and returns its URL (one per test file keeps suites apart). */
  createDatabase(name: string): Promise<string>;
  stop(): Promise<void>;
}

const BIN_DIRS = ["/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin"];

/** Where initdb/postgres live, or null when PostgreSQL is not installed. */
export function postgresBinDir(): string | null {
  return BIN_DIRS.find((d) => existsSync(join(d, "postgres"))) ?? null;
}

function ids(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
  const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
  return { uid, gid };
}

/** Starts a server; throws with the reason when it cannot (the caller fails, never skips, under CI). */
export async function startPostgres(): Promise<PostgresServer> {
  const bin = postgresBinDir();
  if (!bin) throw new Error("PostgreSQL is not installed (Debian package postgresql; scripts/setup.sh)");
  const who = ids();
  const dir = mkdtempSync(join(tmpdir(), "netprobe-pg-"));
  const data = join(dir, "data");
  const as = who ? { uid: who.uid, gid: who.gid } : {};
  if (who) chownSync(dir, who.uid, who.gid);
  let server: ChildProcess | undefined;
  const cleanup = () => {
    try {
      server?.kill("SIGKILL");
    } catch {
      /* gone already */
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    execFileSync(
      join(bin, "initdb"),
      ["-D", data, "-U", "netprobe", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"],
      { ...as, stdio: "pipe", cwd: dir },
    );
    server = spawn(
      join(bin, "postgres"),
      [
        "-D",
        data,
        "-k",
        dir,
        "-c",
        "listen_addresses=",
        "-c",
        "fsync=off",
        "-c",
        "max_connections=50",
        "-c",
        "shared_buffers=64MB",
      ],
      { ...as, stdio: ["ignore", "ignore", "pipe"], cwd: dir },
    );
    let log = "";
    server.stderr!.on("data", (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
    const psql = (sql: string, db = "postgres") =>
      execFileSync(join(bin, "psql"), ["-h", dir, "-U", "netprobe", "-d", db, "-Atqc", sql], {
        stdio: "pipe",
        encoding: "utf8",
      });
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (server.exitCode !== null) throw new Error(`postgres exited ${server.exitCode}: ${log}`);
      try {
        psql("SELECT 1");
        break;
      } catch {
        if (Date.now() > deadline) throw new Error(`postgres did not accept connections in 20 s: ${log}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const urlOf = (db: string) => `postgresql://netprobe@/${db}?host=${encodeURIComponent(dir)}`;
    psql("CREATE DATABASE netprobe");
    const proc = server;
    return {
      url: urlOf("netprobe"),
      dir,
      createDatabase: (name) => {
        psql(`CREATE DATABASE ${name}`);
        return Promise.resolve(urlOf(name));
      },
      stop: async () => {
        if (proc.exitCode === null) {
          const exited = new Promise((r) => proc.once("exit", r));
          proc.kill("SIGINT"); // fast shutdown
          await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
        }
        cleanup();
      },
    };
  } catch (err) {
    cleanup();
    throw err;
  }
}
