import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, readdir, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { PyroError } from "../core/errors.js";
import { ignore } from "../util/best-effort.js";
import { TOKEN_ID_RE } from "./tokens.js";

/**
 * Files a remote client sends or fetches, since over HTTP it cannot name the server's paths:
 * an upload (`POST /uploads`, a tar or tar.gz) becomes `upload:ID` for seed_path or
 * source_path; an export with output `download:` is written here and fetched with
 * `GET /downloads/ID`. Per tenant (`<state>/remote/uploads/<token_id>/`), so one tenant's
 * ids mean nothing to another; removed after `TRANSFER_TTL_MS`, downloads also once fetched.
 * The archive's contents are checked where they are used (the seed and sync checks), not here.
 */
export const TRANSFER_TTL_MS = 60 * 60 * 1000;
const UPLOAD_RE = /^upl_[0-9a-f]{16}$/;
const DOWNLOAD_RE = /^dl_[0-9a-f]{16}$/;

export class TransferStore {
  constructor(readonly root: string) {}

  uploadDir(tenant: string): string {
    if (!TOKEN_ID_RE.test(tenant)) throw new Error(`bad tenant ${tenant}`);
    return join(this.root, "uploads", tenant);
  }

  downloadDir(tenant: string): string {
    if (!TOKEN_ID_RE.test(tenant)) throw new Error(`bad tenant ${tenant}`);
    return join(this.root, "downloads", tenant);
  }

  /**
   * Streams a request body into a new upload, at most `maxBytes`; returns its id. The kind
   * (tar or gzip) is read from the first bytes, so the seed code sees the right extension.
   */
  async saveUpload(
    tenant: string,
    body: Readable,
    maxBytes: number,
  ): Promise<{ upload_id: string; bytes: number }> {
    await this.prune();
    const dir = this.uploadDir(tenant);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const id = `upl_${randomBytes(8).toString("hex")}`;
    const tmp = join(dir, `.${id}.part`);
    let bytes = 0;
    let head: Buffer | undefined;
    const counter = async function* (src: AsyncIterable<Buffer>) {
      for await (const chunk of src) {
        bytes += chunk.length;
        if (!head) head = chunk.subarray(0, 2);
        if (bytes > maxBytes)
          throw new PyroError(
            "invalid_argument",
            `upload is larger than this server's limit of ${maxBytes} bytes`,
          );
        yield chunk;
      }
    };
    try {
      await pipeline(body, counter, createWriteStream(tmp, { mode: 0o600 }));
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
    if (bytes === 0) {
      await rm(tmp, { force: true });
      throw new PyroError(
        "invalid_argument",
        "empty upload",
        "send a tar or tar.gz archive as the request body",
      );
    }
    const gzip = head?.[0] === 0x1f && head?.[1] === 0x8b;
    await rename(tmp, join(dir, `${id}${gzip ? ".tar.gz" : ".tar"}`));
    return { upload_id: id, bytes };
  }

  /** The file of an upload of this tenant, or not_found (also for another tenant's id). */
  async uploadPath(tenant: string, id: string): Promise<string> {
    if (UPLOAD_RE.test(id)) {
      for (const ext of [".tar", ".tar.gz"]) {
        const p = join(this.uploadDir(tenant), `${id}${ext}`);
        if (
          await stat(p).then(
            (s) => s.isFile(),
            () => false,
          )
        )
          return p;
      }
    }
    throw new PyroError("not_found", `no upload ${JSON.stringify(id.slice(0, 40))}`, [
      `uploads live ${TRANSFER_TTL_MS / 60000} minutes; send the archive again (POST /uploads) and pass seed_path "upload:ID"`,
    ]);
  }

  /** A place for an export's archive; `format` is "", "tar" or "tar.gz". */
  async newDownload(tenant: string, format: string): Promise<{ id: string; path: string }> {
    const ext =
      format === "" || format === "tar" || format === ".tar"
        ? ".tar"
        : format === "tar.gz" || format === ".tar.gz" || format === "tgz"
          ? ".tar.gz"
          : undefined;
    if (!ext)
      throw new PyroError(
        "invalid_argument",
        `unknown download format ${JSON.stringify(format.slice(0, 20))}`,
        'use output "download:" (tar) or "download:tar.gz"',
      );
    await this.prune();
    const dir = this.downloadDir(tenant);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const id = `dl_${randomBytes(8).toString("hex")}`;
    return { id, path: join(dir, `${id}${ext}`) };
  }

  async downloadPath(tenant: string, id: string): Promise<string | undefined> {
    if (!DOWNLOAD_RE.test(id)) return undefined;
    for (const ext of [".tar", ".tar.gz"]) {
      const p = join(this.downloadDir(tenant), `${id}${ext}`);
      if (
        await stat(p).then(
          (s) => s.isFile(),
          () => false,
        )
      )
        return p;
    }
    return undefined;
  }

  async dropDownload(tenant: string, id: string): Promise<void> {
    for (const ext of [".tar", ".tar.gz"])
      await rm(join(this.downloadDir(tenant), `${id}${ext}`), { force: true });
  }

  /** Removes transfers older than the TTL (at most once a minute). */
  private lastPrune = 0;
  async prune(now = Date.now()): Promise<void> {
    if (now - this.lastPrune < 60_000) return;
    this.lastPrune = now;
    for (const kind of ["uploads", "downloads"]) {
      const base = join(this.root, kind);
      for (const t of await readdir(base).catch(() => [] as string[])) {
        for (const f of await readdir(join(base, t)).catch(() => [] as string[])) {
          const p = join(base, t, f);
          const st = await stat(p).catch(ignore("transfer pruning: file gone meanwhile"));
          if (st && now - st.mtimeMs > TRANSFER_TTL_MS) await rm(p, { force: true, recursive: true });
        }
      }
    }
  }
}
