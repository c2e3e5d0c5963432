import { isPyroError, PyroError } from "../core/errors.js";
import type { ExecOutcome } from "../engines/types.js";
import { ignore } from "../util/best-effort.js";
import { redactDeep, redactText, type SecretValue, StreamRedactor } from "./redactor.js";

/**
 * Redaction where results are made: the engine's stream callbacks (before the recorder writes
 * a byte to a log file or forwards it to a face), outcomes, errors and whole results.
 */

export interface Sinks {
  onStdout: (chunk: Buffer) => void;
  onStderr: (chunk: Buffer) => void;
}

/** Stream callbacks that redact before `to` sees a byte; `flush` releases what was held back. */
export function redactingSinks(secrets: readonly SecretValue[], to: Sinks): Sinks & { flush(): void } {
  if (secrets.length === 0) return { onStdout: to.onStdout, onStderr: to.onStderr, flush() {} };
  const out = new StreamRedactor(secrets);
  const err = new StreamRedactor(secrets);
  const pass = (r: StreamRedactor, sink: (b: Buffer) => void) => (chunk: Buffer) => {
    const b = r.push(chunk);
    if (b.length) sink(b);
  };
  return {
    onStdout: pass(out, to.onStdout),
    onStderr: pass(err, to.onStderr),
    flush() {
      const a = out.flush();
      if (a.length) to.onStdout(a);
      const b = err.flush();
      if (b.length) to.onStderr(b);
    },
  };
}

/** The engine's own in-memory capture, redacted (used when nothing was streamed). */
export function redactOutcome<T extends ExecOutcome>(secrets: readonly SecretValue[], out: T): T {
  if (secrets.length === 0) return out;
  const { stdoutBytes: _dropped, ...rest } = out;
  return { ...rest, stdout: redactText(secrets, out.stdout), stderr: redactText(secrets, out.stderr) } as T;
}

/** An error with every value in its message, hint and stack redacted. */
export function redactError(secrets: readonly SecretValue[], e: unknown): unknown {
  if (secrets.length === 0) return e;
  if (isPyroError(e)) {
    const r = new PyroError(
      e.code,
      redactText(secrets, e.message),
      e.hintParts ? redactDeep(secrets, [...e.hintParts]) : undefined,
    );
    if (e.stack) r.stack = redactText(secrets, e.stack);
    return r;
  }
  if (e instanceof Error) {
    e.message = redactText(secrets, e.message);
    if (e.stack) e.stack = redactText(secrets, e.stack);
  }
  return e;
}

/** What redactOperation needs of the runtime. */
export interface SecretValueSource {
  secretValues(id: string): Promise<SecretValue[]>;
}

/**
 * Runs an operation on a workspace and redacts its whole result (file reads, diffs, summaries,
 * logs, shell reads…) and any error it throws. One rule for every operation, so a new one is
 * covered without knowing about secrets. Costs nothing for a workspace without secrets (its
 * record says so); otherwise the values are read back once per process.
 */
export async function redactOperation<T>(
  ws: SecretValueSource,
  opName: string,
  input: unknown,
  run: () => Promise<T>,
): Promise<T> {
  const id = (input as { workspace_id?: unknown } | null)?.workspace_id;
  if (typeof id !== "string" || opName === "workspace_delete") return run();
  let result: T;
  try {
    result = await run();
  } catch (e) {
    const values = await ws.secretValues(id).catch(() => [] as SecretValue[]);
    throw redactError(values, e);
  }
  return redactDeep(await ws.secretValues(id), result);
}

/**
 * Like redactingSinks, for values still being read back from the sandbox: the read-back exec
 * runs beside the command instead of before it (its ~30-80 ms hidden behind the command's
 * start), and chunks that arrive first wait in memory. If the values cannot be read, nothing
 * that waited is ever released (fail closed) and `done` throws.
 */
export function deferredRedactingSinks(
  values: Promise<SecretValue[]>,
  to: Sinks,
): Sinks & { done(): Promise<SecretValue[]> } {
  let inner: (Sinks & { flush(): void }) | undefined;
  let failed = false;
  const queue: [boolean, Buffer][] = [];
  const ready = values.then(
    (v) => {
      inner = redactingSinks(v, to);
      for (const [err, c] of queue) (err ? inner.onStderr : inner.onStdout)(c);
      queue.length = 0;
      return v;
    },
    (e: unknown) => {
      failed = true;
      queue.length = 0;
      throw e;
    },
  );
  ready.catch(ignore("secret values failed: only marks `ready` handled, done() rethrows it"));
  const sink = (err: boolean) => (c: Buffer) => {
    if (inner) (err ? inner.onStderr : inner.onStdout)(c);
    else if (!failed) queue.push([err, Buffer.from(c)]);
  };
  return {
    onStdout: sink(false),
    onStderr: sink(true),
    async done() {
      const v = await ready;
      inner!.flush();
      return v;
    },
  };
}
