/**
 * "Did you mean" for names a caller got wrong (parameters, flags, operations). Pure, so the
 * three faces word an unknown name the same way.
 */

/** Levenshtein distance, case-insensitive; "_" and "-" count as the same character. */
export function editDistance(a: string, b: string): number {
  const x = a.toLowerCase().replace(/-/g, "_");
  const y = b.toLowerCase().replace(/-/g, "_");
  let prev = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const cur = [i];
    for (let j = 1; j <= y.length; j++)
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (x[i - 1] === y[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[y.length]!;
}

/**
 * The candidate closest to `name`, or undefined when none is plausibly meant. A candidate that
 * starts or ends with the name (`timeout` → `timeout_seconds`, `id` → `workspace_id`) counts
 * as close; otherwise at most a third of the longer name may differ.
 */
export function nearest(name: string, candidates: readonly string[]): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/^-+/, "").replace(/-/g, "_");
  const n = norm(name);
  if (n.length === 0) return undefined;
  let best: { c: string; score: number } | undefined;
  for (const c of candidates) {
    const cn = norm(c);
    let score = editDistance(n, cn);
    const affix = n.length >= 2 && (cn.startsWith(n) || cn.endsWith(n) || n.startsWith(cn));
    if (affix) score = Math.min(score, 1);
    else if (score > Math.max(1, Math.floor(Math.max(n.length, cn.length) / 3))) continue;
    if (!best || score < best.score) best = { c, score };
  }
  return best?.c;
}

/**
 * One line for names that do not exist: "unknown parameter `timeout`; did you mean
 * `timeout_seconds`? valid: `command`, ...". `valid` is listed in the caller's own spelling.
 */
export function unknownNames(kind: string, given: readonly string[], valid: readonly string[]): string {
  const list = valid.length ? valid.map((v) => `\`${v}\``).join(", ") : "none";
  const parts = given.map((g) => {
    const near = nearest(g, valid);
    return `unknown ${kind} \`${g}\`${near ? `; did you mean \`${near}\`?` : ""}`;
  });
  // "…; did you mean `x`? unknown parameter `y`; valid: …" — no ";" right after a "?".
  let out = "";
  for (const p of [...parts, `valid: ${list}`])
    out += out === "" ? p : `${out.endsWith("?") ? " " : "; "}${p}`;
  return out;
}
