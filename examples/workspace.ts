/**
 * A persistent workspace: /workspace survives between commands until you delete it.
 * createWorkspace({ seedPath }) → pushWorkspaceSync → execWorkspace → statusWorkspace →
 * logsWorkspace → deleteWorkspace, then the same with the handle style (`ws.exec(...)`).
 *
 *   npx tsx examples/workspace.ts
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import {
  Pyro,
  PyroError,
  type WorkspaceExecResult,
  type WorkspaceLogs,
  type WorkspaceStatus,
} from "pyro-mcp";

export async function main(pyro: Pyro = new Pyro()): Promise<{
  exec: WorkspaceExecResult;
  status: WorkspaceStatus;
  logs: WorkspaceLogs;
  handleExec: WorkspaceExecResult;
}> {
  // A small project on the host to seed the workspace with.
  const project = await mkdtemp(join(tmpdir(), "pyro-example-"));
  await writeFile(join(project, "greet.sh"), 'echo "hello from $(cat /etc/debian_version)"\n');
  const later = await mkdtemp(join(tmpdir(), "pyro-example-sync-"));
  await writeFile(join(later, "extra.txt"), "pushed after create\n");

  try {
    // ---- function style: every call names the workspace id ----
    const created = await pyro.createWorkspace({
      environment: "debian:12",
      seedPath: project,
      ttlSeconds: 300,
    });
    const id = created.workspace_id;
    console.log(`created ${id}: seeded ${created.status.workspace_seed.entry_count} entries into /workspace`);
    try {
      const sync = await pyro.pushWorkspaceSync(id, later, { dest: "/workspace/data" });
      console.log(`sync push: ${sync.entry_count} entries → ${sync.destination}`);

      const exec = await pyro.execWorkspace(id, {
        command: "sh greet.sh && cat data/extra.txt",
        timeoutSeconds: 30,
      });
      console.log(`exec: exit ${exec.exit_code}\n${exec.stdout.trimEnd()}`);

      const status = await pyro.statusWorkspace(id);
      console.log(
        `status: ${status.state}, ${status.command_count} command(s), last: ${status.last_command?.command}`,
      );

      const logs = await pyro.logsWorkspace(id);
      for (const c of logs.commands)
        console.log(`log #${c.sequence}: ${c.command} → exit ${c.exit_code} (${c.duration_ms} ms)`);

      // ---- handle style: createWorkspace returns an object with methods ----
      const ws = await pyro.createWorkspace({ environment: "debian:12" });
      let handleExec: WorkspaceExecResult;
      try {
        await ws.exec("echo 42 > answer.txt");
        handleExec = await ws.exec(["cat", "answer.txt"]);
        console.log(
          `handle ${ws.id}: answer.txt = ${handleExec.stdout.trim()} (files persist between commands)`,
        );
      } finally {
        await ws.delete();
      }
      return { exec, status, logs, handleExec };
    } finally {
      await pyro.deleteWorkspace(id);
      console.log(`deleted ${id}`);
    }
  } finally {
    await rm(project, { recursive: true, force: true });
    await rm(later, { recursive: true, force: true });
  }
}

// Run as a script: a missing input or a pyro error is one message with its fix, not a stack trace.
if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  try {
    await main();
  } catch (e) {
    console.error(`workspace.ts: ${e instanceof Error ? e.message : String(e)}`);
    if (e instanceof PyroError && e.hint) console.error(`hint: ${e.hint}`);
    process.exitCode = 1;
  }
}
