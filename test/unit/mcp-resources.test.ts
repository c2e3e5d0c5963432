import assert from "node:assert/strict";
import { test } from "node:test";
import { fileUri, parseFileUri, SubscriptionPoller } from "../../src/mcp/resources.js";
import { originGuard } from "../../src/remote/origin.js";

test("pyro file URIs: built and parsed back, segments percent-encoded; other URIs are not ours", () => {
  const uri = fileUri("ws_0123456789abcdef", "src/a b/c#.py");
  assert.equal(uri, "pyro://workspace/ws_0123456789abcdef/file/src/a%20b/c%23.py");
  assert.deepEqual(parseFileUri(uri), { workspace: "ws_0123456789abcdef", path: "/workspace/src/a b/c#.py" });
  assert.equal(parseFileUri("test://watched-resource"), undefined);
  assert.equal(parseFileUri("pyro://workspace/main/file/%E0%A4%A"), undefined, "bad escapes are not ours");
});

test("subscriptions: a change of size or mtime is reported once, a file that appears too; unsubscribed files are not polled", async () => {
  const state = new Map<string, { size: number; mtime: string }>([["a.txt", { size: 1, mtime: "t1" }]]);
  const polled: string[] = [];
  const run = async (_name: string, args: Record<string, unknown>) => {
    const rel = String(args.path).replace(/^\/workspace\//, "");
    polled.push(rel);
    const s = state.get(rel);
    if (!s) throw new Error("not found");
    return { entries: [{ path: rel, type: "file", ...s }] };
  };
  const updated: string[] = [];
  const poller = new SubscriptionPoller(run, 20, (u) => updated.push(u));
  const a = fileUri("main", "a.txt");
  const b = fileUri("main", "b.txt");
  poller.add(a);
  poller.add(b);
  poller.add("test://watched-resource");
  assert.equal(poller.size, 2, "only pyro file URIs are polled");
  const wait = async (what: string, ok: () => boolean) => {
    const deadline = Date.now() + 10_000;
    while (!ok()) {
      if (Date.now() > deadline) assert.fail(`timed out: ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  await wait("a few polls", () => polled.filter((p) => p === "a.txt").length >= 3);
  assert.equal(updated.length, 0, "nothing changed, nothing reported");
  state.set("a.txt", { size: 2, mtime: "t2" });
  await wait("a's update", () => updated.includes(a));
  state.set("b.txt", { size: 5, mtime: "t1" });
  await wait("b's appearance", () => updated.includes(b));
  assert.deepEqual(updated, [a, b]);
  poller.remove(a);
  poller.remove(b);
  assert.equal(poller.size, 0);
  const n = polled.length;
  await new Promise((r) => setTimeout(r, 100));
  assert.ok(polled.length <= n + 2, "polling stopped with the last subscription");
});

test("a loopback Origin naming the Host the request came to passes on a loopback bind; another port or name does not", () => {
  const g = originGuard({ bindHost: "127.0.0.1" });
  assert.equal(g.refuse({ origin: "http://127.0.0.1:4000", host: "127.0.0.1:4000" }), undefined);
  assert.equal(g.refuse({ origin: "http://localhost:4000", host: "localhost:4000" }), undefined);
  assert.match(g.refuse({ origin: "http://localhost:3000", host: "localhost:4000" }) ?? "", /Origin/);
  assert.match(
    g.refuse({ origin: "http://evil.example.com", host: "evil.example.com" }) ?? "",
    /not allowed|not a loopback/,
  );
  // Beyond loopback the rule does not apply: the Host is whatever the network gave.
  const wide = originGuard({ bindHost: "0.0.0.0" });
  assert.match(wide.refuse({ origin: "http://10.0.0.5:4000", host: "10.0.0.5:4000" }) ?? "", /Origin/);
});
