import type { Command } from "commander";
import { CLIENTS, type ClientName, defaultWhere } from "../host/clients.js";
import {
  type ConnectResult,
  connect,
  doctor,
  parseClient,
  parseScope,
  pyroLauncher,
  renderFragment,
  repair,
  serverLaunch,
} from "../host/onramps.js";
import { MODES, parseMode } from "../operations/modes.js";
import { PROFILES } from "../operations/profiles.js";
import { parseSelection } from "../operations/tool-sets.js";
import { type CliIo, reportError } from "./commands.js";

/**
 * `pyro host ...`: one-command setup of MCP clients (src/host/). Operator commands, not
 * operations: they edit the operator's own config files, so no model and no SDK gets them.
 */
interface HostFlags {
  profile?: string;
  mode?: string;
  scope?: string;
  npx?: boolean;
  json?: boolean;
}

const clientList = CLIENTS.join("|");

/** What a written entry serves: `--mode` (a job's tools) or `--profile` (one of the two). */
function serves(o: HostFlags) {
  const sel = parseSelection(o);
  return "mode" in sel ? { mode: sel.mode } : sel.profile;
}

function describeConnect(r: ConnectResult, verb: string): string {
  const what = r.changed
    ? `${r.created ? "created" : "updated"} ${r.path}${r.backup ? ` (previous version in ${r.backup})` : ""}`
    : `${r.path} already points at this pyro; nothing changed`;
  return `${verb} ${r.client} (${r.scope} scope): ${what}\n  starts: ${[r.command, ...r.args].join(" ")}`;
}

export function addHostCommands(program: Command, io: CliIo): void {
  const host = program
    .command("host")
    .description("Set up MCP clients to start pyro: connect, print-config, doctor, repair");
  const print = (s: string) => io.stdout.write(s.endsWith("\n") ? s : `${s}\n`);
  const run = (json: boolean | undefined, fn: () => Promise<void>) =>
    fn().catch((e: unknown) => reportError(io, e, json === true));

  host
    .command("connect")
    .description("Add pyro to an MCP client's config (idempotent; backs up a file it changes)")
    .argument("<client>", clientList)
    .option("--profile <name>", `tools to serve: ${PROFILES.join(", ")} (default workspace-core)`)
    .option("--mode <name>", `serve one job's tools instead of a profile: ${MODES.join(", ")}`)
    .option("--scope <scope>", "user (every project) or project (this directory); default per client")
    .option("--npx", "start this pyro's package through npx (`npx -y --package=DIR pyro`) instead of by path")
    .option("--json", "print the result as JSON")
    .addHelpText(
      "after",
      "\nExamples:\n  $ pyro host connect claude-code\n  $ pyro host connect codex --profile vm-run\n  $ pyro host connect claude-code --mode repro-fix\n  $ pyro host connect vscode --scope project\n  $ pyro host connect cursor --npx --json\n",
    )
    .action((name: string, o: HostFlags) =>
      run(o.json, async () => {
        const c = parseClient(name);
        const launch = serverLaunch(pyroLauncher({ npx: o.npx === true }), serves(o));
        const r = await connect(c, parseScope(o.scope, c), launch, defaultWhere());
        print(o.json ? JSON.stringify(r, null, 2) : describeConnect(r, "connected"));
      }),
    );

  host
    .command("print-config")
    .description("Print the config fragment a client needs, in its format, without writing anything")
    .argument("<client>", clientList)
    .option("--profile <name>", `tools to serve: ${PROFILES.join(", ")} (default workspace-core)`)
    .option("--mode <name>", `serve one job's tools instead of a profile: ${MODES.join(", ")}`)
    .option("--scope <scope>", "user or project: which file the fragment belongs in")
    .option("--npx", "use `npx -y --package=DIR pyro` (this pyro's package) instead of this pyro by path")
    .option("--json", "print the result as JSON")
    .addHelpText(
      "after",
      "\nExamples:\n  $ pyro host print-config opencode\n  $ pyro host print-config vscode --npx\n",
    )
    .action((name: string, o: HostFlags) =>
      run(o.json, async () => {
        const c = parseClient(name);
        const scope = parseScope(o.scope, c);
        const launch = serverLaunch(pyroLauncher({ npx: o.npx === true }), serves(o));
        const path = c.file(scope, defaultWhere());
        const fragment = renderFragment(c, launch);
        if (o.json)
          print(JSON.stringify({ client: c.name, scope, path, format: c.format, config: fragment }, null, 2));
        else print(`# ${c.title}: merge into ${path} (${c.docs})\n${fragment}`);
      }),
    );

  host
    .command("doctor")
    .description("Check that every configured client's pyro entry starts a working pyro")
    .option("--mode <name>", `also check each entry serves this mode: ${MODES.join(", ")} (else it is stale)`)
    .option("--json", "print the result as JSON")
    .addHelpText(
      "after",
      "\nExamples:\n  $ pyro host doctor\n  $ pyro host doctor --json\n  $ pyro host doctor --mode review-eval\n",
    )
    .action((o: HostFlags) =>
      run(o.json, async () => {
        const mode = o.mode !== undefined ? parseMode(o.mode) : undefined;
        const entries = await doctor(defaultWhere(), pyroLauncher(), undefined, mode ? { mode } : {});
        const ok = entries.every((e) => e.status === "ok" || e.status === "not_configured");
        if (o.json) print(JSON.stringify({ clients: entries, ok }, null, 2));
        else {
          const configured = entries.filter((e) => e.configured);
          if (configured.length === 0)
            print("no MCP client is configured to start pyro; run `pyro host connect CLIENT`");
          const unconnected = new Set(
            entries
              .filter(
                (e) => e.client_installed && !entries.some((x) => x.client === e.client && x.configured),
              )
              .map((e) => e.client),
          );
          for (const c of unconnected)
            print(`${c} is installed here but not connected: pyro host connect ${c}`);
          for (const e of configured)
            print(`${e.status.padEnd(6)} ${e.client} (${e.scope}) ${e.path}: ${e.detail}`);
          const bad = configured.filter((e) => e.status !== "ok").map((e) => e.client);
          // Another job's entry is re-connected with the mode; a stale or broken one repaired.
          for (const c of new Set(bad))
            print(mode ? `fix: pyro host connect ${c} --mode ${mode}` : `fix: pyro host repair ${c}`);
        }
        if (!ok) io.setExitCode(1);
      }),
    );

  host
    .command("repair")
    .description("Re-point a client's existing pyro entry at this pyro, keeping its profile and flags")
    .argument("<client>", clientList)
    .option("--scope <scope>", "only this scope (default: every scope that has an entry)")
    .option("--json", "print the result as JSON")
    .addHelpText(
      "after",
      "\nExamples:\n  $ pyro host repair claude-code\n  $ pyro host repair vscode --scope project\n",
    )
    .action((name: string, o: HostFlags) =>
      run(o.json, async () => {
        const c = parseClient(name as ClientName);
        const scopes = o.scope ? [parseScope(o.scope, c)] : (["user", "project"] as const);
        const results = await repair(c, scopes, pyroLauncher(), defaultWhere());
        print(
          o.json
            ? JSON.stringify({ repaired: results }, null, 2)
            : results.map((r) => describeConnect(r, "repaired")).join("\n"),
        );
      }),
    );
}
