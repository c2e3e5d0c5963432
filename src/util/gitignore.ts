/**
 * gitignore patterns, matched as git matches them (gitignore(5)), for paths relative to one
 * root: workspace diff, summary and changed-only export leave out what the workspace's own
 * `.gitignore` files ignore (the `__pycache__/` and build output its tests made), plus the
 * caller's explicit exclude patterns. A small matcher of our own rather than a dependency:
 * the rules are few and the tests (test/unit/gitignore.test.ts) pin each of them.
 *
 * - A blank line or one starting with `#` is nothing; `\#` and `\!` start a literal `#`/`!`;
 *   trailing spaces are dropped unless escaped with a backslash.
 * - `!` re-includes what an earlier pattern ignored, except below an ignored directory (git
 *   does not look inside one).
 * - A trailing `/` matches only directories.
 * - A pattern with a `/` at its start or middle is relative to its `.gitignore`'s directory;
 *   one without matches a name at any depth below it.
 * - `*` and `?` never match `/`; `[...]` is a bracket expression (`!`/`^` negate); `**/ ` at
 *   the start and `; /**\/` in the middle match any number of directories, `/**` at the end
 *   everything inside; any other `**` is a `*`.
 * - The last matching pattern wins; a deeper `.gitignore` overrides its parents, and the
 *   exclude patterns (given last) override them all.
 */

interface Rule {
  /** The directory the pattern is relative to ("" for the root). */
  base: string;
  re: RegExp;
  negate: boolean;
  dirOnly: boolean;
}

const POSIX_CLASSES: Record<string, string> = {
  alnum: "a-zA-Z0-9",
  alpha: "a-zA-Z",
  digit: "0-9",
  lower: "a-z",
  upper: "A-Z",
  space: " \\t\\n\\r\\f\\v",
  xdigit: "0-9a-fA-F",
  punct: "!-\\/:-@\\[-`{-~",
};

const escapeRe = (c: string) => c.replace(/[\\^$.*+?()[\]{}|/-]/g, "\\$&");

/** A bracket expression starting at pat[i] === "[": its regex and the index after it. */
function bracket(pat: string, i: number): { re: string; end: number } | undefined {
  let j = i + 1;
  let negate = false;
  if (pat[j] === "!" || pat[j] === "^") {
    negate = true;
    j++;
  }
  let body = "";
  let first = true;
  for (; j < pat.length; j++) {
    const c = pat[j]!;
    if (c === "]" && !first) return { re: `[${negate ? "^" : ""}${body}${negate ? "/" : ""}]`, end: j + 1 };
    first = false;
    if (c === "[" && pat[j + 1] === ":") {
      const close = pat.indexOf(":]", j + 2);
      const cls = close > 0 ? POSIX_CLASSES[pat.slice(j + 2, close)] : undefined;
      if (cls !== undefined) {
        body += cls;
        j = close + 1;
        continue;
      }
    }
    if (c === "\\" && j + 1 < pat.length) {
      body += escapeRe(pat[++j]!);
      continue;
    }
    // A range keeps its dash; anything else is literal.
    body += c === "-" && body !== "" && pat[j + 1] !== "]" ? "-" : escapeRe(c);
  }
  return undefined; // no closing bracket: the "[" is literal
}

/** The regex body of a glob (no anchors): `*`, `?`, `[...]`, `**`, `\x`. */
function globBody(pat: string): string {
  let out = "";
  for (let i = 0; i < pat.length; i++) {
    const c = pat[i]!;
    if (c === "*") {
      if (pat[i + 1] === "*") {
        const atStart = i === 0;
        const before = atStart || pat[i - 1] === "/";
        const after = pat[i + 2];
        if (before && after === "/") {
          // `**/`: zero or more directories
          out += "(?:.*/)?";
          i += 2;
          continue;
        }
        if (before && after === undefined && !atStart) {
          // trailing `/**`: everything inside (the slash is already in `out`)
          out += ".*";
          i += 1;
          continue;
        }
        while (pat[i + 1] === "*") i++;
      }
      out += "[^/]*";
    } else if (c === "?") out += "[^/]";
    else if (c === "[") {
      const b = bracket(pat, i);
      if (b) {
        out += b.re;
        i = b.end - 1;
      } else out += "\\[";
    } else if (c === "\\" && i + 1 < pat.length) out += escapeRe(pat[++i]!);
    else out += escapeRe(c);
  }
  return out;
}

/** One line of a .gitignore (or one exclude pattern) as a rule, or undefined for none. */
export function parseIgnoreLine(line: string, base = ""): Rule | undefined {
  let p = line.replace(/\r$/, "");
  // Trailing spaces go unless the last is escaped ("foo\ " keeps one space).
  p = p.replace(/(?<!\\)( +)$/, "");
  if (p === "" || p.startsWith("#")) return undefined;
  let negate = false;
  if (p.startsWith("!")) {
    negate = true;
    p = p.slice(1);
  } else if (p.startsWith("\\!") || p.startsWith("\\#")) p = p.slice(1);
  let dirOnly = false;
  if (p.endsWith("/") && !p.endsWith("\\/")) {
    dirOnly = true;
    p = p.replace(/\/+$/, "");
  }
  if (p === "") return undefined;
  const anchored = p.includes("/");
  if (p.startsWith("/")) p = p.slice(1);
  const body = globBody(p);
  return {
    base,
    re: new RegExp(`^${anchored ? "" : "(?:.*/)?"}${body}$`),
    negate,
    dirOnly,
  };
}

/** The rules of all the `.gitignore` files given and then the exclude patterns. */
export class IgnoreRules {
  private readonly rules: Rule[];

  /**
   * `files`: each `.gitignore`'s directory (relative to the root, "" for the root itself)
   * and text; `exclude`: patterns relative to the root, applied after every file.
   */
  constructor(files: readonly { dir: string; text: string }[], exclude: readonly string[] = []) {
    // Parents before children: a deeper file's rules come later and so win.
    const sorted = [...files].sort(
      (a, b) => depth(a.dir) - depth(b.dir) || (a.dir < b.dir ? -1 : a.dir > b.dir ? 1 : 0),
    );
    this.rules = [];
    for (const f of sorted)
      for (const line of f.text.split("\n")) {
        const r = parseIgnoreLine(line, f.dir);
        if (r) this.rules.push(r);
      }
    for (const e of exclude) {
      const r = parseIgnoreLine(e, "");
      if (r) this.rules.push(r);
    }
  }

  /** No rules at all: nothing is ever ignored. */
  get empty(): boolean {
    return this.rules.length === 0;
  }

  /** Whether `path` (relative, `/`-separated) is ignored; `isDir` for the path itself. */
  ignores(path: string, isDir: boolean): boolean {
    if (this.rules.length === 0) return false;
    const parts = path.split("/");
    // A path inside an ignored directory is ignored whatever matches it (git never looks in).
    for (let i = 1; i <= parts.length; i++) {
      const last = i === parts.length;
      if (this.matches(parts.slice(0, i).join("/"), last ? isDir : true)) return true;
    }
    return false;
  }

  private matches(path: string, isDir: boolean): boolean {
    let ignored = false;
    for (const r of this.rules) {
      if (r.dirOnly && !isDir) continue;
      let rel: string;
      if (r.base === "") rel = path;
      else if (path.startsWith(`${r.base}/`)) rel = path.slice(r.base.length + 1);
      else continue;
      if (r.re.test(rel)) ignored = !r.negate;
    }
    return ignored;
  }
}

const depth = (dir: string) => (dir === "" ? 0 : dir.split("/").length);
