import { mkdir, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { PyroError } from "../../core/errors.js";
import { ignore } from "../../util/best-effort.js";
import { readJson, withLock, writeJsonAtomic } from "../../util/json-store.js";
import { runCapture, runChecked, which } from "../../util/proc.js";

/**
 * The guest kernel: Debian's own `linux-image-*-cloud-amd64` package, fetched with
 * `apt-get download` and unpacked with `dpkg-deb -x` into pyro's cache (never the host's
 * /boot). Layout, shared with scripts/setup-host.sh:
 *   <cache>/guest-kernels/<deb basename>/{boot/vmlinuz-<release>, lib/modules/<release>/…, kernel.json}
 * kernel.json is written last, so a directory without it is an interrupted fetch.
 */
export const KERNEL_META_PACKAGE = "linux-image-cloud-amd64";
export const KERNEL_HINT =
  "run `sudo scripts/setup-host.sh` (fetches Debian's cloud kernel into pyro's cache), or set PYRO_GUEST_KERNEL_DIR to an unpacked linux-image package";

export interface GuestKernel {
  /** Root of the unpacked package. */
  dir: string;
  package: string;
  version: string;
  /** `uname -r` of the guest, e.g. 6.1.0-56-cloud-amd64. */
  release: string;
  vmlinuz: string;
  modulesDir: string;
}

interface KernelMeta {
  package: string;
  version: string;
  release: string;
}

export function guestKernelsDir(cacheDir: string): string {
  return join(cacheDir, "guest-kernels");
}

async function fromDir(dir: string): Promise<GuestKernel | undefined> {
  const meta = await readJson<KernelMeta>(join(dir, "kernel.json")).catch(
    ignore("no readable kernel.json: the release is looked up in boot/"),
  );
  let release = meta?.release;
  if (!release) {
    // A tree unpacked by hand (PYRO_GUEST_KERNEL_DIR): take the first vmlinuz.
    const boot = await readdir(join(dir, "boot")).catch(() => [] as string[]);
    release = boot.find((n) => n.startsWith("vmlinuz-"))?.slice("vmlinuz-".length);
    if (!release) return undefined;
  }
  const vmlinuz = join(dir, "boot", `vmlinuz-${release}`);
  const modulesDir = join(dir, "lib", "modules", release);
  if (!(await stat(vmlinuz).catch(ignore("no vmlinuz: not a usable kernel dir")))?.isFile()) return undefined;
  if (!(await stat(modulesDir).catch(ignore("no modules dir: not a usable kernel dir")))?.isDirectory())
    return undefined;
  return {
    dir,
    package: meta?.package ?? "unknown",
    version: meta?.version ?? "unknown",
    release,
    vmlinuz,
    modulesDir,
  };
}

/** The newest complete kernel in the cache (or PYRO_GUEST_KERNEL_DIR), without fetching. */
export async function findGuestKernel(
  cacheDir: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<GuestKernel | undefined> {
  if (env.PYRO_GUEST_KERNEL_DIR) return fromDir(env.PYRO_GUEST_KERNEL_DIR);
  const root = guestKernelsDir(cacheDir);
  const names = (await readdir(root).catch(() => [] as string[]))
    .filter((n) => !n.startsWith("."))
    .sort((a, b) => b.localeCompare(a, "en", { numeric: true }));
  for (const n of names) {
    if (!(await stat(join(root, n, "kernel.json")).catch(ignore("no kernel.json: not a kernel dir"))))
      continue;
    const k = await fromDir(join(root, n));
    if (k) return k;
  }
  return undefined;
}

/** Which concrete linux-image package the meta package points at (apt's view of the host's mirror). */
async function resolveKernelPackage(env: NodeJS.ProcessEnv): Promise<string> {
  const meta = env.PYRO_GUEST_KERNEL_PACKAGE || KERNEL_META_PACKAGE;
  const r = await runCapture("apt-cache", ["depends", "--no-recommends", "--no-suggests", meta], {
    timeoutMs: 60_000,
    env,
  });
  const dep = /Depends:\s+(linux-image-[^\s<>]+)/.exec(r.stdout)?.[1];
  if (r.exitCode !== 0 || !dep) {
    // Not a meta package (already concrete), or apt does not know it.
    if (/^linux-image-\d/.test(meta)) return meta;
    throw new PyroError(
      "host_dependency_missing",
      `apt cannot resolve ${meta}: ${(r.stderr || r.stdout).trim().slice(0, 300) || "no dependency found"}`,
      "run `apt-get update`, or " + KERNEL_HINT,
    );
  }
  return dep;
}

/**
 * Returns the guest kernel, fetching it on first use. Needs apt-get and dpkg-deb (Debian);
 * the download is ~27 MB, unpacked ~100 MB.
 */
export async function ensureGuestKernel(
  cacheDir: string,
  env: NodeJS.ProcessEnv = process.env,
  onProgress?: (message: string) => void,
): Promise<GuestKernel> {
  const found = await findGuestKernel(cacheDir, env);
  if (found) return found;
  if (env.PYRO_GUEST_KERNEL_DIR) {
    throw new PyroError(
      "host_dependency_missing",
      `PYRO_GUEST_KERNEL_DIR=${env.PYRO_GUEST_KERNEL_DIR} holds no boot/vmlinuz-* with lib/modules`,
      KERNEL_HINT,
    );
  }
  if (!(await which("apt-get", env)) || !(await which("dpkg-deb", env))) {
    throw new PyroError(
      "host_dependency_missing",
      "no guest kernel in pyro's cache and no apt-get/dpkg-deb to fetch one",
      KERNEL_HINT,
    );
  }
  const root = guestKernelsDir(cacheDir);
  await mkdir(root, { recursive: true });
  return withLock(join(root, "fetch"), async () => {
    const again = await findGuestKernel(cacheDir, env);
    if (again) return again;
    const pkg = await resolveKernelPackage(env);
    onProgress?.(`fetching guest kernel ${pkg} with apt-get download`);
    const tmp = join(root, `.tmp-${process.pid}-${Date.now()}`);
    await mkdir(tmp, { recursive: true });
    try {
      const aptOpts = process.getuid?.() === 0 ? ["-o", "APT::Sandbox::User=root"] : [];
      await runChecked("apt-get", [...aptOpts, "download", "-qq", pkg], {
        cwd: tmp,
        timeoutMs: 600_000,
        env,
      });
      const deb = (await readdir(tmp)).find((n) => n.endsWith(".deb"));
      if (!deb)
        throw new PyroError(
          "host_dependency_missing",
          `apt-get download ${pkg} produced no .deb`,
          KERNEL_HINT,
        );
      const tree = join(tmp, "tree");
      await runChecked("dpkg-deb", ["-x", join(tmp, deb), tree], { timeoutMs: 300_000, env });
      const release = (await readdir(join(tree, "boot")))
        .find((n) => n.startsWith("vmlinuz-"))
        ?.slice("vmlinuz-".length);
      if (!release)
        throw new PyroError("host_dependency_missing", `${deb} holds no boot/vmlinuz-*`, KERNEL_HINT);
      const version = deb.replace(/\.deb$/, "").split("_")[1] ?? "unknown";
      await writeJsonAtomic(join(tree, "kernel.json"), {
        package: pkg,
        version,
        release,
      } satisfies KernelMeta);
      const dest = join(root, deb.replace(/\.deb$/, ""));
      await rm(dest, { recursive: true, force: true });
      await rename(tree, dest);
      const k = await fromDir(dest);
      if (!k)
        throw new PyroError(
          "host_dependency_missing",
          `unpacked kernel at ${dest} is incomplete`,
          KERNEL_HINT,
        );
      return k;
    } catch (e) {
      if (e instanceof PyroError) throw e;
      throw new PyroError(
        "host_dependency_missing",
        `fetching the guest kernel failed: ${(e as Error).message}`,
        KERNEL_HINT,
      );
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });
}

/** Module dependencies as recorded in a .ko's .modinfo section (`depends=a,b`). */
export function modinfoDepends(ko: Buffer): string[] {
  const s = ko.toString("latin1");
  const m = /\0depends=([^\0]*)\0/.exec(s) ?? /^depends=([^\0]*)\0/.exec(s);
  return (m?.[1] ?? "").split(",").filter(Boolean);
}

export function moduleName(fileName: string): string {
  return fileName.replace(/\.ko(\.(xz|zst|gz))?$/, "").replace(/-/g, "_");
}

async function walk(dir: string, out: Map<string, string>): Promise<void> {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) await walk(p, out);
    else if (/\.ko(\.(xz|zst|gz))?$/.test(e.name)) out.set(moduleName(e.name), p);
  }
}

/** Names of modules built into the kernel (nothing to load for those). */
async function builtins(modulesDir: string): Promise<Set<string>> {
  const text = await readFile(join(modulesDir, "modules.builtin"), "utf8").catch(() => "");
  return new Set(
    text
      .split("\n")
      .filter(Boolean)
      .map((l) => moduleName(l.split("/").pop() ?? "")),
  );
}

/**
 * Resolves `wanted` modules plus their dependencies into load order (dependencies first).
 * Modules built into the kernel are skipped; `optional` ones that do not exist are too.
 */
export async function resolveModules(
  modulesDir: string,
  wanted: readonly string[],
  optional: readonly string[] = [],
): Promise<{ name: string; path: string }[]> {
  const index = new Map<string, string>();
  await walk(join(modulesDir, "kernel"), index);
  const builtin = await builtins(modulesDir);
  const order: { name: string; path: string }[] = [];
  const seen = new Set<string>();
  const visit = async (name: string, isOptional: boolean): Promise<void> => {
    const n = moduleName(name);
    if (seen.has(n) || builtin.has(n)) return;
    const path = index.get(n);
    if (!path) {
      if (isOptional) return;
      throw new PyroError(
        "host_dependency_missing",
        `guest kernel module ${n} not found under ${modulesDir}`,
        KERNEL_HINT,
      );
    }
    if (!path.endsWith(".ko")) {
      throw new PyroError(
        "host_dependency_missing",
        `guest kernel module ${path} is compressed; pyro loads only plain .ko modules`,
        KERNEL_HINT,
      );
    }
    seen.add(n);
    for (const d of modinfoDepends(await readFile(path))) await visit(d, false);
    order.push({ name: n, path });
  };
  for (const w of wanted) await visit(w, false);
  for (const o of optional) await visit(o, true);
  return order;
}
