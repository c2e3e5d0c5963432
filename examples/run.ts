/**
 * One-shot run: a fresh sandbox runs one command and is deleted afterwards, also on error
 * or timeout. This is `pyro run debian:12 -- git --version` and the MCP tool `vm_run`.
 *
 *   npx tsx examples/run.ts
 */
import { pathToFileURL } from "node:url";
import { Pyro, PyroError, type RunResult } from "pyro-mcp";

export async function main(pyro: Pyro = new Pyro()): Promise<RunResult> {
  const result = await pyro.runInVm({
    environment: "debian:12",
    // An array is an argv run directly; a string runs through /bin/sh -c.
    command: ["git", "--version"],
    timeoutSeconds: 30,
  });
  console.log(result.stdout.trimEnd());
  console.log(
    `exit ${result.exit_code} · ${result.execution_mode} · ${result.duration_ms} ms · sandbox deleted: ${result.cleaned_up}`,
  );
  return result;
}

// Run as a script: a missing input or a pyro error is one message with its fix, not a stack trace.
if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  try {
    await main();
  } catch (e) {
    console.error(`run.ts: ${e instanceof Error ? e.message : String(e)}`);
    if (e instanceof PyroError && e.hint) console.error(`hint: ${e.hint}`);
    process.exitCode = 1;
  }
}
