import { lstatSync } from "node:fs";
import { resolvePaths } from "../core/paths.js";
import { isOwnPlainDir } from "../sandbox/private-dir.js";
import { spawnReapIfDue } from "../sandbox/reap-schedule.js";
import { noted } from "../util/best-effort.js";
import { plainList } from "../workspaces/list-view.js";
import { renderWorkspaceList } from "./render-list.js";

/**
 * `pyro workspace list [--json]` without loading the CLI: no commander, no zod, no engines
 * (test/unit/fast-bundles.test.ts keeps it so). Loading the full CLI costs a list 0.2-0.3 s
 * of CPU, most of its time when nothing else runs and far more on a loaded machine, where
 * scripts and dashboards call it every second. The launcher (scripts/bundle-cli.mjs) tries
 * this first; it takes the plain command line only (`--json` and nothing else) and reads the
 * records through workspaces/list-view.ts plainList, which declines whenever the full path
 * would have more to do than read (a record to expire or judge damaged, a sandbox only its
 * engine can vouch for). A list only reads, so declining at any point, even after an
 * unexpected error, leaves nothing half done: the full CLI then lists as always. What it
 * prints is the full CLI's, byte for byte (render-list.ts; test/e2e/fast-list.test.ts).
 */

/** The plain `workspace list` command line: whether it asks for JSON, or undefined for anything else. */
export function parseFastList(args: readonly string[]): { json: boolean } | undefined {
  if (args[0] !== "workspace" || args[1] !== "list") return undefined;
  const rest = args.slice(2);
  if (rest.length === 0) return { json: false };
  if (rest.length === 1 && rest[0] === "--json") return { json: true };
  return undefined; // --label, --help, a stray operand: the full CLI's
}

/**
 * Prints the list and returns the exit code, or undefined when this list is not the fast
 * path's (nothing was printed).
 */
export async function fastWorkspaceList(
  argv: readonly string[],
  cliPath: string,
): Promise<number | undefined> {
  const env = process.env;
  if (env.PYRO_REMOTE) return undefined;
  const a = parseFastList(argv);
  if (!a) return undefined;
  const paths = resolvePaths(env);
  // A state dir that is missing, a symlink, someone else's or open to others: the full CLI
  // makes, refuses or tightens it.
  if (
    !isOwnPlainDir(paths.stateDir) ||
    (lstatSync(paths.stateDir, { throwIfNoEntry: false })?.mode ?? 0o777) & 0o077
  )
    return undefined;
  let workspaces: Awaited<ReturnType<typeof plainList>>;
  try {
    workspaces = await plainList(paths.workspacesDir);
  } catch (e) {
    noted("the list fast path failed while reading: the full CLI lists (and reports) instead", e);
    return undefined;
  }
  if (!workspaces) return undefined;
  // A reader that went away (`| head -1`) ends nothing but our writes, as in the full CLI.
  process.stdout.on("error", () => undefined);
  process.stdout.write(
    a.json ? `${JSON.stringify({ workspaces }, null, 2)}\n` : `${renderWorkspaceList({ workspaces })}\n`,
  );
  // The TTL reap, when due, detached (as the full CLI schedules it).
  await spawnReapIfDue(paths.stateDir, env, cliPath);
  return 0;
}
