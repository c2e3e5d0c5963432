import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { PyroError } from "../core/errors.js";
import { type HostAccessPolicy, hostAccessPolicy } from "../core/host-paths.js";
import { workspaceRefFields } from "../operations/refs.js";
import type { Operation } from "../operations/table.js";
import { narrowExportArea } from "../project/export-policy.js";
import { projectSeeder, resolveProject } from "../project/source.js";
import type { Runtime } from "../runtime/runtime.js";
import type { CallContext } from "../sandbox/context.js";
import type { Tenant } from "./tokens.js";
import type { TransferStore } from "./transfers.js";

/**
 * Per-client separation for `pyro mcp serve --http`. Every tool call of an authenticated
 * request goes through `TenantGate.run`, in one place, instead of teaching each operation
 * about tenants:
 *
 * - every id in the input (`vm_…`, `ws_…`, `ws_…:SEQ` output ids, in any field named `…_id`
 *   or typed as a workspace reference, so operations added later are covered) must belong
 *   to the caller; another tenant's id answers exactly as a missing one ("not found", never
 *   "forbidden": whether an id exists is none of the caller's business);
 * - a workspace *name* is resolved to an id in one place only, `invoke` →
 *   `WorkspaceManager.resolveId(name, ctx.tenant)`, among the caller's workspaces: names
 *   belong to a tenant (two tenants may each have a `main`), and another tenant's name is
 *   "no workspace named …" like an unknown one. Resolution sits below this gate, not in it,
 *   because the runtime's lookup is the only one there is: had the gate resolved names, the
 *   runtime's would still exist, tenant-blind, for any path that skipped the gate. Shells,
 *   services and snapshots are found inside the (checked) workspace, uploads and downloads
 *   under the tenant's own directory: nothing else names another tenant's things;
 * - list results keep only the caller's entries (vm_list's one-shot runs in flight too: a
 *   run's marker names its tenant);
 * - creates are stamped with the tenant (`CallContext.tenant` → the record's `tenant`) and
 *   checked against the token's limits (live sandboxes, total memory);
 * - `upload:ID` in seed_path/source_path names an archive the tenant uploaded, and
 *   `download:` as an export's output writes an archive the tenant then fetches: the only
 *   host paths a remote client can name unless the operator maps roots (`--allow-path`) or
 *   an export area (`--export-dir`, one subdirectory per token).
 */
export interface OperationGate {
  run(
    op: Operation,
    args: unknown,
    ctx: CallContext,
    next: (args: unknown, ctx: CallContext) => Promise<unknown>,
  ): Promise<unknown>;
}

const SANDBOX_ID_RE = /^(vm|ws)_[0-9a-f]{16}(?::\d+)?$/;
/** Operations that start a sandbox, counted against the token's limits. */
const CREATES = new Set(["vm_run", "vm_create", "workspace_create", "workspace_fork"]);
const PATH_FIELDS = ["seed_path", "source_path"] as const;

interface Usage {
  sandboxes: number;
  mem_mib: number;
}

function notFound(id: string): PyroError {
  return id.startsWith("vm_")
    ? new PyroError("not_found", `no VM with id ${id}`, ["list VMs with ", { op: "vm_list" }])
    : new PyroError("not_found", `no workspace with id ${id}`, [
        "list workspaces with ",
        { op: "workspace_list" },
      ]);
}

/** One per server: holds what outlives a request (creates in flight, one-shot output owners). */
export class TenantGate {
  /** Creates running in this process, not yet (or no longer) visible as records. */
  private readonly pending = new Map<string, Usage>();
  /** One-shot runs leave output but no record: who ran them, for output_read. */
  private readonly oneShotOwners = new Map<string, string>();

  constructor(
    private readonly rt: Runtime,
    private readonly transfers: TransferStore,
    private readonly operatorRoots: readonly string[],
    /** `--allow-repo-seeds`: workspace_create may take seed_path "git:https://…" (cloned here). */
    private readonly allowRepoSeeds = false,
  ) {}

  /** The gate one tenant's calls go through. */
  for(tenant: Tenant): OperationGate {
    return { run: (op, args, ctx, next) => this.run(tenant, op, args, ctx, next) };
  }

  private async run(
    t: Tenant,
    op: Operation,
    args: unknown,
    ctx: CallContext,
    next: (args: unknown, ctx: CallContext) => Promise<unknown>,
  ): Promise<unknown> {
    const input: Record<string, unknown> =
      args !== null && typeof args === "object" && !Array.isArray(args) ? { ...(args as object) } : {};
    // Ids, in fields named as ids (`vm_id`, `workspace_id`, `output_id`, `source_workspace_id`…)
    // or typed as workspace references (operations/refs.ts), so a file that happens to be
    // called ws_… is still just a path. Names are not resolved here: that happens once, in
    // invoke, within `CallContext.tenant` (set below), so a name only ever finds the caller's
    // own workspaces (docs/remote.md, "Names are per tenant").
    const refs = new Set(workspaceRefFields(op.input));
    for (const [k, v] of Object.entries(input))
      if (
        (refs.has(k) || /(^|_)id$/.test(k)) &&
        typeof v === "string" &&
        SANDBOX_ID_RE.test(v) &&
        !(await this.owns(t, v))
      )
        throw notFound(v.split(":")[0]!);

    const roots = [...this.operatorRoots];
    for (const f of PATH_FIELDS) {
      const v = input[f];
      if (typeof v === "string" && v.startsWith("upload:")) {
        input[f] = await this.transfers.uploadPath(t.id, v.slice("upload:".length));
        roots.push(this.transfers.uploadDir(t.id));
      }
    }
    let download: string | undefined;
    if (
      op.name === "workspace_export" &&
      typeof input.output === "string" &&
      input.output.startsWith("download:")
    ) {
      const d = await this.transfers.newDownload(t.id, input.output.slice("download:".length));
      input.output = d.path;
      download = d.id;
      roots.push(this.transfers.downloadDir(t.id));
    }
    const hostAccess: HostAccessPolicy = roots.length
      ? { ...hostAccessPolicy(roots), widen: REMOTE_WIDEN }
      : hostAccessPolicy([], { widen: REMOTE_WIDEN, emptyBecause: REMOTE_NO_ROOTS });
    const call: CallContext = { ...ctx, tenant: t.id, hostAccess };
    // A "download:" target is the server's own choice, never the caller's, so the export
    // policy (which judges a caller's output) does not apply to it; any other output goes
    // into the token's own part of the export area, where another token's exports are not.
    if (download) delete call.exportPolicy;
    else if (call.exportPolicy) call.exportPolicy = narrowExportArea(call.exportPolicy, t.id);
    if (
      op.name === "workspace_create" &&
      typeof input.seed_path === "string" &&
      input.seed_path.startsWith("git:")
    ) {
      call.project = await this.repoSeeder(t, input.seed_path.slice(4), ctx.signal);
      delete input.seed_path;
    }

    const reserve = CREATES.has(op.name) ? await this.reserve(t, op, input) : undefined;
    let result: unknown;
    try {
      result = await next(input, call);
    } catch (e) {
      if (download) await this.transfers.dropDownload(t.id, download);
      throw e;
    } finally {
      reserve?.();
    }
    if (result && typeof result === "object") {
      const r = result as Record<string, unknown>;
      this.hideTransferPaths(r);
      if ((op.name === "vm_run" || op.name === "vm_exec") && typeof r.output_id === "string")
        this.rememberOneShot(t, r.output_id);
      if (download) r.output = `/downloads/${download}`;
      for (const [k, v] of Object.entries(r))
        if (
          Array.isArray(v) &&
          v.some((x) => x && typeof x === "object" && ("vm_id" in x || "workspace_id" in x))
        )
          r[k] = await this.mine(t, v as Record<string, unknown>[]);
        else if (Array.isArray(v) && v.some((x) => typeof x === "string" && SANDBOX_ID_RE.test(x))) {
          // Id lists (vm_reap_expired's reaped ids): only the caller's.
          const own = await Promise.all(v.map((x) => typeof x !== "string" || this.owns(t, x)));
          r[k] = v.filter((_, i) => own[i]);
        }
    }
    return result;
  }

  /**
   * A seed from a git repository the server clones (shallow; `#REF` picks a branch or tag),
   * seeded like a stdio server's --repo-url: the tracked files. Off unless the operator allows
   * it, and https only: a tenant must not make the server read `file://` paths or reach
   * internal hosts over other protocols.
   */
  private async repoSeeder(t: Tenant, spec: string, _signal?: AbortSignal) {
    if (!this.allowRepoSeeds)
      throw new PyroError(
        "invalid_argument",
        "this server does not seed from git URLs",
        'upload the tree instead (seed_path "upload:ID"), or ask the operator to start the server with --allow-repo-seeds',
      );
    const hash = spec.indexOf("#");
    const url = hash < 0 ? spec : spec.slice(0, hash);
    const ref = hash < 0 ? undefined : spec.slice(hash + 1);
    const parsed = URL.canParse(url) ? new URL(url) : undefined;
    if (
      parsed?.protocol !== "https:" ||
      parsed.username ||
      parsed.password ||
      (ref !== undefined && !/^[A-Za-z0-9._/-]{1,200}$/.test(ref))
    )
      throw new PyroError(
        "invalid_argument",
        `seed_path ${JSON.stringify(`git:${spec}`.slice(0, 200))} is not git:https://HOST/PATH[#REF]`,
        'e.g. "git:https://github.com/org/repo.git#main" (https only, no credentials in the URL)',
      );
    const project = await resolveProject(
      { repoUrl: parsed.href, ...(ref ? { repoRef: ref } : {}) },
      { cwd: "/", cacheDir: join(this.transfers.root, "repos", t.id) },
    );
    if (!project) throw new PyroError("invalid_argument", `cannot clone ${parsed.href}`);
    return projectSeeder(project, join(this.rt.paths.stateDir, "tmp"));
  }

  /**
   * Results echo the seed or sync source (`workspace_seed.seed_path`, `source_path`): a
   * remote caller sees the "upload:ID" it gave, not where the server keeps uploads.
   */
  private hideTransferPaths(r: Record<string, unknown>): void {
    const root = this.transfers.root;
    const shown = (v: unknown) =>
      typeof v === "string" && v.startsWith(`${root}/uploads/`)
        ? `upload:${v.slice(v.lastIndexOf("/") + 1).replace(/\.tar(\.gz)?$/, "")}`
        : v;
    const fix = (o: Record<string, unknown>) => {
      if ("source_path" in o) o.source_path = shown(o.source_path);
      const seed = o.workspace_seed as Record<string, unknown> | undefined;
      if (seed && typeof seed === "object") seed.seed_path = shown(seed.seed_path);
    };
    fix(r);
    for (const v of Object.values(r))
      if (Array.isArray(v))
        for (const x of v) if (x && typeof x === "object") fix(x as Record<string, unknown>);
  }

  private rememberOneShot(t: Tenant, id: string): void {
    this.oneShotOwners.set(id, t.id);
    // Outputs of one-shot runs are pruned to the newest 100 anyway; keep the map bounded.
    if (this.oneShotOwners.size > 10_000) this.oneShotOwners.delete(this.oneShotOwners.keys().next().value!);
  }

  private async mine(t: Tenant, items: Record<string, unknown>[]): Promise<Record<string, unknown>[]> {
    // All records at once: in a busy server each read queues behind other requests, and a
    // list's records read one after another took hundreds of ms under load.
    const own = await Promise.all(items.map((x) => this.owns(t, (x.workspace_id ?? x.vm_id) as string)));
    return items.filter((_, i) => own[i]);
  }

  /** Whether a sandbox id (or output id) belongs to this tenant. */
  private async owns(t: Tenant, id: string): Promise<boolean> {
    const base = id.split(":")[0]!;
    const rec = await this.record(base);
    if (rec) return rec.tenant === t.id;
    if (this.oneShotOwners.get(base) === t.id) return true;
    // A one-shot run in flight (vm_list shows it, vm_delete ends it): its marker says whose.
    return base.startsWith("vm_") && (await this.runTenant(base)) === t.id;
  }

  private async runTenant(id: string): Promise<unknown> {
    try {
      const m = JSON.parse(await readFile(join(this.rt.paths.vmsDir, id, "oneshot.json"), "utf8"));
      return m?.tenant;
    } catch {
      return undefined;
    }
  }

  private async record(
    id: string,
  ): Promise<{ tenant?: unknown; state?: unknown; mem_mib?: unknown } | undefined> {
    const p = this.rt.paths;
    const file = id.startsWith("vm_")
      ? join(p.vmsDir, id, "vm.json")
      : join(p.workspacesDir, id, "workspace.json");
    try {
      return JSON.parse(await readFile(file, "utf8"));
    } catch {
      return undefined;
    }
  }

  /** The tenant's live sandboxes and their memory, from the records (any process's). */
  private async usage(t: Tenant): Promise<Usage> {
    const u: Usage = { sandboxes: 0, mem_mib: 0 };
    for (const dir of [this.rt.paths.vmsDir, this.rt.paths.workspacesDir]) {
      for (const id of await readdir(dir).catch(() => [] as string[])) {
        if (!SANDBOX_ID_RE.test(id)) continue;
        const r = await this.record(id);
        if (!r || r.tenant !== t.id) continue;
        if (r.state === "expired" || r.state === "failed") continue;
        u.sandboxes++;
        u.mem_mib += typeof r.mem_mib === "number" ? r.mem_mib : 0;
      }
    }
    return u;
  }

  /**
   * Checks the token's limits for one more sandbox and holds its share until the call ends.
   * A create's own record appears before it returns, so while it runs it may be counted
   * twice: concurrent creates near the limit are refused early, never let past it.
   */
  private async reserve(
    t: Tenant,
    op: Operation,
    input: Record<string, unknown>,
  ): Promise<(() => void) | undefined> {
    const { max_sandboxes, max_mem_mib } = t.limits;
    if (max_sandboxes === null && max_mem_mib === null) return undefined;
    const memField = (
      op.input.shape as Record<string, { safeParse: (v: unknown) => { success: boolean; data?: unknown } }>
    ).mem_mib;
    const parsed = memField?.safeParse(input.mem_mib);
    const mem = parsed?.success && typeof parsed.data === "number" ? parsed.data : 0;
    const used = await this.usage(t);
    const p = this.pending.get(t.id) ?? { sandboxes: 0, mem_mib: 0 };
    const sandboxes = used.sandboxes + p.sandboxes;
    const memory = used.mem_mib + p.mem_mib;
    if (max_sandboxes !== null && sandboxes + 1 > max_sandboxes)
      throw new PyroError(
        "limit_exceeded",
        `this token may run at most ${max_sandboxes} sandboxes at once and has ${sandboxes}`,
        [
          "delete one first (",
          { op: "workspace_list" },
          " lists them), or ask the operator for a higher --max-sandboxes",
        ],
      );
    if (max_mem_mib !== null && memory + mem > max_mem_mib)
      throw new PyroError(
        "limit_exceeded",
        `this token may use at most ${max_mem_mib} MiB of sandbox memory and uses ${memory} MiB; ${mem} MiB more would exceed it`,
        "pass a smaller mem_mib, delete a sandbox, or ask the operator for a higher --max-mem-mib",
      );
    p.sandboxes++;
    p.mem_mib += mem;
    this.pending.set(t.id, p);
    return () => {
      p.sandboxes--;
      p.mem_mib -= mem;
    };
  }
}

export const REMOTE_WIDEN =
  'over HTTP, send files as an upload (POST /uploads, then seed_path "upload:ID"; the SDK and `pyro --remote` do this for you) and export with output "download:"; or the operator maps server directories with `pyro mcp serve --http … --allow-path DIR`';
const REMOTE_NO_ROOTS =
  "this server is reached over HTTP and its operator mapped no server directories (--allow-path)";
