import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { chmod, cp, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { CLI, type CliResult, REPO, runscBinary, tempDir } from "../helpers.js";

/**
 * pyro as an ordinary user, the way MCP clients start it: no root after setup-host.sh.
 * Run as root (CI), this creates two users with `useradd` (Debian gives them subordinate
 * ids), gives them a shared read-only environment cache (a hard-linked copy of root's
 * debian:12 with its EROFS image, as setup-host.sh makes /var/cache/pyro), and drives the
 * built CLI and `mcp serve` (through the official MCP client) as one of them with
 * `runuser`, then checks that the other can neither see nor touch that user's workspace.
 * Run as a normal user, it drives the same flow as that user.
 */

const isRoot = process.getuid?.() === 0;
const SUFFIX = `${process.pid % 100000}`;
const USER_A = `pyro-rl-a${SUFFIX}`;
const USER_B = `pyro-rl-b${SUFFIX}`;

interface Who {
  /** undefined: the current (non-root) user. */
  user?: string;
  home: string;
  env: Record<string, string>;
}

let skipReason: string | undefined;
let work: string | undefined; // root only: the copy of the package and the shared cache
let cli = CLI;
let a: Who;
let b: Who | undefined;
const createdUsers: string[] = [];

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** argv that runs `node <cli> ...args` as `who`, with exactly `who.env`. */
function argvFor(who: Who, args: string[]): { command: string; args: string[] } {
  if (!who.user) return { command: process.execPath, args: [cli, ...args] };
  const kv = Object.entries(who.env).map(([k, v]) => `${k}=${v}`);
  return {
    command: "runuser",
    args: ["-u", who.user, "--", "env", "-i", ...kv, process.execPath, cli, ...args],
  };
}

function runAs(who: Who, args: string[], timeoutMs = 120_000): Promise<CliResult> {
  const { command, args: argv } = argvFor(who, args);
  return new Promise((resolve) => {
    const child = spawn(command, argv, {
      env: who.user ? { PATH: process.env.PATH ?? "/usr/bin:/bin" } : { ...process.env, ...who.env },
      cwd: who.home,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => {
      stdout += c;
    });
    child.stderr.on("data", (c) => {
      stderr += c;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

async function jsonAs<T>(who: Who, args: string[]): Promise<T> {
  const dd = args.indexOf("--");
  const r = await runAs(
    who,
    dd < 0 ? [...args, "--json"] : [...args.slice(0, dd), "--json", ...args.slice(dd)],
  );
  assert.equal(r.code, 0, `pyro ${args.join(" ")} as ${who.user ?? "me"}: ${r.stderr}\n${r.stdout}`);
  return JSON.parse(r.stdout) as T;
}

/** As root: a user with a home and subordinate ids, like any account `useradd` makes. */
function makeUser(name: string): Who {
  sh("useradd", ["--create-home", "--shell", "/bin/sh", name]);
  createdUsers.push(name);
  const home = sh("getent", ["passwd", name]).split(":")[5]!;
  return { user: name, home, env: {} };
}

before(async () => {
  if (!(await runscBinary())) {
    skipReason = "runsc not installed (run scripts/setup-host.sh)";
    return;
  }
  if (!existsSync(CLI)) {
    skipReason = "pyro is not built (npm run build)";
    return;
  }
  if (!isRoot) {
    const home = await tempDir("pyro-rootless-me-");
    a = { home, env: { PYRO_STATE_DIR: join(home, "state") } };
    return;
  }
  for (const bin of ["useradd", "userdel", "runuser", "newuidmap"]) {
    try {
      sh("sh", ["-c", `command -v ${bin}`]);
    } catch {
      skipReason = `${bin} is missing (scripts/setup-host.sh installs uidmap)`;
      return;
    }
  }
  // The environment, as root has it, with its EROFS image (a run makes the image if missing).
  const prep = await mkdtemp("/var/tmp/pyro-rootless-");
  work = prep;
  const rootState = join(prep, "root-state");
  const warm = await runAs({ home: REPO, env: { PYRO_STATE_DIR: rootState } }, [
    "run",
    "debian:12",
    "--",
    "true",
  ]);
  assert.equal(warm.code, 0, `root's debian:12 does not run: ${warm.stderr}`);
  const info = await jsonAs<{ path: string }>({ home: REPO, env: { PYRO_STATE_DIR: rootState } }, [
    "env",
    "inspect",
    "debian:12",
  ]);
  const entry = join(info.path, "..");
  if (!existsSync(`${info.path}.erofs`)) {
    skipReason = "no EROFS image beside root's debian:12 (mkfs.erofs missing? run scripts/setup-host.sh)";
    return;
  }
  // The shared cache: a hard-linked copy (same filesystem) of root's entry, world-readable,
  // owned by root, exactly what an unprivileged user finds in /var/cache/pyro.
  const shared = join(prep, "shared");
  await mkdir(join(shared, "environments"), { recursive: true });
  sh("cp", ["-al", entry, join(shared, "environments")]);
  // The package, where the test users can read it (a checkout under /root is not).
  const pkg = join(prep, "pkg");
  await mkdir(pkg);
  await cp(join(REPO, "package.json"), join(pkg, "package.json"));
  await cp(join(REPO, "dist"), join(pkg, "dist"), { recursive: true });
  cli = join(pkg, "dist", "cli", "main.js");
  sh("chmod", ["-R", "a+rX", prep]);
  await chmod(prep, 0o755);
  a = makeUser(USER_A);
  b = makeUser(USER_B);
  for (const who of [a, b])
    who.env = {
      HOME: who.home,
      USER: who.user!,
      LOGNAME: who.user!,
      PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      PYRO_SHARED_CACHE: shared,
      // No warm pool (on by default): what a test leaves is what its commands made.
      PYRO_POOL_SIZE: "0",
    };
});

after(async () => {
  // Sandboxes left by a failed test are removed by id, as their owner; then the users.
  for (const name of createdUsers) {
    const root = `${sh("getent", ["passwd", name]).split(":")[5]}/.local/state/pyro-mcp/runsc`;
    const runsc = await runscBinary();
    if (runsc && existsSync(root)) {
      const ids = sh("runuser", ["-u", name, "--", runsc, "--rootless", `--root=${root}`, "list", "-quiet"])
        .split("\n")
        .filter(Boolean);
      for (const id of ids)
        sh("runuser", ["-u", name, "--", runsc, "--rootless", `--root=${root}`, "delete", "--force", id]);
    }
    sh("userdel", ["--remove", name]);
  }
  if (work) await rm(work, { recursive: true, force: true });
  if (!isRoot && a) await rm(a.home, { recursive: true, force: true });
});

describe("pyro without root", () => {
  let workspaceId = "";

  test("run, the workspace family and mcp serve work as an ordinary user", async (t) => {
    if (skipReason) return t.skip(skipReason);
    const doctor = await jsonAs<{ ok: boolean; default_engine: string; platform: { root: boolean } }>(a, [
      "doctor",
    ]);
    assert.equal(doctor.platform.root, false);
    assert.equal(doctor.default_engine, "gvisor");
    assert.equal(doctor.ok, true);

    const ran = await jsonAs<{ exit_code: number; stdout: string }>(a, [
      "run",
      "debian:12",
      "--",
      "sh",
      "-c",
      "id -u; stat -c %U /root /etc/shadow; test -r /etc/shadow && echo readable; git --version",
    ]);
    assert.equal(ran.exit_code, 0, JSON.stringify(ran));
    // Owners come from the image: a rootless gofer would show `nobody`, /etc/shadow unreadable.
    assert.match(ran.stdout, /^0\nroot\nroot\nreadable\ngit version/);

    const seed = join(a.home, "seed");
    await mkdir(seed, { recursive: true });
    await writeFile(join(seed, "hello.txt"), "hello from the host\n");
    if (a.user) sh("chown", ["-R", `${a.user}:`, seed]);
    const created = await jsonAs<{ workspace_id: string; state: string }>(a, [
      "workspace",
      "create",
      "debian:12",
      "--seed-path",
      seed,
    ]);
    workspaceId = created.workspace_id;
    assert.equal(created.state, "running");
    const ex = await jsonAs<{ exit_code: number; stdout: string }>(a, [
      "workspace",
      "exec",
      workspaceId,
      "--",
      "sh",
      "-c",
      "cat /workspace/hello.txt && echo made > /workspace/made.txt",
    ]);
    assert.equal(ex.exit_code, 0);
    assert.equal(ex.stdout, "hello from the host\n");
    // A deadline still ends the command (runsc kill --pid into the user's own sandbox).
    const t0 = Date.now();
    const slowRun = await runAs(a, [
      "workspace",
      "exec",
      "--json",
      "--timeout-seconds",
      "1",
      workspaceId,
      "--",
      "sleep",
      "30",
    ]);
    const slow = JSON.parse(slowRun.stdout) as { timed_out: boolean };
    assert.equal(slow.timed_out, true);
    assert.ok(Date.now() - t0 < 15_000, `timeout took ${Date.now() - t0} ms`);
    const pushed = await runAs(a, ["workspace", "sync", "push", workspaceId, seed, "--dest", "again"]);
    assert.equal(pushed.code, 0, pushed.stderr);
    const logs = await jsonAs<{ entries?: unknown[]; commands?: unknown[] }>(a, [
      "workspace",
      "logs",
      workspaceId,
    ]);
    assert.ok(JSON.stringify(logs).includes("hello.txt"), JSON.stringify(logs).slice(0, 400));

    // The MCP server as the user, through the official client, sees the same workspace.
    const { command, args } = argvFor(a, ["mcp", "serve"]);
    const transport = new StdioClientTransport({
      command,
      args,
      env: a.user
        ? { PATH: process.env.PATH ?? "/usr/bin:/bin" }
        : ({ ...process.env, ...a.env } as Record<string, string>),
      cwd: a.home,
      stderr: "pipe",
    });
    const client = new Client({ name: "pyro-rootless-e2e", version: "0.0.0" });
    await client.connect(transport);
    try {
      const r = (await client.callTool({
        name: "workspace_exec",
        arguments: {
          workspace_id: workspaceId,
          command: "cat /workspace/again/hello.txt /workspace/made.txt",
        },
      })) as { isError?: boolean; structuredContent?: { exit_code: number; stdout: string } };
      assert.notEqual(r.isError, true, JSON.stringify(r));
      assert.equal(r.structuredContent?.stdout, "hello from the host\nmade\n");
      const vm = (await client.callTool({
        name: "vm_run",
        arguments: { environment: "debian:12", command: "echo vm-run-ok" },
      })) as { isError?: boolean; structuredContent?: { stdout: string } };
      assert.notEqual(vm.isError, true, JSON.stringify(vm));
      assert.equal(vm.structuredContent?.stdout, "vm-run-ok\n");
    } finally {
      await client.close();
    }
  });

  test("another user can neither see nor touch the workspace", async (t) => {
    if (skipReason) return t.skip(skipReason);
    if (!b) return t.skip("needs root to create a second user");
    if (!workspaceId) return t.skip("the first test made no workspace");
    const theirs = await jsonAs<{ workspaces: unknown[] }>(b, ["workspace", "list"]);
    assert.deepEqual(theirs.workspaces, []);
    for (const args of [
      ["workspace", "status", workspaceId],
      ["workspace", "exec", workspaceId, "--", "true"],
      ["workspace", "delete", workspaceId],
    ]) {
      const r = await runAs(b, args);
      assert.notEqual(r.code, 0, `${args.join(" ")} as another user succeeded: ${r.stdout}`);
    }
    // Pointed straight at the owner's state dir, pyro refuses, and so does the kernel.
    const aState = join(a.home, ".local", "state", "pyro-mcp");
    const direct = await runAs({ ...b, env: { ...b.env, PYRO_STATE_DIR: aState } }, [
      "workspace",
      "delete",
      workspaceId,
    ]);
    assert.notEqual(direct.code, 0);
    const runsc = (await runscBinary())!;
    const other = b.user!;
    // runsc itself, aimed at the owner's runsc root, neither lists nor kills the sandbox.
    const listed = sh("sh", [
      "-c",
      'runuser -u "$0" -- "$@" 2>&1 || true',
      other,
      runsc,
      "--rootless",
      `--root=${join(aState, "runsc")}`,
      "list",
    ]);
    assert.doesNotMatch(listed, new RegExp(workspaceId));
    assert.throws(() =>
      sh("runuser", [
        "-u",
        other,
        "--",
        runsc,
        "--rootless",
        `--root=${join(aState, "runsc")}`,
        "kill",
        `pyro-${workspaceId}`,
        "KILL",
      ]),
    );
    assert.throws(() => sh("runuser", ["-u", other, "--", "ls", aState]));
    // Still the owner's, still running.
    const ex = await jsonAs<{ exit_code: number; stdout: string }>(a, [
      "workspace",
      "exec",
      workspaceId,
      "--",
      "cat",
      "/workspace/made.txt",
    ]);
    assert.equal(ex.stdout, "made\n");
  });

  test("the owner deletes it and nothing is left", async (t) => {
    if (skipReason) return t.skip(skipReason);
    if (!workspaceId) return t.skip("the first test made no workspace");
    const del = await runAs(a, ["workspace", "delete", workspaceId]);
    assert.equal(del.code, 0, del.stderr);
    const list = await jsonAs<{ workspaces: unknown[] }>(a, ["workspace", "list"]);
    assert.deepEqual(list.workspaces, []);
    const root = join(a.env.PYRO_STATE_DIR ?? join(a.home, ".local", "state", "pyro-mcp"), "runsc");
    const runsc = (await runscBinary())!;
    const left = a.user
      ? sh("runuser", ["-u", a.user, "--", runsc, "--rootless", `--root=${root}`, "list", "-quiet"])
      : sh(runsc, ["--rootless", `--root=${root}`, "list", "-quiet"]);
    assert.equal(left.trim(), "");
  });
});

/**
 * Network without root (pasta's namespace, network/rootless-net.ts), as two ordinary users.
 * As root the test makes a namespace of its own that stands for "the internet": a "public"
 * address with an HTTP server and a DNS server, and a private one, routed from the host, plus
 * servers on the host's own 127.0.0.1 and on all its addresses. No traffic leaves the machine.
 */
describe("network without root", () => {
  const NS = `pyro-rlnet-${SUFFIX}`;
  const HOST_IF = `prln${SUFFIX}`;
  const NET = "198.18.211";
  const PUBLIC_IP = "203.0.113.180";
  const DNS_IP = "203.0.113.153";
  const PRIVATE_IP = "10.199.78.2";
  const nsProcs: ChildProcess[] = [];
  const hostLoop = createServer((_q, s) => s.end("host-loopback"));
  const hostAny = createServer((_q, s) => s.end("host-any"));
  let loopPort = 0;
  let anyPort = 0;
  let netSkip: string | undefined;

  const shq = (cmd: string) => execFileSync("sh", ["-c", cmd], { stdio: "pipe" });
  const listen = async (srv: ReturnType<typeof createServer>, host: string) => {
    await new Promise<void>((r) => srv.listen(0, host, r));
    return (srv.address() as AddressInfo).port;
  };
  // allowed.test → PUBLIC_IP, anything else NXDOMAIN (as network.test.ts's server).
  const dnsServer = `
const d = require("dgram").createSocket("udp4");
d.on("message", (m, r) => {
  let p = 12; const labels = [];
  while (m[p]) { labels.push(m.subarray(p + 1, p + 1 + m[p]).toString()); p += m[p] + 1; }
  const qend = p + 5; const type = m.readUInt16BE(p + 1);
  const ip = labels.join(".").toLowerCase() === "allowed.test" ? ${JSON.stringify(PUBLIC_IP)} : undefined;
  const head = Buffer.from(m.subarray(0, qend));
  head.writeUInt16BE(ip ? 0x8180 : 0x8183, 2); head.writeUInt16BE(1, 4);
  head.writeUInt16BE(ip && type === 1 ? 1 : 0, 6); head.writeUInt32BE(0, 8);
  if (!ip || type !== 1) return d.send(head, r.port, r.address);
  const ans = Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, ...ip.split(".").map(Number)]);
  d.send(Buffer.concat([head, ans]), r.port, r.address);
});
d.bind(53, ${JSON.stringify(DNS_IP)});`;
  const http = (ip: string, body: string) =>
    `require("http").createServer((q,s)=>s.end(${JSON.stringify(body)})).listen(8080, ${JSON.stringify(ip)});`;

  /** A guest script: `label=<body>` for each target that answered, `label=closed` else (5 s each). */
  const probe = (targets: [string, string, number][]) =>
    [
      "getent hosts allowed.test | awk '{print \"dns=\" $1}' || echo dns=none",
      ...targets.map(
        ([label, ip, port]) =>
          `r=$(timeout 5 bash -c 'exec 3<>/dev/tcp/$0/$1 && printf "GET / HTTP/1.0\\r\\n\\r\\n" >&3 && tail -n1 <&3' ${ip} ${port} 2>/dev/null); echo "${label}=\${r:-closed}"`,
      ),
    ].join("\n");

  before(async () => {
    if (skipReason) return;
    if (!isRoot) {
      netSkip = "needs root to make the test's own namespaces and users";
      return;
    }
    if (spawnSync("sh", ["-c", "command -v pasta"]).status !== 0) {
      netSkip = "pasta is not installed (Debian passt; scripts/setup-host.sh installs it)";
      return;
    }
    if (!existsSync("/dev/net/tun") || (statSync("/dev/net/tun").mode & 0o006) !== 0o006) {
      netSkip =
        "/dev/net/tun is missing or not usable by ordinary users (mode 0666; scripts/setup-host.sh sets it)";
      return;
    }
    shq(`ip netns add ${NS}`);
    shq(`ip link add ${HOST_IF} type veth peer name eth0 netns ${NS}`);
    shq(`ip addr add ${NET}.1/30 dev ${HOST_IF} && ip link set ${HOST_IF} up`);
    shq(
      `ip -n ${NS} addr add ${NET}.2/30 dev eth0 && ip -n ${NS} link set eth0 up && ip -n ${NS} link set lo up`,
    );
    shq(`ip -n ${NS} route add default via ${NET}.1`);
    for (const ip of [PUBLIC_IP, DNS_IP, PRIVATE_IP]) {
      shq(`ip -n ${NS} addr add ${ip}/32 dev lo`);
      shq(`ip route replace ${ip}/32 via ${NET}.2`);
    }
    const code = `${http(PUBLIC_IP, "public")}${http(PRIVATE_IP, "private")}${dnsServer}`;
    nsProcs.push(spawn("ip", ["netns", "exec", NS, process.execPath, "-e", code], { stdio: "ignore" }));
    loopPort = await listen(hostLoop, "127.0.0.1");
    anyPort = await listen(hostAny, "0.0.0.0");
    // The listeners answer from the host before any sandbox is asked to reach them (a busy
    // machine starts node slowly).
    const deadline = Date.now() + 30_000;
    while (spawnSync("bash", ["-c", `exec 3<>/dev/tcp/${PUBLIC_IP}/8080`]).status !== 0) {
      assert.ok(Date.now() < deadline, "the test's listeners did not start");
      await new Promise((r) => setTimeout(r, 200));
    }
  });

  after(() => {
    for (const p of nsProcs) p.kill("SIGKILL");
    hostLoop.close();
    hostAny.close();
    if (netSkip || skipReason) return;
    for (const ip of [PUBLIC_IP, DNS_IP, PRIVATE_IP]) spawnSync("ip", ["route", "del", `${ip}/32`]);
    spawnSync("ip", ["link", "del", HOST_IF]);
    spawnSync("ip", ["netns", "del", NS]);
  });

  /** This host's own IPv4 addresses (the test namespace's veth end among them). */
  const hostAddrs = () =>
    Object.values(networkInterfaces())
      .flat()
      .filter((i) => i && i.family === "IPv4" && !i.internal)
      .map((i) => i!.address);

  test("an ordinary user's sandbox gets DNS and the public egress the policy allows, nothing on the host", async (t) => {
    if (skipReason) return t.skip(skipReason);
    if (netSkip) return t.skip(`skipped: ${netSkip}`);
    const who = { ...a, env: { ...a.env, PYRO_DNS_UPSTREAM: DNS_IP } };
    const targets: [string, string, number][] = [
      ["public", PUBLIC_IP, 8080],
      ["private", PRIVATE_IP, 8080],
      ["loopback", "127.0.0.1", loopPort],
      // The first few (root's sandboxes on this host add a veth address each).
      ...[...new Set([`${NET}.1`, ...hostAddrs()])]
        .slice(0, 6)
        .map((ip, i): [string, string, number] => [`host${i}`, ip, anyPort]),
    ];
    const run = async (extra: string[]) => {
      const r = await jsonAs<{ exit_code: number; stdout: string }>(who, [
        "run",
        "--network",
        ...extra,
        "debian:12",
        "--",
        "bash",
        "-c",
        probe(targets),
      ]);
      assert.equal(r.exit_code, 0);
      return Object.fromEntries(
        r.stdout
          .trim()
          .split("\n")
          .map((l) => l.split("=", 2) as [string, string]),
      );
    };
    const seen = await run([]);
    assert.equal(seen.dns, PUBLIC_IP, "the guest resolves through the allowed resolver");
    assert.equal(seen.public, "public");
    assert.equal(seen.private, "closed", "private addresses are closed by default");
    assert.equal(seen.loopback, "closed", "the host's loopback is never reachable");
    for (const [k, v] of Object.entries(seen)) if (k.startsWith("host")) assert.equal(v, "closed", `${k}`);
    // The host's servers do answer, so "closed" above is the sandbox's policy.
    // (Asked asynchronously: the server runs in this process.)
    assert.equal(await fetch(`http://127.0.0.1:${loopPort}/`).then((r) => r.text()), "host-loopback");
    // --allow-cidr opens a private address; --deny-cidr closes a public one.
    const allowed = await run(["--allow-cidr", PRIVATE_IP, "--deny-cidr", PUBLIC_IP]);
    assert.equal(allowed.private, "private");
    assert.equal(allowed.public, "closed");
    assert.equal(allowed.loopback, "closed");
    // allow_host needs pyro's DNS forwarder, which runs only beside root's namespaces: refused
    // rather than given wider egress.
    const hosts = await runAs(who, ["run", "--allow-host", "allowed.test", "debian:12", "--", "true"]);
    assert.notEqual(hosts.code, 0);
    assert.match(hosts.stderr, /allow_host .*not available without root/);
  });

  test("another user's sandbox and published port are out of reach; delete stops pasta", async (t) => {
    if (skipReason) return t.skip(skipReason);
    if (netSkip) return t.skip(`skipped: ${netSkip}`);
    if (!b) return t.skip("needs root to create a second user");
    const seed = join(work!, `srv-${SUFFIX}`);
    await mkdir(seed, { recursive: true });
    await writeFile(
      join(seed, "srv.pl"),
      `use IO::Socket::INET; my $s = IO::Socket::INET->new(LocalAddr=>"0.0.0.0", LocalPort=>$ARGV[0], Listen=>5, ReuseAddr=>1) or die "listen: $!"; while (my $c = $s->accept) { my $l = <$c>; print $c "HTTP/1.0 200 OK\\r\\n\\r\\nguest-b\\n"; close $c; }`,
    );
    sh("chmod", ["-R", "a+rX", seed]);
    const ws = await jsonAs<{
      workspace_id: string;
      network_info: {
        mode: string;
        guest_ip: string;
        published_ports: { host_port: number; guest_port: number }[];
      };
    }>(b, ["workspace", "create", "debian:12", "--seed-path", seed, "--publish", "8000"]);
    const id = ws.workspace_id;
    try {
      assert.equal(ws.network_info.mode, "namespace");
      const port = ws.network_info.published_ports[0]!.host_port;
      const svc = await runAs(b, [
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
      ]);
      assert.equal(svc.code, 0, svc.stderr);
      // Published on the host's 127.0.0.1: this host reaches it...
      assert.equal(
        spawnSync("curl", ["-s", "-m", "10", `http://127.0.0.1:${port}/`]).stdout.toString(),
        "guest-b\n",
      );
      // ...the other user's sandbox does not, neither there nor at B's guest address.
      const r = await jsonAs<{ stdout: string }>(a, [
        "run",
        "--network",
        "debian:12",
        "--",
        "bash",
        "-c",
        probe([
          ["published", "127.0.0.1", port],
          ["guest", ws.network_info.guest_ip, 8000],
        ]),
      ]);
      assert.match(r.stdout, /^published=closed$/m);
      assert.match(r.stdout, /^guest=closed$/m);
      // A change of published ports needs pasta restarted: refused without root, not ignored.
      const upd = await runAs(b, ["workspace", "update", id, "--publish", "8001"]);
      assert.notEqual(upd.code, 0);
      assert.match(upd.stderr, /published ports are fixed when it starts/);
    } finally {
      const del = await runAs(b, ["workspace", "delete", id]);
      assert.equal(del.code, 0, del.stderr);
    }
    const left = spawnSync("pgrep", ["-u", b.user!, "-f", `pyro-${id}.pasta.pid`])
      .stdout.toString()
      .trim();
    assert.equal(left, "", "pasta outlived the workspace");
  });
});
