import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { PyroError } from "../core/errors.js";
import { apiHost, type OciRef, registryScheme } from "./oci-ref.js";

/**
 * The registry side of `env pull`: the distribution spec's GET manifest and GET blob, with
 * the token flow every public registry uses (401 + `WWW-Authenticate: Bearer realm=…`, then
 * GET realm?service&scope, with Basic credentials from the user's Docker config when it has
 * some). Written over fetch rather than a library: these are the two calls and one auth
 * dance pyro needs, and byte progress plus digest checks must see the stream anyway
 * (@snyk/docker-registry-v2-client has no progress callback and does not verify digests).
 */

export const MEDIA = {
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
} as const;

const ACCEPT = [MEDIA.ociIndex, MEDIA.ociManifest, MEDIA.dockerList, MEDIA.dockerManifest].join(", ");

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os?: string; architecture?: string; variant?: string };
}

export interface ImageManifest {
  schemaVersion: number;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
}

export interface Fetched {
  bytes: Buffer;
  digest: string;
  mediaType: string;
}

function sha256(b: Uint8Array): string {
  return `sha256:${createHash("sha256").update(b).digest("hex")}`;
}

/** `user:password` for a registry from $DOCKER_CONFIG/config.json or ~/.docker/config.json. */
export async function dockerCredentials(
  registry: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string | undefined> {
  const dir = env.DOCKER_CONFIG || join(env.HOME || homedir(), ".docker");
  let cfg: { auths?: Record<string, { auth?: string; username?: string; password?: string }> };
  try {
    cfg = JSON.parse(await readFile(join(dir, "config.json"), "utf8"));
  } catch {
    return undefined;
  }
  const keys =
    registry === "docker.io"
      ? ["https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io"]
      : [registry, `https://${registry}`, `http://${registry}`, `https://${registry}/v1/`];
  for (const k of keys) {
    const a = cfg.auths?.[k];
    if (a?.auth) return Buffer.from(a.auth, "base64").toString("utf8");
    if (a?.username && a.password) return `${a.username}:${a.password}`;
  }
  return undefined;
}

/** Parses `Bearer realm="…",service="…",scope="…"`. */
export function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const m = /^(\w+)\s*(.*)$/s.exec(header.trim());
  const params: Record<string, string> = {};
  for (const p of (m?.[2] ?? "").matchAll(/(\w+)=(?:"([^"]*)"|([^,\s]*))/g))
    params[p[1]!.toLowerCase()] = p[2] ?? p[3] ?? "";
  return { scheme: (m?.[1] ?? "").toLowerCase(), params };
}

export class RegistryClient {
  private token: string | undefined;
  private readonly base: string;
  private creds: string | undefined | null = null;

  constructor(
    readonly ref: OciRef,
    private readonly env: NodeJS.ProcessEnv = process.env,
    private readonly signal?: AbortSignal,
  ) {
    this.base = `${registryScheme(ref, env)}://${apiHost(ref)}/v2/${ref.repository}`;
  }

  private async credentials(): Promise<string | undefined> {
    if (this.creds === null) this.creds = await dockerCredentials(this.ref.registry, this.env);
    return this.creds;
  }

  private async request(path: string, accept?: string): Promise<Response> {
    const url = `${this.base}${path}`;
    const go = async () => {
      const headers: Record<string, string> = {};
      if (accept) headers.accept = accept;
      if (this.token) headers.authorization = `Bearer ${this.token}`;
      else {
        const c = await this.credentials();
        if (c && this.basicOnly) headers.authorization = `Basic ${Buffer.from(c).toString("base64")}`;
      }
      try {
        return await fetch(url, {
          headers,
          redirect: "follow",
          ...(this.signal ? { signal: this.signal } : {}),
        });
      } catch (e) {
        if (this.signal?.aborted) throw new PyroError("cancelled", "image pull cancelled");
        const cause = (e as { cause?: { code?: string; message?: string } }).cause;
        throw new PyroError(
          "registry_unreachable",
          `cannot reach registry ${this.ref.registry} (${url}): ${cause?.code ?? cause?.message ?? (e as Error).message}`,
          "check the registry host and port, and that this machine can reach it (a registry on plain HTTP other than localhost must be listed in PYRO_INSECURE_REGISTRIES)",
        );
      }
    };
    let res = await go();
    if (res.status === 401 && !this.triedAuth) {
      this.triedAuth = true;
      await res.body?.cancel();
      await this.authenticate(res.headers.get("www-authenticate") ?? "");
      res = await go();
    }
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      const has = await this.credentials();
      throw new PyroError(
        "registry_auth_failed",
        `registry ${this.ref.registry} refused access to ${this.ref.repository} (HTTP ${res.status})${has ? " with the credentials from your Docker config" : ""}`,
        has
          ? "check the credentials for this registry in ~/.docker/config.json (or $DOCKER_CONFIG)"
          : "the image may be private: put credentials for this registry in ~/.docker/config.json (`auths`), or check the repository name",
      );
    }
    return res;
  }

  private triedAuth = false;
  private basicOnly = false;

  private async authenticate(header: string): Promise<void> {
    const { scheme, params } = parseChallenge(header);
    if (scheme === "basic") {
      this.basicOnly = true;
      return;
    }
    if (scheme !== "bearer" || !params.realm)
      throw new PyroError(
        "registry_auth_failed",
        `registry ${this.ref.registry} asked for authentication pyro does not speak: ${JSON.stringify(header.slice(0, 200))}`,
      );
    const u = new URL(params.realm);
    if (params.service) u.searchParams.set("service", params.service);
    u.searchParams.set("scope", params.scope || `repository:${this.ref.repository}:pull`);
    const c = await this.credentials();
    const headers: Record<string, string> = c
      ? { authorization: `Basic ${Buffer.from(c).toString("base64")}` }
      : {};
    let res: Response;
    try {
      res = await fetch(u, { headers, ...(this.signal ? { signal: this.signal } : {}) });
    } catch (e) {
      throw new PyroError(
        "registry_unreachable",
        `cannot reach the token service ${u.origin} of registry ${this.ref.registry}: ${(e as Error).message}`,
      );
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new PyroError(
        "registry_auth_failed",
        `the token service of ${this.ref.registry} refused a pull token for ${this.ref.repository} (HTTP ${res.status})`,
        c
          ? "check the credentials for this registry in ~/.docker/config.json"
          : "the image may be private: add credentials for this registry to ~/.docker/config.json",
      );
    }
    const body = (await res.json().catch(() => ({}))) as { token?: string; access_token?: string };
    this.token = body.token ?? body.access_token;
    if (!this.token)
      throw new PyroError(
        "registry_auth_failed",
        `the token service of ${this.ref.registry} returned no token`,
      );
  }

  /** GET a manifest (by tag or digest); the digest is checked when the reference names one. */
  async manifest(reference: string): Promise<Fetched> {
    const res = await this.request(`/manifests/${reference}`, ACCEPT);
    if (res.status === 404) {
      await res.body?.cancel();
      throw new PyroError(
        "image_not_found",
        `image ${this.ref.registry}/${this.ref.repository}:${reference} not found in the registry (HTTP 404)`,
        "check the repository name and the tag or digest",
      );
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new PyroError(
        "registry_error",
        `registry ${this.ref.registry} answered HTTP ${res.status} for the manifest of ${this.ref.repository}:${reference}`,
      );
    }
    const bytes = Buffer.from(await res.arrayBuffer());
    const digest = sha256(bytes);
    if (reference.startsWith("sha256:") && digest !== reference)
      throw new PyroError(
        "image_digest_mismatch",
        `the manifest served for ${reference} hashes to ${digest}`,
        "the registry (or something between) served corrupt content; try again, or report it to the registry's operator",
      );
    const mediaType =
      (JSON.parse(bytes.toString("utf8")) as { mediaType?: string }).mediaType ??
      res.headers.get("content-type")?.split(";")[0] ??
      MEDIA.ociManifest;
    return { bytes, digest, mediaType };
  }

  /** GET a blob as a stream of chunks; the caller hashes and checks it. */
  async blob(digest: string): Promise<ReadableStream<Uint8Array>> {
    const res = await this.request(`/blobs/${digest}`);
    if (!res.ok || !res.body) {
      await res.body?.cancel();
      throw new PyroError(
        res.status === 404 ? "image_not_found" : "registry_error",
        `registry ${this.ref.registry} answered HTTP ${res.status} for blob ${digest} of ${this.ref.repository}`,
        res.status === 404 ? "the image in the registry is incomplete; push it again" : undefined,
      );
    }
    return res.body;
  }
}

/** The Go/OCI name of this machine's architecture. */
export function ociArch(arch: string = process.arch): string {
  return arch === "x64" ? "amd64" : arch === "ia32" ? "386" : arch;
}

/**
 * Resolves a reference to one image manifest for linux/<this arch>, descending through an
 * index (or Docker manifest list) when there is one.
 */
export async function resolveImage(
  client: RegistryClient,
): Promise<{ manifest: ImageManifest; manifestBytes: Buffer; manifestDigest: string; mediaType: string }> {
  const ref = client.ref;
  let top = await client.manifest(ref.digest ?? ref.tag ?? "latest");
  if (top.mediaType === MEDIA.ociIndex || top.mediaType === MEDIA.dockerList) {
    const index = JSON.parse(top.bytes.toString("utf8")) as { manifests?: Descriptor[] };
    const arch = ociArch();
    const pick = (index.manifests ?? []).find(
      (d) => d.platform?.os === "linux" && d.platform.architecture === arch,
    );
    if (!pick)
      throw new PyroError(
        "image_not_found",
        `${ref.canonical} has no image for linux/${arch} (it has: ${(index.manifests ?? []).map((d) => `${d.platform?.os}/${d.platform?.architecture}`).join(", ") || "none"})`,
        "pick a reference built for this machine's architecture",
      );
    top = await client.manifest(pick.digest);
  }
  if (top.mediaType !== MEDIA.ociManifest && top.mediaType !== MEDIA.dockerManifest)
    throw new PyroError(
      "image_unsupported",
      `${ref.canonical} is a ${top.mediaType}, not an image manifest pyro can run`,
      "pyro runs OCI and Docker v2 schema 2 images",
    );
  const manifest = JSON.parse(top.bytes.toString("utf8")) as ImageManifest;
  if (!manifest.config?.digest || !Array.isArray(manifest.layers))
    throw new PyroError("image_unsupported", `the manifest of ${ref.canonical} has no config or layers`);
  for (const d of [manifest.config, ...manifest.layers])
    if (!/^sha256:[a-f0-9]{64}$/.test(d.digest))
      throw new PyroError(
        "image_unsupported",
        `${ref.canonical} references blob ${JSON.stringify(d.digest)}: only sha256 digests are supported`,
      );
  return { manifest, manifestBytes: top.bytes, manifestDigest: top.digest, mediaType: top.mediaType };
}
