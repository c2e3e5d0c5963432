import { randomBytes } from "node:crypto";
import { lstat, mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { currentOwner, type Owner, ownerAlive } from "../sandbox/owner.js";

/**
 * Intent records for exports, so that a pyro killed mid-export (kill -9, a closed terminal)
 * leaves nothing that nothing can find, and never leaves the previous output only under a
 * temporary name.
 *
 * An export writes into a staging directory beside its target (same file system, so the
 * final step is one rename), and with `force` moves the old target aside before renaming the
 * new one into place. Both names are chosen first and written to
 * `<state>/export-intents/<pid>-<start>-<id>.json` before either exists; the record is
 * removed once the export has cleaned up. A later process that finds a record whose writer
 * is dead finishes the job (`recoverExports`): the next export does (before it checks its
 * target), and so does the TTL reaper (`pyro vm reap`, or any call when a reap is due):
 * - the aside copy exists and the target does not: the new output never landed, so the old
 *   one is renamed back (rolled back);
 * - both exist: the new output landed, the aside copy is removed (rolled forward);
 * - the staging directory (and a `.tar` being built from it) is removed either way.
 * Renames are atomic, so the target is always the complete old or the complete new output
 * once recovery has run. (A kill, not a power cut: nothing is fsynced.)
 */

export interface ExportIntent {
  target: string;
  staging: string;
  /** The archive built from staging (tar / tar.gz outputs). */
  tar: string;
  /** Where an existing target is moved while the new one is renamed into place. */
  aside: string;
  owner: Owner;
  at: string;
}

export const intentsDir = (stateDir: string) => join(stateDir, "export-intents");

/** The temporary names beside `target` one export uses. */
export function exportNames(target: string): Pick<ExportIntent, "staging" | "tar" | "aside"> {
  const id = randomBytes(6).toString("hex");
  const dir = dirname(target);
  const base = basename(target);
  const staging = join(dir, `.${base}.pyro-export-${id}`);
  return { staging, tar: `${staging}.tar`, aside: join(dir, `.${base}.pyro-old-${id}`) };
}

/** Records the intent (before any of its paths exist); returns the function that clears it. */
export async function recordIntent(
  dir: string,
  names: Pick<ExportIntent, "target" | "staging" | "tar" | "aside">,
): Promise<() => Promise<void>> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const owner = currentOwner();
  const intent: ExportIntent = { ...names, owner, at: new Date().toISOString() };
  const file = join(dir, `${owner.pid}-${owner.start}-${randomBytes(6).toString("hex")}.json`);
  // A record cut short by a kill is harmless: nothing it would name exists yet.
  await writeFile(file, `${JSON.stringify(intent)}\n`, { flag: "wx", mode: 0o600 });
  return () => rm(file, { force: true });
}

/** True when the record's paths are the temporary names of its target (a record is not a licence to delete anything else). */
function plausible(i: ExportIntent): boolean {
  const dir = dirname(i.target);
  const base = basename(i.target);
  const ok = (p: string, kind: string) =>
    typeof p === "string" &&
    dirname(p) === dir &&
    new RegExp(`^\\.${escapeRe(base)}\\.pyro-${kind}-[0-9a-f]{12}(\\.tar)?$`).test(basename(p));
  return (
    typeof i.target === "string" &&
    i.target.startsWith("/") &&
    ok(i.staging, "export") &&
    i.tar === `${i.staging}.tar` &&
    ok(i.aside, "old")
  );
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

const exists = (p: string) =>
  lstat(p).then(
    () => true,
    () => false,
  );

/**
 * Finishes or rolls back every export whose process died. Returns the targets it repaired
 * (for the log; never shown to a remote caller). Safe to run from several processes at once:
 * each step is a rename or a removal of names only that export used.
 */
export async function recoverExports(dir: string): Promise<string[]> {
  const done: string[] = [];
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const m = /^(\d+)-(\d+)-[0-9a-f]+\.json$/.exec(name);
    if (!m) continue;
    if (ownerAlive({ pid: Number(m[1]), start: Number(m[2]) })) continue;
    const file = join(dir, name);
    let intent: ExportIntent | undefined;
    try {
      intent = JSON.parse(await readFile(file, "utf8")) as ExportIntent;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") continue;
      // Cut short while being written: its writer created nothing yet.
    }
    if (intent && plausible(intent)) {
      try {
        if (await exists(intent.aside)) {
          if (await exists(intent.target)) await rm(intent.aside, { recursive: true, force: true });
          else
            await rename(intent.aside, intent.target).catch((e: NodeJS.ErrnoException) => {
              if (e.code !== "ENOENT") throw e;
            });
        }
        await rm(intent.staging, { recursive: true, force: true });
        await rm(intent.tar, { force: true });
      } catch {
        // Kept for the next try (a file system that is full or read-only right now).
        continue;
      }
      done.push(intent.target);
    }
    await rm(file, { force: true });
  }
  return done;
}
