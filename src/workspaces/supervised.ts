import { constants } from "node:fs";
import { lchown, mkdir, open, readdir, realpath, rm } from "node:fs/promises";
import { join, posix } from "node:path";
import { PyroError } from "../core/errors.js";
import { ignore } from "../util/best-effort.js";

/**
 * The host side of one `init supervise` process (guest/sandbox-init.c): a shell or a service
 * that lives in the sandbox, talked to through plain files in a directory the sandbox shares
 * at /.pyro/run (the engine's `runDir`), never under /workspace. The host appends to `in`
 * and `ctl`; the supervisor writes `pid`, `exit` and the output ring `out/<offset>`. Reading
 * and writing are file operations on the host: no runsc call, so a round trip costs what the
 * supervisor's polling costs (2-20 ms), not an exec.
 *
 * The directory is writable by the guest, so nothing in it is trusted: files are opened with
 * O_NOFOLLOW, must be regular files, and must sit in the directory pyro made (a guest that
 * swaps in a symlink gets an error, never a host file).
 */

/** Output kept per shell or service (the supervisor's ring); older output is dropped. */
export const RING_BYTES = 1 << 20;
/** How much of a guest-written small file (pid, exit) is read. */
const SMALL = 64;

export interface OutputChunk {
  /** Where this read started (the requested cursor, or the oldest kept byte if later). */
  cursor: number;
  next_cursor: number;
  /** Bytes between the requested cursor and the oldest kept byte, lost to the ring. */
  dropped_bytes: number;
  /** All output so far (including dropped). */
  total_bytes: number;
  data: Buffer;
}

/** A supervisor's directory, however the host reaches it (files here; QEMU: supervisor-exec.ts). */
export interface SupervisorFiles {
  /** The directory's path inside the sandbox. */
  readonly guest: string;
  prepare(user?: { uid: number; gid: number }): Promise<void>;
  exists(): Promise<boolean>;
  remove(): Promise<void>;
  input(data: Buffer): Promise<void>;
  control(line: string): Promise<void>;
  pid(): Promise<number | undefined>;
  exitCode(): Promise<number | undefined>;
  totalBytes(): Promise<number>;
  read(cursor: number, maxBytes: number): Promise<OutputChunk>;
}

export class SupervisedDir implements SupervisorFiles {
  readonly host: string;
  readonly guest: string;

  constructor(
    private readonly root: { host: string; guest: string },
    rel: string,
  ) {
    this.host = join(root.host, rel);
    this.guest = posix.join(root.guest, rel);
  }

  /** A fresh directory with empty `in` and `ctl`, owned by the user the program runs as. */
  async prepare(user?: { uid: number; gid: number }): Promise<void> {
    await rm(this.host, { recursive: true, force: true });
    await mkdir(this.host, { recursive: true, mode: 0o755 });
    await this.checkDir();
    for (const f of ["in", "ctl"]) {
      const h = await open(
        join(this.host, f),
        constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL,
        0o644,
      );
      await h.close();
    }
    if (user)
      for (const p of [this.host, join(this.host, "in"), join(this.host, "ctl")])
        await lchown(p, user.uid, user.gid);
  }

  async exists(): Promise<boolean> {
    return (
      (await realpath(this.host).catch(ignore("realpath failed: the directory does not exist"))) !== undefined
    );
  }

  async remove(): Promise<void> {
    await rm(this.host, { recursive: true, force: true });
  }

  /** The directory is where pyro made it (the guest may have replaced it with a symlink). */
  private async checkDir(sub = ""): Promise<string> {
    const want = join(await realpath(this.root.host), this.host.slice(this.root.host.length), sub);
    const got = await realpath(join(this.host, sub)).catch(
      ignore("realpath failed: reported as not where pyro made it"),
    );
    if (got !== want)
      throw new PyroError(
        "invalid_state",
        `${join(this.host, sub)} was moved or replaced from inside the sandbox`,
      );
    return got;
  }

  private async openChecked(name: string, flags: number) {
    const dir = await this.checkDir(posix.dirname(name) === "." ? "" : posix.dirname(name));
    const h = await open(join(dir, posix.basename(name)), flags | constants.O_NOFOLLOW);
    if (!(await h.stat()).isFile()) {
      await h.close();
      throw new PyroError("invalid_state", `${name} in ${this.host} is not a regular file`);
    }
    return h;
  }

  private async append(name: string, data: Buffer): Promise<void> {
    const h = await this.openChecked(name, constants.O_WRONLY | constants.O_APPEND);
    try {
      await h.write(data);
    } finally {
      await h.close();
    }
  }

  /** Bytes for the program's terminal. */
  input(data: Buffer): Promise<void> {
    return this.append("in", data);
  }

  /** One control line: `signal N`, `resize C R`, `stop GRACE_MS`. */
  control(line: string): Promise<void> {
    return this.append("ctl", Buffer.from(`${line}\n`));
  }

  private async small(name: string): Promise<number | undefined> {
    const h = await this.openChecked(name, constants.O_RDONLY).catch(
      ignore("no such file (or not pyro's): no value"),
    );
    if (!h) return undefined;
    try {
      const buf = Buffer.alloc(SMALL);
      const { bytesRead } = await h.read(buf, 0, SMALL, 0);
      const m = /^(-?\d{1,10})\n/.exec(buf.subarray(0, bytesRead).toString("latin1"));
      return m ? Number(m[1]) : undefined;
    } finally {
      await h.close();
    }
  }

  /** The program's pid inside the sandbox, once it runs. */
  pid(): Promise<number | undefined> {
    return this.small("pid");
  }

  /** Its exit code (128+N when killed by signal N), once the supervisor is done. */
  exitCode(): Promise<number | undefined> {
    return this.small("exit");
  }

  /** The ring's segments, oldest first, with their sizes. */
  private async segments(): Promise<{ start: number; name: string; size: number }[]> {
    const names = await readdir(join(this.host, "out")).catch(() => [] as string[]);
    const segs: { start: number; name: string; size: number }[] = [];
    for (const n of names.filter((x) => /^\d{16}$/.test(x)).sort()) {
      const h = await this.openChecked(`out/${n}`, constants.O_RDONLY).catch(
        ignore("segment deleted by the supervisor meanwhile"),
      );
      if (!h) continue; // deleted by the supervisor meanwhile
      const size = (await h.stat()).size;
      await h.close();
      segs.push({ start: Number(n), name: n, size });
    }
    return segs;
  }

  async totalBytes(): Promise<number> {
    const segs = await this.segments();
    const last = segs.at(-1);
    return last ? last.start + last.size : 0;
  }

  /** Up to maxBytes of output from `cursor` (clamped to what is kept). */
  async read(cursor: number, maxBytes: number): Promise<OutputChunk> {
    const segs = await this.segments();
    const last = segs.at(-1);
    const total = last ? last.start + last.size : 0;
    const oldest = segs[0]?.start ?? total;
    const from = Math.min(Math.max(cursor, oldest), total);
    const parts: Buffer[] = [];
    let pos = from;
    let left = maxBytes;
    for (const s of segs) {
      if (left <= 0) break;
      if (s.start + s.size <= pos) continue;
      // The supervisor may have deleted it since the listing: what was read stands.
      const h = await this.openChecked(`out/${s.name}`, constants.O_RDONLY).catch(
        ignore("segment deleted by the supervisor since the listing: what was read stands"),
      );
      if (!h) break;
      try {
        const buf = Buffer.alloc(Math.min(left, s.start + s.size - pos));
        const { bytesRead } = await h.read(buf, 0, buf.length, pos - s.start);
        parts.push(buf.subarray(0, bytesRead));
        pos += bytesRead;
        left -= bytesRead;
        if (bytesRead < buf.length) break;
      } finally {
        await h.close();
      }
    }
    return {
      cursor: from,
      next_cursor: pos,
      dropped_bytes: Math.max(0, from - cursor),
      total_bytes: total,
      data: Buffer.concat(parts),
    };
  }
}

/** Where a chunk of UTF-8 can be cut without splitting a character (from the end). */
export function utf8Boundary(buf: Buffer): number {
  for (let back = 1; back <= Math.min(3, buf.length); back++) {
    const b = buf[buf.length - back]!;
    if ((b & 0xc0) === 0x80) continue; // continuation byte
    if (b < 0x80) return buf.length;
    const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : 2;
    return need > back ? buf.length - back : buf.length;
  }
  return buf.length;
}

/**
 * Terminal output as plain text: escape sequences (CSI, OSC, others) removed, and carriage
 * returns and backspaces applied the way a terminal would show the line.
 */
export function plainText(s: string): string {
  const noEsc = s
    .replace(/\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)/g, "") // OSC … BEL/ST
    .replace(/\x1b\[[0-?]*[ -/]*[@-~]/g, "") // CSI
    .replace(/\x1b[@-Z\\-_]/g, "") // other two-byte escapes
    .replace(/\r\n/g, "\n");
  return noEsc
    .split("\n")
    .map((line) => {
      const out: string[] = [];
      let col = 0;
      for (const ch of line) {
        if (ch === "\r") col = 0;
        else if (ch === "\b") col = Math.max(0, col - 1);
        else if (ch === "\x07" || ch === "\x00") continue;
        else {
          out[col] = ch;
          col++;
        }
      }
      return out.join("");
    })
    .join("\n");
}

/** Waits ms, or less when the signal aborts. */
export async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return;
  await new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}
