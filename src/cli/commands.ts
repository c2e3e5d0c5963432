import { type Command, InvalidArgumentError, Option } from "commander";
import * as z from "zod";
import { isPyroError, PyroError } from "../core/errors.js";
import { faceText } from "../operations/face-text.js";
import { errorForFace } from "../operations/hints.js";
import { invoke } from "../operations/invoke.js";
import { sessionNote } from "../operations/session-ops.js";
import { OPERATIONS, type Operation } from "../operations/table.js";
import { invokeRemote, remoteUrl } from "../remote/cli-remote.js";
import type { Runtime } from "../runtime/runtime.js";
import { progressPrinter } from "./progress.js";
import { renderResult } from "./render.js";
import { colourOn, EXIT, paint, printError } from "./report.js";

export const kebab = (s: string) => s.replace(/_/g, "-");
export const flagOf = (field: string) => `--${kebab(field)}`;

/** The zod type under .default()/.optional() wrappers. */
export function baseType(t: z.ZodType): z.ZodType {
  let cur: z.ZodType = t;
  for (;;) {
    if (cur instanceof z.ZodDefault || cur instanceof z.ZodOptional) cur = cur.unwrap() as z.ZodType;
    else return cur;
  }
}

/** A field's description, wherever .describe() sat among its wrappers. */
export function describeOf(t: z.ZodType): string | undefined {
  let cur: z.ZodType = t;
  for (;;) {
    if (cur.description) return cur.description;
    if (cur instanceof z.ZodDefault || cur instanceof z.ZodOptional) cur = cur.unwrap() as z.ZodType;
    else return undefined;
  }
}

/**
 * The CLI name of an input field: a collection (`labels`, `clear_labels`) takes one item per
 * flag, repeatable, named for the item (`--label K=V --label K2=V2`, `--clear-label K`).
 */
export function cliFieldName(field: string, t: z.ZodType): string {
  const b = baseType(t);
  return b instanceof z.ZodRecord || b instanceof z.ZodArray ? field.replace(/s$/, "") : field;
}

/** Whether a field's schema default is `true` (its CLI flag then has a --no- form). */
export function defaultsToTrue(t: z.ZodType): boolean {
  let cur: z.ZodType = t;
  for (;;) {
    if (cur instanceof z.ZodDefault) return (cur.def.defaultValue as unknown) === true;
    if (cur instanceof z.ZodOptional) cur = cur.unwrap() as z.ZodType;
    else return false;
  }
}

/** Accumulates a repeatable flag: K=V pairs into an object, other items into an array. */
function collect(t: z.ZodType) {
  const isRecord = baseType(t) instanceof z.ZodRecord;
  return (v: string, prev: unknown): unknown => {
    if (!isRecord) return [...((prev as string[] | undefined) ?? []), v];
    const i = v.indexOf("=");
    if (i <= 0) throw new InvalidArgumentError(`${JSON.stringify(v)} is not KEY=VALUE.`);
    return { ...((prev as Record<string, string> | undefined) ?? {}), [v.slice(0, i)]: v.slice(i + 1) };
  };
}

function parseNumber(v: string): number {
  if (!/^-?\d+(\.\d+)?$/.test(v.trim()))
    throw new InvalidArgumentError(`${JSON.stringify(v)} is not a number.`);
  return Number(v);
}

export interface CliIo {
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  setExitCode: (code: number) => void;
  signal: AbortSignal;
  /** The argv tokens after the first `--`, if there was one. */
  argvAfterDashDash?: string[];
}

/** Exit codes: the guest command's own code for run/exec; these for pyro's own failures. */
export { EXIT, exitCodeFor } from "./report.js";

export function reportError(io: CliIo, e: unknown, json: boolean): void {
  io.setExitCode(printError(io.stdout, io.stderr, errorForFace(e, "cli"), json));
}

/** Adds one CLI command per operation, with flags derived from its input schema. */
/**
 * The operation a command line names (`["workspace", "exec"]` for `pyro workspace exec WS --
 * …`), when it names one exactly and asks for no help: then only that command need be built.
 */
export function operationPathOf(argv: readonly string[]): string[] | undefined {
  const words: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") break;
    if (a === "--help" || a === "-h" || a === "help") return undefined;
    if (a === "--remote") i++;
    else if (!a.startsWith("-")) words.push(a);
  }
  let found: string[] | undefined;
  for (const o of OPERATIONS as unknown as Operation[])
    if (o.cli.path.every((p, i) => words[i] === p) && (!found || o.cli.path.length > found.length))
      found = o.cli.path;
  return found;
}

export function addOperationCommands(
  program: Command,
  getRuntime: () => Runtime,
  io: CliIo,
  only?: readonly string[],
): void {
  const groups = new Map<string, Command>([["", program]]);
  const groupHelp: Record<string, string> = {
    env: "Manage sandbox environments (root filesystems)",
    vm: "Low-level VM lifecycle (prefer `pyro run` for one-shot commands)",
    workspace:
      "Persistent workspaces: create, sync push, exec, file, diff, export, status, logs, stop, start, pause, resume, list, update, delete",
    "workspace sync": "Copy host files into a workspace",
    "workspace file": "Files in a workspace: list, read, write, edit",
    "workspace patch": "Apply a unified diff in a workspace",
    "workspace disk": "A stopped workspace's disk image, read offline: list, read, export",
    "workspace shell":
      "Persistent interactive shells (PTY) in a workspace: open, write, read, list, signal, resize, close",
    "workspace service":
      "Long-running services in a workspace (a server, a watcher): start, status, logs, list, stop",
    "workspace snapshot":
      "Named snapshots of a workspace's files to go back to: create, list, delete (restore with `pyro workspace reset --snapshot`)",
    output: "Read a command's full output, kept on the host past the result's budget",
    pool: "The warm pool of pre-started sandboxes `pyro run` and `pyro workspace create` take from (PYRO_POOL_SIZE; PYRO_POOL_KEYS: ENV[#VCPUxMEM][#net][#qemu] for runs, ENV[#VCPUxMEM]#ws for workspaces)",
  };
  const groupFor = (path: string[]): Command => {
    const key = path.join(" ");
    const existing = groups.get(key);
    if (existing) return existing;
    const parent = groupFor(path.slice(0, -1));
    const cmd = parent.command(path[path.length - 1]!).description(groupHelp[key] ?? "");
    groups.set(key, cmd);
    return cmd;
  };

  for (const o of OPERATIONS as unknown as Operation[]) {
    // Building ~50 commands costs a few ms of every call: one will do when argv names it.
    if (only && o.cli.path.join(" ") !== only.join(" ")) continue;
    const parent = groupFor(o.cli.path.slice(0, -1));
    const cmd = parent
      .command(o.cli.path[o.cli.path.length - 1]!)
      .summary(o.title)
      // The table speaks wire terms (vm_run, network=true) for models; help speaks the CLI's.
      .description(faceText(o.description, "cli", o));
    const shape = o.input.shape as Record<string, z.ZodType>;
    const positional = o.cli.positional ?? [];
    for (const p of positional) {
      const t = shape[p]!;
      const optional = t instanceof z.ZodDefault || t instanceof z.ZodOptional;
      cmd.argument(optional ? `[${p}]` : `<${p}>`, faceText(describeOf(t) ?? p, "cli", o));
    }
    if (o.cli.rest) cmd.argument("[command...]", "the command to run, after --");
    for (const [field, t] of Object.entries(shape)) {
      if (positional.includes(field) || field === o.cli.rest || o.cli.fieldFlags?.[field]) continue;
      const base = baseType(t);
      const desc = faceText(describeOf(t) ?? field, "cli", o);
      let opt: Option;
      if (base instanceof z.ZodRecord || base instanceof z.ZodArray)
        opt = new Option(
          `${flagOf(cliFieldName(field, t))} <${base instanceof z.ZodRecord ? "key=value" : "value"}>`,
          desc,
        ).argParser(collect(t));
      else if (base instanceof z.ZodBoolean) opt = new Option(flagOf(field), desc);
      else if (base instanceof z.ZodNumber)
        opt = new Option(`${flagOf(field)} <n>`, desc).argParser(parseNumber);
      else opt = new Option(`${flagOf(field)} <value>`, desc);
      cmd.addOption(opt);
      // A boolean that defaults to true (shell write's `newline`) is turned off with --no-FIELD.
      if (base instanceof z.ZodBoolean && defaultsToTrue(t))
        cmd.addOption(new Option(`--no-${kebab(field)}`, `turn ${flagOf(field)} off`));
    }
    for (const f of o.cli.extraFlags ?? [])
      if (f.repeatable)
        cmd.option(
          f.flag,
          f.description,
          collect(z.array(z.string())) as (v: string, p: unknown) => string[],
        );
      else cmd.option(f.flag, f.description);
    cmd.option("--json", "print the result as JSON");
    cmd.addHelpText("after", `\nExamples:\n${o.cli.examples.map((e) => `  $ ${e}`).join("\n")}\n`);

    cmd.action(async (...args: unknown[]) => {
      const command = args[args.length - 1] as Command;
      const opts = command.opts() as Record<string, unknown>;
      const json = opts.json === true;
      const input: Record<string, unknown> = {};
      // Commander hands out operands left to right, so in `pyro run -- ls -la` it would take
      // `ls` as the environment. Everything after `--` is the command: count how many
      // operands came before it and leave the rest to the command.
      const given = positional.filter((_, i) => args[i] !== undefined).length;
      const restGiven = o.cli.rest ? ((args[positional.length] as string[] | undefined) ?? []) : [];
      const afterDashDash = io.argvAfterDashDash;
      const before =
        afterDashDash && o.cli.rest ? Math.max(0, given + restGiven.length - afterDashDash.length) : given;
      positional.forEach((p, i) => {
        if (args[i] !== undefined && i < before) input[p] = args[i];
      });
      if (o.cli.rest) {
        const rest = afterDashDash ?? restGiven;
        // An optional command (`shell open`) may be left out.
        const restOptional = shape[o.cli.rest] instanceof z.ZodOptional;
        if ((!rest || rest.length === 0) && !restOptional) {
          reportError(
            io,
            new PyroError(
              "invalid_argument",
              `missing command: usage is \`pyro ${o.cli.path.join(" ")} ${positional.map((p) => p.toUpperCase()).join(" ")} -- COMMAND...\``,
              `see \`pyro ${o.cli.path.join(" ")} --help\``,
            ),
            json,
          );
          return;
        }
        if (rest && rest.length > 0) input[o.cli.rest] = rest;
      }
      for (const field of Object.keys(shape)) {
        const key = cliFieldName(field, shape[field]!).replace(/_([a-z])/g, (_, c: string) =>
          c.toUpperCase(),
        );
        if (o.cli.fieldFlags?.[field]) continue;
        if (opts[key] !== undefined && !positional.includes(field)) input[field] = opts[key];
      }
      try {
        Object.assign(input, o.cli.fromFlags?.(opts));
      } catch (e) {
        reportError(io, e, json);
        return;
      }
      const progress = progressPrinter(io.stderr);
      // A command's output goes to our stdout/stderr live, byte for byte, as it comes
      // (plain mode only: with --json, stdout is the one JSON document of the result).
      // `service logs --follow` streams the same way, until the service ends or ^C.
      const live = !json && (isCommandOp(o) || opts.follow === true);
      // A reader that goes away (`pyro run -- yes | head -1`) ends the command, as SIGPIPE
      // would end a local one, instead of letting it run on to its timeout.
      const pipeGone = new AbortController();
      const onPipeError = (e: NodeJS.ErrnoException) => {
        if (e.code === "EPIPE") pipeGone.abort();
      };
      if (live) io.stdout.on("error", onPipeError);
      const write = (stream: NodeJS.WriteStream) => (chunk: Buffer) => {
        progress.done();
        if (!pipeGone.signal.aborted) stream.write(chunk);
      };
      try {
        // Name fields as this command takes them: ENVIRONMENT, COMMAND, --timeout-seconds.
        const nameOf = (f: string) =>
          positional.includes(f) || f === o.cli.rest
            ? f.toUpperCase()
            : flagOf(shape[f] ? cliFieldName(f, shape[f]) : f);
        // `pyro --remote URL` / PYRO_REMOTE: the same operation on a remote server (src/remote/).
        const remote = remoteUrl((command.optsWithGlobals() as { remote?: string }).remote);
        const result = remote
          ? await invokeRemote(remote, o, input, {
              signal: io.signal,
              cwd: process.cwd(),
              ...(live ? { stdout: write(io.stdout), stderr: write(io.stderr) } : {}),
            })
          : ((await invoke(
              getRuntime(),
              o,
              input,
              {
                signal: live ? AbortSignal.any([io.signal, pipeGone.signal]) : io.signal,
                onProgress: (p) => progress.update(p),
                cwd: process.cwd(),
                ...(live ? { onStdout: write(io.stdout), onStderr: write(io.stderr) } : {}),
              },
              { face: "cli", nameOf },
            )) as Record<string, unknown>);
        progress.done();
        writeResult(io, o, result, json, opts);
      } catch (e) {
        progress.done();
        if (!isPyroError(e) && !(e instanceof Error)) throw e;
        if (pipeGone.signal.aborted && !io.signal.aborted) io.setExitCode(EXIT.sigpipe);
        else reportError(io, e, json);
      }
    });
  }

  // Group commands (`pyro workspace --help`) show one example of each of their commands.
  for (const [key, group] of groups) {
    if (key === "") continue;
    const examples = (OPERATIONS as unknown as Operation[])
      .filter((o) => o.cli.path.join(" ").startsWith(`${key} `))
      .map((o) => `  $ ${o.cli.examples[0]}`);
    if (examples.length) group.addHelpText("after", `\nExamples:\n${examples.join("\n")}\n`);
  }
}

/** Operations that run a guest command (their results carry exit_code and output). */
function isCommandOp(o: Operation): boolean {
  return "exit_code" in o.result.shape && "output_id" in o.result.shape;
}

function writeResult(
  io: CliIo,
  o: Operation,
  result: Record<string, unknown>,
  json: boolean,
  opts: Record<string, unknown>,
): void {
  const isExec = isCommandOp(o);
  if (json) io.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else if (opts.idOnly === true && typeof (result.shell_id ?? result.workspace_id) === "string")
    // The id of what the command made: a shell (`shell open`), else a workspace.
    io.stdout.write(`${result.shell_id ?? result.workspace_id}\n`);
  else if (opts.contentOnly === true && typeof result.content === "string") {
    // `--content-only` (file read, disk read): the bytes and nothing else, for redirection.
    io.stdout.write(Buffer.from(result.content, result.encoding === "base64" ? "base64" : "utf8"));
    const more =
      typeof result.next_offset === "number"
        ? `more follows: --offset ${result.next_offset}`
        : result.truncated === true
          ? "cut at --max-bytes"
          : undefined;
    if (more && process.env.PYRO_QUIET !== "1") io.stderr.write(`[pyro] ${more}\n`);
  } else if (isExec) {
    // The output itself was streamed as it came; only the summary line is left.
    if (process.env.PYRO_QUIET !== "1") io.stderr.write(`${renderResult(o.name, result)}\n`);
  } else if (o.name === "output_read") {
    // The page's bytes, exact (a base64 page is decoded), so pages concatenate to the stream.
    io.stdout.write(Buffer.from(String(result.data), result.encoding === "base64" ? "base64" : "utf8"));
    if (!result.eof && process.env.PYRO_QUIET !== "1")
      io.stderr.write(
        `[pyro] bytes ${result.offset}-${result.next_offset} of ${result.total_bytes}; next page: pyro output read ${result.output_id} --stream ${result.stream} --offset ${result.next_offset}\n`,
      );
  } else {
    // On a terminal (NO_COLOR unset), the marks that say yes or no are green and red.
    const c = colourOn(io.stdout);
    const text = renderResult(o.name, result).replace(
      /^( {2})([✓✗])/gm,
      (_m, sp: string, mark: string) => `${sp}${paint(c, mark === "✓" ? "32" : "31", mark)}`,
    );
    io.stdout.write(`${text}\n`);
  }
  const note = json ? undefined : sessionNote(o.name, result);
  if (note && process.env.PYRO_QUIET !== "1") io.stderr.write(`${note}\n`);
  if (isExec) io.setExitCode(Number(result.exit_code));
}
