import { join } from "node:path";
import type { CallContext } from "../sandbox/context.js";
import { ignore } from "../util/best-effort.js";
import { diffWorkspace } from "./diff.js";
import { diskExport, diskList, diskRead } from "./disk-tools.js";
import { exportWorkspace } from "./export.js";
import { editFile, listFiles, readFile, writeFile } from "./files.js";
import type { WorkspaceManager } from "./manager.js";
import { applyPatch } from "./patch.js";
import { ServiceManager } from "./services.js";
import { ShellManager } from "./shells.js";
import { Snapshots, snapshotRecovery } from "./snapshots.js";
import { summarize } from "./summary.js";

/**
 * The workspace capabilities over one manager, wired once (by the Runtime): each gets the
 * manager's narrow port (port.ts), never the manager, and snapshots' recovery of a dead
 * process's operation is registered as the manager's intent hook. `workspace(id)` is one
 * workspace as an object (the `Workspace` facade below).
 */
export class WorkspaceCapabilities {
  readonly shells: ShellManager;
  readonly services: ServiceManager;
  readonly snapshots: Snapshots;

  constructor(
    readonly manager: WorkspaceManager,
    /** Where export intents are recorded (`<state>/export-intents`, export-journal.ts). */
    readonly exportIntents: string,
  ) {
    const port = manager.port;
    this.shells = new ShellManager(port);
    this.services = new ServiceManager(port);
    this.snapshots = new Snapshots(port);
    manager.addRecoveryHook(snapshotRecovery(port));
  }

  workspace(id: string): Workspace {
    return new Workspace(this, id);
  }
}

/** A capability's input without the workspace it is bound to. */
type Bound<T> = Omit<T, "workspace_id">;

/**
 * One workspace as an object, composed of its capabilities the way a sandbox SDK composes
 * one (`ws.files`, `ws.shells`, `ws.services`, `ws.snapshots`, `ws.lifecycle`): each member
 * binds the workspace id and calls the capability module that does the work. The SDK's
 * WorkspaceHandle (src/sdk/pyro.ts) mirrors these namespaces over the operation table.
 */
export class Workspace {
  /** Files of /workspace: push host files in, list, read, write, edit, patch; diff and export. */
  readonly files;
  /** Persistent terminals (shells.ts). */
  readonly shells;
  /** Long-running named services (services.ts). */
  readonly services;
  /** Named snapshots, reset and fork (snapshots.ts). */
  readonly snapshots;
  /** stop/start/pause/resume (lifecycle.ts), each with the workspace's status after it. */
  readonly lifecycle;
  /** A stopped workspace's disk image, read offline: list, read, export (disk-tools.ts). */
  readonly disk;

  constructor(
    private readonly c: WorkspaceCapabilities,
    readonly id: string,
  ) {
    const m = c.manager;
    const open = () => m.port.open(id);
    const bind = <T extends object>(input: T) => ({ ...input, workspace_id: id });
    this.files = {
      push: (input: Bound<Parameters<WorkspaceManager["syncPush"]>[0]>, ctx?: CallContext) =>
        m.syncPush(bind(input), ctx),
      list: async (input: Parameters<typeof listFiles>[1], signal?: AbortSignal) =>
        listFiles((await open()).guest, input, signal),
      read: async (input: Parameters<typeof readFile>[1], signal?: AbortSignal) =>
        readFile((await open()).guest, input, signal),
      write: async (input: Parameters<typeof writeFile>[1], signal?: AbortSignal) =>
        writeFile((await open()).guest, input, signal),
      edit: async (input: Parameters<typeof editFile>[1], signal?: AbortSignal) =>
        editFile((await open()).guest, input, signal),
      applyPatch: async (input: Parameters<typeof applyPatch>[1], signal?: AbortSignal) =>
        applyPatch((await open()).guest, input, signal),
      diff: async (input: Parameters<typeof diffWorkspace>[2], signal?: AbortSignal) => {
        const w = await open();
        return diffWorkspace(w.guest, w.baseline, input, signal);
      },
      export: async (
        input: Parameters<typeof exportWorkspace>[3],
        ctx: Parameters<typeof exportWorkspace>[4],
      ) => {
        const w = await open();
        return exportWorkspace(
          w.guest,
          w.baseline,
          join(w.dir, "exports.jsonl"),
          input,
          ctx,
          c.exportIntents,
        );
      },
    };
    const sh = c.shells;
    this.shells = {
      open: (input: Bound<Parameters<ShellManager["open"]>[0]>) => sh.open(bind(input)),
      write: (input: Bound<Parameters<ShellManager["write"]>[0]>) => sh.write(bind(input)),
      read: (input: Bound<Parameters<ShellManager["read"]>[0]>, signal?: AbortSignal) =>
        sh.read(bind(input), signal),
      signal: (input: Bound<Parameters<ShellManager["signal"]>[0]>) => sh.signal(bind(input)),
      resize: (input: Bound<Parameters<ShellManager["resize"]>[0]>) => sh.resize(bind(input)),
      close: (input: Bound<Parameters<ShellManager["close"]>[0]>) => sh.close(bind(input)),
      list: () => sh.list(id),
    };
    const sv = c.services;
    this.services = {
      start: (input: Bound<Parameters<ServiceManager["start"]>[0]>) => sv.start(bind(input)),
      list: () => sv.list(id),
      status: (input: Bound<Parameters<ServiceManager["status"]>[0]>) => sv.status(bind(input)),
      logs: (
        input: Bound<Parameters<ServiceManager["logs"]>[0]>,
        opts?: Parameters<ServiceManager["logs"]>[1],
      ) => sv.logs(bind(input), opts),
      stop: (input: Bound<Parameters<ServiceManager["stop"]>[0]>) => sv.stop(bind(input)),
    };
    const sn = c.snapshots;
    this.snapshots = {
      create: (name?: string) => sn.create(id, name),
      list: () => sn.list(id),
      delete: (name: string) => sn.delete(id, name),
      /** Back to a snapshot (or "baseline") in a fresh sandbox, with the workspace's secrets. */
      reset: async (snapshot: string) => {
        // Secrets live in the old sandbox's memory: read before it goes, written into the new one.
        const captured = await m
          .captureSecrets(id)
          .catch(
            ignore(
              "reading the old sandbox's secrets: restoreSecrets reads their sources again and notes what is lost",
            ),
          );
        const r = await sn.reset(id, snapshot);
        const note = await m.restoreSecrets(id, captured);
        return note ? { ...r, secrets_note: note } : r;
      },
      fork: (snapshot: string | undefined, count: number, ctx?: CallContext) =>
        sn.fork(id, snapshot, count, ctx),
    };
    this.disk = {
      list: (input: Bound<Parameters<typeof diskList>[1]>) => diskList(m.port, bind(input)),
      read: (input: Bound<Parameters<typeof diskRead>[1]>) => diskRead(m.port, bind(input)),
      export: (input: Bound<Parameters<typeof diskExport>[1]>, ctx: Parameters<typeof diskExport>[2]) =>
        diskExport(m.port, bind(input), ctx),
    };
    this.lifecycle = {
      stop: () => m.lifecycleStep("stop", id),
      start: () => m.lifecycleStep("start", id),
      pause: () => m.lifecycleStep("pause", id),
      resume: () => m.lifecycleStep("resume", id),
    };
  }

  status() {
    return this.c.manager.status(this.id);
  }

  exec(input: Bound<Parameters<WorkspaceManager["exec"]>[0]>, ctx?: CallContext) {
    return this.c.manager.exec({ ...input, workspace_id: this.id }, ctx);
  }

  logs(input: Bound<Parameters<WorkspaceManager["logs"]>[0]>) {
    return this.c.manager.logs({ ...input, workspace_id: this.id });
  }

  update(input: Bound<Parameters<WorkspaceManager["update"]>[0]>) {
    return this.c.manager.update({ ...input, workspace_id: this.id });
  }

  delete() {
    return this.c.manager.delete(this.id);
  }

  /** Commands run, files changed since the baseline, exports, snapshot events: for review. */
  async summary(signal?: AbortSignal, ignored: { include_ignored?: boolean; exclude?: string[] } = {}) {
    const w = await this.c.manager.port.open(this.id);
    // Entries without output: the summary counts commands and failures only.
    const logs = await this.logs({ limit: 1000, include_output: false, max_output_bytes: 1024 });
    return summarize(w.guest, w.baseline, join(w.dir, "exports.jsonl"), logs.commands, signal, {
      snapshotsLog: join(w.dir, "snapshots", "events.jsonl"),
      ...ignored,
    });
  }
}
