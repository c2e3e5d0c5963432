import assert from "node:assert/strict";
import { test } from "node:test";
import {
  patternsOf,
  redactBytes,
  redactDeep,
  redactText,
  type SecretValue,
  StreamRedactor,
} from "../../src/secrets/redactor.js";

const S = (name: string, value: string | Buffer): SecretValue => ({
  name,
  value: typeof value === "string" ? Buffer.from(value) : value,
});

/** Feeds `input` in chunks cut at `cuts` and returns everything released. */
function streamed(secrets: SecretValue[], input: Buffer, cuts: number[]): Buffer {
  const r = new StreamRedactor(secrets);
  const out: Buffer[] = [];
  let at = 0;
  for (const c of [...cuts, input.length]) {
    out.push(r.push(input.subarray(at, c)));
    at = c;
  }
  out.push(r.flush());
  return Buffer.concat(out);
}

test("a value is replaced by its name", () => {
  assert.equal(redactText([S("TOKEN", "s3cr3t-value")], "a s3cr3t-value b"), "a [REDACTED:TOKEN] b");
  assert.equal(redactText([S("TOKEN", "s3cr3t-value")], "nothing here"), "nothing here");
});

test("a value split at every possible boundary, and byte by byte, is still redacted", () => {
  const secrets = [S("TOKEN", "hunter2-xyz")];
  const input = Buffer.from("before hunter2-xyz middle hunter2-xyz\nend");
  const want = "before [REDACTED:TOKEN] middle [REDACTED:TOKEN]\nend";
  for (let a = 0; a <= input.length; a++)
    for (let b = a; b <= input.length; b += 3)
      assert.equal(streamed(secrets, input, [a, b]).toString(), want, `cuts ${a},${b}`);
  const every = Array.from({ length: input.length }, (_, i) => i);
  assert.equal(streamed(secrets, input, every).toString(), want);
});

test("only a tail that could start a value is held back", () => {
  const r = new StreamRedactor([S("TOKEN", "hunter2-xyz")]);
  assert.equal(r.push(Buffer.from("prompt$ ")).toString(), "prompt$ ");
  assert.equal(r.held, 0);
  assert.equal(r.push(Buffer.from("ok hunt")).toString(), "ok ");
  assert.equal(r.held, 4);
  // Not the value after all: released as soon as that is known.
  assert.equal(r.push(Buffer.from("ing")).toString(), "hunting");
  assert.equal(r.held, 0);
  r.push(Buffer.from("hunter2"));
  assert.equal(r.flush().toString(), "hunter2", "a prefix at the end of the stream is not a value");
});

test("overlapping and nested values: the whole covered span goes", () => {
  const secrets = [S("A", "abcdef"), S("B", "defghi"), S("C", "cdef")];
  assert.equal(redactText(secrets, "xabcdefghiy"), "x[REDACTED:A][REDACTED:B]y");
  assert.equal(redactText(secrets, "xcdefy"), "x[REDACTED:C]y");
  // The longest value wins at one position; one inside another adds nothing.
  const nested = [S("SHORT", "4242"), S("LONG", "key-4242")];
  assert.equal(redactText(nested, "key-4242 and 4242"), "[REDACTED:LONG] and [REDACTED:SHORT]");
  const input = Buffer.from("--abcdefghi--");
  for (let a = 0; a <= input.length; a++)
    assert.equal(streamed(secrets, input, [a]).toString(), "--[REDACTED:A][REDACTED:B]--", `cut ${a}`);
});

test("binary output and binary values", () => {
  const value = Buffer.from([0x00, 0xff, 0x10, 0x80, 0x7f]);
  const input = Buffer.concat([Buffer.from([0xfe, 0x00]), value, Buffer.from([0x01]), value]);
  const want = Buffer.concat([
    Buffer.from([0xfe, 0x00]),
    Buffer.from("[REDACTED:BIN]"),
    Buffer.from([0x01]),
    Buffer.from("[REDACTED:BIN]"),
  ]);
  for (let a = 0; a <= input.length; a++) assert.deepEqual(streamed([S("BIN", value)], input, [a]), want);
  assert.deepEqual(redactBytes([S("BIN", value)], input), want);
});

test("a value with a trailing newline is caught without it, and the newline stays", () => {
  const secrets = [S("TOKEN", "from-a-file\n")];
  assert.equal(redactText(secrets, "x=from-a-file;"), "x=[REDACTED:TOKEN];");
  assert.equal(redactText(secrets, "from-a-file\nnext"), "[REDACTED:TOKEN]\nnext");
  assert.equal(patternsOf(secrets).length, 1);
  // A short value padded by its newline is kept whole.
  assert.equal(redactText([S("P", "abc\n")], "abc\n"), "[REDACTED:P]");
});

test("short values are not patterns (they are refused at create)", () => {
  assert.equal(patternsOf([S("PIN", "123")]).length, 0);
  assert.equal(redactText([S("PIN", "123")], "123"), "123");
});

test("redactDeep walks results and errors, including JSON-escaped forms", () => {
  const secrets = [S("Q", 'with"quote')];
  const v = redactDeep(secrets, {
    a: 'say with"quote',
    nested: [{ b: JSON.stringify({ x: 'with"quote' }) }],
    n: 3,
    ok: true,
    nil: null,
  });
  assert.deepEqual(v, {
    a: "say [REDACTED:Q]",
    nested: [{ b: '{"x":"[REDACTED:Q]"}' }],
    n: 3,
    ok: true,
    nil: null,
  });
});

test("random streams: chunking never changes the result", () => {
  const secrets = [S("A", "aab"), S("B", "abab"), S("C", "baba")].filter((s) => s.value.length >= 4);
  secrets.push(S("D", "aaaa"));
  let seed = 7;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed;
  };
  for (let n = 0; n < 300; n++) {
    const len = rnd() % 40;
    const input = Buffer.from(Array.from({ length: len }, () => "ab"[rnd() % 2]!).join(""));
    const whole = redactBytes(secrets, input);
    const cuts = Array.from({ length: rnd() % 5 }, () => rnd() % (len + 1)).sort((x, y) => x - y);
    assert.deepEqual(streamed(secrets, input, cuts).toString(), whole.toString(), `${input} cuts ${cuts}`);
    // No value survives anywhere in the output.
    for (const s of secrets) assert.ok(!whole.includes(s.value), `${s.name} left in ${whole} from ${input}`);
  }
});
