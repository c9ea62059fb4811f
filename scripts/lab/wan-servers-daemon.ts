// The lab's internet services, one process in the `wan` namespace (started by wan-servers.ts):
//
//   203.0.113.54  / 2001:db8:3::54   authoritative DNS for example.net (UDP + TCP, AA, TC when big)
//   203.0.113.53  / 2001:db8:3::53   the provider's resolver: forwards to the authoritative server
//                                    over the wire, and can be switched slow / SERVFAIL / NXDOMAIN-
//                                    hijacking / spoofing (the dns-* faults)
//   203.0.113.80  / 2001:db8:3::80   HTTP :80, HTTPS :443 (lab CA; cert-expiring swaps the cert),
//                                    TCP echo :7 (RFC 862)
//   203.0.113.123 / 2001:db8:3::123  SNTP server :123 (RFC 4330) with an adjustable offset
//
// It is controlled over a Unix socket in the lab directory (one JSON line in, one out), so a fault
// switch returns only once the new behaviour is in effect.
//
// Usage (by wan-servers.ts only): node wan-servers-daemon.ts <lab dir>

import { createSocket, type RemoteInfo, type Socket as UdpSocket } from "node:dgram";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { Socket, createServer as createTcpServer, type Server } from "node:net";
import * as dnsPacket from "dns-packet";
import type { Answer, DecodedPacket, Packet } from "dns-packet";
import { WAN, WAN_ZONE, defaultWanMode, wanFiles, type WanMode } from "./wan-servers.ts";

const dir = process.argv[2];
if (!dir) {
  console.error("usage: wan-servers-daemon.ts <lab dir>");
  process.exit(2);
}
// Shows as wan-servers in ps (and /proc/<pid>/cmdline, which daemonRunning checks).
process.title = "wan-servers";
const files = wanFiles(dir);
let mode: WanMode = defaultWanMode();
const log = (msg: string): void => console.log(`${new Date().toISOString()} ${msg}`);

// ---- authoritative DNS ------------------------------------------------------------------------

/** The answer of the authoritative server for one question. */
function authoritative(query: DecodedPacket, maxUdp: number | undefined): Buffer {
  const q = query.questions[0];
  const base: Packet = {
    id: query.id,
    type: "response",
    flags: dnsPacket.AUTHORITATIVE_ANSWER | (query.flag_rd ? dnsPacket.RECURSION_DESIRED : 0),
    questions: q ? [q] : [],
  };
  const opt = query.additionals.find((a) => a.type === "OPT");
  const additionals: Answer[] = opt
    ? [{ name: ".", type: "OPT", udpPayloadSize: 1232, flags: 0, options: [] }]
    : [];
  if (!q || query.opcode !== "QUERY")
    return dnsPacket.encode({ ...base, flags: (base.flags ?? 0) | 4, additionals });
  const name = q.name.toLowerCase();
  if (name !== WAN_ZONE && !name.endsWith(`.${WAN_ZONE}`))
    return dnsPacket.encode({ ...base, flags: (base.flags ?? 0) | 5, additionals }); // REFUSED
  const records = WAN.records[name];
  const soa: Answer = { name: WAN_ZONE, type: "SOA", ttl: 60, data: WAN.soa };
  let packet: Packet;
  if (records === undefined)
    packet = { ...base, flags: (base.flags ?? 0) | 3, authorities: [soa], additionals }; // NXDOMAIN
  else {
    const answers = records.filter((r) => r.type === q.type).map((r) => ({ ...r, name: q.name }));
    packet = { ...base, answers, authorities: answers.length === 0 ? [soa] : [], additionals };
  }
  const wire = dnsPacket.encode(packet);
  // RFC 1035 §4.2.1 / RFC 6891 §7: over UDP, a reply larger than the client can take is cut to the
  // header and question with TC set; the client retries over TCP.
  if (maxUdp !== undefined && wire.length > maxUdp)
    return dnsPacket.encode({
      ...base,
      flags: (base.flags ?? 0) | dnsPacket.TRUNCATED_RESPONSE,
      additionals,
    });
  return wire;
}

function udpLimit(query: DecodedPacket): number {
  const opt = query.additionals.find((a) => a.type === "OPT");
  return Math.max(512, opt?.udpPayloadSize ?? 512);
}

// ---- the provider's resolver ------------------------------------------------------------------

/** Asks the authoritative server over the wire, as a forwarding resolver does. */
function forward(query: Buffer, protocol: "udp" | "tcp", family: 4 | 6): Promise<Buffer | undefined> {
  const server = family === 6 ? WAN.dnsAuth6 : WAN.dnsAuth4;
  return new Promise((resolve) => {
    const timer = setTimeout(() => done(undefined), 2000);
    let finish = (): void => {};
    const done = (reply: Buffer | undefined): void => {
      clearTimeout(timer);
      finish();
      resolve(reply);
    };
    if (protocol === "udp") {
      const s = createSocket(family === 6 ? "udp6" : "udp4");
      finish = () => s.close();
      s.on("error", () => done(undefined));
      s.on("message", (m) => done(m));
      s.send(query, 53, server);
    } else {
      const s = new Socket();
      finish = () => s.destroy();
      let buf = Buffer.alloc(0);
      s.on("error", () => done(undefined));
      s.on("data", (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0))
          done(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      });
      s.connect(53, server, () => s.write(frame(query)));
    }
  });
}

const HIJACK_TYPES = new Set(["A", "AAAA"]);

async function resolver(raw: Buffer, protocol: "udp" | "tcp", family: 4 | 6): Promise<Buffer | undefined> {
  const query = dnsPacket.decode(raw);
  const q = query.questions[0];
  if (mode.dnsDelayMs > 0) await new Promise((r) => setTimeout(r, mode.dnsDelayMs));
  const flags = dnsPacket.RECURSION_AVAILABLE | (query.flag_rd ? dnsPacket.RECURSION_DESIRED : 0);
  if (mode.dnsServfail)
    return dnsPacket.encode({ id: query.id, type: "response", flags: flags | 2, questions: q ? [q] : [] });
  const upstream = await forward(raw, protocol, family);
  if (upstream === undefined)
    return dnsPacket.encode({ id: query.id, type: "response", flags: flags | 2, questions: q ? [q] : [] });
  const answer = dnsPacket.decode(upstream);
  // The lab pretends example.net is signed and validated, so a dnssec check has an AD bit to see.
  const ad =
    (query.flag_ad || query.additionals.some((a) => a.flag_do === true)) && answer.rcode !== "SERVFAIL";
  const out: Packet = {
    id: query.id,
    type: "response",
    flags:
      (answer.flags & ~dnsPacket.AUTHORITATIVE_ANSWER) |
      dnsPacket.RECURSION_AVAILABLE |
      (ad ? dnsPacket.AUTHENTIC_DATA : 0),
    questions: answer.questions,
    answers: answer.answers,
    authorities: answer.authorities,
    additionals: answer.additionals,
  };
  if (q && HIJACK_TYPES.has(q.type)) {
    const fake: Answer = {
      name: q.name,
      type: q.type,
      ttl: 60,
      data: q.type === "A" ? WAN.hijack4 : WAN.hijack6,
    };
    // An ISP "search assistance" page: NXDOMAIN becomes an address.
    if (mode.dnsHijack && answer.rcode === "NXDOMAIN")
      return dnsPacket.encode({ ...out, flags: (out.flags ?? 0) & ~0xf, answers: [fake], authorities: [] });
    // A poisoned cache: real names point somewhere else.
    if (mode.dnsSpoof && answer.rcode === "NOERROR" && answer.answers.length > 0)
      return dnsPacket.encode({
        ...out,
        answers: answer.answers.map((a) => (a.type === q.type ? { ...a, data: fake.data } : a)),
      });
  }
  return dnsPacket.encode(out);
}

// ---- DNS listeners ----------------------------------------------------------------------------

type DnsHandler = (query: Buffer, protocol: "udp" | "tcp", family: 4 | 6) => Promise<Buffer | undefined>;

async function listenDns(address: string, family: 4 | 6, handler: DnsHandler): Promise<void> {
  const udp = createSocket(family === 6 ? "udp6" : "udp4");
  udp.on("message", (msg: Buffer, from: RemoteInfo) => {
    handler(msg, "udp", family)
      .then((reply) => reply && udp.send(reply, from.port, from.address))
      .catch(() => undefined); // malformed queries get no answer
  });
  await bindUdp(udp, address, 53);
  const tcp = createTcpServer((conn) => {
    let buf = Buffer.alloc(0);
    conn.on("error", () => undefined);
    conn.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        handler(Buffer.from(msg), "tcp", family)
          .then((reply) => reply && !conn.destroyed && conn.write(frame(reply)))
          .catch(() => conn.destroy());
      }
    });
  });
  await listenTcp(tcp, address, 53);
}

function frame(message: Buffer): Buffer {
  const prefix = Buffer.alloc(2);
  prefix.writeUInt16BE(message.length);
  return Buffer.concat([prefix, message]);
}

// ---- web, echo, SNTP --------------------------------------------------------------------------

function web(req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? "/", "http://lab");
  const status = /^\/status\/(\d{3})$/.exec(url.pathname);
  if (status) {
    res.writeHead(Number(status[1]), { "content-type": "text/plain" }).end(`status ${status[1]}\n`);
    return;
  }
  if (url.pathname === "/slow") {
    const ms = Math.min(10_000, Number(url.searchParams.get("ms") ?? "500") || 0);
    setTimeout(() => res.writeHead(200, { "content-type": "text/plain" }).end(`slept ${ms} ms\n`), ms);
    return;
  }
  if (url.pathname === "/redirect") {
    res.writeHead(302, { location: "/" }).end();
    return;
  }
  // Redirect chains for the http check's follow_redirects: /redirect/N takes N hops to /, and
  // /loop/a and /loop/b send each other round forever.
  const hops = /^\/redirect\/(\d{1,2})$/.exec(url.pathname);
  if (hops) {
    const n = Number(hops[1]);
    res
      .writeHead(n === 0 ? 200 : 301, n === 0 ? {} : { location: n === 1 ? "/" : `/redirect/${n - 1}` })
      .end();
    return;
  }
  if (url.pathname === "/loop/a" || url.pathname === "/loop/b") {
    res.writeHead(302, { location: url.pathname === "/loop/a" ? "/loop/b" : "/loop/a" }).end();
    return;
  }
  if (url.pathname !== "/") {
    res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
    return;
  }
  res
    .writeHead(200, { "content-type": "text/html" })
    .end("<html><body><h1>netprobe lab web server</h1></body></html>\n");
}

/** SNTP server reply (RFC 4330 §5): mode 4, stratum 2, the client's transmit time as originate. */
function sntpReply(request: Buffer, receivedAt: number): Buffer | undefined {
  if (request.length < 48) return undefined;
  const version = (request[0]! >> 3) & 0x7;
  const reply = Buffer.alloc(48);
  reply[0] = (0 << 6) | ((version || 4) << 3) | 4; // LI 0, VN as asked, mode 4 (server)
  reply[1] = 2; // stratum
  reply[2] = request[2] ?? 6; // poll
  reply[3] = 0xec; // precision 2^-20 s
  reply.write("LAB\0", 12, "latin1"); // reference id
  writeNtpTime(reply, 16, receivedAt - 1000 + mode.ntpOffsetMs); // reference time
  request.copy(reply, 24, 40, 48); // originate = client's transmit
  writeNtpTime(reply, 32, receivedAt + mode.ntpOffsetMs);
  writeNtpTime(reply, 40, nowMs() + mode.ntpOffsetMs);
  return reply;
}

const NTP_UNIX_OFFSET_S = 2_208_988_800;

function writeNtpTime(buf: Buffer, offset: number, unixMs: number): void {
  const seconds = Math.floor(unixMs / 1000) + NTP_UNIX_OFFSET_S;
  const fraction = Math.floor(((unixMs % 1000) / 1000) * 2 ** 32);
  buf.writeUInt32BE(seconds >>> 0, offset);
  buf.writeUInt32BE(fraction >>> 0, offset + 4);
}

/** Wall clock: the same clock the probe reads (performance.timeOrigin drifts from it by tens of ms). */
function nowMs(): number {
  return Date.now();
}

async function listenSntp(address: string, family: 4 | 6): Promise<void> {
  const udp = createSocket(family === 6 ? "udp6" : "udp4");
  udp.on("message", (msg, from) => {
    const reply = sntpReply(msg, nowMs());
    if (reply) udp.send(reply, from.port, from.address);
  });
  await bindUdp(udp, address, 123);
}

// ---- control ----------------------------------------------------------------------------------

function control(): Promise<void> {
  rmSync(files.socket, { force: true });
  const server = createTcpServer((conn) => {
    let buf = "";
    conn.setEncoding("utf8");
    conn.on("error", () => undefined);
    conn.on("data", (d: string) => {
      buf += d;
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      try {
        const patch = JSON.parse(buf.slice(0, nl)) as Partial<WanMode>;
        mode = { ...mode, ...patch };
        if (patch.cert !== undefined) for (const s of httpsServers) s.setSecureContext(certFor(mode.cert));
        log(`mode ${JSON.stringify(mode)}`);
        conn.end(`${JSON.stringify({ ok: true, mode })}\n`);
      } catch (err) {
        conn.end(`${JSON.stringify({ ok: false, error: String(err) })}\n`);
      }
    });
  });
  return listenTcp(server, files.socket);
}

function certFor(which: WanMode["cert"]): { key: Buffer; cert: Buffer } {
  const f = which === "expiring" ? files.webExpiring : files.webValid;
  return { key: readFileSync(f.key), cert: readFileSync(f.cert) };
}

function bindUdp(s: UdpSocket, address: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    s.once("error", reject);
    s.bind(port, address, () => {
      s.off("error", reject);
      s.on("error", (err) => log(`udp ${address}:${port}: ${err.message}`));
      resolve();
    });
  });
}

function listenTcp(s: Server, address: string, port?: number): Promise<void> {
  return new Promise((resolve, reject) => {
    s.once("error", reject);
    const done = (): void => {
      s.off("error", reject);
      resolve();
    };
    if (port === undefined) s.listen(address, done);
    else s.listen(port, address, done);
  });
}

/** One HTTPS server per address; cert-expiring swaps the certificate of both (setSecureContext). */
const httpsServers = [createHttpsServer(certFor("valid"), web), createHttpsServer(certFor("valid"), web)];

async function main(): Promise<void> {
  for (const [address, family] of [
    [WAN.dnsAuth4, 4],
    [WAN.dnsAuth6, 6],
  ] as const)
    await listenDns(address, family, (raw, protocol) => {
      const query = dnsPacket.decode(raw);
      return Promise.resolve(authoritative(query, protocol === "udp" ? udpLimit(query) : undefined));
    });
  for (const [address, family] of [
    [WAN.dnsResolver4, 4],
    [WAN.dnsResolver6, 6],
  ] as const)
    await listenDns(address, family, resolver);
  for (const address of [WAN.web4, WAN.web6]) {
    await listenTcp(createHttpServer(web), address, 80);
    await listenTcp(
      createTcpServer((c) => c.on("error", () => undefined).pipe(c)),
      address,
      7,
    );
  }
  await listenTcp(httpsServers[0]!, WAN.web4, 443);
  await listenTcp(httpsServers[1]!, WAN.web6, 443);
  await listenSntp(WAN.ntp4, 4);
  await listenSntp(WAN.ntp6, 6);
  await control();
  writeFileSync(files.pid, `${process.pid}\n`);
  log(`ready (pid ${process.pid})`);
}

process.on("uncaughtException", (err) => log(`uncaught: ${err.stack ?? String(err)}`));
main().catch((err: unknown) => {
  log(`failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
