import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { warmPoolObjects } from "../../src/engines/kubernetes/objects.js";
import { CLI, REPO, runCli, runCliJson, runCliJsonGuest, withHostDir, withTestState } from "../helpers.js";
import { clusterEnv, clusterSkipReason, engineFor, waitUntil } from "../kubernetes-helpers.js";
import { createToken, mcpClient, ok, startHttpServer } from "../remote-helpers.js";

/**
 * The kubernetes engine against a real cluster (KUBECONFIG; see test/kubernetes-helpers.ts):
 * everything through the CLI the user runs, and the cluster checked through the API by label,
 * never through pyro's own records. Skipped with the reason where no cluster answers.
 */

// biome-ignore lint/suspicious/noExplicitAny: CLI JSON of many shapes
type Json = Record<string, any>;

async function k8sState(t: { skip: (m?: string) => void }, fn: Parameters<typeof withTestState>[3]) {
  await withTestState(t, await clusterSkipReason(), clusterEnv(), async (c) => {
    const engine = engineFor(c.env, c.stateDir);
    const sweep = async () => {
      for (const o of await engine.listOwned())
        await engine.removeOrphan(o.metadata.labels?.["pyro.dev/id"] ?? "", "/nonexistent", undefined, true);
    };
    try {
      await fn(c);
    } catch (e) {
      await sweep().catch(() => undefined);
      throw e;
    }
    // Nothing of this state dir's owner may be left in the cluster (deletes finish async).
    const gone = await waitUntil(async () => (await engine.listOwned()).length === 0, 90_000);
    const left = await engine.listOwned();
    await sweep();
    assert.ok(
      gone,
      `objects left in the cluster: ${left.map((o) => `${o.kind}/${o.metadata.name}`).join(", ")}`,
    );
  });
}

async function cli(args: string[], env: NodeJS.ProcessEnv): Promise<Json> {
  const r = await runCliJson<Json>(args, { env });
  assert.equal(r.code, 0, `pyro ${args.join(" ")}: ${r.stderr}`);
  return r.json;
}

test("run: exit code and both streams through the API server's exec; the deadline holds", async (t) => {
  await k8sState(t, async ({ env }) => {
    const r = await runCliJsonGuest<Json>(
      [
        "run",
        "debian:12",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; cat /proc/self/cgroup >/dev/null; exit 3",
      ],
      { env },
    );
    assert.equal(r.json.exit_code, 3, JSON.stringify(r.json));
    assert.equal(r.json.stdout, "out\n");
    assert.equal(r.json.stderr, "err\n");
    assert.equal(r.json.execution_mode, "kubernetes");
    const t0 = Date.now();
    const slow = await runCliJsonGuest<Json>(
      ["run", "debian:12", "--timeout-seconds", "3", "--", "sleep", "60"],
      {
        env,
      },
    );
    assert.equal(slow.json.timed_out, true, JSON.stringify(slow.json));
    assert.ok(Date.now() - t0 < 60_000, "the timeout ended the command");
  });
});

test("workspace: seed, exec, file write/read, diff, export, stop/start keeps the files, delete", async (t) => {
  await k8sState(t, async ({ env, stateDir }) =>
    withHostDir("pyro-k8s-ws-", async (host) => {
      const seed = join(host, "seed");
      await mkdir(seed);
      await writeFile(join(seed, "a.txt"), "hello\n");
      await writeFile(join(seed, "run.sh"), "#!/bin/sh\necho ran\n", { mode: 0o755 });
      const ws = (await cli(["workspace", "create", "debian:12", "--seed-path", seed], env))
        .workspace_id as string;
      const engine = engineFor(env, stateDir);
      const objs = await engine.listOwned(ws);
      assert.ok(
        objs.some((o) => o.kind === "NetworkPolicy"),
        "a deny-all NetworkPolicy is made with every sandbox",
      );
      const ex = await runCliJsonGuest<Json>(
        ["workspace", "exec", ws, "--", "sh", "-c", "./run.sh; cat a.txt"],
        {
          env,
        },
      );
      assert.equal(ex.json.stdout, "ran\nhello\n");
      await cli(["workspace", "file", "write", ws, "new/b.txt", "--content", "bee\n"], env);
      assert.equal((await cli(["workspace", "file", "read", ws, "new/b.txt"], env)).content, "bee\n");
      await runCliJsonGuest<Json>(["workspace", "exec", ws, "--", "rm", "a.txt"], { env });
      const diff = await cli(["workspace", "diff", ws, "--name-only"], env);
      assert.deepEqual(
        diff.files.map((f: Json) => [f.path, f.status]),
        [
          ["a.txt", "deleted"],
          ["new/b.txt", "added"],
        ],
      );
      const out = join(host, "out");
      const exp = await cli(["workspace", "export", ws, "--output", out, "--changed-only"], env);
      assert.deepEqual(exp.deleted, ["a.txt"]);
      assert.equal(await readFile(join(out, "new", "b.txt"), "utf8"), "bee\n");

      await cli(["workspace", "stop", ws], env);
      assert.equal(
        (await engine.listOwned(ws)).filter((o) => o.kind === "Pod").length,
        0,
        "stop ends the pod",
      );
      await cli(["workspace", "start", ws], env);
      assert.equal((await cli(["workspace", "file", "read", ws, "new/b.txt"], env)).content, "bee\n");
      await cli(["workspace", "delete", ws], env);
    }),
  );
});

test("kill -9 of pyro mid create: every object left is found by label and removed by the next pyro", async (t) => {
  await k8sState(t, async ({ env, stateDir }) => {
    const engine = engineFor(env, stateDir);
    for (const delay of [400, 1500, 3000, 6000]) {
      await new Promise<void>((resolve) => {
        const child = spawn(process.execPath, [CLI, "workspace", "create", "debian:12"], {
          env,
          cwd: REPO,
          stdio: "ignore",
        });
        const timer = setTimeout(() => child.kill("SIGKILL"), delay);
        child.on("close", () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    // Every labelled object belongs to a workspace pyro lists (or is being reaped).
    const listed = (await cli(["workspace", "list"], env)).workspaces as Json[];
    const ids = new Set(listed.map((w) => w.workspace_id));
    for (const o of await engine.listOwned()) {
      const id = o.metadata.labels?.["pyro.dev/id"];
      assert.ok(
        id && (ids.has(id) || o.metadata.deletionTimestamp),
        `${o.kind}/${o.metadata.name} is not listed`,
      );
    }
    for (const w of listed) await cli(["workspace", "delete", w.workspace_id], env);
  });
});

test("a second owner's objects are apart: not listed, not removed, names never shared", async (t) => {
  await k8sState(t, async (a) =>
    k8sState(t, async (b) => {
      const wa = (await cli(["workspace", "create", "debian:12"], a.env)).workspace_id as string;
      const wb = (await cli(["workspace", "create", "debian:12"], b.env)).workspace_id as string;
      const ea = engineFor(a.env, a.stateDir);
      const eb = engineFor(b.env, b.stateDir);
      assert.notEqual(ea.config.owner, eb.config.owner);
      const ownA = await ea.listOwned();
      assert.ok(ownA.length > 0 && ownA.every((o) => o.metadata.labels?.["pyro.dev/id"] === wa));
      // A's engine asked to remove B's sandbox finds nothing of its own by that id.
      await ea.removeOrphan(wb, join(a.stateDir, "nonexistent"));
      assert.ok(
        (await eb.listOwned(wb)).some((o) => o.kind === "Pod"),
        "B's pod survives A's removal",
      );
      // And B's workspace is no workspace of A's.
      const r = await runCli(["workspace", "exec", wb, "--", "true"], { env: a.env });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /no workspace with id/);
      await cli(["workspace", "delete", wa], a.env);
      await cli(["workspace", "delete", wb], b.env);
    }),
  );
});

test("warm pool: a one-shot run claims a ready agent-sandbox and deletes it with its claim", async (t) => {
  await k8sState(t, async ({ env, stateDir }) => {
    const engine = engineFor(env, stateDir);
    if ((await engine.resolveMode()) !== "sandbox")
      return t.skip("skipped: agent-sandbox's CRDs are not installed");
    const api = await engine.api();
    const pool = `pyro-e2e-${process.pid}`;
    const objs = warmPoolObjects(engine.config, pool, 1, {
      environment: "debian:12",
      vcpuCount: 1,
      memMib: 256,
    });
    for (const o of objs) await api.create(o);
    try {
      const ready = await waitUntil(async () => {
        const p = await api.read(objs[1]!.apiVersion, "SandboxWarmPool", engine.config.namespace, pool);
        return (p?.status?.readyReplicas ?? 0) >= 1;
      }, 180_000);
      assert.ok(ready, "the warm pool has a ready sandbox");
      // The engine itself: a claim, not a cold start (which claimWarm would fall back to).
      const warm = engineFor({ ...env, PYRO_K8S_WARM_POOL: pool }, stateDir);
      const sandboxDir = join(stateDir, "claim-check");
      const h = await warm.claimWarm({
        id: "vm_00000000000000e2",
        environment: "debian:12",
        rootfs: "",
        sandboxDir,
        vcpuCount: 1,
        memMib: 256,
        network: false,
      });
      assert.ok(h, "a warm sandbox was claimed");
      try {
        assert.equal((h.data as { kind: string }).kind, "SandboxClaim");
        const out = await warm.exec(h, { argv: ["echo", "claimed"], timeoutMs: 30_000 });
        assert.equal(out.stdout, "claimed\n");
      } finally {
        await warm.destroy(h);
      }
      await waitUntil(async () => {
        const p = await api.read(objs[1]!.apiVersion, "SandboxWarmPool", engine.config.namespace, pool);
        return (p?.status?.readyReplicas ?? 0) >= 1;
      }, 180_000);
      const wenv = { ...env, PYRO_K8S_WARM_POOL: pool };
      const t0 = Date.now();
      const r = await runCliJsonGuest<Json>(["run", "debian:12", "--", "echo", "warm"], { env: wenv });
      assert.equal(r.json.stdout, "warm\n", JSON.stringify(r.json));
      assert.ok(Date.now() - t0 < 60_000);
      assert.ok(r.json.boot_ms < 10_000, `claimed, not cold-started (boot ${r.json.boot_ms} ms)`);
    } finally {
      for (const o of [...objs].reverse())
        await api.remove(o.apiVersion, o.kind, engine.config.namespace, o.metadata.name).catch(() => false);
    }
  });
});

test("tenants over HTTP on the kubernetes engine: B reaches A's workspace neither by name nor by id, and lists only its own", async (t) => {
  await k8sState(t, async ({ env }) => {
    const a = await createToken(env, "k8s-tenant-a");
    const b = await createToken(env, "k8s-tenant-b");
    const server = await startHttpServer(env, ["--profile", "all"]);
    const clients: { close: () => Promise<void> }[] = [];
    try {
      const A = await mcpClient(server.url, a.token);
      const B = await mcpClient(server.url, b.token);
      clients.push(A.client, B.client);
      const wsA = ok(await A.call("workspace_create", { name: "main" })).workspace_id as string;
      ok(await A.call("workspace_file_write", { workspace_id: "main", path: "marker", content: "A\n" }));
      for (const ref of ["main", wsA]) {
        const r = await B.call("workspace_exec", { workspace_id: ref, command: "cat marker" });
        assert.equal(r.ok, false, `B reached A's workspace by ${ref}`);
        assert.equal(r.ok ? "" : r.code, "not_found", JSON.stringify(r));
      }
      const listed = ok(await B.call("workspace_list", {})).workspaces as Json[];
      assert.deepEqual(
        listed.map((w) => w.workspace_id),
        [],
        "B lists none of A's",
      );
      // Names are per tenant: B's own `main` is another workspace, A's file is not in it.
      const wsB = ok(await B.call("workspace_create", { name: "main" })).workspace_id as string;
      assert.notEqual(wsB, wsA);
      const seen = ok(
        await B.call("workspace_exec", { workspace_id: "main", command: "cat marker || echo none" }),
      );
      assert.equal(seen.stdout, "none\n");
      assert.equal(
        ok(await A.call("workspace_exec", { workspace_id: "main", command: "cat marker" })).stdout,
        "A\n",
      );
      ok(await B.call("workspace_delete", { workspace_id: "main" }));
      ok(await A.call("workspace_delete", { workspace_id: "main" }));
    } finally {
      for (const c of clients) await c.close().catch(() => undefined);
      await server.stop();
    }
  });
});
