import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, request as httpRequest, type Server } from "node:http";
import { createServer as createNetServer } from "node:net";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import tarStream, { type Header } from "tar-stream";
import { tempDir } from "./helpers.js";

/**
 * A real registry for OCI tests: Debian's `docker-registry` (the distribution reference
 * server) on 127.0.0.1, images built here as OCI layouts (tar-stream + gzip) and pushed with
 * `skopeo copy`, plus an optional Node proxy in front that demands a Bearer token (the way
 * Docker Hub does) or corrupts one blob.
 */

export type LayerEntry = Partial<Header> & { name: string; body?: string | Buffer };

export const sha = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

export async function layerTar(entries: LayerEntry[]): Promise<Buffer> {
  const pack = tarStream.pack();
  for (const { body, ...h } of entries) {
    // A fixed mtime: the same entries must give the same layer digest on every push, or
    // images meant to share a layer would not.
    const header = {
      mode: h.type === "directory" ? 0o755 : 0o644,
      mtime: new Date("2024-01-01T00:00:00Z"),
      ...h,
      type: h.type ?? "file",
    };
    if (header.type === "file") pack.entry(header, body ?? "");
    else pack.entry(header);
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack as unknown as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

export interface ImageSpec {
  layers: LayerEntry[][];
  config?: { Env?: string[]; WorkingDir?: string; User?: string; Cmd?: string[]; Entrypoint?: string[] };
}

/** Writes an OCI image layout with one image tagged `tag`; returns the manifest digest. */
export async function writeLayout(dir: string, tag: string, spec: ImageSpec): Promise<string> {
  const blobs = join(dir, "blobs", "sha256");
  await mkdir(blobs, { recursive: true });
  const put = async (b: Buffer) => {
    const d = sha(b);
    await writeFile(join(blobs, d.slice(7)), b);
    return d;
  };
  const layers = [];
  const diffIds = [];
  for (const entries of spec.layers) {
    const tar = await layerTar(entries);
    const gz = gzipSync(tar, { level: 1 });
    diffIds.push(sha(tar));
    layers.push({
      mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
      digest: await put(gz),
      size: gz.length,
    });
  }
  const config = Buffer.from(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      config: spec.config ?? {},
      rootfs: { type: "layers", diff_ids: diffIds },
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {
        mediaType: "application/vnd.oci.image.config.v1+json",
        digest: await put(config),
        size: config.length,
      },
      layers,
    }),
  );
  const md = await put(manifest);
  await writeFile(join(dir, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(
    join(dir, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          digest: md,
          size: manifest.length,
          annotations: { "org.opencontainers.image.ref.name": tag },
        },
      ],
    }),
  );
  return md;
}

/** Layer 1 of the test image: a static busybox as /bin/sh, cat, id, pwd, env. */
export async function busyboxLayer(): Promise<LayerEntry[]> {
  const bb = await readFile("/bin/busybox");
  return [
    { name: "bin", type: "directory" },
    { name: "bin/busybox", body: bb, mode: 0o755 },
    ...["sh", "cat", "id", "pwd", "env", "ls", "echo", "true", "sleep", "tar", "kill"].map((n) => ({
      name: `bin/${n}`,
      type: "symlink" as const,
      linkname: "busybox",
    })),
    { name: "etc", type: "directory" },
    { name: "etc/passwd", body: "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n" },
    { name: "etc/group", body: "root:x:0:\napp:x:1000:\n" },
    { name: "etc/gone.txt", body: "removed by a whiteout in layer 2\n" },
    { name: "tmp", type: "directory", mode: 0o1777 },
    { name: "home/app", type: "directory", uid: 1000, gid: 1000 },
  ];
}

export const OS_RELEASE = 'NAME="Alpine-like Test"\nID=alpinelike\nVERSION_ID=1\n';

export function osReleaseLayer(extra: LayerEntry[] = []): LayerEntry[] {
  return [
    { name: "etc", type: "directory" },
    { name: "etc/os-release", body: OS_RELEASE },
    { name: "etc/.wh.gone.txt", body: "" },
    // An absolute symlink, as in any Debian image (/etc/localtime): kept verbatim, harmless.
    { name: "etc/localtime", type: "symlink", linkname: "/usr/share/zoneinfo/UTC" },
    ...extra,
  ];
}

/** Why OCI registry tests cannot run here, or undefined. */
export function ociToolsSkipReason(): string | undefined {
  for (const [bin, pkg] of [
    ["/usr/bin/docker-registry", "docker-registry"],
    ["/usr/bin/skopeo", "skopeo"],
    ["/usr/bin/umoci", "umoci"],
  ] as const)
    if (!existsSync(bin)) return `${pkg} not installed (run scripts/setup-host.sh)`;
  if (!existsSync("/bin/busybox"))
    return "busybox-static not installed (the test image is built from /bin/busybox)";
  return undefined;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => (typeof a === "object" && a ? resolve(a.port) : reject(new Error("no port"))));
    });
  });
}

function run(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(file, args, { maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${file} ${args.join(" ")}: ${stderr || err.message}`)) : resolve(stdout),
    ),
  );
}

export interface TestRegistry {
  port: number;
  host: string;
  /** Builds `spec` into a layout and pushes it as `repo:tag`; returns the manifest digest. */
  push(repo: string, tag: string, spec: ImageSpec): Promise<string>;
  stop(): Promise<void>;
}

export async function startRegistry(): Promise<TestRegistry> {
  const dir = await tempDir("pyro-registry-");
  const port = await freePort();
  await writeFile(
    join(dir, "config.yml"),
    [
      "version: 0.1",
      "log: { level: error }",
      `storage: { filesystem: { rootdirectory: ${join(dir, "data")} } }`,
      `http: { addr: 127.0.0.1:${port} }`,
      "",
    ].join("\n"),
  );
  const child: ChildProcess = spawn("/usr/bin/docker-registry", ["serve", join(dir, "config.yml")], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let err = "";
  child.stderr?.on("data", (d) => {
    err += d;
  });
  const host = `127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    const ok = await fetch(`http://${host}/v2/`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (i > 100 || child.exitCode !== null) throw new Error(`docker-registry did not start: ${err}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  let n = 0;
  return {
    port,
    host,
    async push(repo, tag, spec) {
      const layout = join(dir, `layout-${n++}`);
      const digest = await writeLayout(layout, tag, spec);
      await run("/usr/bin/skopeo", [
        "--insecure-policy",
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        `oci:${layout}:${tag}`,
        `docker://${host}/${repo}:${tag}`,
      ]);
      await rm(layout, { recursive: true, force: true });
      return digest;
    },
    async stop() {
      child.kill("SIGTERM");
      await new Promise((r) => (child.exitCode !== null ? r(null) : child.once("exit", r)));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface RegistryProxy {
  port: number;
  host: string;
  tokensIssued: number;
  stop(): Promise<void>;
}

/**
 * A proxy in front of the registry. With `token`, /v2/ requests without
 * `Authorization: Bearer <token>` get 401 + `WWW-Authenticate: Bearer realm=…/token`, and
 * /token hands out the token (only to `basic`, when given, as Basic credentials). With
 * `corrupt`, the body of that blob is served with one byte flipped.
 */
export async function startProxy(
  upstream: string,
  opts: { token?: string; basic?: string; corrupt?: string } = {},
): Promise<RegistryProxy> {
  const state = { tokensIssued: 0 };
  const server: Server = createServer((req, res) => {
    const url = req.url ?? "/";
    if (url.startsWith("/token")) {
      if (opts.basic && req.headers.authorization !== `Basic ${Buffer.from(opts.basic).toString("base64")}`) {
        res.writeHead(401).end();
        return;
      }
      state.tokensIssued++;
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ token: opts.token }));
      return;
    }
    if (opts.token && req.headers.authorization !== `Bearer ${opts.token}`) {
      const { port } = server.address() as { port: number };
      res
        .writeHead(401, {
          "www-authenticate": `Bearer realm="http://127.0.0.1:${port}/token",service="test-registry",scope="repository:x:pull"`,
        })
        .end();
      return;
    }
    const up = httpRequest(
      `http://${upstream}${url}`,
      { method: req.method, headers: { ...req.headers, host: upstream, authorization: "" } },
      (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        if (opts.corrupt && url.endsWith(`/blobs/${opts.corrupt}`)) {
          let flipped = false;
          ur.on("data", (c: Buffer) => {
            if (!flipped && c.length > 100) {
              c[c.length - 20] = (c[c.length - 20] ?? 0) ^ 0xff;
              flipped = true;
            }
            res.write(c);
          });
          ur.on("end", () => res.end());
        } else ur.pipe(res);
      },
    );
    up.on("error", () => res.writeHead(502).end());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const { port } = server.address() as { port: number };
  return {
    port,
    host: `127.0.0.1:${port}`,
    get tokensIssued() {
      return state.tokensIssued;
    },
    stop: () => new Promise((r) => server.close(() => r())),
  };
}
