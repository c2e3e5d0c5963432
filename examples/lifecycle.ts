/**
 * The lower-level VM lifecycle: createVm → startVm → statusVm → execVm. `execVm` runs ONE
 * command and then deletes the VM (the contract's semantics), so a later statusVm fails
 * with `not_found`. For several commands in one place, use a workspace (workspace.ts);
 * for a single command, `runInVm` (run.ts) does all of this in one call.
 *
 *   npx tsx examples/lifecycle.ts
 */
import { pathToFileURL } from "node:url";
import { Pyro, PyroError, type RunResult, type VmStatus } from "pyro-mcp";

export async function main(
  pyro: Pyro = new Pyro(),
): Promise<{ created: VmStatus; running: VmStatus; result: RunResult; goneCode: string }> {
  const vm = await pyro.createVm({ environment: "debian:12", ttlSeconds: 120 });
  const created = vm.status;
  console.log(`created ${vm.vm_id}: ${created.state}`);

  await pyro.startVm(vm.vm_id);
  const running = await pyro.statusVm(vm.vm_id);
  console.log(
    `status: ${running.state} (${running.execution_mode}, ${running.vcpu_count} vCPU, ${running.mem_mib} MiB, expires ${running.expires_at})`,
  );

  const result = await pyro.execVm(vm.vm_id, {
    command: "cat /etc/debian_version && uname -s",
    timeoutSeconds: 30,
  });
  console.log(
    `exec: exit ${result.exit_code}, stdout ${JSON.stringify(result.stdout)}, cleaned up: ${result.cleaned_up}`,
  );

  // The VM is gone now: execVm deleted it.
  let goneCode = "";
  try {
    await pyro.statusVm(vm.vm_id);
  } catch (e) {
    if (!(e instanceof PyroError)) throw e;
    goneCode = e.code;
    console.log(`statusVm after execVm: ${e.code}: ${e.message}`);
  }
  if (goneCode !== "not_found") throw new Error(`expected the VM to be gone, got ${goneCode || "a status"}`);
  return { created, running, result, goneCode };
}

// Run as a script: a missing input or a pyro error is one message with its fix, not a stack trace.
if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  try {
    await main();
  } catch (e) {
    console.error(`lifecycle.ts: ${e instanceof Error ? e.message : String(e)}`);
    if (e instanceof PyroError && e.hint) console.error(`hint: ${e.hint}`);
    process.exitCode = 1;
  }
}
