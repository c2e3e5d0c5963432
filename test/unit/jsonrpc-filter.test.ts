import assert from "node:assert/strict";
import { test } from "node:test";
import { classifyLine, type JsonRpcErrorResponse, JsonRpcLineFilter } from "../../src/mcp/jsonrpc-filter.js";

/** Lines the MCP SDK would drop silently get JSON-RPC answers; good lines pass untouched. */

test("classifyLine: parse errors, invalid requests, and good messages", () => {
  const code = (l: string) => {
    const v = classifyLine(l);
    return v.kind === "reject" ? [v.response.error.code, v.response.id] : v.kind;
  };
  assert.deepEqual(code("this is not json"), [-32700, null]);
  assert.deepEqual(code('{"jsonrpc":"2.0","id":1,"method":"tools/list"'), [-32700, null]);
  assert.deepEqual(code('{"foo":1}'), [-32600, null]);
  assert.deepEqual(code('{"jsonrpc":"2.0","id":7}'), [-32600, 7]);
  assert.deepEqual(code('{"jsonrpc":"1.0","id":"a","method":"x"}'), [-32600, "a"]);
  assert.deepEqual(code("[1,2]"), [-32600, null]);
  assert.deepEqual(code("42"), [-32600, null]);
  assert.equal(code(""), "skip");
  assert.equal(code("  \r"), "skip");
  assert.equal(code('{"jsonrpc":"2.0","id":1,"method":"tools/list"}'), "pass");
  assert.equal(code('{"jsonrpc":"2.0","id":1,"method":"tools/list"}\r'), "pass");
  assert.equal(code('{"jsonrpc":"2.0","method":"notifications/initialized"}'), "pass");
  assert.equal(code('{"jsonrpc":"2.0","id":1,"result":{}}'), "pass");
});

async function feed(
  chunks: string[],
  maxLine?: number,
): Promise<{ out: string; replies: JsonRpcErrorResponse[] }> {
  const replies: JsonRpcErrorResponse[] = [];
  const f = new JsonRpcLineFilter((r) => replies.push(r), maxLine);
  let out = "";
  f.on("data", (c: Buffer) => {
    out += c.toString();
  });
  const ended = new Promise((r) => f.on("end", r));
  for (const c of chunks) f.write(c);
  f.end();
  await ended;
  return { out, replies };
}

test("JsonRpcLineFilter: reassembles lines across chunks and passes only good ones", async () => {
  const good = '{"jsonrpc":"2.0","id":1,"method":"ping"}';
  const { out, replies } = await feed([
    good.slice(0, 10),
    `${good.slice(10)}\nnot json\n{"x"`,
    ":1}\n",
    `${good}\n`,
  ]);
  assert.equal(out, `${good}\n${good}\n`);
  assert.deepEqual(
    replies.map((r) => r.error.code),
    [-32700, -32600],
  );
});

test("JsonRpcLineFilter: an over-long line is answered and skipped, later lines still pass", async () => {
  const good = '{"jsonrpc":"2.0","id":2,"method":"ping"}';
  const { out, replies } = await feed(["x".repeat(40), "y".repeat(40), "zz\n", `${good}\n`], 64);
  assert.equal(out, `${good}\n`);
  assert.equal(replies.length, 1);
  assert.equal(replies[0]!.error.code, -32700);
  assert.match(replies[0]!.error.message, /longer than 64 bytes/);
});
