// The wire as ground truth for the accuracy benchmarks (dns-accuracy.ts, dhcp-latency.ts,
// icmp-wire.ts): tshark captures on one interface inside one lab namespace into a pcap file (kernel
// capture timestamps), and the file is read back as tab-separated fields. Only capture files are
// read afterwards; no packet is sent from here.
import { spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import type { Lab } from "../lab/lab.ts";
import type { LabHost } from "../lab/topology.ts";

/** A running capture; `stop()` flushes the file and waits for tshark to exit. */
export interface WireCapture {
  readonly file: string;
  stop(): Promise<void>;
}

/**
 * Starts tshark on `iface` in the lab host's namespace with a capture filter and resolves once it
 * says "Capturing on" (packets before that are not seen). Writes classic pcap (`-F pcap`,
 * microsecond timestamps) so that simple readers (dhcp-latency.ts) can parse the file directly.
 */
export async function startCapture(
  lab: Lab,
  host: LabHost,
  iface: string,
  filter: string,
  file: string,
): Promise<WireCapture> {
  const child: ChildProcess = lab.spawn(
    host,
    ["tshark", "-q", "-i", iface, "-F", "pcap", "-f", filter, "-w", file],
    {
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  await new Promise<void>((resolve, reject) => {
    let err = "";
    const timer = setTimeout(() => reject(new Error(`tshark did not start: ${err}`)), 15_000);
    child.stderr?.setEncoding("utf8").on("data", (d: string) => {
      err += d;
      if (err.includes("Capturing on")) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`tshark exited ${code}: ${err}`));
    });
  });
  return {
    file,
    stop: async () => {
      await new Promise((r) => setTimeout(r, 300)); // the last frames reach the file
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGINT");
      await exited;
    },
  };
}

/**
 * One array of field values per frame (`tshark -r FILE -T fields -e …`), optionally filtered with
 * a display filter. Empty when the file is missing or empty.
 */
export function readFields(file: string, fields: readonly string[], displayFilter?: string): string[][] {
  if (!existsSync(file) || statSync(file).size === 0) return [];
  const argv = ["-r", file, "-T", "fields", ...fields.flatMap((f) => ["-e", f])];
  if (displayFilter) argv.push("-Y", displayFilter);
  const r = spawnSync("tshark", argv, { encoding: "utf8", maxBuffer: 256 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`tshark -r failed: ${r.stderr}`);
  return r.stdout
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => l.split("\t"));
}

/** Median of a list (NaN when empty). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
