/**
 * pyro's DNS forwarder for `allow_host` (one process per sandbox, started detached by
 * dns-forwarder-host.ts; node builtins only, so it runs as `node dist/network/dns-forwarder.js`).
 *
 * It listens on the sandbox's gateway address, port 53 (UDP), answers NXDOMAIN for every name
 * not on the list, forwards allowed queries to the upstream resolver, and before relaying the
 * answer adds each answered IPv4 address to the sandbox's nftables set `answered` (with the
 * record's TTL, at least 60 s): only addresses an allowed name resolved to become reachable.
 * It exits when the sandbox's host interface disappears (the sandbox is gone).
 */
import { spawnSync } from "node:child_process";
import { createSocket } from "node:dgram";
import { existsSync } from "node:fs";
import { noted } from "../util/best-effort.js";

interface Args {
  listen: string;
  upstream: string[];
  table: string;
  hostIf: string;
  hosts: string[];
}

function parseArgs(argv: string[]): Args {
  const get = (k: string) => {
    const i = argv.indexOf(`--${k}`);
    const v = i >= 0 ? argv[i + 1] : undefined;
    if (v === undefined) throw new Error(`missing --${k}`);
    return v;
  };
  const list = (k: string) => get(k).split(",").filter(Boolean);
  return {
    listen: get("listen"),
    upstream: list("upstream"),
    table: get("table"),
    hostIf: get("host-if"),
    hosts: list("hosts"),
  };
}

/** Whether `name` is allowed: equal to an entry, or under a `*.` entry. */
export function nameAllowed(name: string, hosts: string[]): boolean {
  const n = name.toLowerCase().replace(/\.$/, "");
  return hosts.some((h) => (h.startsWith("*.") ? n.endsWith(h.slice(1)) : n === h));
}

/** Reads a (possibly compressed) name at `off`; returns it and the offset after it. */
export function readName(buf: Buffer, off: number): { name: string; next: number } {
  const labels: string[] = [];
  let next = -1;
  let p = off;
  for (let hops = 0; hops < 64; hops++) {
    const len = buf[p];
    if (len === undefined) throw new Error("truncated name");
    if (len === 0) {
      if (next < 0) next = p + 1;
      return { name: labels.join("."), next };
    }
    if ((len & 0xc0) === 0xc0) {
      if (next < 0) next = p + 2;
      p = ((len & 0x3f) << 8) | (buf[p + 1] ?? 0);
      continue;
    }
    labels.push(buf.subarray(p + 1, p + 1 + len).toString("latin1"));
    p += 1 + len;
  }
  throw new Error("name loop");
}

/** The first question's name. */
export function questionName(msg: Buffer): string | undefined {
  if (msg.length < 12 || msg.readUInt16BE(4) < 1) return undefined;
  return readName(msg, 12).name;
}

/** Every A record of a response: address and TTL. */
export function answeredAddresses(msg: Buffer): { ip: string; ttl: number }[] {
  const out: { ip: string; ttl: number }[] = [];
  const qd = msg.readUInt16BE(4);
  const an = msg.readUInt16BE(6);
  let p = 12;
  for (let i = 0; i < qd; i++) p = readName(msg, p).next + 4;
  for (let i = 0; i < an; i++) {
    p = readName(msg, p).next;
    const type = msg.readUInt16BE(p);
    const ttl = msg.readUInt32BE(p + 4);
    const len = msg.readUInt16BE(p + 8);
    p += 10;
    if (type === 1 && len === 4) out.push({ ip: [...msg.subarray(p, p + 4)].join("."), ttl });
    p += len;
  }
  return out;
}

/** A reply to `query` with only a response code (3 NXDOMAIN, 2 SERVFAIL). */
export function errorReply(query: Buffer, rcode: number): Buffer {
  const q = readName(query, 12).next + 4;
  const r = Buffer.from(query.subarray(0, q));
  r.writeUInt16BE(0x8180 | rcode | (query.readUInt16BE(2) & 0x0100), 2); // QR, RA, keep RD
  r.writeUInt16BE(1, 4);
  r.writeUInt32BE(0, 6);
  r.writeUInt16BE(0, 10);
  return r;
}

function main(): void {
  const a = parseArgs(process.argv.slice(2));
  const sock = createSocket("udp4");
  const open = (ips: { ip: string; ttl: number }[]) => {
    if (ips.length === 0) return;
    const els = ips.map((x) => `${x.ip} timeout ${Math.max(60, Math.min(x.ttl, 86_400))}s`).join(", ");
    // Synchronous: the guest must not get the answer before the address is open.
    spawnSync("nft", ["add", "element", "inet", a.table, "answered", `{ ${els} }`], { stdio: "ignore" });
  };
  sock.on("message", (msg, from) => {
    let name: string | undefined;
    try {
      name = questionName(msg);
    } catch {
      return;
    }
    if (name === undefined) return;
    if (!nameAllowed(name, a.hosts)) {
      sock.send(errorReply(msg, 3), from.port, from.address);
      return;
    }
    const up = createSocket("udp4");
    const timer = setTimeout(() => {
      up.close();
      sock.send(errorReply(msg, 2), from.port, from.address);
    }, 4000);
    up.on("message", (resp) => {
      clearTimeout(timer);
      up.close();
      try {
        open(answeredAddresses(resp));
      } catch (e) {
        noted("unparsable DNS answer: opens nothing, still relayed", e);
      }
      sock.send(resp, from.port, from.address);
    });
    up.on("error", () => undefined);
    up.send(msg, 53, a.upstream[0] ?? "127.0.0.1");
  });
  sock.on("error", (e) => {
    process.stderr.write(`pyro dns forwarder: ${e.message}\n`);
    process.exit(1);
  });
  sock.bind(53, a.listen);
  // Gone with the sandbox: its host interface is removed at teardown, or with the namespace.
  setInterval(() => {
    if (!existsSync(`/sys/class/net/${a.hostIf}`)) process.exit(0);
  }, 2000);
}

if (process.argv[1] && /dns-forwarder\.(js|ts)$/.test(process.argv[1])) main();
