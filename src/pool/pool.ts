import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, unlink } from "node:fs/promises";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { PyroError } from "../core/errors.js";
import { newId } from "../core/ids.js";
import type { PyroPaths } from "../core/paths.js";
import { execChannel, sandboxPid } from "../engines/channel.js";
import type { Engine, EngineName } from "../engines/types.js";
import { processOf, userOf } from "../environments/runtime-config.js";
import type { EnvironmentStore } from "../environments/store.js";
import type { RuntimeDeps } from "../sandbox/context.js";
import type { EngineRegistry } from "../sandbox/engines.js";
import { ignore } from "../util/best-effort.js";
import { readJson, writeJsonAtomic } from "../util/json-store.js";
import { withLockIfFree } from "../util/lock.js";
import { pidAlive } from "../util/proc.js";
import {
  CLAIM_MARGIN_MS,
  type Claim,
  claimEntry,
  type PoolEntry,
  releaseEntry,
  spawnPoolFill,
} from "./claim.js";
import {
  formatPoolKey,
  keyEngine,
  keyFor,
  type PoolConfig,
  type PoolKey,
  parseClaimedName,
  poolConfig,
  poolKeyId,
} from "./config.js";
import { cleanSlots, makeSlot, slotCounts, WS_SLOT_DIRS } from "./workspace-slots.js";

/**
 * The warm pool, without a daemon: state on disk under `<state>/pool/`.
 *
 *   <keyid>/key.json            the key (environment, vcpu_count, mem_mib, network)
 *   <keyid>/ready/<id>.json     a started, never-used sandbox (its handle), waiting
 *   <keyid>/claimed/<id>.<deadline>.<pid>.json   taken by process <pid> for one command
 *   <keyid>/used/<id>.json      its command is done: to be destroyed
 *   sandboxes/<id>/             the sandboxes' engine files
 *   fill.lock                   held (its owner in the symlink) by the one process filling or cleaning
 *   <keyid>/{slots,claiming,making,dead}/   a `#ws` key's workspace slots (workspace-slots.ts)
 *
 * A claim is one rename from ready/ to claimed/: two processes can never both win it. The
 * claimer moves the sandbox's own expiry (the init's expires_at) to its command's deadline, so
 * a claimer killed mid-run leaves a sandbox that stops itself at that deadline; a ready sandbox
 * stops itself after the idle time. After a claim (used once), the entry goes to used/ with its
 * expiry set to now, and a detached `pyro pool fill` destroys it and tops the pool up. Any
 * fill (and the periodic reap) also removes what is stale: dead or idle-expired ready
 * sandboxes, claims of dead processes, keys no longer configured.
 */
export type { Claim, PoolEntry } from "./claim.js";

export interface PoolKeyStatus {
  key: string;
  environment: string;
  vcpu_count: number;
  mem_mib: number;
  network: boolean;
  /** A `#ws` key: slots `workspace create` takes, rather than sandboxes for one-shot runs. */
  workspace: boolean;
  configured: boolean;
  ready: number;
  in_use: number;
  pending_destroy: number;
  /** RSS of the ready sandboxes' host processes (runsc sandbox and gofer), per sandbox, MiB. */
  rss_mib_per_ready: number | null;
}

/** A claimed sandbox whose expiry passed this long ago is destroyed even if its owner lives. */
const CLAIM_GRACE_MS = 60_000;

/** What the pool is built from: the runtime's paths, environments, settings and engines. */
export type PoolDeps = Pick<RuntimeDeps, "paths" | "envs" | "env" | "engines">;

export class WarmPool {
  readonly root: string;
  readonly config: PoolConfig;
  private readonly paths: PyroPaths;
  private readonly envs: EnvironmentStore;
  private readonly env: NodeJS.ProcessEnv;
  private readonly engines: EngineRegistry;
  private readonly engineCache = new Map<EngineName, Engine>();

  constructor(d: PoolDeps) {
    this.paths = d.paths;
    this.envs = d.envs;
    this.env = d.env;
    this.engines = d.engines;
    this.root = join(d.paths.stateDir, "pool");
    this.config = poolConfig(d.env);
  }

  /**
   * The pool and its configured key for these settings, when one is kept; undefined when not,
   * or when a PYRO_POOL_* setting is bad (`pyro pool status` says what is wrong): the
   * caller then starts a fresh sandbox.
   */
  static keyed(d: PoolDeps, want: PoolKey): { pool: WarmPool; key: PoolKey } | undefined {
    let pool: WarmPool;
    try {
      pool = new WarmPool(d);
    } catch {
      return undefined;
    }
    const key = keyFor(pool.config, want);
    return key ? { pool, key } : undefined;
  }

  /** The default key's engine (gVisor): workspace slots and keys that name none. */
  private get engine(): Engine {
    return this.engineOf(undefined);
  }
  /** The engine a key's sandboxes run on (config.ts keyEngine): gVisor, or QEMU for `#qemu` keys. */
  private engineOf(engine: PoolKey["engine"]): Engine {
    const name = keyEngine(engine ? { engine } : {});
    let e = this.engineCache.get(name);
    if (!e) {
      e = this.engines.byName(name);
      if (!e)
        throw new PyroError("engine_unavailable", `the warm pool's engine ${name} is not in this build`);
      this.engineCache.set(name, e);
    }
    return e;
  }
  private keyDir(k: PoolKey): string {
    return join(this.root, poolKeyId(k));
  }
  /** For workspace-pool.ts: where a `#ws` key's slots are. */
  keyDirOf(k: PoolKey): string {
    return this.keyDir(k);
  }
  private sandboxDir(id: string): string {
    return join(this.root, "sandboxes", id);
  }

  /** The run's path (claim.ts): a ready sandbox for `key`, its expiry moved to the deadline. */
  claim(key: PoolKey, deadlineMs: number): Promise<Claim | undefined> {
    return claimEntry(this.root, key, deadlineMs);
  }

  /** Used once: the sandbox stops itself now-ish, and a detached fill destroys it and tops up. */
  release(c: Claim): Promise<void> {
    return releaseEntry(this.root, c);
  }

  /** Starts `pyro pool fill` detached (unless PYRO_POOL_TOPUP=0), so this process waits for nothing. */
  spawnFill(): void {
    const cli = cliPath();
    if (cli) spawnPoolFill(cli, this.env);
  }

  /**
   * Under the fill lock: removes what is stale, then creates sandboxes until every configured
   * key has `size` ready. Waits up to `waitMs` for another filler or cleaner to finish (then it
   * finds the pool full and has little left to do); undefined if that did not happen in time.
   */
  async fill(
    opts: { create?: boolean; waitMs?: number; keepUnconfigured?: boolean } = {},
  ): Promise<{ created: number; destroyed: number } | undefined> {
    return this.waitLocked(opts.waitMs ?? 30_000, async () => {
      const destroyed = await this.clean(false, opts.keepUnconfigured === true);
      let created = 0;
      if (opts.create !== false && this.config.size > 0)
        for (const key of this.config.keys) {
          const have = (
            await readdir(join(this.keyDir(key), key.workspace ? "slots" : "ready")).catch(() => [])
          ).length;
          for (let i = have; i < this.config.size; i++) {
            if (key.workspace)
              await makeSlot(this.engine, this.envs, this.keyDir(key), key, this.config.idleSeconds);
            else await this.createOne(key);
            created++;
          }
        }
      return { created, destroyed };
    });
  }

  /** Destroys every sandbox the pool holds (claims of live processes finish first, then go). */
  async drain(timeoutMs = 60_000): Promise<{ destroyed: number; in_use: number }> {
    const r = await this.waitLocked(timeoutMs, async () => {
      const destroyed = await this.clean(true);
      let in_use = (await this.entries()).filter((e) => e.where === "claimed").length;
      for (const kd of await this.keyDirs()) in_use += (await slotCounts(kd)).in_use;
      if (in_use === 0) await rm(this.root, { recursive: true, force: true });
      return { destroyed, in_use };
    });
    if (!r)
      throw new PyroError(
        "invalid_state",
        `another pyro process held the pool's lock (${join(this.root, "fill.lock")}) for ${timeoutMs / 1000} s`,
        "try again; if no pyro process is running, remove that lock",
      );
    return r;
  }

  private async waitLocked<T>(timeoutMs: number, fn: () => Promise<T>): Promise<T | undefined> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const r = await this.locked(fn);
      if (r !== undefined || Date.now() > until) return r;
      await new Promise((res) => setTimeout(res, 200));
    }
  }

  async status(): Promise<{ size: number; idle_seconds: number; keys: PoolKeyStatus[] }> {
    const byKey = new Map<string, PoolKeyStatus>();
    const statusOf = (k: PoolKey, configured: boolean): PoolKeyStatus => {
      const id = poolKeyId(k);
      let s = byKey.get(id);
      if (!s) {
        s = {
          key: formatPoolKey(k),
          ...k,
          workspace: k.workspace ?? false,
          configured,
          ready: 0,
          in_use: 0,
          pending_destroy: 0,
          rss_mib_per_ready: null,
        };
        byKey.set(id, s);
      }
      return s;
    };
    if (this.config.size > 0) for (const k of this.config.keys) statusOf(k, true);
    const rss: Record<string, number[]> = {};
    for (const e of await this.entries()) {
      if (!e.key) continue;
      const s = statusOf(e.key, false);
      if (e.where === "ready") {
        s.ready += 1;
        const kb = await sandboxRssKb(e.id);
        if (kb > 0) rss[s.key] = [...(rss[s.key] ?? []), kb];
      } else if (e.where === "claimed") s.in_use += 1;
      else s.pending_destroy += 1;
    }
    for (const kd of await this.keyDirs()) {
      const key = await this.keyOf(kd);
      if (!key?.workspace) continue;
      const s = statusOf(key, false);
      const c = await slotCounts(kd);
      s.ready += c.ready;
      s.in_use += c.in_use;
      s.pending_destroy += c.pending_destroy;
      for (const id of c.readyIds) {
        const kb = await sandboxRssKb(id);
        if (kb > 0) rss[s.key] = [...(rss[s.key] ?? []), kb];
      }
    }
    for (const s of byKey.values()) {
      const xs = rss[s.key];
      if (xs?.length)
        s.rss_mib_per_ready = Math.round(xs.reduce((a, b) => a + b, 0) / xs.length / 102.4) / 10;
    }
    return { size: this.config.size, idle_seconds: this.config.idleSeconds, keys: [...byKey.values()] };
  }

  // ---- internals ----

  /**
   * The key a key directory holds, when the directory is named for it; one named otherwise (an
   * older pyro's digest) holds nothing a claimer looks for, so its entries count as keyless.
   */
  private async keyOf(kd: string): Promise<PoolKey | undefined> {
    const key = await readJson<PoolKey>(join(kd, "key.json")).catch(
      ignore("missing or unreadable key.json: the directory holds no key"),
    );
    return key && poolKeyId(key) === basename(kd) ? key : undefined;
  }

  private async keyDirs(): Promise<string[]> {
    return (await readdir(this.root).catch(() => [] as string[]))
      .filter((kd) => /^[0-9a-f]{16}$/.test(kd))
      .map((kd) => join(this.root, kd));
  }

  private async createOne(key: PoolKey): Promise<void> {
    const env = await this.envs.ensure(key.environment);
    const id = newId("vm");
    const sandboxDir = this.sandboxDir(id);
    await mkdir(sandboxDir, { recursive: true, mode: 0o700 });
    const idle = new Date(Date.now() + this.config.idleSeconds * 1000).toISOString();
    const handle = await this.engineOf(key.engine).create({
      id,
      environment: key.environment,
      rootfs: env.rootfs,
      sandboxDir,
      vcpuCount: key.vcpu_count,
      memMib: key.mem_mib,
      network: key.network,
      expiresAt: idle,
      ...userOf(env.runtime),
    });
    // One command through the same path a claimer's takes, then a moment for the sandbox's
    // init to fork its replacement handler: the first command of a new sandbox costs more
    // (the sentry's first vfork/exec from a handler), paid here instead of by a claimer.
    if (execChannel(handle)) {
      await this.engineOf(key.engine)
        .exec(handle, { argv: ["true"], timeoutMs: 10_000 })
        .catch(ignore("warming the sandbox's exec path: a failure costs only the first claimer's time"));
      await new Promise((r) => setTimeout(r, 150));
    }
    const dir = this.keyDir(key);
    for (const d of ["ready", "claimed", "used"]) await mkdir(join(dir, d), { recursive: true });
    await writeJsonAtomic(join(dir, "key.json"), key);
    const entry: PoolEntry = {
      id,
      key,
      handle,
      created_at: new Date().toISOString(),
      idle_expires_at: idle,
      exec: { ...processOf(env.runtime), ...userOf(env.runtime) },
    };
    // Written beside ready/, then renamed in: a claimer never sees half an entry.
    await writeJsonAtomic(join(dir, `${id}.json`), entry);
    await rename(join(dir, `${id}.json`), join(dir, "ready", `${id}.json`));
  }

  /** Every entry on disk, with where it is. */
  private async entries(): Promise<
    { id: string; key?: PoolKey; where: "ready" | "claimed" | "used"; path: string; name: string }[]
  > {
    const out: {
      id: string;
      key?: PoolKey;
      where: "ready" | "claimed" | "used";
      path: string;
      name: string;
    }[] = [];
    for (const kd of await readdir(this.root).catch(() => [] as string[])) {
      if (!/^[0-9a-f]{16}$/.test(kd)) continue;
      const key = await this.keyOf(join(this.root, kd));
      for (const where of ["ready", "claimed", "used"] as const)
        for (const name of await readdir(join(this.root, kd, where)).catch(() => [] as string[])) {
          const id = /^(vm_[0-9a-f]{16})\./.exec(name)?.[1];
          if (id)
            out.push({ id, ...(key ? { key } : {}), where, path: join(this.root, kd, where, name), name });
        }
    }
    return out;
  }

  /**
   * Destroys used sandboxes, claims whose process died (or whose deadline is long past),
   * ready sandboxes that are dead, near their idle expiry or of a key no longer configured
   * (`all`: every ready one), and sandbox directories no entry names (a fill killed mid-create).
   * `keepUnconfigured`: the periodic reap's clean, run by any process whatever its own
   * PYRO_POOL_* settings, leaves other settings' ready sandboxes alone (they expire on their own).
   */
  private async clean(all: boolean, keepUnconfigured = false): Promise<number> {
    const configured = new Set(this.config.size > 0 ? this.config.keys.map(poolKeyId) : []);
    const doomed: { id: string; path: string }[] = [];
    const known = new Set<string>();
    const now = Date.now();
    for (const e of await this.entries()) {
      known.add(e.id);
      let drop = e.where === "used";
      if (e.where === "claimed") {
        const c = parseClaimedName(e.name);
        drop = !c || !pidAlive(c.pid) || now > c.deadlineMs + CLAIM_GRACE_MS;
      } else if (e.where === "ready") {
        const entry = await readJson<PoolEntry>(e.path).catch(
          ignore("unreadable ready entry: dropped as stale"),
        );
        drop =
          all ||
          !entry ||
          !e.key ||
          (!keepUnconfigured && !configured.has(poolKeyId(e.key))) ||
          Date.parse(entry.idle_expires_at) < now + CLAIM_MARGIN_MS * 3 ||
          !pidAlive(entry.handle ? sandboxPid(entry.handle) : undefined);
      }
      if (drop) doomed.push(e);
    }
    for (const id of await readdir(join(this.root, "sandboxes")).catch(() => [] as string[]))
      if (/^vm_[0-9a-f]{16}$/.test(id) && !known.has(id)) doomed.push({ id, path: "" });
    // In parallel: `runsc delete` waits ~1.5 s here for the sandbox's pid to vanish.
    await Promise.all(
      doomed.map(async (d) => {
        // A ready entry is taken out of ready/ first, so no claimer can win it meanwhile.
        let path = d.path;
        if (path.includes("/ready/")) {
          const moved = path.replace("/ready/", "/used/");
          if (
            !(await rename(path, moved).then(
              () => true,
              () => false,
            ))
          )
            return;
          path = moved;
        }
        await this.destroy(d.id, path);
      }),
    );
    // Workspace slots (their own layout, see workspace-slots.ts).
    let slotsDestroyed = 0;
    for (const kd of await this.keyDirs()) {
      const key = await readJson<PoolKey>(join(kd, "key.json")).catch(
        ignore("missing or unreadable key.json: not a workspace slot directory"),
      );
      if (!key?.workspace) continue;
      // A directory an older pyro named (see keyOf) is unwanted whatever the settings.
      const id = poolKeyId(key);
      const unwanted = id !== basename(kd) || (!keepUnconfigured && !configured.has(id));
      slotsDestroyed += await cleanSlots(this.engine, kd, all || unwanted);
    }
    // Key directories with nothing left in them.
    for (const kd of await readdir(this.root).catch(() => [] as string[])) {
      if (!/^[0-9a-f]{16}$/.test(kd) || configured.has(kd) || keepUnconfigured) continue;
      const left = (
        await Promise.all(
          ["ready", "claimed", "used", ...WS_SLOT_DIRS].map((w) =>
            readdir(join(this.root, kd, w)).catch(() => []),
          ),
        )
      ).flat();
      if (left.length === 0) await rm(join(this.root, kd), { recursive: true, force: true });
    }
    return doomed.length + slotsDestroyed;
  }

  private async destroy(id: string, entryPath: string): Promise<void> {
    const dir = this.sandboxDir(id);
    const entry = entryPath
      ? await readJson<PoolEntry>(entryPath).catch(
          ignore("unreadable entry: the sandbox is found by its directory instead"),
        )
      : undefined;
    try {
      if (entry?.handle) await this.engineOf(entry.key?.engine).destroy(entry.handle);
      else {
        // No entry (a fill killed mid-create): whichever engine it was, nothing of it stays.
        await this.engine.removeOrphan(id, dir);
        if (existsSync(join(dir, "disk.qcow2")) || existsSync(join(dir, "qemu.log")))
          await this.engineOf("qemu").removeOrphan(id, dir);
      }
    } catch {
      return; // left for the next clean
    }
    await rm(dir, { recursive: true, force: true });
    if (entryPath)
      await unlink(entryPath).catch(
        ignore("removing the entry file: it may be gone already, and a leftover is cleaned next time"),
      );
  }

  /**
   * One filler at a time, under `fill.lock` (util/lock.ts: it names its owner, and a dead
   * filler's lock is taken over at once); undefined when another live process holds it.
   */
  private async locked<T>(fn: () => Promise<T>): Promise<T | undefined> {
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    return (await withLockIfFree(join(this.root, "fill"), fn))?.value;
  }
}

/** The CLI that `pool fill` runs as: dist/cli/main.js beside this module (bundle or not). */
function cliPath(): string | undefined {
  for (const rel of ["../cli/main.js", "../../dist/cli/main.js"]) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** RSS (KiB) of the host processes of pool sandbox `id`: runsc's sandbox and gofer, or qemu. */
export async function sandboxRssKb(id: string): Promise<number> {
  let total = 0;
  for (const pid of await readdir("/proc").catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid)) continue;
    const cmd = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    // A run's sandbox is under sandboxes/<id>/, a workspace slot's under <id>/sandbox/.
    // A QEMU entry's process is qemu itself (its disk and sockets are in the same directory).
    const prog = cmd.split("\0")[0]!.split("/").pop() ?? "";
    const ours = prog.startsWith("runsc") || prog.startsWith("qemu-system");
    if (!ours || !(cmd.includes(`/sandboxes/${id}/`) || cmd.includes(`/${id}/sandbox/`))) continue;
    const st = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
    total += Number(/VmRSS:\s+(\d+)/.exec(st)?.[1] ?? 0);
  }
  return total;
}
