import { type McpServer, ResourceTemplate } from "@modelcontextprotocol/server";
import { ignore } from "../util/best-effort.js";

/**
 * The MCP capabilities beside tools that help an agent host: workspace files as resources
 * (readable, listable, subscribable), completions for the arguments a host asks a human for,
 * and the `logging` capability's level (its messages come from ./logging.ts).
 *
 * Everything goes through `RunOp`: the same operations, input checks and tenant gate as a
 * tools/call, so a tenant's resources and completions show only its own workspaces, and a
 * workspace name means the caller's workspace of that name. Nothing here reads pyro's state
 * directly.
 */

/** Runs one operation by name as a tool call would (invoke + the server's gate). */
export type RunOp = (name: string, args: Record<string, unknown>, signal?: AbortSignal) => Promise<unknown>;

/** `pyro://workspace/{workspace}/file/{+path}`: {workspace} is an id or a name, {+path} relative to /workspace. */
export const FILE_TEMPLATE = "pyro://workspace/{workspace}/file/{+path}";

export const DEFAULT_POLL_MS = 2_000;
/** resources/list stays small: a host pages through files with completions or the tools. */
const LIST_WORKSPACES = 20;
const LIST_FILES_PER_WORKSPACE = 100;
/** Completions return at most this many values (the protocol's own cap is 100). */
const MAX_COMPLETIONS = 100;
/** Subscriptions one server (one stdio connection) keeps polling at once. */
const MAX_SUBSCRIPTIONS = 64;

export function fileUri(workspace: string, path: string): string {
  const rel = path.replace(/^\/workspace\/?/, "");
  return `pyro://workspace/${encodeURIComponent(workspace)}/file/${rel.split("/").map(encodeURIComponent).join("/")}`;
}

/** The workspace and /workspace path a pyro file URI names, or undefined for any other URI. */
export function parseFileUri(uri: string): { workspace: string; path: string } | undefined {
  const m = /^pyro:\/\/workspace\/([^/]+)\/file\/(.+)$/.exec(uri);
  if (!m) return undefined;
  try {
    const workspace = decodeURIComponent(m[1]!);
    const rel = m[2]!.split("/").map(decodeURIComponent).join("/");
    return { workspace, path: `/workspace/${rel}` };
  } catch {
    return undefined;
  }
}

const TEXT_TYPES: Record<string, string> = {
  md: "text/markdown",
  json: "application/json",
  html: "text/html",
  css: "text/css",
  js: "text/javascript",
  ts: "text/x-typescript",
  py: "text/x-python",
  csv: "text/csv",
  xml: "application/xml",
  yaml: "application/yaml",
  yml: "application/yaml",
};

function mimeFor(path: string, binary: boolean): string {
  if (binary) return "application/octet-stream";
  const ext = /\.([A-Za-z0-9]+)$/.exec(path)?.[1]?.toLowerCase();
  return (ext && TEXT_TYPES[ext]) ?? "text/plain";
}

interface FileEntry {
  path: string;
  type: string;
  size: number;
  mtime: string;
}

async function workspaces(run: RunOp): Promise<{ workspace_id: string; name: string | null }[]> {
  const r = (await run("workspace_list", {})) as {
    workspaces: { workspace_id: string; name?: string | null }[];
  };
  return r.workspaces.map((w) => ({ workspace_id: w.workspace_id, name: w.name ?? null }));
}

async function files(run: RunOp, workspace: string, path = "/workspace", max = LIST_FILES_PER_WORKSPACE) {
  const r = (await run("workspace_file_list", {
    workspace_id: workspace,
    path,
    recursive: true,
    max_entries: max,
  })) as { entries: FileEntry[] };
  return r.entries;
}

/** Values starting with what was typed, then those containing it; at most MAX_COMPLETIONS. */
function ranked(candidates: Iterable<string>, typed: string) {
  const all = [...new Set(candidates)];
  const t = typed.toLowerCase();
  const starts = all.filter((c) => c.toLowerCase().startsWith(t));
  const contains = all.filter((c) => !c.toLowerCase().startsWith(t) && c.toLowerCase().includes(t));
  const values = [...starts, ...contains];
  return {
    completion: {
      values: values.slice(0, MAX_COMPLETIONS),
      total: values.length,
      hasMore: values.length > MAX_COMPLETIONS,
    },
  };
}

/**
 * Completion candidates by argument name, whatever the reference (the file template, or a
 * host's own form for a tool's arguments): workspace names and ids, environment names, and
 * within the workspace given in `context` its snapshots, shells and files. An unknown
 * argument, or a failure (no such workspace), completes to nothing: completion is a hint.
 */
export async function complete(
  run: RunOp,
  argument: string,
  typed: string,
  context: Record<string, string>,
): Promise<string[]> {
  const ws = context.workspace ?? context.workspace_id;
  try {
    switch (argument) {
      case "workspace":
      case "workspace_id":
      case "source_workspace_id":
        return (await workspaces(run)).flatMap((w) => (w.name ? [w.name, w.workspace_id] : [w.workspace_id]));
      case "environment": {
        const r = (await run("vm_list_environments", {})) as { environments: { name: string }[] };
        return r.environments.map((e) => e.name);
      }
      case "snapshot":
      case "snapshot_name":
      case "name": {
        if (!ws) return [];
        const r = (await run("workspace_snapshot_list", { workspace_id: ws })) as {
          snapshots: { name: string }[];
        };
        return ["baseline", ...r.snapshots.map((s) => s.name)];
      }
      case "shell_id": {
        if (!ws) return [];
        const r = (await run("shell_list", { workspace_id: ws })) as { shells: { shell_id: string }[] };
        return r.shells.map((s) => s.shell_id);
      }
      case "path": {
        if (!ws) return [];
        // Below the directory typed so far, so a deep tree completes level by level.
        const dir = typed.includes("/") ? typed.slice(0, typed.lastIndexOf("/")) : "";
        const r = (await run("workspace_file_list", {
          workspace_id: ws,
          path: `/workspace/${dir}`,
          max_entries: 500,
        })) as { entries: FileEntry[] };
        return r.entries.map((e) => (e.type === "directory" ? `${e.path}/` : e.path));
      }
      default:
        return [];
    }
  } catch (e) {
    ignore("a completion that fails completes to nothing: it is only a hint")(e);
    return [];
  }
}

export interface ResourceOptions {
  run: RunOp;
  /**
   * Whether this server lives as long as its connection (stdio), so a subscription can be
   * polled and its updates delivered. A stateless HTTP request's server ends with the
   * response: it accepts subscriptions (answering every URI alike) and polls nothing.
   */
  watch: boolean;
  pollMs?: number;
}

/** Declares and serves `resources` (the file template, subscribe) and `completions`. */
export function registerResources(server: McpServer, opts: ResourceOptions): void {
  const { run } = opts;
  // Declared by createServer (capabilities cannot be added once a transport may be attached).
  server.registerResource(
    "workspace-file",
    new ResourceTemplate(FILE_TEMPLATE, {
      list: async () => {
        const out: { uri: string; name: string; mimeType: string; size: number }[] = [];
        for (const w of (await workspaces(run)).slice(0, LIST_WORKSPACES)) {
          const label = w.name ?? w.workspace_id;
          const entries = await files(run, w.workspace_id).catch((e: unknown) => {
            ignore("a workspace whose files cannot be listed now is left out of resources/list")(e);
            return [] as FileEntry[];
          });
          for (const f of entries)
            if (f.type === "file")
              out.push({
                uri: fileUri(w.workspace_id, f.path),
                name: `${label}:${f.path}`,
                mimeType: mimeFor(f.path, false),
                size: f.size,
              });
        }
        return { resources: out };
      },
    }),
    {
      title: "A file in a pyro workspace",
      description:
        "A file under /workspace of one of your workspaces ({workspace}: its id or name; {+path}: relative to /workspace). Subscribe to hear when it changes.",
    },
    async (uri) => {
      const parsed = parseFileUri(uri.toString());
      if (!parsed) throw new Error(`${uri} is not a pyro workspace file URI (${FILE_TEMPLATE})`);
      // Text as text; a binary file (refused as utf-8) comes back as a base64 blob.
      const read = (encoding: "utf-8" | "base64") =>
        run("workspace_file_read", {
          workspace_id: parsed.workspace,
          path: parsed.path,
          encoding,
        }) as Promise<{
          content: string;
          binary: boolean;
        }>;
      const r = await read("utf-8").catch(async (e: unknown) => {
        if (e instanceof Error && /binary/i.test(e.message)) return read("base64");
        throw e;
      });
      const mimeType = mimeFor(parsed.path, r.binary);
      return {
        contents: [
          r.binary
            ? { uri: uri.toString(), mimeType, blob: r.content }
            : { uri: uri.toString(), mimeType, text: r.content },
        ],
      };
    },
  );

  server.server.setRequestHandler("completion/complete", async (request) => {
    const { argument, context } = request.params;
    const values = await complete(run, argument.name, argument.value, context?.arguments ?? {});
    return ranked(values, argument.value);
  });

  const watcher = new SubscriptionPoller(run, opts.pollMs ?? DEFAULT_POLL_MS, (uri) =>
    server.server
      .sendResourceUpdated({ uri })
      .catch(ignore("a resource update the client can no longer receive: its connection is gone")),
  );
  // Every URI is answered alike (no existence oracle across tenants); a pyro file URI is
  // polled, so a file that appears later is reported too.
  server.server.setRequestHandler("resources/subscribe", async (request) => {
    if (opts.watch) watcher.add(request.params.uri);
    return {};
  });
  server.server.setRequestHandler("resources/unsubscribe", async (request) => {
    watcher.remove(request.params.uri);
    return {};
  });
  const prev = server.server.onclose;
  server.server.onclose = () => {
    watcher.stop();
    prev?.();
  };
}

/**
 * Polls each subscribed pyro file (its type, size and mtime through workspace_file_list,
 * so through the tenant's gate) and reports a change, an appearance or a disappearance.
 * One timer for all of them; a poll never overlaps the previous one.
 */
export class SubscriptionPoller {
  private readonly seen = new Map<string, string | undefined>();
  private timer: NodeJS.Timeout | undefined;
  private busy = false;

  constructor(
    private readonly run: RunOp,
    private readonly pollMs: number,
    private readonly updated: (uri: string) => unknown,
  ) {}

  get size(): number {
    return this.seen.size;
  }

  add(uri: string): void {
    if (!parseFileUri(uri) || this.seen.has(uri) || this.seen.size >= MAX_SUBSCRIPTIONS) return;
    this.seen.set(uri, undefined);
    // The first look records the state it is compared with, without reporting it.
    void this.look(uri).then((s) => {
      if (this.seen.has(uri)) this.seen.set(uri, s);
    });
    this.timer ??= setInterval(() => void this.tick(), this.pollMs);
    this.timer.unref();
  }

  remove(uri: string): void {
    this.seen.delete(uri);
    if (this.seen.size === 0) this.stop();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.seen.size) this.seen.clear();
  }

  /** The file's state as a string ("missing" when it is not there or not reachable). */
  private async look(uri: string): Promise<string> {
    const p = parseFileUri(uri)!;
    try {
      const r = (await this.run("workspace_file_list", {
        workspace_id: p.workspace,
        path: p.path,
        max_entries: 1,
      })) as { entries: FileEntry[] };
      const rel = p.path.replace(/^\/workspace\//, "");
      const e = r.entries.find((x) => x.path === rel) ?? r.entries[0];
      return e ? `${e.type}|${e.size}|${e.mtime}` : "missing";
    } catch {
      return "missing";
    }
  }

  private async tick(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      for (const [uri, before] of [...this.seen]) {
        const now = await this.look(uri);
        if (!this.seen.has(uri)) continue;
        this.seen.set(uri, now);
        if (before !== undefined && now !== before) this.updated(uri);
      }
    } finally {
      this.busy = false;
    }
  }
}
