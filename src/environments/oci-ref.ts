import { PyroError } from "../core/errors.js";

/**
 * An OCI image reference, split the way the distribution spec does:
 * `[registry/]repository[:tag][@sha256:digest]`. Docker Hub's shorthands apply only when
 * the first component is not a host (`library/` for one-component names).
 */
export interface OciRef {
  /** Host[:port] of the registry, e.g. "localhost:5000", "registry-1.docker.io". */
  registry: string;
  /** e.g. "library/python". */
  repository: string;
  tag: string | undefined;
  digest: string | undefined;
  /** The reference as normalised text, e.g. "docker.io/library/python:3.12-slim". */
  canonical: string;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
const HOST =
  /^(?:localhost|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+|\[[0-9a-fA-F:]+\]|[A-Za-z0-9-]+(?=:\d+$))(?::\d{1,5})?$/;

/**
 * True when `name` can only mean an image: it has a `/` or an `@`. A bare `name:tag` is a
 * catalog or recipe name (pyro's `debian:12` is not Docker Hub's `debian:12`).
 */
export function looksLikeImageRef(name: string): boolean {
  return name.includes("/") || name.includes("@");
}

function bad(ref: string, why: string): PyroError {
  return new PyroError(
    "invalid_argument",
    `invalid image reference ${JSON.stringify(ref.slice(0, 200))}: ${why}`,
    "write REGISTRY/REPOSITORY:TAG or …@sha256:DIGEST, e.g. docker.io/library/python:3.12-slim or localhost:5000/app:1",
  );
}

export function parseOciRef(ref: string): OciRef {
  let rest = ref.trim();
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest))
      throw bad(ref, `digest ${JSON.stringify(digest)} is not sha256:<64 hex digits>`);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf("/");
  const colon = rest.lastIndexOf(":");
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(ref, `tag ${JSON.stringify(tag)} is not valid`);
  }
  const parts = rest.split("/");
  let registry = "docker.io";
  const first = parts[0] ?? "";
  if (parts.length > 1 && (first.includes(".") || first.includes(":") || first === "localhost")) {
    registry = first;
    parts.shift();
    if (!HOST.test(registry)) throw bad(ref, `registry host ${JSON.stringify(registry)} is not valid`);
  }
  if (registry === "docker.io" && parts.length === 1) parts.unshift("library");
  if (parts.length === 0 || parts.some((p) => !COMPONENT.test(p)))
    throw bad(ref, "the repository must be lowercase path components (a-z, 0-9, ., _, -)");
  const repository = parts.join("/");
  if (!tag && !digest) tag = "latest";
  const canonical = `${registry}/${repository}${tag ? `:${tag}` : ""}${digest ? `@${digest}` : ""}`;
  return { registry, repository, tag, digest, canonical };
}

/** The host to talk to: Docker Hub's API lives at registry-1.docker.io. */
export function apiHost(r: OciRef): string {
  return r.registry === "docker.io" ? "registry-1.docker.io" : r.registry;
}

/**
 * Plain HTTP only for loopback registries (and any listed in PYRO_INSECURE_REGISTRIES,
 * comma-separated), the way Docker treats 127.0.0.0/8 as insecure by default.
 */
export function registryScheme(r: OciRef, env: NodeJS.ProcessEnv = process.env): "http" | "https" {
  const host = r.registry.replace(/:\d+$/, "");
  if (host === "localhost" || host === "127.0.0.1" || host === "[::1]") return "http";
  const insecure = (env.PYRO_INSECURE_REGISTRIES ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  return insecure.includes(r.registry) ? "http" : "https";
}
