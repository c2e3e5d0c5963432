import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { createServer as createHttpServer } from "node:http";
import { createServer } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { bootPlan } from "../../src/engines/firecracker/api.js";
import { connectVsock, FirecrackerApiError, send, sendAll } from "../../src/engines/firecracker/client.js";
import { tempDir } from "../helpers.js";

/** The HTTP-over-unix-socket client against a stand-in for Firecracker's API server. */

test("requests go out as JSON over the unix socket; a fault_message becomes the error", async () => {
  const dir = await tempDir("pyro-fc-");
  const sock = join(dir, "api.sock");
  const seen: { method: string; url: string; body: unknown; type: string | undefined }[] = [];
  const server = createHttpServer((req, res) => {
    let text = "";
    req.on("data", (c) => {
      text += c;
    });
    req.on("end", () => {
      seen.push({
        method: req.method!,
        url: req.url!,
        body: text ? JSON.parse(text) : undefined,
        type: req.headers["content-type"],
      });
      if (req.url === "/machine-config" && (JSON.parse(text) as { vcpu_count: number }).vcpu_count > 4) {
        res.writeHead(400, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ fault_message: "Invalid vCPU count" }));
        return;
      }
      if (req.method === "GET") {
        res.writeHead(200, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ id: "x", state: "Not started" }));
        return;
      }
      res.writeHead(204);
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(sock, r));
  try {
    assert.deepEqual(await send(sock, { method: "GET", path: "/" }), { id: "x", state: "Not started" });
    const plan = bootPlan({
      kernel: "/k",
      initrd: "/i",
      bootArgs: "a",
      rootDisk: "/d",
      vsockUds: "/v",
      vcpuCount: 2,
      memMib: 256,
    });
    await sendAll(sock, plan);
    assert.deepEqual(
      seen.slice(1).map((s) => `${s.method} ${s.url}`),
      plan.map((p) => `${p.method} ${p.path}`),
    );
    assert.deepEqual(seen[1]!.body, { vcpu_count: 2, mem_size_mib: 256, smt: false });
    assert.equal(seen[1]!.type, "application/json");
    const err = await send(sock, {
      method: "PUT",
      path: "/machine-config",
      body: { vcpu_count: 8, mem_size_mib: 256 },
    }).catch((e: unknown) => e);
    assert.ok(err instanceof FirecrackerApiError);
    assert.equal(err.status, 400);
    assert.match(err.message, /Invalid vCPU count/);
  } finally {
    await new Promise((r) => server.close(r));
    await rm(dir, { recursive: true, force: true });
  }
});

test("vsock CONNECT: the OK line is consumed, bytes after it reach the caller", async () => {
  const dir = await tempDir("pyro-fc-");
  const sock = join(dir, "v.sock");
  const server = createServer((c) => {
    c.once("data", (d) => {
      if (d.toString() === "CONNECT 1024\n") c.write("OK 1073741999\nHELLO-FROM-GUEST");
      else c.end("NO\n");
    });
  });
  await new Promise<void>((r) => server.listen(sock, r));
  try {
    const s = await connectVsock(sock, 1024);
    const first = await new Promise<string>((r) => {
      s.once("data", (d) => r(d.toString()));
      s.resume();
    });
    assert.equal(first, "HELLO-FROM-GUEST");
    s.destroy();
    await assert.rejects(connectVsock(sock, 7), /refused/);
  } finally {
    await new Promise((r) => server.close(r));
    await rm(dir, { recursive: true, force: true });
  }
});
