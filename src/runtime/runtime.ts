import { resolve } from "node:path";
import { type PyroPaths, resolvePaths } from "../core/paths.js";
import { EnvironmentStore } from "../environments/store.js";
import { WarmPool } from "../pool/pool.js";
import type { CallContext, RuntimeDeps } from "../sandbox/context.js";
import { ensurePrivateDir } from "../sandbox/private-dir.js";
import { claimReap, reapIntervalMs, spawnDetached } from "../sandbox/reap-schedule.js";
import { ignore } from "../util/best-effort.js";
import { VmManager } from "../vms/manager.js";
import { intentsDir, recoverExports } from "../workspaces/export-journal.js";
import { WorkspaceManager } from "../workspaces/manager.js";
import { type Workspace, WorkspaceCapabilities } from "../workspaces/workspace.js";
import { engineRegistry } from "./engine-registry.js";

export interface RuntimeOptions {
  env?: NodeJS.ProcessEnv;
  paths?: PyroPaths;
  /**
   * A command that reaps in a process of its own (the CLI: `pyro vm reap`), started detached
   * when a reap is due, so a short-lived process neither waits for it nor scans records itself.
   */
  detachedReap?: readonly string[];
}

/**
 * The one orchestrator the CLI, SDK and MCP server share. Engine specifics stay in engines/,
 * state layout in vms.ts and workspaces/; this only wires them and runs the TTL reaper.
 */
export class Runtime {
  readonly paths: PyroPaths;
  readonly envs: EnvironmentStore;
  readonly vms: VmManager;
  readonly workspaces: WorkspaceManager;
  /** Shells, services and snapshots over the workspaces' port, and the `Workspace` facade. */
  readonly capabilities: WorkspaceCapabilities;
  private readonly deps: RuntimeDeps;
  private lastReap = 0;
  private reaping: Promise<unknown> | undefined;
  readonly env: NodeJS.ProcessEnv;
  private readonly detachedReap: readonly string[] | undefined;

  constructor(opts: RuntimeOptions = {}) {
    const env = opts.env ?? process.env;
    this.env = env;
    this.detachedReap = opts.detachedReap;
    this.paths = opts.paths ?? resolvePaths(env);
    this.envs = new EnvironmentStore(
      this.paths.environmentsDir,
      env,
      this.paths.sharedEnvironmentsDirs ?? [],
    );
    let privateState: Promise<void> | undefined;
    this.deps = {
      paths: this.paths,
      envs: this.envs,
      env,
      // The one place that decides which engines the managers get (tests pass a fake).
      engines: engineRegistry(this.paths, env),
      privateState: () => {
        privateState ??= ensurePrivateDir(this.paths.stateDir).catch((e: unknown) => {
          privateState = undefined;
          throw e;
        });
        return privateState;
      },
    };
    this.vms = new VmManager(this.deps);
    this.workspaces = new WorkspaceManager(this.deps);
    this.capabilities = new WorkspaceCapabilities(this.workspaces, intentsDir(this.paths.stateDir));
  }

  /** The warm pool, over the same paths and engines as the managers. */
  pool(): WarmPool {
    return new WarmPool(this.deps);
  }

  /** One workspace as an object: `rt.workspace(id).files.read(…)`, `.shells`, `.snapshots`… */
  workspace(id: string): Workspace {
    return this.capabilities.workspace(id);
  }

  /**
   * Expired sandboxes are reaped by later calls (no daemon needed). Workspaces, which can be
   * hundreds, and the warm pool's stale sandboxes: at most once per interval for the whole
   * state dir, and never on the calling operation's path (sandbox/reap-schedule.ts).
   */
  /**
   * The state dir as pyro needs it (a private directory of this user's, made when missing):
   * checked before any operation touches it, so a PYRO_STATE_DIR that is someone else's or a
   * symlink is one clear error, not an EACCES from whichever file came first. Once per Runtime.
   */
  ensureStateDir(): Promise<void> {
    return this.deps.privateState();
  }

  async reapIfDue(): Promise<void> {
    if (Date.now() - this.lastReap < 5_000) return;
    this.lastReap = Date.now();
    // VMs on every call: their directory holds only live one-shot runs and vm_create VMs (a
    // few), and a run whose pyro was killed is cleaned up by the very next call.
    await this.vms.reap().catch(ignore("opportunistic VM reap: the next call reaps again"));
    if (!(await claimReap(this.paths.stateDir, reapIntervalMs(this.env)).catch(() => false))) return;
    if (this.detachedReap) spawnDetached(this.detachedReap, this.env);
    else {
      const p = this.reapExpired().catch(
        ignore("background reap of expired sandboxes: the next scheduled reap runs again"),
      );
      this.reaping = p;
      void p.finally(() => {
        if (this.reaping === p) this.reaping = undefined;
      });
    }
  }

  async reapExpired(): Promise<{ reaped_vms: string[]; reaped_workspaces: string[] }> {
    // A background reap in flight would take records from under this one's result.
    await this.reaping;
    const [reaped_vms, reaped_workspaces] = await Promise.all([this.vms.reap(), this.workspaces.reap()]);
    // Exports whose pyro was killed half-way: finished or rolled back (export-journal.ts).
    await recoverExports(intentsDir(this.paths.stateDir)).catch(
      ignore("recovering interrupted exports: the next reap tries again"),
    );
    // The warm pool's stale sandboxes (idle-expired, dead, claimed by a dead process) go too;
    // nothing new is started here.
    await this.pool()
      .fill({ create: false, waitMs: 0, keepUnconfigured: true })
      .catch(ignore("cleaning the warm pool: the next reap cleans again"));
    return { reaped_vms, reaped_workspaces };
  }

  /**
   * Stale environments, plus the microVM disk images and snapshots made from them; with
   * `all`, every environment and every image and snapshot.
   */
  async pruneEnvironments(opts: { all: boolean }): Promise<{ removed: string[]; bytes_freed: number }> {
    const envs = await this.envs.prune(opts);
    // Loaded here, not at start-up: every CLI command would pay for the microVM engines.
    const { imageDigestFor, pruneMicrovmCache } = await import("../engines/qemu/prune.js");
    const keep = new Set<string>();
    for (const m of await this.envs.installedManifests()) keep.add(imageDigestFor(m));
    const vm = await pruneMicrovmCache(this.paths.cacheDir, keep, opts, this.deps.env);
    return { removed: [...envs.removed, ...vm.removed], bytes_freed: envs.bytes_freed + vm.bytes_freed };
  }

  async doctor(ctx: CallContext = {}, opts: { fresh?: boolean } = {}) {
    // The doctor probes every engine: loaded only for it (see pruneEnvironments).
    const { runDoctor } = await import("../doctor/doctor.js");
    return runDoctor(this.paths, this.envs, this.deps.env, ctx.onProgress, opts);
  }

  async pullEnvironment(name: string, ctx: CallContext = {}) {
    const r = await this.envs.pull(name, {
      ...(ctx.signal ? { signal: ctx.signal } : {}),
      onProgress: (p) => ctx.onProgress?.({ message: p.message }),
    });
    return {
      environment: await this.envs.info(name),
      pulled: r.pulled,
      bytes_downloaded: r.bytes_downloaded,
      layers_downloaded: r.layers_downloaded,
      layers_cached: r.layers_cached,
    };
  }

  async buildEnvironment(recipePath: string, ctx: CallContext = {}) {
    const t0 = performance.now();
    const r = await this.envs.recipes.build(resolve(ctx.cwd ?? process.cwd(), recipePath), {
      ...(ctx.signal ? { signal: ctx.signal } : {}),
      onProgress: (p) => ctx.onProgress?.({ message: p.message }),
    });
    return {
      environment: await this.envs.info(r.manifest.name),
      built: r.built,
      duration_ms: Math.round(performance.now() - t0),
    };
  }
}
