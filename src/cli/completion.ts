import type { Command } from "commander";
import { PyroError } from "../core/errors.js";

/**
 * `pyro completion bash|zsh|fish`: a completion script for the command tree as this build
 * has it (every command, subcommand and flag, read from commander), so it cannot drift from
 * the commands. Words after `--` are the guest command's and are left to the shell's default.
 */

interface Node {
  /** "workspace shell open"; "" for pyro itself */
  path: string;
  subcommands: string[];
  flags: string[];
}

function walk(cmd: Command, path: string[], out: Node[]): void {
  const subs = cmd.commands.filter((c) => c.name() !== "help");
  const flags = cmd.options.filter((o) => !o.hidden && o.long).map((o) => o.long!);
  out.push({ path: path.join(" "), subcommands: subs.map((c) => c.name()), flags: [...flags, "--help"] });
  for (const c of subs) walk(c, [...path, c.name()], out);
}

function bash(nodes: Node[]): string {
  const cases = nodes
    .map((n) => `    ${JSON.stringify(n.path)}) words="${[...n.subcommands, ...n.flags].join(" ")}" ;;`)
    .join("\n");
  const commands = nodes.map((n) => n.path).filter(Boolean);
  return `# pyro completion for bash (and zsh through bashcompinit): source <(pyro completion bash)
_pyro() {
  COMPREPLY=()
  local cur="\${COMP_WORDS[COMP_CWORD]}" path="" i w cand
  local known="|${commands.join("|")}|"
  # The command path so far: the words that name commands (flags and their values skipped).
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    [[ "$w" == "--" ]] && return 0 # the guest command's words: the shell's own completion
    [[ "$w" == -* ]] && continue
    cand="\${path:+$path }$w"
    [[ "$known" == *"|$cand|"* ]] && path="$cand"
  done
  local words=""
  case "$path" in
${cases}
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o default -F _pyro pyro
`;
}

function zsh(nodes: Node[]): string {
  return `# pyro completion for zsh: source <(pyro completion zsh)
autoload -U +X bashcompinit && bashcompinit
${bash(nodes)}`;
}

function fish(nodes: Node[]): string {
  const commands = nodes.map((n) => n.path).filter(Boolean);
  const lines = [
    "# pyro completion for fish: pyro completion fish > ~/.config/fish/completions/pyro.fish",
    "function __pyro_path",
    "    set -l path",
    "    for w in (commandline -opc)[2..-1]",
    '        test "$w" = "--"; and return 1',
    "        string match -q -- '-*' $w; and continue",
    `        contains -- (string join ' ' $path $w) ${commands.map((c) => `'${c}'`).join(" ")}; and set path $path $w`,
    "    end",
    "    string join ' ' $path",
    "end",
    "function __pyro_at",
    "    set -l p (__pyro_path); or return 1",
    '    test "$p" = "$argv[1]"',
    "end",
    "complete -c pyro -f",
  ];
  for (const n of nodes) {
    const cond = `__pyro_at '${n.path}'`;
    if (n.subcommands.length) lines.push(`complete -c pyro -n "${cond}" -a '${n.subcommands.join(" ")}'`);
    for (const f of n.flags) lines.push(`complete -c pyro -n "${cond}" -l ${f.slice(2)}`);
  }
  return `${lines.join("\n")}\n`;
}

export function completionScript(program: Command, shell: string): string {
  const nodes: Node[] = [];
  walk(program, [], nodes);
  if (shell === "bash") return bash(nodes);
  if (shell === "zsh") return zsh(nodes);
  if (shell === "fish") return fish(nodes);
  throw new PyroError(
    "invalid_argument",
    `no completion for the shell ${JSON.stringify(shell)}`,
    "use `pyro completion bash`, `pyro completion zsh` or `pyro completion fish`",
  );
}
