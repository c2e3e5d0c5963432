import { posix } from "node:path";
import { FILE_LIMITS } from "../contract/defaults.js";
import { PyroError } from "../core/errors.js";
import { commitStaged, discardStaged, isText, pathExists, readFileBytes, writeFileBytes } from "./files.js";
import { type Guest, relToWorkspace, workspacePath } from "./guest.js";

/**
 * `workspace patch apply`: a unified diff (plain `diff -u` or `git diff` output) applied
 * all-or-nothing. Parsing and hunk matching are pure functions here (unit-tested); the
 * guest only reads the files and, once every hunk of every file applied in memory, takes
 * the new contents staged beside their targets and renames them in one last exec.
 */

export interface Hunk {
  header: string;
  oldStart: number;
  oldLines: number;
  newStart: number;
  newLines: number;
  /** Lines with their marker: " ctx", "-old", "+new"; `noEol*`: "\ No newline at end of file". */
  lines: string[];
  oldNoEol: boolean;
  newNoEol: boolean;
}

export interface FilePatch {
  /** Path relative to /workspace (after stripping), or null for /dev/null. */
  oldPath: string | null;
  newPath: string | null;
  hunks: Hunk[];
  newMode?: string;
}

function stripPath(raw: string, strip: number): string | null {
  let p = raw.replace(/\t.*$/, "");
  if (p.startsWith('"') && p.endsWith('"')) p = JSON.parse(p) as string;
  if (p === "/dev/null") return null;
  const parts = p.split("/").filter((c) => c !== "");
  if (parts.length <= strip)
    throw new PyroError(
      "invalid_argument",
      `patch path ${JSON.stringify(raw)} has fewer than ${strip + 1} components`,
      ["pass ", { option: "strip", value: 0 }, " for paths without an a/ b/ prefix"],
    );
  return parts.slice(strip).join("/");
}

/** Parses a unified diff into per-file patches. Throws on what it cannot apply. */
export function parsePatch(text: string, strip = 1): FilePatch[] {
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  const files: FilePatch[] = [];
  let cur: FilePatch | undefined;
  let gitMode: string | undefined;
  let i = 0;
  while (i < lines.length) {
    const l = lines[i]!;
    if (l.startsWith("diff --git ")) {
      gitMode = undefined;
      cur = undefined;
      i++;
      continue;
    }
    if (/^(new file mode|new mode) /.test(l)) {
      gitMode = l.split(" ").pop();
      i++;
      continue;
    }
    if (
      /^(rename from|rename to|copy from|copy to) /.test(l) ||
      l.startsWith("GIT binary patch") ||
      /^Binary files .* differ$/.test(l)
    )
      throw new PyroError(
        "invalid_argument",
        `patch line ${i + 1} (${JSON.stringify(l.slice(0, 80))}) is a rename, copy or binary change, which patch apply does not support`,
        [
          "write binary files with ",
          { op: "workspace_file_write" },
          ", and make the patch with `git diff --no-renames`",
        ],
      );
    if (l.startsWith("--- ") && lines[i + 1]?.startsWith("+++ ")) {
      cur = {
        oldPath: stripPath(l.slice(4), strip),
        newPath: stripPath(lines[i + 1]!.slice(4), strip),
        hunks: [],
        ...(gitMode ? { newMode: gitMode } : {}),
      };
      files.push(cur);
      i += 2;
      continue;
    }
    const m = /^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@/.exec(l);
    if (m) {
      if (!cur)
        throw new PyroError("invalid_argument", `patch line ${i + 1}: a hunk before any ---/+++ file header`);
      const h: Hunk = {
        header: m[0],
        oldStart: Number(m[1]),
        oldLines: m[2] === undefined ? 1 : Number(m[2]),
        newStart: Number(m[3]),
        newLines: m[4] === undefined ? 1 : Number(m[4]),
        lines: [],
        oldNoEol: false,
        newNoEol: false,
      };
      i++;
      let o = 0;
      let n = 0;
      while (i < lines.length && (o < h.oldLines || n < h.newLines || lines[i]?.startsWith("\\"))) {
        const x = lines[i]!;
        if (x.startsWith("\\")) {
          const prev = h.lines[h.lines.length - 1]?.[0];
          if (prev === "-" || prev === " ") h.oldNoEol = true;
          if (prev === "+" || prev === " ") h.newNoEol = true;
          i++;
          continue;
        }
        const c = x === "" ? " " : x[0];
        if (c === " ") {
          o++;
          n++;
        } else if (c === "-") o++;
        else if (c === "+") n++;
        else break;
        h.lines.push(x === "" ? " " : x);
        i++;
      }
      if (o !== h.oldLines || n !== h.newLines)
        throw new PyroError(
          "invalid_argument",
          `patch hunk ${h.header} of ${cur.newPath ?? cur.oldPath} is truncated or malformed (expected ${h.oldLines} old and ${h.newLines} new lines)`,
          "pass the complete diff text",
        );
      cur.hunks.push(h);
      continue;
    }
    i++;
  }
  if (files.length === 0)
    throw new PyroError(
      "invalid_argument",
      "the patch has no file changes (no ---/+++ headers)",
      "pass unified diff text, e.g. the output of `git diff`",
    );
  return files;
}

export class HunkError extends Error {
  constructor(
    readonly index: number,
    readonly hunk: Hunk,
    readonly detail: string,
  ) {
    super(detail);
  }
}

/** Splits text into lines and whether it ends with a newline. */
function splitText(t: string): { lines: string[]; eol: boolean } {
  if (t === "") return { lines: [], eol: true };
  const eol = t.endsWith("\n");
  const lines = (eol ? t.slice(0, -1) : t).split("\n");
  return { lines, eol };
}

/**
 * Applies hunks to a file's text, each at its stated line or the nearest offset where its
 * context and removed lines match exactly (no fuzz). Throws HunkError naming the hunk.
 */
export function applyHunks(text: string, hunks: Hunk[]): string {
  const { lines, eol: startEol } = splitText(text);
  let eol = startEol;
  const out: string[] = [];
  let pos = 0; // next unconsumed line of the original
  let delta = 0;
  hunks.forEach((h, idx) => {
    const old = h.lines.filter((l) => l[0] !== "+").map((l) => l.slice(1));
    const neu = h.lines.filter((l) => l[0] !== "-").map((l) => l.slice(1));
    const want = Math.max(0, h.oldLines === 0 ? h.oldStart : h.oldStart - 1);
    const matches = (at: number) =>
      at >= pos && at + old.length <= lines.length && old.every((l, k) => lines[at + k] === l);
    let at = -1;
    const guess = want + delta;
    for (let off = 0; off <= lines.length; off++) {
      if (matches(guess - off)) {
        at = guess - off;
        break;
      }
      if (matches(guess + off)) {
        at = guess + off;
        break;
      }
      if (guess - off < pos && guess + off > lines.length) break;
    }
    if (at < 0) {
      const near = Math.min(Math.max(guess, 0), Math.max(lines.length - 1, 0));
      const firstBad = old.findIndex((l, k) => lines[near + k] !== l);
      const detail =
        old.length === 0
          ? `line ${guess + 1} is past the end of the file (${lines.length} lines)`
          : firstBad >= 0 && near + firstBad < lines.length
            ? `at line ${near + firstBad + 1} expected ${JSON.stringify(old[firstBad])} but the file has ${JSON.stringify(lines[near + firstBad])}`
            : `its ${old.length} context/removed lines were not found anywhere in the file`;
      throw new HunkError(idx, h, detail);
    }
    out.push(...lines.slice(pos, at), ...neu);
    pos = at + old.length;
    delta = at - want;
    if (pos === lines.length) {
      if (h.newNoEol) eol = false;
      else if (h.oldNoEol) eol = true;
    }
  });
  out.push(...lines.slice(pos));
  if (out.length === 0) return "";
  return out.join("\n") + (eol ? "\n" : "");
}

export async function applyPatch(
  g: Guest,
  input: { patch: string; strip: number; check: boolean },
  signal?: AbortSignal,
) {
  const files = parsePatch(input.patch, input.strip);
  type Planned = {
    rel: string;
    path: string;
    content: Buffer | null;
    mode?: string | undefined;
    created: boolean;
  };
  const planned: Planned[] = [];
  let added = 0;
  let removed = 0;
  for (const f of files) {
    const rel = (f.newPath ?? f.oldPath)!;
    const path = workspacePath(rel, "patch path");
    const creating = f.oldPath === null;
    let before = "";
    if (creating && (await pathExists(g, path, signal)))
      throw new PyroError(
        "invalid_argument",
        `the patch creates ${rel}, which already exists in the workspace; nothing was changed`,
        ["was the patch applied already? Check with ", { op: "workspace_diff" }],
      );
    if (!creating) {
      const b = await readFileBytes(
        g,
        workspacePath(f.oldPath!, "patch path"),
        FILE_LIMITS.writeMax,
        "patch path",
        f.oldPath!,
        signal,
      );
      if (!isText(b))
        throw new PyroError("invalid_argument", `patch target ${JSON.stringify(f.oldPath)} is binary`);
      before = b.toString("utf8");
    }
    let after: string;
    try {
      after = applyHunks(before, f.hunks);
    } catch (e) {
      if (!(e instanceof HunkError)) throw e;
      throw new PyroError(
        "invalid_argument",
        `hunk #${e.index + 1} (${e.hunk.header}) of ${rel} does not apply: ${e.detail}; nothing was changed`,
        "read the file again and make the patch against its current content",
      );
    }
    for (const h of f.hunks)
      for (const l of h.lines) {
        if (l[0] === "+") added++;
        else if (l[0] === "-") removed++;
      }
    const deleting = f.newPath === null;
    if (deleting && after !== "")
      throw new PyroError(
        "invalid_argument",
        `the patch deletes ${rel} but its hunks do not remove all of its content; nothing was changed`,
      );
    planned.push({
      rel: posix.normalize(relToWorkspace(path)),
      path,
      content: deleting ? null : Buffer.from(after, "utf8"),
      mode: f.newMode ? f.newMode.slice(-3) : undefined,
      created: creating,
    });
  }
  const seen = new Set<string>();
  for (const p of planned) {
    if (seen.has(p.path))
      throw new PyroError("invalid_argument", `the patch changes ${p.rel} twice; pass one diff per file`);
    seen.add(p.path);
  }
  const result = {
    workspace_id: g.workspaceId,
    applied: !input.check,
    files: planned.map((p) => ({
      path: p.rel,
      status:
        p.content === null ? ("deleted" as const) : p.created ? ("added" as const) : ("modified" as const),
    })),
    lines_added: added,
    lines_removed: removed,
  };
  if (input.check) return result;
  // Stage every new content first (a refusal here leaves the tree as it was), then rename.
  const staged: { tmp: string; target: string }[] = [];
  try {
    for (const p of planned) {
      if (p.content === null) continue;
      const s = await writeFileBytes(
        g,
        p.path,
        p.content,
        { stage: true, mode: p.mode, createParents: true, signal },
        p.rel,
      );
      if (s) staged.push(s);
    }
  } catch (e) {
    await discardStaged(
      g,
      staged.map((s) => s.tmp),
    );
    throw e;
  }
  await commitStaged(g, [
    ...staged.map((s) => ({ op: "mv" as const, ...s })),
    ...planned.filter((p) => p.content === null).map((p) => ({ op: "rm" as const, path: p.path })),
  ]);
  return result;
}
