import { posix } from "node:path";
import { Parser, type ReadEntry } from "tar";
import { PyroError } from "../core/errors.js";

/**
 * Reads a layer's tar headers as it streams in (node-tar's Parser, which also undoes gzip)
 * and records what the unpacker will be asked to do. umoci applies layers safely by itself
 * (paths are resolved inside the rootfs), but an image that tries to write outside its root
 * is hostile, and saying so beats silently producing a different tree: such a layer is
 * refused, naming the entry.
 */
export interface LayerFacts {
  /** Normalised paths of symlinks this layer creates. */
  symlinks: string[];
  /** Every path this layer writes (normalised, no leading "./" or "/"). */
  paths: string[];
  /** Whiteouts: paths removed, and directories made opaque. */
  removed: string[];
  opaque: string[];
}

function clean(raw: string): string {
  return raw.replace(/^(\.\/)+/, "").replace(/\/+$/, "");
}

export function unsafeReason(raw: string): string | undefined {
  if (raw.startsWith("/")) return "is an absolute path";
  if (raw.split("/").includes("..")) return "climbs out with ..";
  return undefined;
}

export class LayerScanner {
  private readonly parser: Parser;
  readonly facts: LayerFacts = { symlinks: [], paths: [], removed: [], opaque: [] };
  private problem: PyroError | undefined;
  private parseError: Error | undefined;
  private readonly done: Promise<void>;

  constructor(private readonly layer: string) {
    this.parser = new Parser({ strict: true });
    this.parser.on("entry", (e: ReadEntry) => {
      this.entry(e);
      e.resume();
    });
    this.done = new Promise((resolve) => {
      this.parser.on("end", () => resolve());
      this.parser.on("error", (err: Error) => {
        this.parseError ??= err;
        resolve();
      });
      this.parser.on("warn", (_code: string, msg: string | Error) => {
        this.parseError ??= msg instanceof Error ? msg : new Error(msg);
      });
    });
  }

  private refuse(
    path: string,
    why: string,
    hint = "this image tries to write outside its root filesystem; pyro refuses it (nothing was unpacked)",
  ): void {
    this.problem ??= new PyroError(
      "image_layer_unsafe",
      `layer ${this.layer.slice(0, 19)}… entry ${JSON.stringify(path.slice(0, 300))} ${why}`,
      hint,
    );
  }

  private entry(e: ReadEntry): void {
    if (this.problem) return;
    const raw = e.path;
    const why = unsafeReason(raw);
    if (why) {
      this.refuse(raw, why);
      return;
    }
    const p = clean(raw);
    if (!p || p === ".") return;
    const base = posix.basename(p);
    const dir = posix.dirname(p);
    if (base === ".wh..wh..opq") {
      this.facts.opaque.push(dir === "." ? "" : dir);
      return;
    }
    if (base.startsWith(".wh.")) {
      const target = base.slice(4);
      // `.wh.`, `.wh..`, `.wh...` name no entry of the directory: joined to it they are the
      // directory itself or its parent (up to the root), which no real layer removes this way
      // (that is what `.wh..wh..opq` and a whiteout in the parent are for).
      if (target === "" || target === "." || target === "..") {
        this.refuse(
          raw,
          `is a whiteout of ${JSON.stringify(target)}, which would remove ${target === ".." ? "the parent directory" : "its own directory"}`,
          "this image is crafted to remove what no layer names; pyro refuses it (nothing was unpacked)",
        );
        return;
      }
      this.facts.removed.push(posix.join(dir, target));
      return;
    }
    if (e.type === "Link") {
      const target = e.linkpath ?? "";
      const lwhy = unsafeReason(target);
      if (lwhy) {
        this.refuse(raw, `is a hardlink whose target ${JSON.stringify(target)} ${lwhy}`);
        return;
      }
    }
    // A device node would be created on the host (in the cache) as root: /dev is the
    // runtime's job, and no image needs to ship one.
    if (e.type === "CharacterDevice" || e.type === "BlockDevice") {
      this.refuse(raw, "is a device node");
      return;
    }
    if (e.type === "SymbolicLink") this.facts.symlinks.push(p);
    this.facts.paths.push(p);
  }

  write(chunk: Uint8Array): void {
    if (!this.problem && !this.parseError) this.parser.write(Buffer.from(chunk));
  }

  /** Ends the stream; resolves with the first refusal, or a parse failure. */
  async finish(): Promise<{ problem?: PyroError; parseError?: Error }> {
    this.parser.end();
    await this.done;
    return {
      ...(this.problem ? { problem: this.problem } : {}),
      ...(this.parseError ? { parseError: this.parseError } : {}),
    };
  }
}

/**
 * Across the layers in order: a path written *through* a symlink (a parent component is a
 * symlink created by this or an earlier layer) would land wherever the link points,
 * e.g. `lnk -> /` then `lnk/etc/x`. Registries' layers record real paths, so this only
 * appears in crafted images.
 */
export function checkLayerOrder(layers: { digest: string; facts: LayerFacts }[]): void {
  const links = new Set<string>();
  for (const { digest, facts } of layers) {
    for (const o of facts.opaque)
      for (const l of links) if (o === "" || l.startsWith(`${o}/`)) links.delete(l);
    for (const r of facts.removed)
      for (const l of links) if (l === r || l.startsWith(`${r}/`)) links.delete(l);
    const mine = new Set(facts.symlinks);
    for (const p of facts.paths) {
      let parent = posix.dirname(p);
      while (parent !== "." && parent !== "/") {
        if (links.has(parent) || mine.has(parent))
          throw new PyroError(
            "image_layer_unsafe",
            `layer ${digest.slice(0, 19)}… entry ${JSON.stringify(p.slice(0, 300))} is written through the symlink ${JSON.stringify(parent)}`,
            "this image tries to write outside its root filesystem; pyro refuses it (nothing was unpacked)",
          );
        parent = posix.dirname(parent);
      }
      if (!mine.has(p)) links.delete(p);
    }
    for (const s of facts.symlinks) links.add(s);
  }
}
