import { stat } from "node:fs/promises";
import { join } from "node:path";
import type * as z from "zod";
import { NETWORK_POLICIES } from "../contract/defaults.js";
import type { WorkspaceSummary } from "../contract/workspace.js";
import { runningByPid } from "../engines/channel.js";
import type { SandboxHandle } from "../engines/types.js";
import { isPast } from "../sandbox/context.js";
import { diskFault } from "../sandbox/disk.js";
import { recordProblem } from "../sandbox/handle-check.js";
import type { RecordEntry } from "../sandbox/record-store.js";
import { ignore } from "../util/best-effort.js";
import { type Owner, ownerAlive } from "../util/owner.js";
import { plainWorkspaceStore } from "./plain-store.js";

/**
 * `workspace list`, as far as its views are shared by WorkspaceManager.list (every face) and
 * the CLI's list fast path (cli/fast-list.ts: no zod, no commander, no engines): what an
 * interrupted record is shown as, what a damaged one says, the order, and the fast path's own
 * reading (plainList), which answers only when it can answer exactly as the full path would
 * and otherwise declines before it has written anything. test/e2e/fast-list.test.ts compares
 * the two on one state dir.
 */

type Summary = z.infer<typeof WorkspaceSummary>;

/** What a view reads of a record's intent (the pyro process creating, stopping or starting it). */
interface IntentRecord {
  state: string;
  owner?: Owner | null | undefined;
}

/**
 * A record whose pyro process died mid-create (`creating`: nothing of it is usable) or
 * mid-stop/start (the sandbox is down or half up), as views show it; undefined otherwise.
 */
export function interruptedShown(
  r: IntentRecord,
): { state: "failed" | "stopped"; reason: string } | undefined {
  if (r.state === "creating" && !ownerAlive(r.owner))
    return {
      state: "failed",
      reason: `interrupted: the pyro process creating it (pid ${r.owner?.pid}) died; delete it`,
    };
  if ((r.state === "stopping" || r.state === "starting") && !ownerAlive(r.owner ?? null))
    return {
      state: "stopped",
      reason: `interrupted: the pyro process ${r.state === "stopping" ? "stopping" : "starting"} it (pid ${r.owner?.pid}) died; start it again or delete it`,
    };
  return undefined;
}

/** The reason a record that cannot be trusted is shown with (state `damaged`). */
export function damagedReason(e: RecordEntry<unknown>): string {
  return `${e.problem === "missing" ? "no record" : e.problem === "damaged" ? e.why : "damaged"}; delete it (its sandbox is found and removed too)`;
}

/** The list's order: most recently active first, then by id. */
export function byActivity(
  a: { last_activity_at: string; workspace_id: string },
  b: { last_activity_at: string; workspace_id: string },
): number {
  return b.last_activity_at.localeCompare(a.last_activity_at) || a.workspace_id.localeCompare(b.workspace_id);
}

// ---- The plain case, for the CLI's fast path ------------------------------------------------

/**
 * A check no looser than the record's zod schema (workspaces/record.ts WorkspaceRecordSchema):
 * it may refuse what the schema takes (the list is then the full path's), never take what the
 * schema refuses, since the full path would show that record as damaged with zod's words
 * (test/unit/fast-list.test.ts mutates records to hold it to that).
 */
type Check = (v: unknown) => boolean;
const str: Check = (v) => typeof v === "string";
const int: Check = (v) => Number.isSafeInteger(v);
const bool: Check = (v) => typeof v === "boolean";
const oneOf =
  (...vs: readonly string[]): Check =>
  (v) =>
    typeof v === "string" && vs.includes(v);
const nullable =
  (c: Check): Check =>
  (v) =>
    v === null || c(v);
const arrayOf =
  (c: Check): Check =>
  (v) =>
    Array.isArray(v) && v.every(c);
const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);
/** An object with these fields (`?` after a name: may be left out), others allowed. */
const shape =
  (fields: Record<string, Check>): Check =>
  (v) =>
    isObject(v) &&
    Object.entries(fields).every(([k, c]) =>
      k.endsWith("?") ? v[k.slice(0, -1)] === undefined || c(v[k.slice(0, -1)]) : c(v[k]),
    );
const ENGINES = ["firecracker", "qemu", "gvisor", "kubernetes", "host"] as const;
const recordShape = shape({
  workspace_id: str,
  environment: str,
  state: oneOf("creating", "running", "stopping", "stopped", "starting", "paused", "expired", "failed"),
  reason: nullable(str),
  created_at: str,
  expires_at: str,
  "ttl_seconds?": (v) => int(v) && (v as number) > 0,
  "max_expires_at?": str,
  "last_activity_at?": str,
  vcpu_count: int,
  mem_mib: int,
  "disk_mib?": (v) => int(v) && (v as number) > 0,
  "disk_enforced?": bool,
  network: bool,
  "network_spec?": shape({
    policy: oneOf(...NETWORK_POLICIES),
    allow_cidrs: arrayOf(str),
    deny_cidrs: arrayOf(str),
    allow_hosts: arrayOf(str),
    publish: arrayOf(shape({ host_port: int, guest_port: int })),
  }),
  engine: oneOf(...ENGINES),
  execution_mode: oneOf("firecracker", "qemu", "gvisor", "kubernetes", "host_compat"),
  handle: nullable(
    shape({ engine: oneOf(...ENGINES), id: str, sandboxDir: str, "workspaceDir?": str, data: isObject }),
  ),
  "owner?": nullable(
    shape({ pid: (v) => int(v) && (v as number) > 0, start: (v) => int(v) && (v as number) >= 0 }),
  ),
  command_count: (v) => int(v) && (v as number) >= 0,
  last_command: nullable(
    shape({ sequence: int, command: str, exit_code: int, started_at: str, duration_ms: int }),
  ),
  workspace_seed: shape({
    mode: oneOf("empty", "directory", "tar_archive", "project"),
    seed_path: nullable(str),
    destination: str,
    entry_count: int,
    bytes_written: int,
    "origin_kind?": oneOf("none", "seed_path", "project_path", "repo_url"),
    "origin_ref?": nullable(str),
    "origin_commit?": nullable(str),
    "origin_url?": nullable(str),
  }),
  "secrets?": arrayOf(
    shape({
      name: str,
      bytes: (v) => int(v) && (v as number) >= 0,
      source: shape({ kind: oneOf("value", "file_path", "from_env"), ref: nullable(str) }),
    }),
  ),
  "tenant?": str,
  "name?": nullable(str),
  // Own keys only: a "__proto__" key is left to zod.
  "labels?": (v) => isObject(v) && !Object.hasOwn(v, "__proto__") && Object.values(v).every(str),
  "pause?": nullable(shape({ with_memory: bool, at: str })),
  "ended_sessions?": nullable(shape({ shells: arrayOf(str), services: arrayOf(str) })),
});

/** Whether the fast path may trust a record as the schema would (see recordShape). */
export function plainRecordShape(raw: unknown): boolean {
  return recordShape(raw);
}

/** A record as the list reads it, once plainRecordShape took it. */
interface ListRecord {
  workspace_id: string;
  environment: string;
  state: string;
  reason: string | null;
  created_at: string;
  expires_at: string;
  last_activity_at?: string;
  disk_enforced?: boolean;
  engine: string;
  handle: (Pick<SandboxHandle, "engine" | "id" | "sandboxDir" | "data"> & { workspaceDir?: string }) | null;
  owner?: Owner | null;
  command_count: number;
  last_command: { started_at: string } | null;
  name?: string | null;
  labels?: Record<string, string>;
}

/** Thrown inside the fast path's read: this list is the full path's. */
class Decline extends Error {}

function summary(r: ListRecord, state: string, reason: string | null): Summary {
  return {
    workspace_id: r.workspace_id,
    name: r.name ?? null,
    labels: r.labels ?? {},
    state: state as Summary["state"],
    reason,
    environment: r.environment,
    created_at: r.created_at,
    expires_at: r.expires_at,
    command_count: r.command_count,
    last_activity_at: r.last_activity_at ?? r.created_at,
    last_command_at: r.last_command?.started_at ?? null,
  };
}

/**
 * The fast path's `workspace list` (no label filter): every workspace's summary, as
 * WorkspaceManager.list and workspaceSummary make it, or undefined when any record needs what
 * only the full path does: a record the schema check above does not take (the full path
 * names its problem), one past its TTL (expired under its lock), or a running one whose
 * sandbox only its engine can vouch for (a gVisor sandbox whose recorded pid is gone: `runsc
 * state`; other engines; a disk gone read-only). Reads only; records that come and go while
 * it reads are handled as the full path handles them (RecordStore.list).
 */
export async function plainList(workspacesDir: string): Promise<Summary[] | undefined> {
  const store = plainWorkspaceStore<ListRecord & { expires_at: string }>(
    workspacesDir,
    {
      safeParse: (raw) => {
        if (!plainRecordShape(raw)) throw new Decline();
        return { success: true, data: raw as ListRecord };
      },
    },
    // The record core's load check (sandbox/records.ts), as it applies it to workspaces.
    (id, dir, r) => recordProblem("workspace_id", r.workspace_id, id, dir, r.handle, true),
  );
  try {
    const all = await store.list<Summary>(
      async (r) => {
        if (r.state !== "expired" && isPast(r.expires_at)) throw new Decline();
        const i = interruptedShown(r);
        if (i) return summary(r, i.state, i.reason);
        if (r.state === "running" && r.handle) {
          // The engine the full path asks is the record's.
          if (r.handle.engine !== r.engine) throw new Decline();
          if (runningByPid(r.handle)) {
            if (r.disk_enforced && (await diskFault(join(store.dir(r.workspace_id), "files"))))
              throw new Decline();
          }
          // Not plainly alive: shown as recorded while another operation holds it (a delete
          // at work), as WorkspaceManager.list shows it; else only its engine can tell.
          else if (!(await store.busy(r.workspace_id))) throw new Decline();
        }
        return summary(r, r.state, r.reason);
      },
      async (e) => {
        const st = await stat(e.dir).catch(ignore("workspace dir missing: nothing to show in the list"));
        if (!st) return undefined;
        const at = new Date(st.mtimeMs).toISOString();
        return {
          workspace_id: e.id,
          name: null,
          labels: {},
          state: "damaged" as const,
          reason: damagedReason(e),
          environment: "unknown",
          created_at: at,
          expires_at: at,
          command_count: 0,
          last_activity_at: at,
          last_command_at: null,
        };
      },
    );
    return all.sort(byActivity);
  } catch (e) {
    if (e instanceof Decline) return undefined;
    throw e;
  }
}
