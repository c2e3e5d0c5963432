import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { link, mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PyroError } from "../core/errors.js";
import { ignore } from "../util/best-effort.js";
import { readEntryManifest, readJson, readJsonDir, writeJsonAtomic } from "../util/json-store.js";
import { pidAlive, runCapture, which } from "../util/proc.js";
import { clearSetIdArgs } from "../util/set-id.js";
import type { BuildOptions } from "./build.js";
import { withBuildLock } from "./build-lock.js";
import { checkLayerOrder, type LayerFacts, LayerScanner } from "./layer-scan.js";
import { type OciRef, parseOciRef } from "./oci-ref.js";
import { type Descriptor, type ImageManifest, RegistryClient, resolveImage } from "./registry.js";
import { duBytes, mkdirInRootfs, type RuntimeConfig, resolveRuntimeConfig } from "./runtime-config.js";

/**
 * OCI images as environments. Layout under the environments dir:
 *   oci/blobs/sha256/<hex>   content-addressed blobs (layers, configs, manifests), shared by
 *                            every image, so a layer two images share is downloaded once;
 *   oci-<hex16>/             one unpacked image per manifest digest: rootfs/ + manifest.json
 *                            (written last, then the directory is renamed into place);
 *   oci/refs/<hex16>.json    which manifest a reference (tag) pointed at when last pulled.
 * A blob is written to a temp file while its sha256 is computed and renamed into place only
 * when the digest matches; layers are read through a tar scanner on the way in and unpacked
 * by umoci (whiteouts, hardlinks, path resolution inside the root) into a temp directory.
 */

export interface ImageEntryManifest {
  kind: "image";
  name: string;
  reference: string;
  digest: string;
  config_digest: string;
  layers: string[];
  runtime: RuntimeConfig;
  image_config: {
    env: string[];
    working_dir: string | null;
    user: string | null;
    entrypoint: string[] | null;
    cmd: string[] | null;
  };
  built_at: string;
  size_bytes: number;
  build_ms: number;
}

export interface RefRecord {
  reference: string;
  digest: string;
  pulled_at: string;
}

export interface PullResult {
  rootfs: string;
  manifest: ImageEntryManifest;
  /** False when the manifest was already unpacked (nothing fetched but the manifest). */
  pulled: boolean;
  bytes_downloaded: number;
  layers_downloaded: number;
  layers_cached: number;
}

const TMP_PREFIX = ".tmp-";
const RECENT_BLOB_MS = 60 * 60_000;
const LAYER_TYPES = new Set([
  "application/vnd.oci.image.layer.v1.tar",
  "application/vnd.oci.image.layer.v1.tar+gzip",
  "application/vnd.docker.image.rootfs.diff.tar.gzip",
  "application/vnd.docker.image.rootfs.diff.tar",
]);

const hex = (digest: string) => digest.slice("sha256:".length);
export const imageEntryName = (digest: string) => `oci-${hex(digest).slice(0, 16)}`;

function mb(n: number): string {
  return `${(n / 1e6).toFixed(1)} MB`;
}

export class OciStore {
  readonly blobsDir: string;
  private readonly refsDir: string;

  constructor(
    private readonly dir: string,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    this.blobsDir = join(dir, "oci", "blobs", "sha256");
    this.refsDir = join(dir, "oci", "refs");
  }

  private refFile(canonical: string): string {
    return join(this.refsDir, `${createHash("sha256").update(canonical).digest("hex").slice(0, 16)}.json`);
  }

  entryPath(digest: string): string {
    return join(this.dir, imageEntryName(digest));
  }

  entry(digest: string): Promise<ImageEntryManifest | undefined> {
    return readEntryManifest<ImageEntryManifest>(this.entryPath(digest), digest);
  }

  /** The locally known image for a reference, without touching the network. */
  async local(name: string): Promise<{ ref: OciRef; manifest: ImageEntryManifest } | undefined> {
    const ref = parseOciRef(name);
    const digest =
      ref.digest ??
      (
        await readJson<RefRecord>(this.refFile(ref.canonical)).catch(
          ignore("no readable ref record: this image is not pulled here"),
        )
      )?.digest;
    const m = digest ? await this.entry(digest) : undefined;
    return m ? { ref, manifest: m } : undefined;
  }

  refs(): Promise<RefRecord[]> {
    return readJsonDir<RefRecord>(
      this.refsDir,
      (r) => !!r.reference && !!r.digest,
      (r) => r.reference,
    );
  }

  /**
   * Pulls `name` (resolving its tag in the registry) and unpacks it unless that manifest is
   * already unpacked. Only blobs missing from the shared blob store are downloaded.
   */
  async pull(name: string, opts: BuildOptions = {}): Promise<PullResult> {
    const ref = parseOciRef(name);
    const started = performance.now();
    const client = new RegistryClient(ref, this.env, opts.signal);
    opts.onProgress?.({ phase: "resolve", message: `resolving ${ref.canonical}` });
    const img = await resolveImage(client);
    const digest = img.manifestDigest;
    const existing = await this.entry(digest);
    // Already unpacked (here, or by a concurrent pull while this one waited for the lock).
    const cached = async (manifest: ImageEntryManifest): Promise<PullResult> => {
      await this.recordRef(ref, digest);
      return {
        rootfs: join(this.entryPath(digest), "rootfs"),
        manifest,
        pulled: false,
        bytes_downloaded: 0,
        layers_downloaded: 0,
        layers_cached: img.manifest.layers.length,
      };
    };
    if (existing) return cached(existing);
    for (const l of img.manifest.layers)
      if (!LAYER_TYPES.has(l.mediaType))
        throw new PyroError(
          "image_unsupported",
          `${ref.canonical}: layer ${l.digest.slice(0, 19)}… has media type ${l.mediaType}, which pyro cannot unpack`,
          "pyro unpacks tar and tar+gzip layers (zstd and foreign layers are not supported)",
        );
    await mkdir(this.blobsDir, { recursive: true });
    const bin = await this.umoci();
    return withBuildLock(
      `${this.entryPath(digest)}.build`,
      async () => {
        const again = await this.entry(digest);
        if (again) return cached(again);
        // Blobs: the manifest as served, the config, the layers. Missing ones are fetched
        // (three at a time), each hashed and scanned on the way in.
        await this.putBlob(digest, img.manifestBytes);
        const configBytes = await this.fetchSmallBlob(client, img.manifest.config);
        const total = img.manifest.layers.reduce((s, l) => s + (l.size || 0), 0);
        let done = 0;
        let downloaded = 0;
        let fetchedLayers = 0;
        let lastReport = 0;
        const report = (force = false) => {
          const now = Date.now();
          if (!force && now - lastReport < 250) return;
          lastReport = now;
          opts.onProgress?.({
            phase: "download",
            message: `pulling ${ref.canonical}: ${mb(done)}/${mb(total)} (${img.manifest.layers.length} layers)`,
          });
        };
        const facts = new Map<string, LayerFacts>();
        const queue = [...new Set(img.manifest.layers.map((l) => l.digest))].map(
          (d) => img.manifest.layers.find((l) => l.digest === d)!,
        );
        const worker = async () => {
          for (let l = queue.shift(); l; l = queue.shift()) {
            const have = await stat(join(this.blobsDir, hex(l.digest))).catch(
              ignore("layer blob not cached: fetch it"),
            );
            const r = await this.fetchLayer(client, l, !have, (n) => {
              done += n;
              if (!have) downloaded += n;
              report();
            });
            if (!have) fetchedLayers++;
            facts.set(l.digest, r);
          }
        };
        await Promise.all([worker(), worker(), worker()]);
        report(true);
        checkLayerOrder(img.manifest.layers.map((l) => ({ digest: l.digest, facts: facts.get(l.digest)! })));

        const entryDir = this.entryPath(digest);
        const tmp = join(this.dir, `${TMP_PREFIX}${imageEntryName(digest)}-${process.pid}`);
        await this.removeTemps(imageEntryName(digest));
        try {
          await mkdir(tmp, { recursive: true });
          opts.onProgress?.({
            phase: "extract",
            message: `unpacking ${img.manifest.layers.length} layers with umoci`,
          });
          await this.unpack(bin, tmp, digest, img.manifest, opts.signal);
          const rootfs = join(tmp, "rootfs");
          await clearSetIdBits(rootfs, opts.signal);
          // The mount point for workspaces, as in every catalog environment.
          await mkdirInRootfs(rootfs, "/workspace");
          const config = JSON.parse(configBytes.toString("utf8")) as {
            config?: {
              Env?: string[];
              WorkingDir?: string;
              User?: string;
              Entrypoint?: string[];
              Cmd?: string[];
            };
          };
          const c = config.config ?? {};
          const image_config = {
            env: c.Env ?? [],
            working_dir: c.WorkingDir || null,
            user: c.User || null,
            entrypoint: c.Entrypoint ?? null,
            cmd: c.Cmd ?? null,
          };
          // Docker creates a missing WorkingDir; so does pyro (never through a symlink).
          if (image_config.working_dir) await mkdirInRootfs(rootfs, image_config.working_dir);
          const manifest: ImageEntryManifest = {
            kind: "image",
            name: ref.canonical,
            reference: ref.canonical,
            digest,
            config_digest: img.manifest.config.digest,
            layers: img.manifest.layers.map((l) => l.digest),
            runtime: await resolveRuntimeConfig(rootfs, image_config),
            image_config,
            built_at: new Date().toISOString(),
            size_bytes: await duBytes(rootfs),
            build_ms: Math.round(performance.now() - started),
          };
          await writeJsonAtomic(join(tmp, "manifest.json"), manifest);
          await rm(entryDir, { recursive: true, force: true });
          await rename(tmp, entryDir);
          await this.recordRef(ref, digest);
          return {
            rootfs: join(entryDir, "rootfs"),
            manifest,
            pulled: true,
            bytes_downloaded: downloaded,
            layers_downloaded: fetchedLayers,
            layers_cached: img.manifest.layers.length - fetchedLayers,
          };
        } catch (e) {
          await rm(tmp, { recursive: true, force: true });
          throw e;
        }
      },
      opts.signal,
    );
  }

  private async recordRef(ref: OciRef, digest: string): Promise<void> {
    const rec: RefRecord = { reference: ref.canonical, digest, pulled_at: new Date().toISOString() };
    await writeJsonAtomic(this.refFile(ref.canonical), rec);
  }

  private async umoci(): Promise<string> {
    const bin = this.env.PYRO_UMOCI || (await which("umoci", this.env));
    if (!bin)
      throw new PyroError(
        "host_dependency_missing",
        "umoci is not installed; it unpacks OCI image layers into a root filesystem",
        "run `sudo scripts/setup-host.sh` (or `apt-get install umoci`)",
      );
    return bin;
  }

  private async putBlob(digest: string, bytes: Buffer): Promise<void> {
    const p = join(this.blobsDir, hex(digest));
    if (await stat(p).catch(ignore("blob not stored yet: write it"))) return;
    const tmp = `${p}.part-${process.pid}`;
    await writeFile(tmp, bytes);
    await rename(tmp, p);
  }

  private async fetchSmallBlob(client: RegistryClient, d: Descriptor): Promise<Buffer> {
    const p = join(this.blobsDir, hex(d.digest));
    const cached = await readFile(p).catch(ignore("small blob not cached: fetch it from the registry"));
    if (cached) return cached;
    const chunks: Uint8Array[] = [];
    let size = 0;
    for await (const c of (await client.blob(d.digest)) as unknown as AsyncIterable<Uint8Array>) {
      size += c.length;
      if (size > 16 * 1024 * 1024)
        throw new PyroError("image_unsupported", `the image config ${d.digest} is larger than 16 MiB`);
      chunks.push(c);
    }
    const bytes = Buffer.concat(chunks);
    const got = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
    if (got !== d.digest) throw digestMismatch(client.ref, d.digest, got, "config");
    await this.putBlob(d.digest, bytes);
    return bytes;
  }

  /**
   * Streams one layer: hash + scan (+ write to a temp file when not cached). A cached layer
   * is only re-scanned from disk: its digest was checked when it was stored.
   */
  private async fetchLayer(
    client: RegistryClient,
    d: Descriptor,
    download: boolean,
    onBytes: (n: number) => void,
  ): Promise<LayerFacts> {
    const p = join(this.blobsDir, hex(d.digest));
    const scanner = new LayerScanner(d.digest);
    if (!download) {
      for await (const c of createReadStream(p, { highWaterMark: 1 << 20 })) {
        scanner.write(c as Buffer);
        onBytes((c as Buffer).length);
      }
      const r = await scanner.finish();
      if (r.problem) throw r.problem;
      return scanner.facts;
    }
    const tmp = `${p}.part-${process.pid}-${Math.random().toString(16).slice(2, 8)}`;
    const hash = createHash("sha256");
    const out = createWriteStream(tmp);
    const closed = new Promise<void>((res, rej) => {
      out.on("close", () => res());
      out.on("error", rej);
    });
    try {
      for await (const c of (await client.blob(d.digest)) as unknown as AsyncIterable<Uint8Array>) {
        hash.update(c);
        scanner.write(c);
        if (!out.write(c)) await new Promise<void>((r) => out.once("drain", () => r()));
        onBytes(c.length);
      }
      out.end();
      await closed;
      const got = `sha256:${hash.digest("hex")}`;
      if (got !== d.digest) throw digestMismatch(client.ref, d.digest, got, "layer");
      const r = await scanner.finish();
      if (r.problem) throw r.problem;
      if (r.parseError)
        throw new PyroError(
          "image_unsupported",
          `${client.ref.canonical}: layer ${d.digest.slice(0, 19)}… is not a readable tar archive: ${r.parseError.message}`,
        );
      await rename(tmp, p);
      return scanner.facts;
    } catch (e) {
      out.destroy();
      await rm(tmp, { force: true });
      throw e;
    }
  }

  /**
   * A private OCI layout holding hardlinks to this image's blobs, then `umoci raw unpack`.
   * umoci checks every blob's digest again while reading.
   */
  private async unpack(
    bin: string,
    tmp: string,
    digest: string,
    manifest: ImageManifest,
    signal?: AbortSignal,
  ): Promise<void> {
    const layout = join(tmp, "layout");
    const blobs = join(layout, "blobs", "sha256");
    await mkdir(blobs, { recursive: true });
    for (const d of new Set([digest, manifest.config.digest, ...manifest.layers.map((l) => l.digest)]))
      await link(join(this.blobsDir, hex(d)), join(blobs, hex(d)));
    await writeFile(join(layout, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
    const size = (await stat(join(blobs, hex(digest)))).size;
    await writeFile(
      join(layout, "index.json"),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [
          {
            mediaType: "application/vnd.oci.image.manifest.v1+json",
            digest,
            size,
            annotations: { "org.opencontainers.image.ref.name": "pyro" },
          },
        ],
      }),
    );
    const rootless = typeof process.getuid === "function" && process.getuid() !== 0;
    const args = [
      "raw",
      "unpack",
      ...(rootless ? ["--rootless"] : []),
      "--image",
      `${layout}:pyro`,
      join(tmp, "rootfs"),
    ];
    const r = await runCapture(bin, args, { timeoutMs: 30 * 60_000, ...(signal ? { signal } : {}) });
    await rm(layout, { recursive: true, force: true });
    if (signal?.aborted) throw new PyroError("cancelled", "image pull cancelled");
    if (r.exitCode !== 0)
      throw new PyroError(
        "environment_build_failed",
        `umoci could not unpack the image (exit ${r.exitCode}): ${r.stderr.trim().split("\n").slice(-3).join(" | ")}`,
      );
  }

  private async removeTemps(entry: string): Promise<void> {
    for (const n of await readdir(this.dir).catch(() => [] as string[])) {
      if (!n.startsWith(`${TMP_PREFIX}${entry}-`)) continue;
      const pid = Number(/-(\d+)$/.exec(n)?.[1]);
      if (pid !== process.pid && pidAlive(pid)) continue;
      await rm(join(this.dir, n), { recursive: true, force: true });
    }
  }

  /**
   * Unpacked images no reference points at (or all, with `all`), then blobs no remaining
   * image uses, and half-written blob files of dead processes.
   */
  async prune(
    opts: { all?: boolean; keepDigests?: Set<string> } = {},
  ): Promise<{ removed: string[]; bytes_freed: number }> {
    const removed: string[] = [];
    let freed = 0;
    const refs = await this.refs();
    const keep = new Set<string>(opts.all ? [] : [...refs.map((r) => r.digest), ...(opts.keepDigests ?? [])]);
    if (opts.all) await rm(this.refsDir, { recursive: true, force: true });
    const keptBlobs = new Set<string>();
    for (const n of await readdir(this.dir).catch(() => [] as string[])) {
      if (!n.startsWith("oci-") || n.endsWith(".lock")) continue;
      const m = await readJson<ImageEntryManifest>(join(this.dir, n, "manifest.json")).catch(
        ignore("image prune: an entry without a readable manifest keeps no blob"),
      );
      if (m && keep.has(m.digest)) {
        for (const d of [m.digest, m.config_digest, ...m.layers]) keptBlobs.add(hex(d));
        continue;
      }
      freed += m?.size_bytes ?? (await duBytes(join(this.dir, n)).catch(() => 0));
      await rm(join(this.dir, n), { recursive: true, force: true });
      removed.push(n);
    }
    for (const n of await readdir(this.blobsDir).catch(() => [] as string[])) {
      const part = /\.part-(\d+)/.exec(n);
      if (part && pidAlive(Number(part[1])) && Number(part[1]) !== process.pid) continue;
      if (!part && keptBlobs.has(n)) continue;
      const p = join(this.blobsDir, n);
      const st = await stat(p).catch(
        ignore("image prune: a blob that cannot be stat-ed is not kept as recent"),
      );
      // A blob a pull in another process fetched a moment ago belongs to no image *yet*:
      // a plain prune leaves recent blobs alone (the next prune takes them if still unused).
      if (!opts.all && st && Date.now() - st.mtimeMs < RECENT_BLOB_MS) continue;
      freed += st?.size ?? 0;
      await rm(p, { force: true });
      removed.push(`blob sha256:${n.slice(0, 12)}`);
    }
    return { removed, bytes_freed: freed };
  }
}

/**
 * An image author's set-uid or set-gid file must not sit in a cache other users can reach
 * (the shared `/var/cache/pyro` is world-readable, and so is the EROFS image packed from this
 * tree later): cleared before the tree is renamed into place, as seeds are. A guest runs as
 * root or as the image's user anyway; set-id programs buy it nothing pyro means to give.
 */
async function clearSetIdBits(rootfs: string, signal?: AbortSignal): Promise<void> {
  const r = await runCapture("find", clearSetIdArgs(rootfs), {
    timeoutMs: 600_000,
    ...(signal ? { signal } : {}),
  });
  if (signal?.aborted) throw new PyroError("cancelled", "image pull cancelled");
  if (r.exitCode !== 0)
    throw new PyroError(
      "environment_build_failed",
      `clearing set-id bits in the unpacked image failed (exit ${r.exitCode ?? r.signal}): ${(r.stderr || r.stdout).trim().split("\n").slice(-3).join(" | ")}`,
    );
}

function digestMismatch(ref: OciRef, want: string, got: string, what: string): PyroError {
  return new PyroError(
    "image_digest_mismatch",
    `${ref.canonical}: the ${what} blob served for ${want} hashes to ${got}`,
    "the registry (or something between) served corrupt content; nothing was unpacked. Try again, or push the image again",
  );
}
