/**
 * Secret values never reach a face, a log file or pyro's state: every byte of command output
 * (and every string a result or an error carries) passes through a redactor that replaces a
 * value with `[REDACTED:NAME]`.
 *
 * Output arrives in chunks whose boundaries are arbitrary, so a value may be split across
 * two (or many) chunks. The streaming redactor holds back only the shortest tail that could
 * still become a value (the longest suffix that is a prefix of some value), so ordinary
 * output passes at once and a prompt waiting for input is not delayed unless it looks like
 * the start of a secret. Overlapping values are merged: the whole covered span is replaced,
 * so no part of either value leaks. Works on bytes: binary output is redacted the same way.
 *
 * The guest's supervisor (guest/sandbox-init.c, `--redact-dir`) implements the same
 * algorithm for shells and services, whose output never passes through the host.
 */

/** Values shorter than this are refused at create: redacting them would mangle output. */
export const MIN_SECRET_BYTES = 4;

export interface SecretValue {
  name: string;
  value: Buffer;
}

interface Pattern {
  name: string;
  bytes: Buffer;
}

/**
 * The patterns for a set of secrets. A value that ends in newlines (a file written by
 * `echo token > f`) is looked for without them: a program printing the token (or `$(cat f)`)
 * leaves them out, and where they are printed they stay visible (a newline is no secret), so
 * output keeps its lines.
 */
export function patternsOf(secrets: readonly SecretValue[]): Pattern[] {
  const out: Pattern[] = [];
  const seen = new Set<string>();
  const add = (name: string, bytes: Buffer) => {
    if (bytes.length < MIN_SECRET_BYTES) return;
    const key = bytes.toString("latin1");
    if (seen.has(key)) return;
    seen.add(key);
    out.push({ name, bytes });
  };
  for (const s of secrets) {
    let end = s.value.length;
    while (end > 0 && (s.value[end - 1] === 0x0a || s.value[end - 1] === 0x0d)) end--;
    add(s.name, end >= MIN_SECRET_BYTES ? s.value.subarray(0, end) : s.value);
  }
  // Longest first: at one position the longest value wins.
  return out.sort((a, b) => b.bytes.length - a.bytes.length);
}

export const marker = (name: string) => `[REDACTED:${name}]`;

/** How a position relates to the patterns: a full match (its end), undecided (more bytes needed), or none. */
type At = { kind: "none" } | { kind: "match"; end: number; name: string } | { kind: "wait" };

function matchAt(buf: Buffer, i: number, byFirst: Map<number, Pattern[]>, final: boolean): At {
  const cands = byFirst.get(buf[i]!);
  if (!cands) return { kind: "none" };
  for (const p of cands) {
    const avail = buf.length - i;
    if (avail >= p.bytes.length) {
      if (buf.compare(p.bytes, 0, p.bytes.length, i, i + p.bytes.length) === 0)
        return { kind: "match", end: i + p.bytes.length, name: p.name };
    } else if (!final && buf.compare(p.bytes, 0, avail, i, buf.length) === 0) {
      // A longer value could still complete here: decide when more bytes come.
      return { kind: "wait" };
    }
  }
  return { kind: "none" };
}

export class StreamRedactor {
  private readonly byFirst = new Map<number, Pattern[]>();
  private pending: Buffer = Buffer.alloc(0);
  readonly active: boolean;

  constructor(secrets: readonly SecretValue[]) {
    for (const p of patternsOf(secrets)) {
      const list = this.byFirst.get(p.bytes[0]!) ?? [];
      list.push(p);
      this.byFirst.set(p.bytes[0]!, list);
    }
    this.active = this.byFirst.size > 0;
  }

  /** The redacted bytes that are safe to release now; the rest is held back. */
  push(chunk: Buffer): Buffer {
    if (!this.active) return chunk;
    return this.run(this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk, false);
  }

  /** Everything still held back (the stream ended). */
  flush(): Buffer {
    if (!this.active || this.pending.length === 0) return Buffer.alloc(0);
    return this.run(this.pending, true);
  }

  /** Bytes held back, waiting to see whether they start a value. */
  get held(): number {
    return this.pending.length;
  }

  private run(buf: Buffer, final: boolean): Buffer {
    const out: Buffer[] = [];
    let from = 0; // start of the plain run not yet copied
    let i = 0;
    while (i < buf.length) {
      const at = matchAt(buf, i, this.byFirst, final);
      if (at.kind === "none") {
        i++;
        continue;
      }
      if (at.kind === "wait") break;
      // A match: extend over every value that overlaps it, so none leaks a part.
      let end = at.end;
      const names = [at.name];
      let undecided = false;
      for (let j = i + 1; j < end; j++) {
        const o = matchAt(buf, j, this.byFirst, final);
        if (o.kind === "wait") {
          undecided = true;
          break;
        }
        if (o.kind === "match" && o.end > end) {
          end = o.end;
          if (!names.includes(o.name)) names.push(o.name);
        }
      }
      if (undecided) break;
      if (i > from) out.push(buf.subarray(from, i));
      out.push(Buffer.from(names.map(marker).join("")));
      i = end;
      from = end;
    }
    if (i > from) out.push(buf.subarray(from, i));
    this.pending = i < buf.length ? Buffer.from(buf.subarray(i)) : Buffer.alloc(0);
    return out.length === 1 ? out[0]! : Buffer.concat(out);
  }
}

/** A whole buffer, redacted. */
export function redactBytes(secrets: readonly SecretValue[], data: Buffer): Buffer {
  const r = new StreamRedactor(secrets);
  if (!r.active) return data;
  const head = r.push(data);
  return Buffer.concat([head, r.flush()]);
}

/** A string, redacted (as UTF-8). */
export function redactText(secrets: readonly SecretValue[], text: string): string {
  if (secrets.length === 0 || text === "") return text;
  return redactBytes(secrets, Buffer.from(text, "utf8")).toString("utf8");
}

/**
 * Every string inside a JSON-like value, redacted (results and errors). Values are also
 * looked for in their JSON-escaped form, so a value with quotes or backslashes is caught in
 * a string that was itself built with JSON.stringify.
 */
export function redactDeep<T>(secrets: readonly SecretValue[], v: T): T {
  if (secrets.length === 0) return v;
  const all = withEscapedForms(secrets);
  const walk = (x: unknown): unknown => {
    if (typeof x === "string") return redactText(all, x);
    if (Array.isArray(x)) return x.map(walk);
    if (x && typeof x === "object" && !Buffer.isBuffer(x)) {
      const o: Record<string, unknown> = {};
      for (const [k, val] of Object.entries(x)) o[k] = walk(val);
      return o;
    }
    return x;
  };
  return walk(v) as T;
}

function withEscapedForms(secrets: readonly SecretValue[]): SecretValue[] {
  const out = [...secrets];
  for (const s of secrets) {
    const text = s.value.toString("utf8");
    const esc = JSON.stringify(text).slice(1, -1);
    if (esc !== text) out.push({ name: s.name, value: Buffer.from(esc) });
  }
  return out;
}
