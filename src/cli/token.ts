import type { Command } from "commander";
import { Runtime } from "../runtime/runtime.js";
import { TokenStore } from "../tenants/tokens.js";
import { type CliIo, reportError } from "./commands.js";
import { positiveInt } from "./flag-values.js";

/**
 * `pyro token create|list|revoke`: the bearer tokens of `pyro mcp serve --http`
 * (src/tenants/tokens.ts). Operator commands, not operations: no model and no remote
 * client may mint or list tokens, so they are neither tools nor SDK methods.
 */
export function addTokenCommands(program: Command, io: CliIo): void {
  const token = program
    .command("token")
    .description("Bearer tokens for `pyro mcp serve --http`: each token is a tenant with its own sandboxes");
  const store = () => new TokenStore(new Runtime().paths.stateDir);
  const print = (s: string): void => void io.stdout.write(`${s}\n`);
  const run = (json: boolean | undefined, fn: () => Promise<void>) =>
    fn().catch((e: unknown) => reportError(io, e, json === true));

  token
    .command("create")
    .description("Create a token; its secret is printed once (only a hash is stored)")
    .option("--name <name>", "a name to list and revoke it by (default: its id)")
    .option(
      "--max-sandboxes <n>",
      "sandboxes (VMs, workspaces, running vm_run) it may have at once",
      positiveInt("--max-sandboxes"),
    )
    .option("--max-mem-mib <n>", "total memory (MiB) of its sandboxes", positiveInt("--max-mem-mib"))
    .option("--json", "print the result as JSON")
    .addHelpText(
      "after",
      "\nExamples:\n  $ pyro token create --name laptop\n  $ pyro token create --name ci --max-sandboxes 4 --max-mem-mib 4096 --json\n",
    )
    .action((o: { name?: string; maxSandboxes?: number; maxMemMib?: number; json?: boolean }) =>
      run(o.json, async () => {
        const t = await store().create({
          ...(o.name ? { name: o.name } : {}),
          limits: {
            ...(o.maxSandboxes ? { max_sandboxes: o.maxSandboxes } : {}),
            ...(o.maxMemMib ? { max_mem_mib: o.maxMemMib } : {}),
          },
        });
        if (o.json) return print(JSON.stringify(t, null, 2));
        print(t.token);
        io.stderr.write(
          `created token ${t.name} (${t.token_id}); the secret above is shown only now.\n` +
            "  use it as: Authorization: Bearer <token>  (PYRO_TOKEN for the SDK and `pyro --remote`)\n",
        );
      }),
    );

  token
    .command("list")
    .description("List tokens (names, ids, limits, revoked or not; never secrets)")
    .option("--json", "print the result as JSON")
    .addHelpText("after", "\nExamples:\n  $ pyro token list\n  $ pyro token list --json\n")
    .action((o: { json?: boolean }) =>
      run(o.json, async () => {
        const tokens = await store().list();
        if (o.json) return print(JSON.stringify({ tokens }, null, 2));
        if (tokens.length === 0) return print("no tokens; create one with `pyro token create --name NAME`");
        for (const t of tokens) {
          const lim = [
            t.limits.max_sandboxes ? `max ${t.limits.max_sandboxes} sandboxes` : "",
            t.limits.max_mem_mib ? `max ${t.limits.max_mem_mib} MiB` : "",
          ].filter(Boolean);
          print(
            `${t.token_id}  ${t.name.padEnd(16)} ${t.revoked ? `revoked ${t.revoked_at}` : "live"}  created ${t.created_at}${lim.length ? `  ${lim.join(", ")}` : ""}`,
          );
        }
      }),
    );

  token
    .command("revoke")
    .description("Revoke a token by id or name; a running server refuses it from the next request")
    .argument("<token>", "token id (tok_…) or name")
    .option("--json", "print the result as JSON")
    .addHelpText(
      "after",
      "\nExamples:\n  $ pyro token revoke laptop\n  $ pyro token revoke tok_0123456789abcdef --json\n",
    )
    .action((id: string, o: { json?: boolean }) =>
      run(o.json, async () => {
        const t = await store().revoke(id);
        if (o.json) return print(JSON.stringify(t, null, 2));
        print(`revoked ${t.name} (${t.token_id}); its sandboxes stay until deleted or expired`);
      }),
    );
}
