import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { createServer, get } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { netRouteFor } from "../../src/engines/gvisor/net-route.js";
import { Pyro } from "../../src/index.js";
import {
  CLI,
  gvisorSkipReason,
  REPO,
  runCli,
  runCliJson,
  runCliJsonGuest,
  runscBinary,
  withGvisorState,
} from "../helpers.js";

/**
 * Network isolation with network on (issue 13), against real gVisor sandboxes. "The
 * internet" is a network namespace this test makes (203.0.113.x, TEST-NET-3, routed from the
 * host into it), a second namespace holds a "private" listener (10.199.77.2), and the host
 * listens on its own 127.0.0.1 and on every address. No packet leaves the machine: the
 * sandbox's resolver is the test's own DNS server (PYRO_DNS_UPSTREAM).
 */

const tag = `${process.pid.toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`.slice(-6);
const INET = `pyt-inet-${tag}`;
const PRIV = `pyt-priv-${tag}`;
const PUBLIC_IP = "203.0.113.80";
const OTHER_IP = "203.0.113.81";
const DNS_IP = "203.0.113.53";
const PRIVATE_IP = "10.199.77.2";
const PORT = 8080;
/** The public listener's port that answers with BIG_BYTES of "a" (segmentation, offloads). */
const BIG_PORT = 8082;
const BIG_BYTES = 4 << 20;

function sh(cmd: string): void {
  execFileSync("sh", ["-c", cmd], { stdio: "pipe" });
}
function tryRun(cmd: string): void {
  spawnSync("sh", ["-c", cmd], { stdio: "ignore" });
}

const nsProcs: ChildProcess[] = [];
let hostLoop: ReturnType<typeof createServer> | undefined;
let hostAny: ReturnType<typeof createServer> | undefined;
let skip: string | undefined;

/** A namespace with a veth to the host, `addrs` on its loopback, routed from the host. */
function makeNs(name: string, hostIf: string, net: string, addrs: string[]): void {
  sh(`ip netns add ${name}`);
  sh(`ip link add ${hostIf} type veth peer name eth0 netns ${name}`);
  sh(`ip addr add ${net}.1/30 dev ${hostIf} && ip link set ${hostIf} up`);
  sh(
    `ip -n ${name} addr add ${net}.2/30 dev eth0 && ip -n ${name} link set eth0 up && ip -n ${name} link set lo up`,
  );
  sh(`ip -n ${name} route add default via ${net}.1`);
  for (const a of addrs) {
    sh(`ip -n ${name} addr add ${a}/32 dev lo`);
    sh(`ip route replace ${a}/32 via ${net}.2`);
  }
}

/** A node program run inside a namespace (a listener), killed after the tests. */
function inNs(ns: string, code: string): void {
  const p = spawn("ip", ["netns", "exec", ns, process.execPath, "-e", code], { stdio: "ignore" });
  nsProcs.push(p);
}

const bigServer = (ip: string) =>
  `require("http").createServer((q,s)=>s.end(Buffer.alloc(${BIG_BYTES}, 97))).listen(${BIG_PORT}, ${JSON.stringify(ip)})`;

const httpServer = (ip: string, body: string) =>
  `require("http").createServer((q,s)=>s.end(${JSON.stringify(body)})).listen(${PORT}, ${JSON.stringify(ip)})`;

/** A tiny DNS server: allowed.test → PUBLIC_IP, other.test → OTHER_IP, else NXDOMAIN. */
const dnsServer = `
const d = require("dgram").createSocket("udp4");
const zone = { "allowed.test": ${JSON.stringify(PUBLIC_IP)}, "other.test": ${JSON.stringify(OTHER_IP)} };
d.on("message", (m, r) => {
  let p = 12; const labels = [];
  while (m[p]) { labels.push(m.subarray(p + 1, p + 1 + m[p]).toString()); p += m[p] + 1; }
  const qend = p + 5; const name = labels.join(".").toLowerCase(); const type = m.readUInt16BE(p + 1);
  const ip = zone[name]; const head = Buffer.from(m.subarray(0, qend));
  head.writeUInt16BE(ip ? 0x8180 : 0x8183, 2); head.writeUInt16BE(1, 4);
  head.writeUInt16BE(ip && type === 1 ? 1 : 0, 6); head.writeUInt32BE(0, 8);
  if (!ip || type !== 1) return d.send(head, r.port, r.address);
  const ans = Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, ...ip.split(".").map(Number)]);
  d.send(Buffer.concat([head, ans]), r.port, r.address);
});
d.bind(53, ${JSON.stringify(DNS_IP)});`;

async function listen(server: ReturnType<typeof createServer>, host: string): Promise<number> {
  await new Promise<void>((r) => server.listen(0, host, r));
  return (server.address() as AddressInfo).port;
}
let loopPort = 0;
let anyPort = 0;

before(async () => {
  skip = await gvisorSkipReason();
  if (!skip && !existsSync("/usr/sbin/nft") && !existsSync("/sbin/nft"))
    skip = "nft (nftables) is not installed";
  if (skip) return;
  makeNs(INET, `pyti${tag}`, "198.18.201", [PUBLIC_IP, OTHER_IP, DNS_IP]);
  makeNs(PRIV, `pytp${tag}`, "198.18.202", [PRIVATE_IP]);
  inNs(
    INET,
    `${httpServer(PUBLIC_IP, "public")};${httpServer(OTHER_IP, "other")};${dnsServer};${bigServer(PUBLIC_IP)}`,
  );
  inNs(PRIV, httpServer(PRIVATE_IP, "private"));
  hostLoop = createServer((_q, s) => s.end("host-loopback"));
  hostAny = createServer((_q, s) => s.end("host-any"));
  loopPort = await listen(hostLoop, "127.0.0.1");
  anyPort = await listen(hostAny, "0.0.0.0");
  // The listeners answer from the host before any sandbox is asked to reach them.
  for (const url of [`http://${PUBLIC_IP}:${PORT}/`, `http://${PRIVATE_IP}:${PORT}/`]) {
    for (let i = 0; i < 50 && (await httpGet(url)) === undefined; i++)
      await new Promise((r) => setTimeout(r, 100));
    assert.ok(await httpGet(url), `test listener ${url} did not start`);
  }
});

after(() => {
  for (const p of nsProcs) p.kill("SIGKILL");
  hostLoop?.close();
  hostAny?.close();
  for (const a of [PUBLIC_IP, OTHER_IP, DNS_IP, PRIVATE_IP]) tryRun(`ip route del ${a}/32`);
  tryRun(`ip link del pyti${tag}; ip link del pytp${tag}; ip netns del ${INET}; ip netns del ${PRIV}`);
});

function httpGet(url: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = get(url, { timeout: 3000 }, (res) => {
      let body = "";
      res.on("data", (c) => {
        body += c;
      });
      res.on("end", () => resolve(body));
    });
    req.on("error", () => resolve(undefined));
    req.on("timeout", () => {
      req.destroy();
      resolve(undefined);
    });
  });
}

/** A guest script printing `open ADDR` or `closed ADDR` for each host:port (bash /dev/tcp). */
function probeScript(targets: string[]): string {
  return targets
    .map((t) => {
      const [h, p] = t.split(":");
      return `if timeout 3 bash -c 'exec 3<>/dev/tcp/${h}/${p}' 2>/dev/null; then echo "open ${t}"; else echo "closed ${t}"; fi`;
    })
    .join("; ");
}

/** Every object of a sandbox's network, as the host shows it. */
function netObjects(id: string): string[] {
  const left: string[] = [];
  if (existsSync(`/run/netns/pyro-${id}`)) left.push(`netns pyro-${id}`);
  const ifName = `pv${id[0]}${id.slice(3, 15)}`;
  if (existsSync(`/sys/class/net/${ifName}`)) left.push(`link ${ifName}`);
  if (spawnSync("nft", ["list", "table", "inet", `pyro_${id}`], { stdio: "ignore" }).status === 0)
    left.push(`table pyro_${id}`);
  return left;
}

test("with network on, a sandbox reaches the public listener but not the host, its loopback or a private address", async (t) => {
  if (skip) return t.skip(`skipped: ${skip}`);
  await withGvisorState(
    t,
    async ({ env }) => {
      const targets = [
        `${PUBLIC_IP}:${PORT}`,
        `${PRIVATE_IP}:${PORT}`,
        `127.0.0.1:${loopPort}`,
        "198.18.201.1:" + anyPort, // the host's own address on the "internet" link
        "198.18.202.1:" + anyPort,
      ];
      const r = await runCliJsonGuest<{ exit_code: number; stdout: string; stderr: string }>(
        ["run", "--network-policy", "egress", "--", "bash", "-c", probeScript(targets)],
        { env },
      );
      assert.equal(r.json.exit_code, 0, r.json.stderr);
      const lines = r.json.stdout.trim().split("\n");
      assert.deepEqual(lines, [
        `open ${targets[0]}`,
        `closed ${targets[1]}`,
        `closed ${targets[2]}`,
        `closed ${targets[3]}`,
        `closed ${targets[4]}`,
      ]);
      // --allow-cidr opens a private range; --deny-cidr closes a public one.
      const r2 = await runCliJsonGuest<{ exit_code: number; stdout: string }>(
        [
          "run",
          "--network-policy",
          "egress",
          "--allow-cidr",
          `${PRIVATE_IP}/32`,
          "--deny-cidr",
          PUBLIC_IP,
          "--",
          "bash",
          "-c",
          probeScript([`${PUBLIC_IP}:${PORT}`, `${PRIVATE_IP}:${PORT}`, `${OTHER_IP}:${PORT}`]),
        ],
        { env },
      );
      assert.deepEqual(r2.json.stdout.trim().split("\n"), [
        `closed ${PUBLIC_IP}:${PORT}`,
        `open ${PRIVATE_IP}:${PORT}`,
        `open ${OTHER_IP}:${PORT}`,
      ]);
      // Network off: nothing at all.
      const r3 = await runCliJsonGuest<{ stdout: string }>(
        ["run", "--", "bash", "-c", probeScript([`${PUBLIC_IP}:${PORT}`])],
        { env },
      );
      assert.equal(r3.json.stdout.trim(), `closed ${PUBLIC_IP}:${PORT}`);
    },
    { PYRO_DNS_UPSTREAM: DNS_IP },
  );
});

test("the SDK and a model's tool call take the same policy fields", async (t) => {
  if (skip) return t.skip(`skipped: ${skip}`);
  await withGvisorState(
    t,
    async ({ env }) => {
      const pyro = new Pyro({ env });
      const probe = probeScript([`${PUBLIC_IP}:${PORT}`, `${PRIVATE_IP}:${PORT}`]);
      const sdk = await pyro.runInVm({
        command: ["bash", "-c", probe],
        networkPolicy: "egress",
        allowCidr: [PRIVATE_IP],
        denyCidr: [PUBLIC_IP],
      });
      assert.deepEqual(sdk.stdout.trim().split("\n"), [
        `closed ${PUBLIC_IP}:${PORT}`,
        `open ${PRIVATE_IP}:${PORT}`,
      ]);
      const tool = await pyro.callTool<{ stdout: string }>("vm_run", {
        command: ["bash", "-c", probe],
        network_policy: "egress",
      });
      assert.deepEqual(tool.stdout.trim().split("\n"), [
        `open ${PUBLIC_IP}:${PORT}`,
        `closed ${PRIVATE_IP}:${PORT}`,
      ]);
    },
    { PYRO_DNS_UPSTREAM: DNS_IP },
  );
});

test("QEMU runs in the same kind of namespace: public reachable, the host's loopback (10.0.2.2) and private addresses not", async (t) => {
  if (skip) return t.skip(`skipped: ${skip}`);
  if (!existsSync("/usr/bin/qemu-system-x86_64"))
    return t.skip("skipped: qemu-system-x86_64 is not installed");
  await withGvisorState(
    t,
    async ({ env }) => {
      const targets = [
        `${PUBLIC_IP}:${PORT}`,
        `${PRIVATE_IP}:${PORT}`,
        `10.0.2.2:${loopPort}`,
        `198.18.201.1:${anyPort}`,
      ];
      const r = await runCliJsonGuest<{
        exit_code: number;
        stdout: string;
        stderr: string;
        execution_mode: string;
      }>(["run", "--network-policy", "egress", "--", "bash", "-c", probeScript(targets)], {
        env,
        timeoutMs: 240_000,
      });
      assert.equal(r.json.execution_mode, "qemu");
      assert.deepEqual(r.json.stdout.trim().split("\n"), [
        `open ${targets[0]}`,
        `closed ${targets[1]}`,
        `closed ${targets[2]}`,
        `closed ${targets[3]}`,
      ]);
      const refused = await runCliJsonGuest(["run", "--allow-host", "allowed.test", "--", "true"], { env });
      assert.match(JSON.stringify(refused.json), /cannot enforce allow_host/);
    },
    { PYRO_DNS_UPSTREAM: DNS_IP, PYRO_ENGINE: "qemu" },
  );
});

test("--allow-host: only the allowed name resolves, and only its address opens", async (t) => {
  if (skip) return t.skip(`skipped: ${skip}`);
  await withGvisorState(
    t,
    async ({ env }) => {
      const script = [
        "getent hosts allowed.test || echo 'unresolved allowed.test'",
        "getent hosts other.test || echo 'unresolved other.test'",
        probeScript([`${PUBLIC_IP}:${PORT}`, `${OTHER_IP}:${PORT}`]),
      ].join("; ");
      const r = await runCliJsonGuest<{ exit_code: number; stdout: string; stderr: string }>(
        ["run", "--allow-host", "allowed.test", "--network-policy", "egress", "--", "bash", "-c", script],
        { env },
      );
      const lines = r.json.stdout.trim().split("\n");
      assert.match(
        lines[0] ?? "",
        new RegExp(`^${PUBLIC_IP.replace(/\./g, "\\.")}\\s+allowed\\.test$`),
        r.json.stdout,
      );
      assert.deepEqual(lines.slice(1), [
        "unresolved other.test",
        `open ${PUBLIC_IP}:${PORT}`,
        `closed ${OTHER_IP}:${PORT}`,
      ]);
    },
    { PYRO_DNS_UPSTREAM: DNS_IP },
  );
});

const SERVER_PL = `use IO::Socket::INET; my $s = IO::Socket::INET->new(LocalAddr=>"0.0.0.0", LocalPort=>$ARGV[0], Listen=>5, ReuseAddr=>1) or die "listen: $!"; while (my $c = $s->accept) { my $l = <$c>; print $c "HTTP/1.0 200 OK\\r\\n\\r\\nhello from the guest\\n"; close $c; }`;

test("--publish: a guest port answers on the host's 127.0.0.1, follows workspace update, and closes on delete", async (t) => {
  if (skip) return t.skip(`skipped: ${skip}`);
  await withGvisorState(
    t,
    async ({ env, stateDir }) => {
      const seed = join(stateDir, "..", `netseed-${tag}`);
      await mkdir(seed, { recursive: true });
      await writeFile(join(seed, "srv.pl"), SERVER_PL);
      interface Ws {
        workspace_id: string;
        network_info: {
          policy: string;
          mode: string;
          guest_ip: string;
          published_ports: { host_ip: string; host_port: number; guest_port: number }[];
        } | null;
      }
      const c = await runCliJson<Ws>(["workspace", "create", "--seed-path", seed, "--publish", "8000"], {
        env,
      });
      assert.equal(c.code, 0, c.stderr);
      const id = c.json.workspace_id;
      try {
        const info = c.json.network_info;
        assert.equal(info?.policy, "egress+published-ports");
        assert.equal(info?.mode, "namespace");
        const port = info?.published_ports[0];
        assert.equal(port?.host_ip, "127.0.0.1");
        assert.equal(port?.guest_port, 8000);
        const s = await runCli(
          [
            "workspace",
            "service",
            "start",
            id,
            "web",
            "--ready-tcp",
            "8000",
            "--",
            "perl",
            "/workspace/srv.pl",
            "8000",
          ],
          { env },
        );
        assert.equal(s.code, 0, s.stderr);
        const url = `http://127.0.0.1:${port?.host_port}/`;
        assert.equal(await httpGet(url), "hello from the guest\n");
        // Status shows it; a policy without published ports closes it on the running workspace.
        const st = await runCliJson<Ws>(["workspace", "status", id], { env });
        assert.deepEqual(st.json.network_info?.published_ports, info?.published_ports);
        const u = await runCliJson<Ws>(["workspace", "update", id, "--network-policy", "egress"], { env });
        assert.equal(u.code, 0, u.stderr);
        assert.deepEqual(u.json.network_info?.published_ports, []);
        assert.equal(await httpGet(url), undefined);
        const u2 = await runCliJson<Ws>(["workspace", "update", id, "--publish", `${port?.host_port}:8000`], {
          env,
        });
        assert.equal(u2.code, 0, u2.stderr);
        assert.equal(await httpGet(url), "hello from the guest\n");
        // service start --publish adds a port for the service; service stop takes it away.
        interface Svc {
          published_ports: { host_ip: string; host_port: number; guest_port: number }[];
        }
        const s2 = await runCliJsonGuest<Svc>(
          [
            "workspace",
            "service",
            "start",
            id,
            "web2",
            "--ready-tcp",
            "8001",
            "--publish",
            "8001",
            "--",
            "perl",
            "/workspace/srv.pl",
            "8001",
          ],
          { env },
        );
        assert.equal(s2.code, 0, s2.stderr);
        const sp = s2.json.published_ports[0];
        assert.equal(sp?.guest_port, 8001);
        const url2 = `http://127.0.0.1:${sp?.host_port}/`;
        assert.equal(await httpGet(url2), "hello from the guest\n");
        assert.equal(await httpGet(url), "hello from the guest\n", "the workspace's own port stays");
        const stop = await runCli(["workspace", "service", "stop", id, "web2"], { env });
        assert.equal(stop.code, 0, stop.stderr);
        assert.equal(await httpGet(url2), undefined);
        assert.equal(await httpGet(url), "hello from the guest\n");
        const d = await runCli(["workspace", "delete", id], { env });
        assert.equal(d.code, 0, d.stderr);
        assert.equal(await httpGet(url), undefined, "the published port must be closed after delete");
        assert.deepEqual(netObjects(id), []);
      } finally {
        await runCli(["workspace", "delete", id], { env });
      }
    },
    { PYRO_DNS_UPSTREAM: DNS_IP },
  );
});

test("kill -9 during workspace create with network leaves no namespace, link or table after the reaper", async (t) => {
  if (skip) return t.skip(`skipped: ${skip}`);
  await withGvisorState(
    t,
    async ({ env, stateDir }) => {
      const wsDir = join(stateDir, "workspaces");
      const child = spawn(
        process.execPath,
        [CLI, "workspace", "create", "--network-policy", "egress", "--allow-host", "allowed.test"],
        {
          env,
          cwd: REPO,
          stdio: "ignore",
        },
      );
      // Killed as soon as its namespace exists (mid-create: before the sandbox is up).
      let id: string | undefined;
      for (let i = 0; i < 300 && !id; i++) {
        await new Promise((r) => setTimeout(r, 10));
        const ids = existsSync(wsDir) ? readdirSync(wsDir).filter((n) => n.startsWith("ws_")) : [];
        id = ids.find((w) => existsSync(`/run/netns/pyro-${w}`));
      }
      child.kill("SIGKILL");
      await new Promise((r) => child.on("close", r));
      assert.ok(id, "the create never reached its network setup");
      // The reaper (any later pyro call) removes what the killed create left.
      const reap = await runCliJson(["vm", "reap"], { env });
      assert.equal(reap.code, 0, reap.stderr);
      await runCli(["workspace", "delete", id], { env });
      assert.deepEqual(netObjects(id), []);
      assert.ok(!existsSync(`/run/pyro-net/${id}.dns.pid`));
    },
    { PYRO_DNS_UPSTREAM: DNS_IP },
  );
});

/**
 * One TCP connect from the guest with a 10 s ceiling: prints `ms=<elapsed> rc=<status>` and
 * bash's error (a refusal says "Connection refused" or "No route to host"; a drop runs into
 * `timeout`, rc 124). Timed inside one bash around the connect alone (a redirection of the
 * `:` builtin, no process started), so a loaded host's process start-up is not counted.
 */
function timedConnect(ip: string, port: number): string {
  const inner = [
    "s=$EPOCHREALTIME",
    `{ : 3<>/dev/tcp/${ip}/${port}; }`,
    "rc=$?",
    "e=$EPOCHREALTIME",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell expansions
    'echo "ms=$(( (${e/./} - ${s/./}) / 1000 )) rc=$rc"',
  ].join("; ");
  return `timeout 10 bash -c '${inner}' || { [ $? = 124 ] && echo "ms=10000 rc=124"; }`;
}

test("with network on, a sandbox connecting to another sandbox is refused at once (both creation orders)", async (t) => {
  if (skip) return t.skip(`skipped: ${skip}`);
  await withGvisorState(
    t,
    async ({ env, stateDir }) => {
      const seed = join(stateDir, "..", `netseed2-${tag}`);
      await mkdir(seed, { recursive: true });
      await writeFile(join(seed, "srv.pl"), SERVER_PL);
      interface Ws {
        workspace_id: string;
        network_info: { guest_ip: string; gateway: string } | null;
      }
      const made: Ws[] = [];
      try {
        for (const _ of [0, 1]) {
          const c = await runCliJson<Ws>(
            ["workspace", "create", "--seed-path", seed, "--network-policy", "egress"],
            { env },
          );
          assert.equal(c.code, 0, c.stderr);
          made.push(c.json);
          const s = await runCli(
            [
              "workspace",
              "service",
              "start",
              c.json.workspace_id,
              "web",
              "--ready-tcp",
              "8000",
              "--",
              "perl",
              "/workspace/srv.pl",
              "8000",
            ],
            { env },
          );
          assert.equal(s.code, 0, s.stderr);
        }
        const [first, second] = made as [Ws, Ws];
        // The listener is there: the host reaches it (docs/network.md, "Local users").
        for (const w of made)
          assert.equal(await httpGet(`http://${w.network_info?.guest_ip}:8000/`), "hello from the guest\n");
        // Later-created to earlier-created and the reverse: the other's table must not decide.
        for (const [from, to] of [
          [second, first],
          [first, second],
        ] as const) {
          for (const ip of [to.network_info?.guest_ip, to.network_info?.gateway]) {
            const r = await runCliJsonGuest<{ exit_code: number; stdout: string; stderr: string }>(
              ["workspace", "exec", from.workspace_id, "--", "bash", "-c", timedConnect(String(ip), 8000)],
              { env },
            );
            assert.equal(r.code, 0, r.stderr);
            const m = /ms=(\d+) rc=(\d+)/.exec(r.json.stdout);
            const what = `${from.workspace_id} -> ${ip}:8000: ${r.json.stdout} ${r.json.stderr}`;
            assert.ok(m, what);
            assert.equal(m[2], "1", `refused, not timed out (rc 124) or connected (rc 0): ${what}`);
            assert.match(r.json.stderr, /Connection refused|No route to host/, what);
            assert.ok(Number(m[1]) < 2000, `refused within 2 s: ${what}`);
          }
        }
      } finally {
        for (const w of made) await runCli(["workspace", "delete", w.workspace_id], { env });
      }
    },
    { PYRO_DNS_UPSTREAM: DNS_IP },
  );
});

/* ---------------- the two routes: gVisor's netstack, and the host-stack fallback ---------------- */

/** `--network=…` of the running sandbox of workspace `id` (its `runsc-sandbox … boot` process). */
function sandboxNetworkFlag(id: string): string | undefined {
  const cid = `pyro-${id}`;
  for (const p of readdirSync("/proc")) {
    if (!/^\d+$/.test(p)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0");
    } catch {
      continue; // the process ended meanwhile
    }
    // A restarted sandbox runs under a generation name, `pyro-<id>-r…` (engine.ts).
    if (!argv.includes("boot") || !argv.some((a) => a === cid || a.startsWith(`${cid}-r`))) continue;
    return argv.find((a) => a.startsWith("--network="));
  }
  return undefined;
}

/** The IPv4 addresses the host kernel holds on the guest end (eth0) of the sandbox's veth. */
function eth0Addresses(id: string): string[] {
  const r = spawnSync("ip", ["-n", `pyro-${id}`, "-4", "-o", "addr", "show", "dev", "eth0"], {
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stderr);
  return [...r.stdout.matchAll(/inet (\S+)/g)].map((m) => m[1] as string);
}

/** The route pyro picks for a runsc binary (net-route.ts), from its `--version`. */
function routeOf(binary: string, env: NodeJS.ProcessEnv = {}): string {
  const v = spawnSync(binary, ["--version"], { encoding: "utf8" }).stdout.split("\n")[0];
  return netRouteFor(v, env);
}

/** Guest script: GET the public big listener, print `bytes=<body length> rest=<non-"a" bytes>`. */
const bigGet = [
  `exec 3<>/dev/tcp/${PUBLIC_IP}/${BIG_PORT}`,
  `printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3`,
  // The body: what follows the header's empty line.
  "sed '1,/^\\r$/d' <&3 > /tmp/body",
  'echo "bytes=$(wc -c < /tmp/body) rest=$(tr -d a < /tmp/body | wc -c)"',
].join("; ");

/** A guest server answering every request with BIG_BYTES of "b" (for the published port). */
const BIG_SERVER_PL = `use IO::Socket::INET; my $s = IO::Socket::INET->new(LocalAddr=>"0.0.0.0", LocalPort=>$ARGV[0], Listen=>5, ReuseAddr=>1) or die "listen: $!"; my $b = "b" x ${BIG_BYTES}; while (my $c = $s->accept) { my $l = <$c>; print $c "HTTP/1.0 200 OK\\r\\n\\r\\n$b"; close $c; }`;

interface RouteWs {
  workspace_id: string;
  network_info: {
    guest_ip: string;
    published_ports: { host_port: number; guest_port: number }[];
  } | null;
}

test("gVisor's netstack carries the guest's traffic: the namespace's address moves into the sandbox, policy, DNS-free egress, 4 MiB both ways, published port, stop/start", async (t) => {
  if (skip) return t.skip(`skipped: ${skip}`);
  const bin = await runscBinary();
  if (bin && routeOf(bin) !== "netstack")
    return t.skip(
      `skipped: ${bin} predates gVisor's netstack on this kernel (the host-stack test covers it)`,
    );
  await withGvisorState(
    t,
    async ({ env, stateDir }) => {
      const seed = join(stateDir, "..", `netseed3-${tag}`);
      await mkdir(seed, { recursive: true });
      await writeFile(join(seed, "big.pl"), BIG_SERVER_PL);
      const c = await runCliJson<RouteWs>(["workspace", "create", "--seed-path", seed, "--publish", "8000"], {
        env,
      });
      assert.equal(c.code, 0, c.stderr);
      const id = c.json.workspace_id;
      try {
        const check = async (when: string) => {
          // runsc took eth0 into its own stack: the host kernel holds no address for the guest.
          assert.equal(sandboxNetworkFlag(id), "--network=sandbox", `${when}: runsc's flag`);
          assert.deepEqual(eth0Addresses(id), [], `${when}: eth0's address moved into the sandbox`);
          const targets = [
            `${PUBLIC_IP}:${PORT}`,
            `${PRIVATE_IP}:${PORT}`,
            `127.0.0.1:${loopPort}`,
            `198.18.201.1:${anyPort}`,
          ];
          const r = await runCliJsonGuest<{ exit_code: number; stdout: string; stderr: string }>(
            ["workspace", "exec", id, "--", "bash", "-c", `${probeScript(targets)}; ${bigGet}`],
            { env },
          );
          assert.equal(r.json.exit_code, 0, r.json.stderr);
          assert.deepEqual(
            r.json.stdout.trim().split("\n"),
            [
              `open ${targets[0]}`,
              `closed ${targets[1]}`,
              `closed ${targets[2]}`,
              `closed ${targets[3]}`,
              `bytes=${BIG_BYTES} rest=0`,
            ],
            when,
          );
        };
        await check("after create");
        // Host → 127.0.0.1 → DNAT → veth → netstack: 4 MiB from a guest server, intact.
        const s = await runCli(
          [
            "workspace",
            "service",
            "start",
            id,
            "big",
            "--ready-tcp",
            "8000",
            "--",
            "perl",
            "/workspace/big.pl",
            "8000",
          ],
          { env },
        );
        assert.equal(s.code, 0, s.stderr);
        const port = c.json.network_info?.published_ports[0]?.host_port;
        const body = await httpGet(`http://127.0.0.1:${port}/`);
        assert.equal(body?.length, BIG_BYTES, "the published port's 4 MiB answer arrived whole");
        assert.equal(body?.replace(/b/g, ""), "");
        // Stop removes the namespace; start makes a new one, and runsc takes it over again.
        for (const step of ["stop", "start"]) {
          const r = await runCli(["workspace", step, id], { env });
          assert.equal(r.code, 0, r.stderr);
        }
        await check("after stop and start");
        const d = await runCli(["workspace", "delete", id], { env });
        assert.equal(d.code, 0, d.stderr);
        assert.deepEqual(netObjects(id), []);
      } finally {
        await runCli(["workspace", "delete", id], { env });
      }
    },
    { PYRO_DNS_UPSTREAM: DNS_IP },
  );
});

/** runsc 20240729 (Debian's), kept beside a newer runsc by set-up: the route by version. */
const OLD_RUNSC = "/usr/local/bin/runsc-20240729";

test("the host-stack route (PYRO_GVISOR_NET_ROUTE=host-stack; runsc 20240729 by its version) keeps the same policy", async (t) => {
  if (skip) return t.skip(`skipped: ${skip}`);
  const variants: { what: string; env: Record<string, string> }[] = [
    { what: "PYRO_GVISOR_NET_ROUTE=host-stack", env: { PYRO_GVISOR_NET_ROUTE: "host-stack" } },
  ];
  if (existsSync(OLD_RUNSC)) {
    assert.equal(routeOf(OLD_RUNSC), "host-stack", `${OLD_RUNSC} is too old for netstack here`);
    variants.push({ what: OLD_RUNSC, env: { PYRO_RUNSC: OLD_RUNSC } });
  } else
    t.diagnostic(`${OLD_RUNSC} is not installed: the route by version is covered by the unit tests only`);
  for (const v of variants) {
    await withGvisorState(
      t,
      async ({ env }) => {
        const c = await runCliJson<RouteWs>(["workspace", "create", "--network-policy", "egress"], { env });
        assert.equal(c.code, 0, `${v.what}: ${c.stderr}`);
        const id = c.json.workspace_id;
        try {
          // The host kernel's stack in the namespace: eth0 keeps the guest's address.
          assert.equal(sandboxNetworkFlag(id), "--network=host", v.what);
          assert.deepEqual(eth0Addresses(id), [`${c.json.network_info?.guest_ip}/30`], v.what);
          const targets = [
            `${PUBLIC_IP}:${PORT}`,
            `${PRIVATE_IP}:${PORT}`,
            `127.0.0.1:${loopPort}`,
            `198.18.201.1:${anyPort}`,
          ];
          const r = await runCliJsonGuest<{ exit_code: number; stdout: string; stderr: string }>(
            ["workspace", "exec", id, "--", "bash", "-c", probeScript(targets)],
            { env },
          );
          assert.equal(r.json.exit_code, 0, `${v.what}: ${r.json.stderr}`);
          assert.deepEqual(
            r.json.stdout.trim().split("\n"),
            [`open ${targets[0]}`, `closed ${targets[1]}`, `closed ${targets[2]}`, `closed ${targets[3]}`],
            v.what,
          );
        } finally {
          await runCli(["workspace", "delete", id], { env });
        }
        assert.deepEqual(netObjects(id), [], v.what);
      },
      { PYRO_DNS_UPSTREAM: DNS_IP, ...v.env },
    );
  }
});
