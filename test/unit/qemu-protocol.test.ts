import assert from "node:assert/strict";
import { test } from "node:test";
import {
  encodeExec,
  encodeFrame,
  encodeHello,
  encodePut,
  encodeStdin,
  FrameDecoder,
  HEADER_BYTES,
  HELLO_F_ONESHOT,
  MAGIC,
  MAX_PAYLOAD,
  parseExit,
  parseHelloOk,
  STDIN_CHUNK,
  T,
} from "../../src/engines/qemu/protocol.js";

test("frames carry magic, type and a big-endian length, and decode back byte for byte", () => {
  const payload = Buffer.from([0, 255, 10, 13, 0x50, 0x59]);
  const f = encodeFrame(T.STDOUT, payload);
  assert.equal(f.length, HEADER_BYTES + payload.length);
  assert.equal(f.readUInt32BE(0), MAGIC);
  assert.equal(f[4], T.STDOUT);
  assert.equal(f.readUInt32BE(8), payload.length);
  const d = new FrameDecoder();
  assert.deepEqual(d.push(f), [{ type: T.STDOUT, payload }]);
});

test("the decoder reassembles frames split at any byte and resynchronises after garbage", () => {
  const frames = [
    encodeFrame(T.STDOUT, Buffer.from("hello")),
    encodeFrame(T.EXIT, Buffer.alloc(16)),
    encodeFrame(T.STDERR),
  ];
  const garbage = Buffer.from("PYR\x00junk\x50\x59\x52", "latin1");
  const stream = Buffer.concat([garbage, ...frames]);
  for (let cut = 0; cut <= stream.length; cut++) {
    const d = new FrameDecoder();
    const got = [...d.push(stream.subarray(0, cut)), ...d.push(stream.subarray(cut))];
    assert.deepEqual(
      got.map((g) => g.type),
      [T.STDOUT, T.EXIT, T.STDERR],
      `cut at ${cut}`,
    );
    assert.equal(got[0]!.payload.toString(), "hello");
  }
});

test("a header announcing more than MAX_PAYLOAD is treated as garbage, not waited for", () => {
  const bad = Buffer.alloc(HEADER_BYTES);
  bad.writeUInt32BE(MAGIC, 0);
  bad.writeUInt32BE(MAX_PAYLOAD + 1, 8);
  const d = new FrameDecoder();
  const got = d.push(Buffer.concat([bad, encodeFrame(T.HELLO_OK, Buffer.alloc(8, 1))]));
  assert.deepEqual(
    got.map((g) => g.type),
    [T.HELLO_OK],
  );
  assert.throws(() => encodeFrame(T.STDIN, Buffer.alloc(MAX_PAYLOAD + 1)));
});

test("HELLO lays out nonce, unix time and entropy as the agent reads them", () => {
  const nonce = Buffer.from("01234567");
  const f = encodeHello(nonce, new Date(1_700_000_000_123), Buffer.alloc(5, 9));
  const p = f.subarray(HEADER_BYTES);
  assert.equal(f[4], T.HELLO);
  assert.deepEqual(p.subarray(0, 8), nonce);
  assert.equal(p.readBigUInt64BE(8), 1_700_000_000n);
  assert.equal(p.readUInt32BE(16), 123_000_000);
  assert.equal(p.readUInt32BE(20), 5);
  assert.deepEqual(p.subarray(24, 29), Buffer.alloc(5, 9));
  assert.equal(p.readUInt32BE(29), 0, "no flags");
  assert.equal(
    encodeHello(nonce, new Date(0), Buffer.alloc(0), HELLO_F_ONESHOT).readUInt32BE(HEADER_BYTES + 24),
    1,
  );
  assert.throws(() => encodeHello(Buffer.alloc(4), new Date(), Buffer.alloc(0)));
  const ok = parseHelloOk(Buffer.concat([nonce, Buffer.from("pyro-agent 1")]));
  assert.deepEqual(ok.nonce, nonce);
  assert.equal(ok.version, "pyro-agent 1");
});

test("EXEC encodes timeout, cap, flags, argv, env and cwd as length-prefixed strings", () => {
  const f = encodeExec({
    argv: ["sh", "-c", "echo é"],
    env: { A: "1=2" },
    cwd: "/workspace",
    timeoutMs: 1500,
    maxOutputBytes: 42,
    stdin: true,
  });
  const p = f.subarray(HEADER_BYTES);
  let off = 0;
  const u32 = () => {
    const v = p.readUInt32BE(off);
    off += 4;
    return v;
  };
  const str = () => {
    const n = u32();
    const s = p.subarray(off, off + n).toString("utf8");
    off += n;
    return s;
  };
  assert.equal(u32(), 1500);
  assert.equal(u32(), 42);
  assert.equal(u32(), 1);
  const argc = u32();
  assert.deepEqual(
    Array.from({ length: argc }, () => str()),
    ["sh", "-c", "echo é"],
  );
  assert.equal(u32(), 1);
  assert.equal(str(), "A=1=2");
  assert.equal(str(), "/workspace");
  assert.equal(off, p.length);
});

test("EXEC and PUT refuse what the agent cannot represent", () => {
  assert.throws(() => encodeExec({ argv: [], timeoutMs: 1, maxOutputBytes: 1, stdin: false }), /empty argv/);
  assert.throws(() => encodeExec({ argv: ["a\0b"], timeoutMs: 1, maxOutputBytes: 1, stdin: false }), /NUL/);
  assert.throws(
    () => encodeExec({ argv: ["x"], env: { "A=B": "c" }, timeoutMs: 1, maxOutputBytes: 1, stdin: false }),
    /name/,
  );
  assert.throws(() => encodePut("relative/dir", 1000), /absolute/);
  const put = encodePut("/workspace/x", 5000).subarray(HEADER_BYTES);
  assert.equal(put.readUInt32BE(0), 5000);
  assert.equal(put.subarray(8).toString(), "/workspace/x");
});

test("stdin is cut into STDIN_CHUNK frames; EXIT flags decode", () => {
  const frames = encodeStdin(Buffer.alloc(STDIN_CHUNK * 2 + 3));
  assert.deepEqual(
    frames.map((f) => f.readUInt32BE(8)),
    [STDIN_CHUNK, STDIN_CHUNK, 3],
  );
  const x = Buffer.alloc(16);
  x.writeInt32BE(137, 0);
  x.writeInt32BE(9, 4);
  x.writeUInt32BE(1 | 4 | 8, 8);
  x.writeUInt32BE(2500, 12);
  assert.deepEqual(parseExit(x), {
    exitCode: 137,
    signal: 9,
    timedOut: true,
    stdoutTruncated: false,
    stderrTruncated: true,
    killed: true,
    durationMs: 2500,
  });
  assert.throws(() => parseExit(Buffer.alloc(3)));
});
