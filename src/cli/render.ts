/** Human-readable rendering of each operation's result. `--json` bypasses all of this. */
import { networkLine } from "../network/info.js";
import { DISK_RENDER } from "../operations/disk.js";
import { SESSION_RENDER } from "../operations/session-ops.js";
import { SNAPSHOT_RENDER } from "../operations/snapshots.js";
import type { OperationName } from "../operations/table.js";
import { execFooter } from "./exec-footer.js";
import { RENDER_FILES } from "./render-files.js";
import { labelText, renderWorkspaceList, table } from "./render-list.js";

// biome-ignore lint/suspicious/noExplicitAny: rendering walks result objects of many shapes
type Any = Record<string, any>;

function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return "-";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${u[i]}`;
}

function kv(pairs: [string, unknown][]): string {
  const w = Math.max(...pairs.map(([k]) => k.length));
  return pairs
    .map(([k, v]) => `${`${k}:`.padEnd(w + 1)} ${v === null || v === undefined ? "-" : String(v)}`)
    .join("\n");
}

/** Log output as text; base64 (non-UTF-8) output is named, not dumped. */
function shown(text: string, encoding: string | undefined): string {
  return encoding === "base64" ? "(binary output, base64 in --json)" : text.trimEnd();
}

/** stop/start/pause/resume: what happened, then the status. */
function workspaceLifecycle(r: Any): string {
  return `${r.workspace_id}: ${r.detail}\n${workspaceStatus(r)}`;
}

function workspaceStatus(r: Any): string {
  const seed = r.workspace_seed;
  return kv([
    ["workspace", r.workspace_id],
    ...(r.name ? [["name", r.name] as [string, unknown]] : []),
    ...(r.labels && Object.keys(r.labels).length
      ? [["labels", labelText(r.labels)] as [string, unknown]]
      : []),
    ["state", r.reason && r.state !== "running" ? `${r.state} (${r.reason})` : r.state],
    ["environment", r.environment],
    ["engine", r.execution_mode === "host_compat" ? "host_compat (NO ISOLATION)" : r.execution_mode],
    ["resources", `${r.vcpu_count} vCPU, ${r.mem_mib} MiB, network ${r.network ? "on" : "off"}`],
    ...(networkLine(r.network_info) ? [["network", networkLine(r.network_info)] as [string, string]] : []),
    ["created", r.created_at],
    ["expires", r.expires_at],
    [
      "seed",
      seed.mode === "empty"
        ? "empty"
        : `${seed.mode} ${seed.seed_path} → ${seed.destination} (${seed.entry_count} entries, ${bytes(seed.bytes_written)})`,
    ],
    ["commands", r.command_count],
    [
      "last command",
      r.last_command
        ? `#${r.last_command.sequence} ${r.last_command.command} → exit ${r.last_command.exit_code}`
        : "-",
    ],
    // Names and sizes only: values stay in the sandbox (/run/pyro-secrets).
    ...(r.secrets?.length
      ? [
          ["secrets", r.secrets.map((x: Any) => `${x.name} (${bytes(x.bytes)})`).join(", ")] as [
            string,
            string,
          ],
        ]
      : []),
  ]);
}

function vmStatus(r: Any): string {
  return kv([
    ["vm", r.vm_id],
    ["state", r.reason && r.state !== "running" ? `${r.state} (${r.reason})` : r.state],
    ["environment", r.environment],
    ["engine", r.execution_mode ?? "-"],
    ["resources", `${r.vcpu_count} vCPU, ${r.mem_mib} MiB, network ${r.network ? "on" : "off"}`],
    ["created", r.created_at],
    ["expires", r.expires_at],
  ]);
}

function envInfo(e: Any): string {
  return kv([
    ["name", e.name],
    ["description", e.description],
    ["installed", e.installed ? "yes" : "no"],
    ["kind", e.kind],
    ["digest", e.digest ?? "(not pulled yet)"],
    [
      "recipe",
      e.recipe
        ? e.kind === "catalog"
          ? `mmdebstrap ${e.recipe.suite} --variant=${e.recipe.variant} + ${e.recipe.packages.join(", ")}`
          : `base ${e.recipe.suite}${e.recipe.packages.length ? ` + ${e.recipe.packages.join(", ")}` : ""}`
        : "-",
    ],
    [
      "config",
      e.config
        ? `user ${e.config.uid}:${e.config.gid}, workdir ${e.config.working_dir ?? "/"}, env ${Object.keys(e.config.env).join(" ") || "-"}`
        : "-",
    ],
    ["path", e.path],
    ["size", bytes(e.size_bytes)],
    ["built", e.built_at],
  ]);
}

/**
 * One renderer per operation, keyed by the table's (literal) names: an operation added
 * without one is a type error here, not `RENDER[o.name] is not a function` at run time.
 */
export const RENDER: Record<OperationName, (r: Any) => string> = {
  ...SESSION_RENDER,
  ...SNAPSHOT_RENDER,
  ...DISK_RENDER,
  vm_run: execFooter,
  vm_exec: execFooter,
  workspace_exec: execFooter,
  vm_list_environments: (r) =>
    table([
      ["NAME", "INSTALLED", "SIZE", "KIND", "DESCRIPTION"],
      ...r.environments.map((e: Any) => [
        e.name,
        e.installed ? "yes" : "no",
        bytes(e.size_bytes),
        e.kind,
        e.description,
      ]),
    ]),
  env_pull: (r) =>
    `${r.environment.name}: ${r.pulled ? (r.environment.kind === "image" ? "pulled" : "built") : "already installed"} (${bytes(r.environment.size_bytes)}) at ${r.environment.path}` +
    (r.environment.kind === "image"
      ? `\ndownloaded ${bytes(r.bytes_downloaded)} in ${r.layers_downloaded} layer(s); ${r.layers_cached} layer(s) already cached`
      : ""),
  env_build: (r) =>
    `${r.environment.name}: ${r.built ? "built" : "unchanged (cache hit)"} in ${(r.duration_ms / 1000).toFixed(1)} s (${bytes(r.environment.size_bytes)}) at ${r.environment.path}`,
  env_inspect: envInfo,
  env_prune: (r) =>
    r.removed.length ? `removed ${r.removed.join(", ")} (${bytes(r.bytes_freed)} freed)` : "nothing to prune",
  doctor: (r) => {
    const lines = [
      `platform:    ${r.platform.os}/${r.platform.arch}, kernel ${r.platform.kernel}, node ${r.platform.node}, user ${r.platform.user}`,
      `kvm:         exists=${r.kvm.exists} readable=${r.kvm.readable} writable=${r.kvm.writable} boots=${r.kvm.boots ?? "not tested"}`,
      `             ${r.kvm.detail}`,
      r.probes_cached_at
        ? `engines:     (probed ${r.probes_cached_at}; reused, as nothing they depend on changed: --fresh probes again)`
        : "engines:",
      ...r.engines.flatMap((e: Any) => [
        `  ${e.available ? "✓" : "✗"} ${e.engine.padEnd(12)} ${e.detail}`,
        // Which build is in use and what it brings (the old runsc's missing features name their release).
        ...(e.binary
          ? [
              `    ${e.binary} (${e.version}): ${e.features.length ? e.features.map((f: Any) => `${f.name} ${f.enabled ? "yes" : "no"}`).join(", ") : "no optional features"}`,
            ]
          : []),
      ]),
      `default:     ${r.default_engine ?? "none (no isolated engine works)"}`,
      `capabilities: vm_boot=${r.capabilities.vm_boot} guest_exec=${r.capabilities.guest_exec} guest_network=${r.capabilities.guest_network}`,
      `networking:  default ${r.networking.default}; modes ${r.networking.available_modes.join(", ")}${r.networking.route ? `; route ${r.networking.route}` : ""}`,
      `priority:    ${r.sandbox_priority.detail}`,
      `gvisor:      platform ${r.gvisor_platform.detail}`,
      `cache:       ${r.paths.cache_dir}`,
      `state:       ${r.paths.state_dir}`,
      `environments: ${r.environments.map((e: Any) => `${e.name}${e.installed ? " (installed)" : ""}`).join(", ")}`,
      `shared:      ${r.shared_cache.detail}`,
      `tools:       ${Object.entries(r.host_tools)
        .map(([k, v]) => `${k}=${v ?? "missing"}`)
        .join(" ")}`,
    ];
    if (r.kubernetes)
      lines.push(
        `kubernetes:  ${r.kubernetes.server ?? "no server"} (${r.kubernetes.context ?? r.kubernetes.source}), namespace ${r.kubernetes.namespace}, runtime class ${r.kubernetes.runtime_class}${r.kubernetes.workload ? `, sandboxes as ${r.kubernetes.workload === "sandbox" ? "agent-sandbox Sandboxes" : "plain Pods"}` : ""}`,
        ...r.kubernetes.checks.map(
          (c: Any) =>
            `  ${c.status === "ok" ? "✓" : c.status === "warn" ? "!" : "✗"} ${c.name.padEnd(15)} ${c.detail}`,
        ),
      );
    if (r.problems.length) lines.push("problems:", ...r.problems.map((p: string) => `  - ${p}`));
    if (r.environment_state)
      lines.push(
        `environment: ${r.environment_state.name} is ${r.environment_state.state}: ${r.environment_state.detail}`,
      );
    lines.push(r.ok ? "OK: pyro can run isolated sandboxes here" : "NOT OK: see problems above");
    return lines.join("\n");
  },
  prepare: (r) =>
    `${r.environment}: ${r.state}${r.pulled ? " (built now)" : ""}${r.warm_run_ms !== null ? `; first sandbox ran in ${r.warm_run_ms} ms (${r.execution_mode})` : ""}. ${r.detail}`,
  vm_create: vmStatus,
  vm_start: vmStatus,
  vm_stop: vmStatus,
  vm_status: vmStatus,
  vm_delete: (r) => `deleted ${r.vm_id}`,
  vm_network_info: (r) =>
    `${r.vm_id}: network ${r.network ? "on" : "off"} (mode ${r.mode})${networkLine(r.network_info) ? `\n${networkLine(r.network_info)}` : ""}`,
  pool_status: (r) =>
    `pool size ${r.size} per key (PYRO_POOL_SIZE${r.size === 0 ? ": off" : ""}), idle expiry ${r.idle_seconds} s\n` +
    (r.keys.length
      ? table([
          ["KEY", "READY", "IN USE", "TO DESTROY", "RSS/READY"],
          ...r.keys.map((k: Any) => [
            `${k.key}${k.configured ? "" : " (not configured: drained by the next fill)"}`,
            String(k.ready),
            String(k.in_use),
            String(k.pending_destroy),
            k.rss_mib_per_ready === null ? "-" : `${k.rss_mib_per_ready} MiB`,
          ]),
        ])
      : "no keys"),
  pool_fill: (r) =>
    r.busy
      ? "another pyro process is filling the pool"
      : `pool filled: ${r.created} sandbox(es) started, ${r.destroyed} stale one(s) destroyed`,
  pool_drain: (r) =>
    `pool drained: ${r.destroyed} sandbox(es) destroyed${r.in_use > 0 ? `, ${r.in_use} still in use (destroyed by the next fill)` : ""}`,
  vm_reap_expired: (r) => `reaped ${r.reaped_vms.length} VM(s), ${r.reaped_workspaces.length} workspace(s)`,
  vm_list: (r) =>
    r.vms.length
      ? table([
          ["VM", "KIND", "STATE", "ENVIRONMENT", "OWNER", "AGE", "EXPIRES", "COMMAND"],
          ...r.vms.map((v: Any) => [
            v.vm_id,
            v.kind,
            v.state,
            v.environment,
            v.owner ?? "local",
            `${v.age_seconds}s`,
            v.expires_at,
            v.command ?? "",
          ]),
        ])
      : "no VMs and no runs in flight",
  workspace_create: workspaceStatus,
  workspace_stop: workspaceLifecycle,
  workspace_start: workspaceLifecycle,
  workspace_pause: workspaceLifecycle,
  workspace_resume: workspaceLifecycle,
  workspace_status: workspaceStatus,
  workspace_sync_push: (r) =>
    `copied ${r.mode} ${r.source_path} → ${r.destination} in ${r.workspace_id} (${r.entry_count} entries, ${bytes(r.bytes_written)})${r.baseline_updated ? "; baseline updated" : ""}`,
  workspace_logs: (r) =>
    r.commands.length
      ? [
          ...(r.command_count > r.commands.length
            ? [`(${r.command_count - r.commands.length} earlier command(s) not shown; see --limit)`]
            : []),
          ...r.commands.map((c: Any) => {
            const head = `#${c.sequence} ${c.started_at} (${c.duration_ms} ms) $ ${c.command} → exit ${c.exit_code}${c.timed_out ? " (timed out)" : ""} [out ${bytes(c.stdout_bytes)}, err ${bytes(c.stderr_bytes)}; ${c.output_id}]`;
            const body = [
              c.stdout && `  stdout: ${shown(c.stdout, c.stdout_encoding).replace(/\n/g, "\n          ")}`,
              c.stderr && `  stderr: ${shown(c.stderr, c.stderr_encoding).replace(/\n/g, "\n          ")}`,
            ];
            return [head, ...body.filter(Boolean)].join("\n");
          }),
        ].join("\n")
      : `no commands run in ${r.workspace_id} yet`,
  output_read: (r) => r.data,
  workspace_delete: (r) => `deleted ${r.workspace_id}`,
  workspace_update: workspaceStatus,
  workspace_list: (r) => renderWorkspaceList(r as Parameters<typeof renderWorkspaceList>[0]),
  ...RENDER_FILES,
};

/** The human rendering of `name`'s result (every table operation has one: see RENDER's type). */
export function renderResult(name: string, r: Any): string {
  const render = (RENDER as Record<string, ((r: Any) => string) | undefined>)[name];
  if (!render) throw new Error(`no human rendering for operation ${name}; use --json`);
  return render(r);
}
