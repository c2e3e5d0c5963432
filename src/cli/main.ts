#!/usr/bin/env node
import { Command, CommanderError, type ErrorOptions, Option } from "commander";
import * as z from "zod";
import { diskFullFrom, isPyroError, PyroError } from "../core/errors.js";
import { VERSION } from "../core/version.js";
import { type AskFirstPolicy, parseAskFirst } from "../mcp/elicit.js";
import { MODES } from "../operations/modes.js";
import { nearest, unknownNames } from "../operations/suggest.js";
import { remoteUrl } from "../remote/cli-remote.js";
import { Runtime } from "../runtime/runtime.js";
import { detachedReapArgv } from "../sandbox/reap-schedule.js";
import {
  addOperationCommands,
  type CliIo,
  EXIT,
  exitCodeFor,
  operationPathOf,
  reportError,
} from "./commands.js";
import { completionScript } from "./completion.js";
import { cancelOnSignals } from "./fast-io.js";
import { positiveInt } from "./flag-values.js";
import { addHostCommands } from "./host.js";
import { addTokenCommands } from "./token.js";

// One process per command: zod's generated parsers (compiled on first parse) would cost more
// than they save. The SDK and MCP server, which live long, keep them.
z.config({ jitless: true });

/** The command whose parse failed last, so a usage error can point at its --help. */
let failedCommand: Command | undefined;
/** A better fix than "see --help" for the last usage error, when there is one. */
let failedHint: string | undefined;
/** This process's command line after `node pyro`, for a usage error to quote back. */
let cliArgs: readonly string[] = [];

/**
 * Commander, reporting usage errors the way every pyro error is reported (one line with a
 * fix, or JSON with --json) instead of printing them itself, and wording an unknown flag as
 * the SDK and MCP word an unknown parameter.
 */
class PyroCommand extends Command {
  override createCommand(name?: string): Command {
    return new PyroCommand(name);
  }
  override error(message: string, errorOptions?: ErrorOptions): never {
    failedCommand = this;
    return super.error(message, errorOptions);
  }
  /** Commander's hook for a flag it does not know (not in its typings, but stable since v5). */
  unknownOption(flag: string): void {
    const valid = [...this.options.map((o) => o.long ?? ""), "--help"].filter(Boolean);
    failedHint = guestCommandHint(this, flag, cliArgs);
    this.error(unknownNames("option", [flag], valid), { code: "commander.unknownOption" });
  }
}

const shellWord = (w: string) => (/^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`);

/**
 * `pyro run debian:12 ls -la` without `--`: commander reads `-la` as one of pyro's flags. When
 * the command takes a guest command and an operand beyond its own arguments came before the
 * flag (or the flag is no near miss of one of ours), the fix is the same line with `--` before
 * the guest command, spelled out.
 */
function guestCommandHint(cmd: Command, flag: string, args: readonly string[]): string | undefined {
  const own = cmd.registeredArguments.filter((a) => !a.variadic);
  if (own.length === cmd.registeredArguments.length || args.includes("--")) return undefined;
  const operands = cmd.args.slice(0, Math.max(0, cmd.args.indexOf(flag)));
  const required = own.filter((a) => a.required).length;
  const valid = cmd.options.map((o) => o.long ?? "").filter(Boolean);
  let split: number;
  if (operands.length > own.length) split = own.length;
  else if (operands.length > required && !nearest(flag, valid)) split = required;
  else return undefined;
  // The operand the guest command starts with, found in the raw command line (where pyro's
  // own flags and their values still sit): the split-th operand, counted after the command path.
  let pathLeft = 0;
  const options = [...cmd.options];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) {
    pathLeft++;
    options.push(...c.parent.options);
  }
  let seen = -pathLeft;
  let at = -1;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a.startsWith("-")) {
      const o = options.find((x) => x.long === a || x.short === a);
      if (o && (o.required || o.optional)) i++;
      continue;
    }
    if (seen++ === split) {
      at = i;
      break;
    }
  }
  if (at < 0) return undefined;
  const line = ["pyro", ...args.slice(0, at), "--", ...args.slice(at)].map(shellWord).join(" ");
  return `put the guest command after \`--\` (pyro reads flags before it as its own): \`${line}\``;
}

function commandPath(c: Command | undefined): string {
  const names: string[] = [];
  for (let cur = c; cur?.parent; cur = cur.parent) names.unshift(cur.name());
  return ["pyro", ...names].join(" ");
}

/** A commander parse failure as a PyroError: "error: x\n(Did you mean y?)" → "x (Did you mean y?)". */
function usageError(e: CommanderError): PyroError {
  const message = e.message
    .replace(/^error:\s*/, "")
    .replace(/\s*\n\s*/g, " ")
    .trim();
  const hint = failedHint ?? `see \`${commandPath(failedCommand)} --help\``;
  return new PyroError("invalid_argument", message, hint);
}

interface ServeFlags {
  allowPath?: string[];
  allowHostCompat?: boolean;
  profile?: string;
  mode?: string;
  projectPath?: string;
  repoUrl?: string;
  repoRef?: string;
  includeUntracked?: boolean;
  /** false with --no-project */
  project?: boolean;
  secretEnv?: string[];
  secretFile?: string[];
  allowSecretValues?: boolean;
  /** `--http [HOST:]PORT` and its options (src/remote/http.ts). */
  http?: string;
  tlsCert?: string;
  tlsKey?: string;
  maxConcurrent?: string;
  maxUploadMib?: string;
  allowRepoSeeds?: boolean;
  exportDir?: string;
  allowExportOverwrite?: boolean;
  allowExportExec?: boolean;
  allowOrigin?: string[];
  allowHostHeader?: string[];
  /** false with --no-auth */
  auth?: boolean;
  askFirst?: string[];
  askFirstFallback?: string;
}

async function main(argv: string[]): Promise<number> {
  // A reader that went away (`pyro run --help | head -3`) ends nothing but our writes: no
  // stack trace. (A command's live output has its own handler, which ends the command.)
  process.stdout.on("error", () => undefined);
  const abort = new AbortController();
  // A closed terminal (SIGHUP) cleans up as Ctrl-C does (the command's own deadline holds regardless).
  cancelOnSignals(abort);

  cliArgs = argv.slice(2);
  let exitCode = 0;
  const io: CliIo = {
    stdout: process.stdout,
    stderr: process.stderr,
    setExitCode: (c) => {
      exitCode = c;
    },
    signal: abort.signal,
    ...(argv.includes("--") ? { argvAfterDashDash: argv.slice(argv.indexOf("--") + 1) } : {}),
  };
  let runtime: Runtime | undefined;
  const beforeDashDash = argv.includes("--") ? argv.slice(0, argv.indexOf("--")) : argv;
  const json = beforeDashDash.slice(2).includes("--json");
  const program = new PyroCommand("pyro")
    .description(
      "Isolated, disposable Linux sandboxes for coding agents (CLI, SDK and MCP server over one runtime).",
    )
    .version(VERSION, "-V, --version", "output the version number (also -v)")
    .enablePositionalOptions()
    // Errors are reported by reportError below (text or --json); help still prints normally.
    .configureOutput({ outputError: () => undefined })
    .option(
      "--remote <url>",
      "run operation commands on a `pyro mcp serve --http` server (token: PYRO_TOKEN)",
    )
    .exitOverride();
  // `-v` as well as `-V` (gh, docker and npm answer -v); commander takes one short flag per option.
  program.addOption(new Option("-v", "output the version number").hideHelp());
  program.on("option:v", () => {
    io.stdout.write(`${VERSION}\n`);
    throw new CommanderError(0, "commander.version", VERSION);
  });
  // Only operation commands can run remotely; the rest act on this host and say so.
  program.hook("preAction", (_p, action) => {
    const remote = remoteUrl(program.opts().remote as string | undefined);
    const top = (() => {
      let c: Command = action;
      while (c.parent && c.parent !== program) c = c.parent;
      return c.name();
    })();
    if (remote && ["mcp", "host", "token", "demo"].includes(top))
      throw new PyroError(
        "remote_unsupported",
        `\`pyro ${top}\` acts on this host and cannot run against the remote server ${remote}`,
        "run it without --remote (and without PYRO_REMOTE), or on the server itself",
      );
  });
  program.addHelpText(
    "after",
    `
Examples:
  $ pyro doctor
  $ pyro run debian:12 -- git --version
  $ WS=$(pyro workspace create debian:12 --seed-path ./repo --id-only)
  $ pyro workspace exec "$WS" -- ls -la
  $ pyro workspace delete "$WS"
  $ pyro mcp serve

State lives in ~/.local/state/pyro-mcp, environments in ~/.cache/pyro-mcp (PYRO_HOME moves both).`,
  );
  // Reaping runs in a detached `pyro vm reap`, never on this command's path.
  const detachedReap = detachedReapArgv(process.argv[1]!);
  addOperationCommands(
    program,
    () => (runtime ??= new Runtime({ detachedReap })),
    io,
    operationPathOf(argv.slice(2)),
  );
  addHostCommands(program, io);
  addTokenCommands(program, io);
  const mcp = program.command("mcp").description("Model Context Protocol server");
  mcp
    .command("serve")
    .description(
      "Serve pyro's tools over MCP on stdio (one profile's or one mode's worth; in a git checkout, seeding workspaces from it); logs go to stderr",
    )
    .option(
      "--allow-host-compat",
      "let the tools offer allow_host_compat: a call that sets it runs WITHOUT isolation when no isolated engine works (off by default; the model never sees the option)",
    )
    .addHelpText(
      "after",
      '\nExamples:\n  $ pyro mcp serve\n  $ pyro mcp serve --allow-path ~/src/project --allow-path /data/seeds\n  $ pyro mcp serve --export-dir ~/pyro-exports\n  $ pyro mcp serve --export-dir ./review --allow-export-overwrite --allow-export-exec\n  $ pyro mcp serve --allow-host-compat\n  $ pyro mcp serve --profile workspace-full --secret-env GITHUB_TOKEN\n  $ pyro mcp serve --profile vm-run\n  $ pyro mcp serve --mode repro-fix\n  $ pyro mcp serve --repo-url https://github.com/org/repo --repo-ref main\n  $ claude mcp add pyro -- pyro mcp serve --allow-path "$PWD"\n  $ pyro mcp serve --http 8080 --profile workspace-full\n  $ pyro mcp serve --http 8080 --export-dir /srv/pyro-exports\n  $ pyro mcp serve --http 0.0.0.0:8443 --tls-cert cert.pem --tls-key key.pem\n  $ pyro mcp serve --http 8080 --allow-origin https://app.example.com\n  $ pyro mcp serve --http 8080 --allow-host-header pyro.example.com   # behind a proxy that keeps Host\n',
    )
    .option(
      "--allow-path <dir>",
      "host directory tools may read seeds and sync sources from, symlinks resolved (repeatable; default: the directory the server is started in)",
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option(
      "--export-dir <dir>",
      'the only host directory workspace_export may write into (a model\'s relative output lands there, nothing outside it, no dot-directories); created 0700 when missing (default: ./pyro-exports on stdio, none with --http: clients use output "download:")',
    )
    .option(
      "--allow-export-overwrite",
      "let an export with force replace an existing path in the export area (off by default: exports only create new paths)",
    )
    .option(
      "--allow-export-exec",
      "let exported files keep their execute bits (off by default: dropped, and the result's exec_bits_dropped counts them)",
    )
    .option(
      "--profile <name>",
      "which tools to serve: vm-run, workspace-core (default), workspace-full (under 40 tools) or all (also the vm_* lifecycle, for programs)",
    )
    .option(
      "--mode <name>",
      `serve one job's tools instead of a profile, each with only the fields that job needs: ${MODES.join(", ")}`,
    )
    .option(
      "--project-path <dir>",
      "seed workspace_create without seed_path from this git checkout's tracked files (default: the checkout the server starts in, if any)",
    )
    .option(
      "--repo-url <url>",
      "clone this git repository (shallow, into pyro's cache) and seed from it instead",
    )
    .option("--repo-ref <ref>", "branch or tag of --repo-url (default: its default branch)")
    .option("--include-untracked", "project seeds also carry untracked files that are not ignored")
    .option("--no-project", "do not seed from the checkout the server starts in")
    .option(
      "--secret-env <NAME[=VAR]>",
      "offer models the secret NAME, its value read from this process's environment variable NAME (or VAR) at workspace_create (repeatable)",
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option(
      "--secret-file <NAME=PATH>",
      "offer models the secret NAME, its value read from the host file PATH at workspace_create (repeatable)",
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option(
      "--allow-secret-values",
      "let models send secret values in workspace_create (off by default: models name secrets the operator offered)",
    )
    .option(
      "--http <[host:]port>",
      "serve MCP over Streamable HTTP instead of stdio, with bearer tokens (`pyro token create`); host defaults to 127.0.0.1",
    )
    .option("--tls-cert <file>", "with --http: serve HTTPS with this PEM certificate (and --tls-key)")
    .option("--tls-key <file>", "with --http: the certificate's PEM private key")
    .option("--max-concurrent <n>", "with --http: requests served at once; more get 503 (default 64)")
    .option("--max-upload-mib <n>", "with --http: largest upload (POST /uploads) in MiB (default 512)")
    .option(
      "--allow-repo-seeds",
      'with --http: workspace_create may take seed_path "git:https://HOST/REPO[#REF]", cloned by this server (off by default)',
    )
    .option(
      "--allow-origin <url>",
      "with --http: let browser pages of this origin (scheme://host[:port]) call; requests with any other Origin header get 403, those without one (programs) pass (repeatable; default: none)",
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option(
      "--allow-host-header <name>",
      "with --http on a loopback address: also accept this Host header name (a reverse proxy's public name); other non-loopback names get 403 (repeatable)",
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option(
      "--no-auth",
      "with --http on a loopback address only: accept requests without a bearer token, all as one local tenant (development and test suites; prints a warning)",
    )
    .option(
      "--ask-first <kinds>",
      "delete, export (with force) and/or reset: a human confirms such calls first, through the client (MCP elicitation) where it can ask (comma-separated, repeatable)",
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option(
      "--ask-first-fallback <allow|deny>",
      "what an ask-first call does when the client cannot ask (no elicitation, or --http): deny (default) or allow",
    )
    .action(async (o: ServeFlags) => {
      let askFirst: AskFirstPolicy | undefined;
      try {
        if (o.askFirst?.length || o.askFirstFallback)
          askFirst = parseAskFirst(o.askFirst ?? [], o.askFirstFallback ?? "deny");
      } catch (e) {
        reportError(io, e, false);
        return;
      }
      if (o.http === undefined && o.auth === false) {
        reportError(
          io,
          new PyroError(
            "invalid_argument",
            "--no-auth goes with --http",
            "stdio needs no token: drop --no-auth",
          ),
          false,
        );
        return;
      }
      if (o.http !== undefined) {
        // A project seeds every workspace_create without seed_path: over HTTP that would hand
        // the operator's checkout to every token holder, so it is a stdio-only feature.
        if (o.projectPath || o.repoUrl) {
          reportError(
            io,
            new PyroError(
              "invalid_argument",
              "--project-path and --repo-url are for stdio; over --http, clients send their seeds (uploads)",
              "drop them, or map a server directory with --allow-path DIR",
            ),
            false,
          );
          return;
        }
        const { serveHttpReported } = await import("./serve.js");
        const num = (flag: string, v: string | undefined) =>
          v === undefined ? undefined : positiveInt(flag)(v);
        try {
          const maxConcurrent = num("--max-concurrent", o.maxConcurrent);
          const uploadMib = num("--max-upload-mib", o.maxUploadMib);
          await serveHttpReported(io, {
            listen: o.http,
            ...(o.allowPath ? { allowPaths: o.allowPath } : {}),
            allowHostCompat: o.allowHostCompat === true,
            ...(o.profile ? { profile: o.profile } : {}),
            ...(o.mode ? { mode: o.mode } : {}),
            ...(o.tlsCert ? { tlsCert: o.tlsCert } : {}),
            ...(o.tlsKey ? { tlsKey: o.tlsKey } : {}),
            ...(maxConcurrent ? { maxConcurrent } : {}),
            ...(uploadMib ? { maxUploadBytes: uploadMib * 1024 * 1024 } : {}),
            ...(o.allowRepoSeeds ? { allowRepoSeeds: true } : {}),
            ...(o.exportDir !== undefined ? { exportDir: o.exportDir } : {}),
            ...(o.allowExportOverwrite ? { allowExportOverwrite: true } : {}),
            ...(o.allowExportExec ? { allowExportExec: true } : {}),
            ...(o.allowOrigin ? { allowOrigins: o.allowOrigin } : {}),
            ...(o.allowHostHeader ? { allowHosts: o.allowHostHeader } : {}),
            ...(o.auth === false ? { noAuth: true } : {}),
            ...(askFirst ? { askFirst } : {}),
          });
        } catch (e) {
          reportError(io, e, false);
        }
        return;
      }
      const { serveMcp } = await import("./serve.js");
      const serving = await serveMcp(io, {
        ...(o.allowPath ? { allowPaths: o.allowPath } : {}),
        allowHostCompat: o.allowHostCompat === true,
        ...(o.profile ? { profile: o.profile } : {}),
        ...(o.mode ? { mode: o.mode } : {}),
        secrets: { secretEnv: o.secretEnv ?? [], secretFiles: o.secretFile ?? [] },
        allowSecretValues: o.allowSecretValues === true,
        ...(o.exportDir !== undefined ? { exportDir: o.exportDir } : {}),
        ...(o.allowExportOverwrite ? { allowExportOverwrite: true } : {}),
        ...(o.allowExportExec ? { allowExportExec: true } : {}),
        ...(askFirst ? { askFirst } : {}),
        project: {
          ...(o.projectPath ? { path: o.projectPath } : {}),
          ...(o.repoUrl ? { repoUrl: o.repoUrl } : {}),
          ...(o.repoRef ? { repoRef: o.repoRef } : {}),
          includeUntracked: o.includeUntracked === true,
          noProject: o.project === false,
        },
      });
      if (serving) exitCode = -1;
    });
  const demo = program
    .command("demo")
    .description("End-to-end check of this host: run, then workspace create/exec/status/logs/delete")
    .option("--json", "print the result as JSON")
    .addHelpText(
      "after",
      "\nExamples:\n  $ pyro demo\n  $ pyro demo --json\n  $ pyro demo ollama --model llama3.2:3b\n",
    )
    .action(async (o: { json?: boolean }) => {
      const { runDemo } = await import("./demo.js");
      await runDemo(io, o);
    });
  demo
    .command("ollama")
    .description(
      "A local Ollama model drives vm_run in a tool-calling loop; log lines, then one summary line",
    )
    .option("--model <name>", "Ollama model that supports tool calling (default llama3.2:3b)")
    .option("--base-url <url>", "Ollama server URL (default $OLLAMA_HOST or http://127.0.0.1:11434)")
    .option("--json", "print the summary as JSON (log lines go to stderr)")
    .addHelpText(
      "after",
      "\nExamples:\n  $ pyro demo ollama\n  $ pyro demo ollama --model qwen2.5:7b --base-url http://127.0.0.1:11434\n",
    )
    .action(async (o: { model?: string; baseUrl?: string; json?: boolean }) => {
      const { runOllamaDemo } = await import("./demo.js");
      await runOllamaDemo(io, o);
    });
  program
    .command("completion")
    .description("Print a shell completion script: bash, zsh or fish")
    .argument("<shell>", "bash, zsh or fish")
    .addHelpText(
      "after",
      "\nExamples:\n  $ source <(pyro completion bash)          # in ~/.bashrc\n  $ source <(pyro completion zsh)           # in ~/.zshrc\n  $ pyro completion fish > ~/.config/fish/completions/pyro.fish\n",
    )
    .action((shell: string) => {
      try {
        io.stdout.write(completionScript(program, shell));
      } catch (e) {
        reportError(io, e, false);
      }
    });
  for (const c of program.commands) c.exitOverride();
  const applyExitOverride = (c: Command) => {
    c.exitOverride();
    c.commands.forEach(applyExitOverride);
  };
  applyExitOverride(program);
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === "commander.helpDisplayed" || e.code === "commander.version") return 0;
      // A group without its subcommand (`pyro workspace`): commander printed the group's
      // help on stderr; it is still a usage error.
      if (e.code === "commander.help") return e.exitCode === 0 ? 0 : EXIT.usage;
      reportError(io, usageError(e), json);
      return EXIT.usage;
    }
    // A full disk is the operator's to fix, not pyro's bug: said as disk_full, no stack trace.
    const pe = isPyroError(e) ? e : diskFullFrom(e);
    if (pe) {
      reportError(io, pe, json);
      return exitCodeFor(pe);
    }
    throw e;
  }
  return exitCode;
}

main(process.argv).then(
  (code) => {
    // -1: a long-running server owns the process now (mcp serve).
    if (code >= 0) process.exitCode = code;
  },
  (e) => {
    const full = diskFullFrom(e);
    if (full) {
      process.stderr.write(`pyro: ${full.message}\n  hint: ${full.hint}\n`);
      process.exitCode = 1;
      return;
    }
    process.stderr.write(
      `pyro: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
    );
    process.exitCode = 1;
  },
);
